// /s/{summit}/d/{doc}/review: the pending changes as a redline against the
// approved text, each hunk with its delegations and Approve / Reject; all
// at once; Adopt when nothing is pending. Live: both streams are followed
// and the list is refreshed as delegates type or other staff decide.

import { api, docPath } from "../api.js";
import { h, replace, notify, announce, id } from "../dom.js";
import { Follower } from "../follower.js";
import { renderRedline, authorChips, describe, context } from "../redline.js";
import { pageHead, docTabs, loadError } from "./common.js";

export function reviewView({ main, summit, me }, s, d) {
  const page = h("div", { class: "page review" });
  main.append(page);
  const chair = me.role === "chair";
  let destroyed = false;
  let meta = null;
  let current = null; // {draft_version, approved_version, changes, base}
  let busy = false;
  const followers = [];
  const approvedTexts = new Map(); // version → approved text, from the follower

  if (me.role === "observer") {
    page.append(pageHead({ s, summit, title: "Pending changes", eyebrow: "Review" }), h("p", { class: "error", role: "alert" }, "Observers follow the approved text only."));
    return null;
  }

  const summary = h("p", { class: "review-summary", role: "status", "aria-live": "polite" }, "Loading the pending changes…");
  const approveAll = h("button", { type: "button", class: "btn", disabled: true, onclick: () => decideAll(true) }, "Approve all");
  const rejectAll = h("button", { type: "button", class: "btn btn-danger-quiet", disabled: true, onclick: () => decideAll(false) }, "Reject all");
  const adoptBtn = h("button", { type: "button", class: "btn btn-primary", disabled: true, onclick: () => openAdopt() }, "Adopt");
  const adoptHint = h("p", { class: "muted small", id: id("adopt-hint") });
  adoptBtn.setAttribute("aria-describedby", adoptHint.id);
  const redlineBox = h("article", { class: "reading redline", "aria-label": "Redline against the approved text" });
  const listBox = h("ol", { class: "change-list", "aria-label": "Pending changes" });

  // The adoption dialog.
  const nameId = id("adopt-name");
  const nameInput = h("input", { id: nameId, class: "input", type: "text", maxlength: "200", autocomplete: "off" });
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-labelledby": "adopt-title" },
    h(
      "form",
      { method: "dialog", class: "stack" },
      h("h2", { id: "adopt-title" }, "Adopt this document?"),
      h("p", null, "Adoption freezes the approved text as a named, dated version. Nobody can edit the document afterwards."),
      h("label", { for: nameId }, "Version name (optional)"),
      nameInput,
      h(
        "p",
        { class: "btn-row" },
        h("button", { type: "submit", value: "adopt", class: "btn btn-primary" }, "Confirm adoption"),
        h("button", { type: "submit", value: "cancel", class: "btn", formnovalidate: true }, "Cancel"),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "adopt") adopt(nameInput.value.trim());
  });

  function setBusy(on) {
    busy = on;
    for (const b of page.querySelectorAll("button[data-decide]")) b.disabled = on || !chair;
    updateButtons();
  }

  function updateButtons() {
    const n = current ? current.changes.length : 0;
    const adopted = meta && meta.adopted;
    approveAll.disabled = rejectAll.disabled = busy || !chair || !n || adopted;
    adoptBtn.disabled = busy || !chair || n > 0 || adopted || !current;
    if (!chair) adoptHint.textContent = "Only the chair's office decides on changes and adopts documents.";
    else if (adopted) adoptHint.textContent = "This document is adopted: its text is final.";
    else if (n) adoptHint.textContent = "Adopt becomes available once every change has been approved or rejected.";
    else adoptHint.textContent = "Nothing is pending: the approved text can be adopted.";
  }

  function render() {
    const { changes, base } = current;
    const n = changes.length;
    summary.textContent = meta.adopted
      ? "Adopted — nothing can change any more."
      : n
        ? `${n} pending change${n === 1 ? "" : "s"} against the approved text (version ${current.approved_version}).`
        : "No pending changes: the draft and the approved text are the same.";
    replace(
      redlineBox,
      n
        ? renderRedline(base, changes, {
            markHunk: (c, i, el) => {
              el.title = `Change ${i + 1} — ${(c.authors || []).join(", ") || "unattributed"}`;
            },
          })
        : h("div", { class: "redline-text" }, base),
    );
    replace(
      listBox,
      changes.map((c, i) => {
        const descId = `change-desc-${i + 1}`;
        const ctx = context(base, c);
        return h(
          "li",
          { class: "change-card", "data-change": c.id },
          h(
            "div",
            { class: "change-head" },
            h("a", { href: `#hunk-${i + 1}`, class: "change-no" }, `Change ${i + 1}`),
            h("span", { class: "chips", "aria-label": "Delegations" }, authorChips(c.authors)),
          ),
          h(
            "p",
            { class: "change-snippet", id: descId },
            h("span", { class: "sr-only" }, `Change ${i + 1} by ${(c.authors || []).join(", ") || "unknown"}: ${describe(c)}. `),
            h(
              "span",
              { "aria-hidden": "true" },
              ctx.before,
              c.old ? h("del", { class: "rl-del" }, c.old) : null,
              c.new ? h("ins", { class: "rl-ins" }, c.new) : null,
              ctx.after,
            ),
          ),
          chair
            ? h(
                "p",
                { class: "btn-row" },
                h("button", { type: "button", class: "btn btn-small btn-approve", "data-decide": "approve", "aria-describedby": descId, disabled: busy, onclick: () => decide(c, true) }, "Approve"),
                h("button", { type: "button", class: "btn btn-small btn-reject", "data-decide": "reject", "aria-describedby": descId, disabled: busy, onclick: () => decide(c, false) }, "Reject"),
              )
            : null,
        );
      }),
    );
    if (!n) listBox.append(h("li", { class: "muted empty" }, "Nothing to review."));
    updateButtons();
  }

  // --- loading ---

  let timer = null;
  let loading = false;
  let again = false;
  function refreshSoon(delay = 250) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  async function approvedAt(v) {
    if (approvedTexts.has(v)) return approvedTexts.get(v);
    try {
      const t = await api("GET", docPath(s, d, `/text?stream=approved&version=${v}`));
      return t.text;
    } catch {
      const m = await api("GET", docPath(s, d));
      return m.approved.version === v ? m.approved.text : null;
    }
  }

  async function refresh() {
    if (destroyed) return;
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      for (let tries = 0; tries < 5; tries++) {
        const c = await api("GET", docPath(s, d, "/changes"));
        const base = await approvedAt(c.approved_version);
        if (base !== null) {
          current = { ...c, base };
          if (!destroyed) render();
          break;
        }
      }
    } catch (e) {
      summary.textContent = `The pending changes could not be loaded: ${e.message}`;
    } finally {
      loading = false;
      if (again) {
        again = false;
        refreshSoon();
      }
    }
  }

  // --- decisions ---

  async function decide(c, approve) {
    if (busy) return;
    setBusy(true);
    try {
      await api("POST", docPath(s, d, `/changes/${encodeURIComponent(c.id)}/${approve ? "approve" : "reject"}`));
      announce(`${approve ? "Approved" : "Rejected"}: ${describe(c)}`);
    } catch (e) {
      if (e.status === 409) notify("That change was edited or decided meanwhile. The list has been refreshed: please look again.", "info");
      else notify(`The decision failed: ${e.message}`, "error");
    } finally {
      setBusy(false);
      await refresh();
    }
  }

  async function decideAll(approve) {
    if (busy || !current) return;
    setBusy(true);
    try {
      const r = await api("POST", docPath(s, d, `/changes/${approve ? "approve-all" : "reject-all"}`), {
        draft_version: current.draft_version,
        approved_version: current.approved_version,
      });
      const n = r && r.decided ? r.decided.length : current.changes.length;
      announce(`${approve ? "Approved" : "Rejected"} ${n} change${n === 1 ? "" : "s"}`);
    } catch (e) {
      if (e.status === 409) notify("The draft changed while you were looking. The list has been refreshed: please look again.", "info");
      else notify(`The decision failed: ${e.message}`, "error");
    } finally {
      setBusy(false);
      await refresh();
    }
  }

  function openAdopt() {
    nameInput.value = "";
    nameInput.placeholder = `${meta.title} — adopted ${new Date().toLocaleDateString([], { day: "numeric", month: "long", year: "numeric" })}`;
    dialog.returnValue = "";
    dialog.showModal();
  }

  async function adopt(name) {
    setBusy(true);
    try {
      const r = await api("POST", docPath(s, d, "/adopt"), name ? { name } : {});
      meta.adopted = true;
      notify(`Adopted as “${r.name}”.`, "success");
      announce(`The document was adopted as ${r.name}`);
    } catch (e) {
      if (e.status === 409) notify(e.code === "adopted" ? "The document is already adopted." : "Changes are pending: decide on them first.", "info");
      else notify(`Adoption failed: ${e.message}`, "error");
    } finally {
      setBusy(false);
      await refresh();
    }
  }

  async function start() {
    try {
      meta = await api("GET", docPath(s, d));
    } catch (e) {
      page.append(pageHead({ s, summit, title: "Review", eyebrow: "Review" }));
      loadError(page, "document", e);
      return;
    }
    if (destroyed) return;
    document.title = `Review: ${meta.title} — Communiqué`;
    page.append(
      pageHead({ s, summit, title: meta.title, eyebrow: chair ? "Review changes" : "Pending changes" }),
      docTabs(s, d, me, "review", meta.adopted),
      h(
        "div",
        { class: "toolbar review-toolbar" },
        summary,
        h("span", { class: "spacer" }),
        chair ? h("div", { class: "btn-row", role: "group", "aria-label": "Decide on every change" }, approveAll, rejectAll, adoptBtn) : null,
      ),
      adoptHint,
      h(
        "div",
        { class: "doc-grid review-grid" },
        h("section", { class: "reading-col", "aria-labelledby": "redline-title" }, h("h2", { id: "redline-title", class: "section-title" }, "Redline against the approved text"), redlineBox),
        h("section", { class: "side", "aria-labelledby": "changes-title" }, h("h2", { id: "changes-title", class: "section-title" }, "Pending changes"), listBox),
      ),
      dialog,
    );
    updateButtons();
    const approved = new Follower(s, d, "approved", {
      text(text, info) {
        approvedTexts.set(info.version, text);
        if (approvedTexts.size > 20) approvedTexts.delete(approvedTexts.keys().next().value);
        refreshSoon(info.op ? 150 : 0);
      },
      adopted() {
        meta.adopted = true;
        refreshSoon(0);
      },
    });
    // The draft stream only tells when delegates type.
    const draft = new Follower(s, d, "draft", { text: () => refreshSoon(300) });
    followers.push(approved, draft);
    approved.start();
    draft.start();
  }
  start();

  return {
    destroy() {
      destroyed = true;
      clearTimeout(timer);
      for (const f of followers) f.stop();
    },
  };
}
