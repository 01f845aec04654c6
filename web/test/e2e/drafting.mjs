// Drafting in real browsers against a real server: two delegates typing at
// once converge, an input-method composition converges, a page taken
// offline keeps its edits and delivers them, undo undoes one's own edits
// only, others' cursors are shown, and an observer cannot edit.

import { test, before } from "node:test";
import assert from "node:assert/strict";
import { skipReason, shared, newPage, join, until, serverDraft, screenshotPath } from "./harness.mjs";

const skip = skipReason() || false;
const DOC = "chair-summary";
let srv, browser, kor, gbr;

async function openDraft(link, doc = DOC) {
  const page = await newPage(browser);
  await join(page, link);
  await page.getByRole("link", { name: "Draft" }).first().waitFor();
  await page.goto(`${srv.url}/s/seoul-2013/d/${doc}`);
  await page.locator(".cm-content").waitFor();
  await page.locator('.status[data-conn="online"]').waitFor();
  return page;
}

const editorText = (page) => page.evaluate(() => window.__communique.editor.text());

/** Waits until every page shows the server's draft and nothing is pending. */
async function converged(pages, doc = DOC) {
  let want;
  await until(
    async () => {
      want = (await serverDraft(srv, doc)).text;
      for (const p of pages) {
        const st = await p.locator(".status").getAttribute("data-ot");
        const pending = await p.locator(".status").getAttribute("data-pending");
        if (st !== "synchronized" || pending !== "0") return false;
        if ((await editorText(p)) !== want) return false;
      }
      return true;
    },
    { timeout: 15000, message: "pages to converge on the server's draft" },
  );
  return want;
}

async function caretAtEnd(page) {
  await page.locator(".cm-content").click();
  await page.keyboard.press("Control+End");
}

async function caretAfter(page, needle) {
  // Puts the caret right after the first occurrence of needle.
  await page.locator(".cm-content").click();
  await page.evaluate((n) => {
    const v = window.__communique.editor.view;
    const at = v.state.doc.toString().indexOf(n) + n.length;
    v.dispatch({ selection: { anchor: at } });
    v.focus();
  }, needle);
}

before(async () => {
  if (skip) return;
  ({ srv, browser } = await shared());
  [kor, gbr] = await Promise.all([openDraft(srv.links.KOR), openDraft(srv.links.GBR)]);
});


test("two delegates typing at the same time converge", { skip }, async () => {
  await Promise.all([caretAtEnd(kor), caretAtEnd(gbr)]);
  // Same place (the end), at the same time; then different places.
  await Promise.all([kor.keyboard.type(" Korea adds 🌐 text.", { delay: 8 }), gbr.keyboard.type(" UK adds text.", { delay: 8 })]);
  await Promise.all([caretAfter(kor, "1.1 The"), caretAfter(gbr, "1.2 Some")]);
  await Promise.all([kor.keyboard.type(" [KOR]", { delay: 5 }), gbr.keyboard.type(" [GBR]", { delay: 5 })]);
  const text = await converged([kor, gbr]);
  for (const s of [" Korea adds 🌐 text.", " UK adds text.", "1.1 The [KOR]", "1.2 Some [GBR]"]) assert.ok(text.includes(s), `missing ${JSON.stringify(s)}`);
});

test("others' cursors are drawn with their delegation", { skip }, async () => {
  await caretAfter(kor, "[KOR]");
  await kor.keyboard.type("!");
  await gbr.locator(".cm-peer-label", { hasText: "KOR" }).waitFor({ timeout: 5000 });
  await kor.locator(".cm-peer-label", { hasText: "GBR" }).waitFor({ timeout: 5000 });
  assert.ok(await gbr.locator(".peer[data-peer=KOR]").isVisible(), "KOR listed as drafting");
});

test("input-method compositions (Korean, Japanese) converge", { skip }, async () => {
  await caretAfter(kor, "COEX, Seoul");
  await caretAfter(gbr, "2.1 Participants");
  const cdp = await kor.context().newCDPSession(kor);
  // 한 then 국, as a Korean IME composes them jamo by jamo, while GBR types.
  const typing = gbr.keyboard.type(" (GBR during IME)", { delay: 15 });
  await kor.keyboard.type(" ");
  for (const step of ["ㅎ", "하", "한"]) {
    await cdp.send("Input.imeSetComposition", { text: step, selectionStart: step.length, selectionEnd: step.length });
    await kor.waitForTimeout(20);
  }
  await cdp.send("Input.insertText", { text: "한" });
  for (const step of ["ㄱ", "구", "국"]) {
    await cdp.send("Input.imeSetComposition", { text: step, selectionStart: step.length, selectionEnd: step.length });
    await kor.waitForTimeout(20);
  }
  await cdp.send("Input.insertText", { text: "국" });
  // Japanese: kana while composing, kanji when committed.
  await kor.keyboard.type(" ");
  for (const step of ["に", "にほ", "にほん", "にほんご", "日本語"]) {
    await cdp.send("Input.imeSetComposition", { text: step, selectionStart: step.length, selectionEnd: step.length });
    await kor.waitForTimeout(20);
  }
  await cdp.send("Input.insertText", { text: "日本語" });
  await typing;
  const text = await converged([kor, gbr]);
  assert.ok(text.includes("COEX, Seoul 한국 日本語"), "the composed text is in place");
  assert.ok(!/[ㅎㄱにほんご]/.test(text), "nothing left over from the compositions");
  assert.ok(text.includes("2.1 Participants (GBR during IME)"));
  await cdp.detach();
});

test("offline: edits are kept, counted, and delivered on reconnect", { skip }, async () => {
  await caretAfter(kor, "1.3 The Chair");
  await kor.context().setOffline(true);
  await kor.locator('.status[data-conn="offline"]').waitFor({ timeout: 5000 });
  await kor.keyboard.type(" typed offline 🌐", { delay: 5 });
  await kor.keyboard.press("Enter");
  await kor.keyboard.type("새 문단");
  const status = await kor.locator(".status").innerText();
  assert.match(status, /Offline — \d+ edits? waiting/);
  assert.notEqual(await kor.locator(".status").getAttribute("data-pending"), "0");
  // Meanwhile GBR edits the same paragraph.
  await caretAfter(gbr, "1.3 The");
  await gbr.keyboard.type(" [GBR while KOR offline]", { delay: 5 });
  await until(async () => (await serverDraft(srv, DOC)).text.includes("[GBR while KOR offline]"), { message: "GBR's edit saved" });
  assert.ok(!(await serverDraft(srv, DOC)).text.includes("typed offline"), "nothing reached the server while offline");
  await kor.screenshot({ path: screenshotPath("delegate-offline.png") });
  await kor.context().setOffline(false);
  const text = await converged([kor, gbr]);
  assert.ok(text.includes("typed offline 🌐\n새 문단"), "the offline edits arrived");
  assert.ok(text.includes("[GBR while KOR offline]"));
});

test("a dropped socket (server side) loses nothing", { skip }, async () => {
  await caretAfter(gbr, "[GBR]");
  // Close the socket under the page while it types.
  const typing = gbr.keyboard.type(" and more words", { delay: 10 });
  await gbr.evaluate(() => window.__communique.session.socket.ws?.close());
  await typing;
  const text = await converged([kor, gbr]);
  assert.ok(text.includes("[GBR] and more words"));
});

test("a reload with unsent edits keeps them and sends them once", { skip }, async () => {
  // The socket cannot reconnect (blocked), the user types, then reloads.
  let block = true;
  await kor.routeWebSocket(/\/ws\?/, (ws) => (block ? ws.close() : ws.connectToServer()));
  await kor.evaluate(() => window.__communique.session.socket.ws?.close());
  await kor.locator('.status[data-conn="connecting"]').waitFor();
  await caretAfter(kor, "2.2 Many");
  await kor.keyboard.type(" typed-before-reload");
  assert.notEqual(await kor.locator(".status").getAttribute("data-pending"), "0");
  assert.ok(!(await serverDraft(srv, DOC)).text.includes("typed-before-reload"), "nothing was sent before the reload");
  let warned = "";
  kor.once("dialog", (d) => {
    warned = d.type();
    d.accept();
  });
  block = false;
  await kor.reload();
  assert.equal(warned, "beforeunload", "the browser warned before leaving unsaved edits");
  await kor.locator(".cm-content").waitFor();
  const text = await converged([kor, gbr]);
  assert.equal(text.split("typed-before-reload").length - 1, 1, "the edit arrived exactly once");
  assert.equal(await kor.evaluate(() => localStorage.length), 0, "nothing left behind");
});

test("undo undoes one's own edits only", { skip }, async () => {
  await caretAfter(kor, "2.2 Many");
  await kor.keyboard.type(" UNDO-ME");
  await converged([kor, gbr]);
  await caretAfter(gbr, "2.2 Many UNDO-ME");
  await gbr.keyboard.type(" KEEP-ME");
  await converged([kor, gbr]);
  await kor.locator(".cm-content").focus();
  for (let i = 0; i < 3 && (await editorText(kor)).includes("UNDO-ME"); i++) {
    await kor.keyboard.press("Control+z");
    await kor.waitForTimeout(50);
  }
  const text = await converged([kor, gbr]);
  assert.ok(!text.includes("UNDO-ME"), "KOR's own edit is undone");
  assert.ok(text.includes("2.2 Many KEEP-ME"), "GBR's edit stays");
  // Redo brings it back.
  await kor.keyboard.press("Control+y");
  const again = await converged([kor, gbr]);
  assert.ok(again.includes("UNDO-ME"), "redo restores it");
});

test("colour by author marks text by delegation", { skip }, async () => {
  await kor.getByLabel("Colour by author").check();
  await kor.locator(".cm-author").first().waitFor({ timeout: 5000 });
  const authors = await kor.locator(".cm-author").evaluateAll((els) => [...new Set(els.map((e) => e.title))]);
  assert.ok(authors.some((a) => a.includes("KOR")) && authors.some((a) => a.includes("GBR")), `authors shown: ${authors}`);
  await kor.screenshot({ path: screenshotPath("delegate-draft.png") });
});

test("an observer cannot edit", { skip }, async () => {
  const obs = await newPage(browser);
  await join(obs, srv.links.observer);
  await obs.goto(`${srv.url}/s/seoul-2013/d/${DOC}`);
  await obs.locator("article.reading").waitFor();
  await obs.locator('.status[data-conn="online"]').waitFor();
  assert.equal(await obs.locator(".cm-content").count(), 0, "no editor for observers");
  assert.equal(await obs.locator("[contenteditable=true]").count(), 0);
  const before = await obs.locator("article.reading").innerText();
  await obs.locator("article.reading").click();
  await obs.keyboard.type("observer typing");
  assert.equal(await obs.locator("article.reading").innerText(), before);
  // The API refuses too (the page has the observer's cookie).
  const status = await obs.evaluate(async (doc) => {
    const r = await fetch(`/api/summits/seoul-2013/docs/${doc}/draft`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ base_version: 0, text: "x" }),
    });
    return r.status;
  }, DOC);
  assert.equal(status, 403);
  obs.errors = obs.errors.filter((e) => !e.includes("403")); // the refused PUT is logged by the browser
  assert.deepEqual(obs.errors, []);
  await obs.context().close();
});

test("no console errors on the drafting pages", { skip }, async () => {
  const errs = [...kor.errors, ...gbr.errors].filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e));
  assert.deepEqual(errs, []);
  await kor.context().close();
  await gbr.context().close();
});
