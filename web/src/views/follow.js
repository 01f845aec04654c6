// Following: the approved text, live and read-only, with the time of its
// last change and the adopted versions. Observers land here; everyone
// else reaches it at …/approved.

import { api, docPath, enc } from "../api.js";
import { h, replace, hhmm, dateTime, announce } from "../dom.js";
import { Follower } from "../follower.js";
import { renderMarkdown } from "../markdown.js";
import { pageHead, docTabs, loadError, exportLinks } from "./common.js";

export function followView({ main, summit, me }, s, d) {
  const page = h("div", { class: "page follow" });
  main.append(page);
  let follower = null;
  let destroyed = false;

  const updated = h("span", { class: "updated" }, "…");
  const liveDot = h("span", { class: "status", "data-conn": "connecting" }, h("span", { class: "status-dot", "aria-hidden": "true" }), h("span", { class: "status-text" }, "Connecting…"));
  const article = h("article", { class: "reading", "aria-label": "Approved text", "aria-live": "off" });
  const adoptedBox = h("div");
  const adoptedBadge = h("span", { class: "badge badge-adopted", hidden: true }, "Adopted");

  function setUpdated(ms, fromOp) {
    updated.textContent = ms ? `Updated ${hhmm(ms)}` : "Original text";
    updated.title = ms ? dateTime(ms) : "";
    updated.dataset.time = ms ? String(ms) : "";
    if (fromOp) announce(`The approved text was updated at ${hhmm(ms)}`);
  }

  function renderText(text) {
    replace(article, text.trim() ? renderMarkdown(text) : h("p", { class: "muted" }, "The approved text is empty."));
  }

  function renderAdoptions(list) {
    if (!list || !list.length) {
      replace(adoptedBox, h("p", { class: "muted small" }, "Not adopted yet."));
      return;
    }
    replace(
      adoptedBox,
      h(
        "ol",
        { class: "adoptions" },
        list.map((a) =>
          h(
            "li",
            null,
            h("a", { href: `/s/${enc(s)}/d/${enc(d)}/history?stream=approved&v=${a.approved_version}` }, a.name),
            h("span", { class: "muted small" }, ` — ${dateTime(Date.parse(a.time))}${a.by ? `, ${a.by}` : ""}`),
          ),
        ),
      ),
    );
  }

  async function lastTime(version) {
    if (!version) return 0;
    try {
      const r = await api("GET", docPath(s, d, `/history?stream=approved&after=${version - 1}&limit=1`));
      return r.ops && r.ops.length ? r.ops[0].time : 0;
    } catch {
      return 0;
    }
  }

  async function start() {
    let meta;
    try {
      meta = await api("GET", docPath(s, d));
    } catch (e) {
      page.append(pageHead({ s, summit, title: "Document", eyebrow: "Approved text" }));
      loadError(page, "document", e);
      return;
    }
    if (destroyed) return;
    document.title = `${meta.title} — Communiqué`;
    adoptedBadge.hidden = !meta.adopted;
    page.append(
      pageHead({ s, summit, title: meta.title, eyebrow: "Approved text" }),
      docTabs(s, d, me, "approved", meta.adopted),
      h("div", { class: "toolbar" }, liveDot, h("span", { class: "muted" }, "Approved text"), adoptedBadge, h("span", { class: "sep", "aria-hidden": "true" }, "·"), updated),
      h(
        "div",
        { class: "doc-grid" },
        h("div", { class: "reading-col" }, article),
        h(
          "aside",
          { class: "side", "aria-label": "Versions and downloads" },
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Adopted versions"), adoptedBox),
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Download"), exportLinks(s, { ...me, role: "observer" })),
        ),
      ),
    );
    renderAdoptions(meta.adoptions);
    renderText(meta.approved.text);
    setUpdated(await lastTime(meta.approved.version), false);
    if (destroyed) return;
    follower = new Follower(s, d, "approved", {
      text(text, info) {
        renderText(text);
        if (info.op) setUpdated(info.op.time, true);
      },
      status(st) {
        liveDot.dataset.conn = st;
        liveDot.lastChild.textContent = st === "online" ? "Live" : st === "offline" ? "Offline" : "Connecting…";
      },
      async adopted() {
        adoptedBadge.hidden = false;
        try {
          const m = await api("GET", docPath(s, d));
          renderAdoptions(m.adoptions);
        } catch {
          /* keep what is shown */
        }
      },
    });
    follower.start();
  }
  start();

  return {
    destroy() {
      destroyed = true;
      follower?.stop();
    },
  };
}
