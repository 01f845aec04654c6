// Test harness for the browser tests: builds the real binary, starts
// `communique serve --demo` on a free loopback port with a fresh data
// folder, parses the printed invitation links, and drives Debian's
// chromium through playwright-core (never a downloaded browser).
//
// Without /usr/bin/chromium the tests skip, loudly — except under CI=true,
// where they fail.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const webDir = path.resolve(here, "../..");
export const repoRoot = path.resolve(webDir, "..");
export const resultsDir = path.join(webDir, "test-results");
export const CHROMIUM = process.env.COMMUNIQUE_CHROMIUM || "/usr/bin/chromium";

/** Why the browser tests cannot run here, or "" when they can. */
let warned = false;
export function skipReason() {
  if (existsSync(CHROMIUM)) return "";
  const msg = `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`;
  if (process.env.CI === "true") throw new Error(`browser tests cannot run in CI: ${msg}`);
  if (!warned) {
    const bar = "!".repeat(78);
    process.stderr.write(`\n${bar}\n!!! SKIPPING THE BROWSER TESTS: ${msg}\n${bar}\n\n`);
    warned = true;
  }
  return msg;
}

let binary = null;
/** Builds cmd/communique once per test process (or uses $COMMUNIQUE_BIN). */
export function buildBinary() {
  if (binary) return binary;
  if (process.env.COMMUNIQUE_BIN) return (binary = process.env.COMMUNIQUE_BIN); // a binary built beforehand
  const dir = mkdtempSync(path.join(tmpdir(), "communique-bin-"));
  binary = path.join(dir, "communique");
  execFileSync("go", ["build", "-o", binary, "./cmd/communique"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return binary;
}

/**
 * Starts a demo server. Resolves with {url, links: {chair, KOR, GBR, …,
 * observer}, tokens, stop()}.
 */
export async function startServer() {
  const bin = buildBinary();
  const data = mkdtempSync(path.join(tmpdir(), "communique-data-"));
  const proc = spawn(bin, ["serve", "--demo", "--data", data, "--addr", "127.0.0.1:0", "--admin-token", "test-admin-token", "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (b) => (stdout += b));
  proc.stderr.on("data", (b) => (stderr += b));
  const exited = new Promise((res) => proc.on("exit", res));

  // The demo block is printed once the server listens.
  const deadline = Date.now() + 20000;
  while (!/WebSocket: ws:\/\//.test(stdout)) {
    if (proc.exitCode !== null) throw new Error(`server exited early:\n${stdout}\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`server did not start:\n${stdout}\n${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const links = {};
  const tokens = {};
  const lines = stdout.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s+(chair|delegate|observer)\s+(.*?)\s+(cq_\S+)$/.exec(lines[i]);
    if (!m) continue;
    const key = m[1] === "delegate" ? m[2].split(" ")[0] : m[1];
    tokens[key] = m[3];
    const link = /(http:\/\/\S+\/join#token=\S+)/.exec(lines[i + 1] || "");
    if (link) links[key] = link[1];
  }
  const url = new URL(links.chair).origin;
  // Wait until healthy.
  for (;;) {
    try {
      const r = await fetch(url + "/healthz");
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error("server not healthy");
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url,
    links,
    tokens,
    output: () => stdout + stderr,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/**
 * Launches chromium headless. Playwright gives every launch a fresh,
 * temporary --user-data-dir of its own (and refuses one in args), and each
 * context is a separate cookie jar, so each role gets its own session.
 */
export async function launch() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * A new context and page that records console errors and page errors
 * (pageErrors(page) lists them; tests assert there are none).
 */
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => page.errors.push(`pageerror: ${e.message}`));
  return page;
}

/** Joins with an invitation link and waits for the summit's home. */
export async function join(page, link) {
  await page.goto(link);
  await page.waitForURL(/\/s\/seoul-2013$/);
  await page.getByRole("heading", { level: 1 }).waitFor();
}

export function screenshotPath(name) {
  mkdirSync(resultsDir, { recursive: true });
  return path.join(resultsDir, name);
}

/** Polls fn until it returns a truthy value (or throws after timeout). */
export async function until(fn, { timeout = 10000, interval = 50, message = "condition" } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${message} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** The draft text as the server has it (HTTP, with a token). */
export async function serverDraft(srv, doc, token = srv.tokens.chair) {
  const r = await fetch(`${srv.url}/api/summits/seoul-2013/docs/${doc}`, { headers: { Authorization: `Bearer ${token}` } });
  return (await r.json()).draft;
}

export async function api(srv, method, p, body, token = srv.tokens.chair) {
  const r = await fetch(srv.url + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

let sharedSetup = null;
/**
 * One server and one browser for every browser test of the process
 * (launching chromium is the slowest step): made on first use, closed by
 * closeShared().
 */
export function shared() {
  if (!sharedSetup) sharedSetup = Promise.all([startServer(), launch()]).then(([srv, browser]) => ({ srv, browser }));
  return sharedSetup;
}

export async function closeShared() {
  if (!sharedSetup) return;
  const { srv, browser } = await sharedSetup;
  sharedSetup = null;
  await browser.close();
  await srv.stop();
}
