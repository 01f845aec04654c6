// /s/{summit}/d/{doc} for the chair's office and delegates: the live draft
// in a CodeMirror editor, others' cursors, who is drafting, the connection
// and save state, and colours by author on demand.

import { api, docPath } from "../api.js";
import { h, replace, announce } from "../dom.js";
import { DraftSession, unsentKey } from "../session.js";
import { createEditor } from "../editor.js";
import { colorClass } from "../colors.js";
import { authorOf, shortLabel } from "../roles.js";
import { pageHead, docTabs, loadError } from "./common.js";
import { SYNCHRONIZED } from "../client.js";

export function draftView({ main, summit, me }, s, d) {
  const page = h("div", { class: "page draft" });
  main.append(page);
  let session = null;
  let editor = null;
  let destroyed = false;
  let meta = null;

  const statusText = h("span", { class: "status-text" }, "Connecting…");
  const status = h(
    "div",
    // Not a live region: it changes with every keystroke. Going offline and
    // coming back are announced instead.
    { class: "status", "data-conn": "connecting", "data-ot": SYNCHRONIZED, "data-pending": "0" },
    h("span", { class: "status-dot", "aria-hidden": "true" }),
    statusText,
  );
  const version = h("span", { class: "muted small version" });
  const banner = h("div", { class: "banner", hidden: true, role: "alert" });
  const notice = h("div", { class: "banner banner-warn", hidden: true, role: "alert" });
  const editorHost = h("div", { class: "editor-host" });
  const peersBox = h("ul", { class: "presence-list", "aria-label": "Drafting now" });
  const legend = h("div", { class: "legend", hidden: true });
  const authorsToggle = h("input", { type: "checkbox", id: "by-author", class: "toggle" });
  const authorsNote = h("p", { class: "muted small", hidden: true });

  let announcedDown = false;
  function renderStatus(st) {
    status.dataset.conn = st.conn;
    status.dataset.ot = st.state;
    status.dataset.pending = String(st.pending);
    const n = st.pending;
    const edits = `${n} edit${n === 1 ? "" : "s"} waiting`;
    let text;
    if (st.adopted) text = "Adopted — read-only";
    else if (st.conn === "offline") text = `Offline — ${edits}`;
    else if (st.conn !== "online") text = n ? `Reconnecting… ${edits}` : "Reconnecting…";
    else if (st.state === SYNCHRONIZED) text = "All changes saved";
    else text = "Saving…";
    if (statusText.textContent !== text) statusText.textContent = text;
    if (st.conn === "online") {
      if (announcedDown) announce("Back online. Your edits are being sent.");
      announcedDown = false;
    } else if (st.conn === "offline" && !announcedDown) {
      announce("Offline. Keep typing: your edits will be sent when the connection returns.");
      announcedDown = true;
    }
    version.textContent = `Version ${st.version}`;
    notice.hidden = !st.notice;
    notice.textContent = st.notice || "";
  }

  function renderPeers(list) {
    const mine = h(
      "li",
      { class: "peer me-peer" },
      h("span", { class: `dot ${colorClass(authorOf(me))}`, "aria-hidden": "true" }),
      h("strong", null, shortLabel(me)),
      h("span", { class: "peer-name", title: me.name }, `${me.name} (you)`),
    );
    const others = [...list].sort((a, b) => shortLabel(a).localeCompare(shortLabel(b)));
    replace(
      peersBox,
      mine,
      others.map((p) =>
        h(
          "li",
          { class: "peer", "data-peer": authorOf(p) },
          h("span", { class: `dot ${colorClass(authorOf(p))}`, "aria-hidden": "true" }),
          h("strong", null, shortLabel(p)),
          h("span", { class: "peer-name", title: p.name }, p.name),
        ),
      ),
    );
    editor?.setPeers(list.map((p) => ({ id: p.id, label: shortLabel(p), title: p.name, author: authorOf(p), cursor: p.cursor })));
  }

  async function showAuthors(on) {
    if (!editor) return;
    authorsNote.hidden = true;
    if (!on) {
      editor.setAuthors(null);
      legend.hidden = true;
      return;
    }
    let spans = null;
    try {
      const b = await api("GET", docPath(s, d, "/blame"));
      spans = mapSpans(b.version, b.spans);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    if (spans === null) {
      // Without …/blame, colour what the pending changes name.
      try {
        const c = await api("GET", docPath(s, d, "/changes"));
        spans = mapSpans(
          c.draft_version,
          c.changes.filter((x) => x.draft_end > x.draft_start).map((x) => ({ start: x.draft_start, end: x.draft_end, author: x.authors[0] || "" })),
        );
        authorsNote.hidden = false;
        authorsNote.textContent = "Showing the authors of pending changes only.";
      } catch {
        spans = [];
      }
    }
    if (!authorsToggle.checked) return;
    editor.setAuthors(spans);
    const who = [...new Set(spans.map((x) => x.author).filter(Boolean))].sort();
    replace(
      legend,
      h("h3", { class: "panel-subtitle" }, "Colours"),
      h(
        "ul",
        { class: "legend-list" },
        who.length ? who.map((a) => h("li", null, h("span", { class: `swatch ${colorClass(a)}`, "aria-hidden": "true" }), a === "chair" ? "Chair's office" : a)) : h("li", { class: "muted" }, "No edits yet."),
        h("li", null, h("span", { class: "swatch c-orig", "aria-hidden": "true" }), "Original text"),
      ),
    );
    legend.hidden = false;
  }

  // Spans at server version v → local code points (through ops since v and
  // the edits not yet acknowledged).
  function mapSpans(v, spans) {
    const out = [];
    for (const sp of spans) {
      const start = session.toLocal(sp.start, v);
      const end = session.toLocal(sp.end, v);
      if (start === null || end === null || end <= start) continue;
      out.push({ start, end, author: sp.author });
    }
    return out;
  }

  authorsToggle.addEventListener("change", () => showAuthors(authorsToggle.checked).catch(() => {}));

  function frozen() {
    editor?.setReadOnly(true);
    authorsToggle.disabled = false;
    banner.hidden = false;
    banner.className = "banner banner-adopted";
    replace(banner, "This document has been adopted. Its text is final and can no longer be edited. ", h("a", { href: `/s/${encodeURIComponent(s)}/d/${encodeURIComponent(d)}/approved` }, "Read the adopted text"));
    renderStatus({ conn: session.conn, state: session.state, pending: 0, version: session.client?.version ?? 0, adopted: true, notice: session.notice });
  }

  async function start() {
    try {
      meta = await api("GET", docPath(s, d));
    } catch (e) {
      page.append(pageHead({ s, summit, title: "Document", eyebrow: "Draft" }));
      loadError(page, "document", e);
      return;
    }
    if (destroyed) return;
    document.title = `${meta.title} — draft — Communiqué`;
    const labelId = "editor-label";
    page.append(
      pageHead({ s, summit, title: meta.title, eyebrow: "Draft" }),
      docTabs(s, d, me, "draft", meta.adopted),
      h(
        "div",
        { class: "toolbar" },
        status,
        version,
        h("span", { class: "spacer" }),
        h("label", { class: "check", for: "by-author" }, authorsToggle, " Colour by author"),
      ),
      banner,
      notice,
      h(
        "div",
        { class: "doc-grid" },
        h(
          "section",
          { class: "editor-col", "aria-labelledby": labelId },
          h("h2", { id: labelId, class: "sr-only" }, `Draft of ${meta.title}`),
          editorHost,
        ),
        h(
          "aside",
          { class: "side", "aria-label": "Participants" },
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Drafting now"), peersBox, legend, authorsNote),
          h(
            "section",
            { class: "panel help" },
            h("h2", { class: "panel-title" }, "Drafting"),
            h(
              "ul",
              { class: "small muted" },
              h("li", null, "Every change is saved as you type and attributed to your delegation."),
              h("li", null, "Undo (Ctrl+Z) undoes your own edits only."),
              h("li", null, "If the connection drops, keep typing: your edits are sent when it returns."),
              h("li", null, "Changes enter the approved text when the chair's office approves them."),
            ),
          ),
        ),
      ),
    );
    renderPeers([]);
    session = new DraftSession(s, d, {
      init(text, hello) {
        if (!editor) {
          editor = createEditor(editorHost, {
            text,
            label: `Draft of ${meta.title}`,
            readOnly: !!hello.adopted || me.role === "admin", // the admin token reads, it does not draft
            onOp: (op) => session.edit(op),
            onSelection: (sel) => session.cursor(sel),
          });
          editor.setOwnAuthor(authorOf(me));
          window.__communique = { session, editor }; // for tests and debugging
        } else {
          editor.reset(text);
        }
        if (authorsToggle.checked) showAuthors(true).catch(() => {});
      },
      remote(op, frame) {
        editor.applyRemote(op, frame);
      },
      peers: renderPeers,
      status: renderStatus,
      localText: () => editor.text(),
      adopted: frozen,
      hold(on) {
        editor?.setReadOnly(on || session.adopted || me.role === "admin");
      },
      ended(reason) {
        banner.hidden = false;
        banner.textContent = reason;
        editor?.setReadOnly(true);
      },
    });
    // Edits a previous page of this document could not send before it was
    // closed or reloaded are sent now (same src and seq: never twice).
    try {
      const saved = JSON.parse(localStorage.getItem(unsentKey(s, d)) || "null");
      localStorage.removeItem(unsentKey(s, d));
      if (saved && saved.client && typeof saved.text === "string") session.restoreFrom(saved);
    } catch {
      /* nothing usable was kept */
    }
    session.start();
  }
  start();

  // The page goes away (reload, tab closed) with edits not yet saved: keep
  // them for the next page of this document.
  const pageHide = () => {
    const u = session?.unsent();
    if (!u) return;
    try {
      localStorage.setItem(unsentKey(s, d), JSON.stringify(u));
    } catch {
      /* storage full or disabled: the browser's leave warning was the last word */
    }
  };
  addEventListener("pagehide", pageHide);

  // Leaving the page with edits not yet saved: the browser asks first.
  const beforeUnload = (e) => {
    if (session && session.pending && !session.adopted) {
      e.preventDefault();
      e.returnValue = "";
    }
  };
  addEventListener("beforeunload", beforeUnload);

  return {
    destroy() {
      destroyed = true;
      removeEventListener("beforeunload", beforeUnload);
      removeEventListener("pagehide", pageHide);
      // Moving to another page of the app: unsaved edits are still sent.
      if (session) session.detach(editor ? editor.text() : "");
      editor?.destroy();
      if (window.__communique?.session === session) delete window.__communique;
    },
  };
}
