// Builds the browser client into dist/ (committed, embedded by embed.go):
//   dist/index.html                 the page, naming the hashed assets
//   dist/assets/app-HASH.js|css     the bundle (CodeMirror included)
//   dist/favicon.svg
//   dist/THIRD_PARTY_LICENSES.txt   licences of what the bundle contains
// The output depends only on the sources and the locked packages, so CI
// can rebuild and compare (make web-check). `node build.mjs --dev` builds
// unminified with inline source maps, for debugging only (not committed).

import * as esbuild from "esbuild";
import { readFile, writeFile, rm, mkdir, copyFile, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, "src");
const out = path.join(here, "dist");
const dev = process.argv.includes("--dev");

await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, "assets"), { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: path.join(src, "app.js"), style: path.join(src, "styles.css") },
  bundle: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  legalComments: "none",
  outdir: path.join(out, "assets"),
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
  absWorkingDir: here,
});

const outputs = Object.entries(result.metafile.outputs);
const asset = (entry) => {
  const found = outputs.find(([, o]) => o.entryPoint && o.entryPoint.endsWith(entry));
  if (!found) throw new Error("no output for " + entry);
  return "/" + path.relative(out, path.join(here, found[0])).split(path.sep).join("/");
};

let html = await readFile(path.join(src, "index.html"), "utf8");
html = html.replace("{{APP_JS}}", asset("src/app.js")).replace("{{APP_CSS}}", asset("src/styles.css"));
await writeFile(path.join(out, "index.html"), html);
await copyFile(path.join(src, "favicon.svg"), path.join(out, "favicon.svg"));

// Licences of the packages whose code is in the bundle.
const pkgs = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) pkgs.add(m[1]);
}
let licences = "Third-party software in the Communiqué web client bundle\n";
for (const name of [...pkgs].sort()) {
  const dir = path.join(here, "node_modules", name);
  const meta = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  const file = (await readdir(dir)).sort().find((f) => /^licen[cs]e/i.test(f));
  licences += `\n== ${name} ${meta.version} (${meta.license}) ==\n`;
  if (file && existsSync(path.join(dir, file))) licences += (await readFile(path.join(dir, file), "utf8")).trim() + "\n";
}
await writeFile(path.join(out, "THIRD_PARTY_LICENSES.txt"), licences);

for (const [file, o] of outputs) console.log(`${path.relative(here, file)}  ${(o.bytes / 1024).toFixed(1)} KiB`);
