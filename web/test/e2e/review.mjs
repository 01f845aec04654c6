// The chair's office and observers in real browsers: a delegate's change
// appears in the chair's redline live; the chair approves one hunk and an
// observer's page shows it without a reload; rejecting puts the approved
// wording back in the delegate's editor; Adopt once nothing is pending
// freezes the editor; history and the home page work; every control has
// an accessible name; a screenshot of each role's main view is written to
// web/test-results/ (also at phone width).

import { test, before } from "node:test";
import assert from "node:assert/strict";
import { skipReason, shared, newPage, join, until, serverDraft, screenshotPath, api } from "./harness.mjs";

const skip = skipReason() || false;
const DOC = "annex-1";
let srv, browser, chair, kor, obs;

before(async () => {
  if (skip) return;
  ({ srv, browser } = await shared());
  [chair, kor, obs] = await Promise.all([newPage(browser), newPage(browser), newPage(browser)]);
  await Promise.all([join(chair, srv.links.chair), join(kor, srv.links.KOR), join(obs, srv.links.observer)]);
});


async function typeInDraft(page, after, text) {
  await page.locator(".cm-content").click();
  await page.evaluate((n) => {
    const v = window.__communique.editor.view;
    const at = v.state.doc.toString().indexOf(n) + n.length;
    v.dispatch({ selection: { anchor: at } });
    v.focus();
  }, after);
  await page.keyboard.type(text, { delay: 5 });
  await page.locator('.status[data-ot="synchronized"][data-pending="0"]').waitFor();
}

/** Checks that every button, link, input and select has an accessible name. */
async function unnamedControls(page) {
  return page.evaluate(() => {
    const bad = [];
    const named = (el) => {
      if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) return true;
      if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
      if (el.tagName === "INPUT" && ["submit", "button"].includes(el.type)) return !!el.value;
      return !!el.textContent.trim() || !!el.getAttribute("title");
    };
    for (const el of document.querySelectorAll("button, a[href], input:not([type=hidden]), select, textarea, [role=textbox]")) {
      if (el.closest("[hidden], dialog:not([open])")) continue;
      if (!named(el)) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
}

test("home: documents in order with their state; who is drafting", { skip }, async () => {
  await kor.goto(`${srv.url}/s/seoul-2013/d/${DOC}`);
  await kor.locator('.status[data-conn="online"]').waitFor();
  const titles = await chair.locator(".doc-title").allInnerTexts();
  assert.equal(titles.length, 3);
  assert.match(titles[0], /Chair's Summary/);
  assert.match(titles[1], /Annex I/);
  await chair.locator(".presence-list", { hasText: "KOR" }).waitFor({ timeout: 5000 });
  await chair.locator(".doc-card").first().locator(".badge").waitFor();
  assert.deepEqual(await unnamedControls(chair), []);
  await chair.screenshot({ path: screenshotPath("chair-home.png"), fullPage: true });
});

test("the chair invites a delegation and creates an annex from the home page", { skip }, async () => {
  await chair.getByLabel("Role").selectOption("delegate");
  await chair.getByLabel("Delegation code").fill("usa");
  await chair.getByLabel("Name", { exact: true }).fill("United States");
  await chair.getByRole("button", { name: "Create invitation" }).click();
  const link = await chair.getByLabel(/Invitation link for United States/).inputValue();
  assert.match(link, /\/join#token=cq_/);
  const usa = await newPage(browser);
  await join(usa, link);
  assert.match(await usa.locator(".me").innerText(), /USA/);
  await usa.context().close();

  await chair.getByLabel("Title", { exact: true }).fill("Annex III — Follow-up to the Seoul Conference");
  assert.equal(await chair.getByLabel("Address id").inputValue(), "annex-3");
  await chair.getByRole("button", { name: "Create document" }).click();
  await chair.locator(".doc-title", { hasText: "Annex III" }).waitFor({ timeout: 10000 });
  assert.equal(await chair.locator(".doc-card").count(), 4);
});

test("the chair approves a hunk and the observer sees it without reload", { skip }, async () => {
  await obs.goto(`${srv.url}/s/seoul-2013/d/${DOC}`);
  await obs.locator("article.reading").waitFor();
  await obs.locator('.status[data-conn="online"]').waitFor();
  const updatedBefore = await obs.locator(".updated").innerText();

  await chair.goto(`${srv.url}/s/seoul-2013/d/${DOC}/review`);
  await chair.locator(".review-summary", { hasText: "No pending changes" }).waitFor();
  // The delegate types while the chair looks: the redline follows.
  await typeInDraft(kor, "Participants", " of the Seoul Conference");
  await typeInDraft(kor, "cyberspace", " — open, secure and 🌐 interoperable —");
  const card = chair.locator(".change-card", { hasText: "of the Seoul Conference" });
  await card.waitFor({ timeout: 10000 });
  await chair.locator(".change-card", { hasText: "interoperable" }).waitFor({ timeout: 10000 });
  assert.match(await card.locator(".chip").innerText(), /KOR/);
  await chair.locator(".hunk ins", { hasText: "of the Seoul Conference" }).waitFor();
  assert.equal(await chair.getByRole("button", { name: "Adopt" }).isDisabled(), true, "Adopt waits until nothing is pending");
  assert.deepEqual(await unnamedControls(chair), []);
  await chair.screenshot({ path: screenshotPath("chair-review.png"), fullPage: true });

  await card.getByRole("button", { name: "Approve" }).click();
  await obs.locator("article.reading", { hasText: "of the Seoul Conference" }).waitFor({ timeout: 10000 });
  assert.ok(!(await obs.locator("article.reading").innerText()).includes("interoperable"), "only the approved hunk is visible");
  await until(async () => (await obs.locator(".updated").innerText()) !== updatedBefore, { message: "updated time" });
  assert.match(await obs.locator(".updated").innerText(), /^Updated \d\d:\d\d$/);
  await chair.locator(".change-card", { hasText: "of the Seoul Conference" }).waitFor({ state: "detached" });
  assert.deepEqual(await unnamedControls(obs), []);
  await obs.screenshot({ path: screenshotPath("observer-follow.png"), fullPage: true });
  // Export: the approved texts download as Markdown.
  const [download] = await Promise.all([obs.waitForEvent("download"), obs.getByRole("button", { name: "Markdown" }).click()]);
  assert.match(download.suggestedFilename(), /\.md$/);
  const md = await (await download.createReadStream()).toArray();
  assert.ok(Buffer.concat(md).toString("utf8").includes("of the Seoul Conference"), "the export has the approved change");
});

test("rejecting puts the approved wording back in the delegate's draft", { skip }, async () => {
  const card = chair.locator(".change-card", { hasText: "interoperable" });
  await card.getByRole("button", { name: "Reject" }).click();
  await card.waitFor({ state: "detached", timeout: 10000 });
  await until(async () => !(await kor.evaluate(() => window.__communique.editor.text())).includes("interoperable"), {
    message: "the rejected words to leave the delegate's editor",
  });
  assert.ok((await serverDraft(srv, DOC)).text.includes("of the Seoul Conference"));
});

test("approve all, then adopt freezes the document", { skip }, async () => {
  await typeInDraft(kor, "Participants of the Seoul Conference", " (2013)");
  await typeInDraft(kor, "Commitment", " [KOR]");
  await chair.locator(".change-card").nth(1).waitFor({ timeout: 10000 });
  await chair.getByRole("button", { name: "Approve all" }).click();
  await chair.locator(".review-summary", { hasText: "No pending changes" }).waitFor({ timeout: 10000 });
  const adopt = chair.getByRole("button", { name: "Adopt", exact: true });
  await until(async () => !(await adopt.isDisabled()), { message: "Adopt enabled" });
  await adopt.click();
  await chair.getByLabel("Version name (optional)").fill("Annex I — as adopted in plenary");
  await chair.getByRole("button", { name: "Confirm adoption" }).click();
  await chair.locator(".review-summary", { hasText: "Adopted" }).waitFor({ timeout: 10000 });
  // The delegate's editor is read-only now, with a clear banner.
  await kor.locator(".banner-adopted").waitFor({ timeout: 10000 });
  assert.equal(await kor.locator(".cm-content").getAttribute("contenteditable"), "false");
  await kor.screenshot({ path: screenshotPath("delegate-adopted.png") });
  const r = await api(srv, "GET", `/api/summits/seoul-2013/docs/${DOC}`);
  assert.equal(r.body.adopted, true);
  // The observer lists the adopted version.
  await obs.locator(".adoptions", { hasText: "as adopted in plenary" }).waitFor({ timeout: 10000 });
});

test("history: versions, redline between two versions, adopted versions", { skip }, async () => {
  await chair.goto(`${srv.url}/s/seoul-2013/d/${DOC}/history?stream=approved`);
  const slider = chair.getByLabel("Version", { exact: true });
  await slider.waitFor();
  const max = Number(await slider.getAttribute("max"));
  assert.ok(max >= 2, `approved versions: ${max}`);
  await chair.locator(".version-out", { hasText: `Version ${max} of ${max}` }).waitFor();
  await chair.locator("article.plain", { hasText: "(2013)" }).waitFor();
  await slider.fill("0");
  await chair.locator(".version-meta", { hasText: "as the document was created" }).waitFor();
  assert.ok(!(await chair.locator("article.plain").innerText()).includes("(2013)"));
  await chair.getByLabel("From version").fill("0");
  await chair.getByLabel("To version").fill(String(max));
  await chair.getByRole("button", { name: "Show changes" }).click();
  await chair.locator(".compare-out .rl-ins", { hasText: "of the Seoul Conference" }).waitFor();
  await chair.locator(".compare-out .chip", { hasText: "KOR" }).first().waitFor();
  await chair.locator(".adoptions", { hasText: "as adopted in plenary" }).waitFor();
  await chair.locator(".decisions li").first().waitFor();
  assert.deepEqual(await unnamedControls(chair), []);
  await chair.screenshot({ path: screenshotPath("chair-history.png"), fullPage: true });
});

test("phone width: the main views fit", { skip }, async () => {
  const phone = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await join(phone, srv.links.GBR);
  await phone.screenshot({ path: screenshotPath("phone-home.png"), fullPage: true });
  await phone.goto(`${srv.url}/s/seoul-2013/d/chair-summary`);
  await phone.locator('.status[data-conn="online"]').waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await phone.screenshot({ path: screenshotPath("phone-draft.png") });
  await phone.goto(`${srv.url}/s/seoul-2013/d/${DOC}/approved`);
  await phone.locator("article.reading").waitFor();
  await phone.screenshot({ path: screenshotPath("phone-follow.png") });
  assert.deepEqual(phone.errors, []);
  await phone.context().close();
});

test("no console errors", { skip }, async () => {
  assert.deepEqual([...chair.errors, ...kor.errors, ...obs.errors], []);
});
