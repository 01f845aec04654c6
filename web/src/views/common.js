// Pieces several views share.

import { enc } from "../api.js";
import { h, notify } from "../dom.js";
import { canReadDraft } from "../roles.js";

/**
 * Downloads url as a file. The request is made first, so an error (an
 * endpoint this server does not have yet, a refused redline) becomes a
 * message instead of a downloaded error page.
 */
export async function download(url, fallbackName) {
  let res;
  try {
    res = await fetch(url, { credentials: "same-origin" });
  } catch {
    notify("The download failed: the server cannot be reached.", "error");
    return;
  }
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try {
      const j = await res.json();
      if (j.error) msg = j.error.message || j.error.code;
    } catch {
      /* not JSON */
    }
    notify(res.status === 404 ? "Exports are not available on this server yet." : `The download failed: ${msg}`, "error");
    return;
  }
  const blob = await res.blob();
  const cd = res.headers.get("Content-Disposition") || "";
  const m = /filename="?([^";]+)"?/.exec(cd);
  const a = h("a", { href: URL.createObjectURL(blob), download: m ? m[1] : fallbackName });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

/** Buttons that download the summit's documents (approved texts). */
export function exportLinks(s, me) {
  const base = `/api/summits/${enc(s)}/export`;
  const btn = (label, q, name, desc) =>
    h(
      "button",
      { type: "button", class: "btn btn-small", onclick: () => download(`${base}?${q}`, name), title: desc },
      label,
    );
  return h(
    "div",
    { class: "downloads" },
    h("p", { class: "muted small" }, "Every document's approved text, in order."),
    h(
      "p",
      { class: "btn-row" },
      btn("Markdown", "format=md", `${s}.md`, "Download the approved texts as Markdown"),
      btn("HTML", "format=html", `${s}.html`, "Download the approved texts as an HTML page"),
      canReadDraft(me) ? btn("HTML with redline", "format=html&redline=1", `${s}-redline.html`, "Download with the pending changes marked") : null,
    ),
  );
}

/** A page heading block with breadcrumbs. */
export function pageHead({ s, summit, title, eyebrow, extra }) {
  return h(
    "div",
    { class: "page-head" },
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: `/s/${enc(s)}` }, summit.title),
      h("span", { "aria-hidden": "true" }, " / "),
      h("span", { "aria-current": "page" }, eyebrow),
    ),
    h("h1", { tabindex: "-1" }, title),
    extra || null,
  );
}

/** Tabs between a document's views: Draft, Approved text, Review, History. */
export function docTabs(s, d, me, current, adopted) {
  const base = `/s/${enc(s)}/d/${enc(d)}`;
  const tabs = [];
  if (me.role !== "observer") {
    tabs.push(["draft", base, adopted ? "Draft (frozen)" : "Draft"]);
    tabs.push(["approved", `${base}/approved`, "Approved text"]);
  } else {
    tabs.push(["approved", base, "Approved text"]);
  }
  if (me.role === "chair" || me.role === "delegate") tabs.push(["review", `${base}/review`, me.role === "chair" ? "Review changes" : "Pending changes"]);
  tabs.push(["history", `${base}/history`, "History"]);
  return h(
    "nav",
    { class: "tabs", "aria-label": "Document views" },
    tabs.map(([key, href, label]) => h("a", { href, class: key === current ? "tab tab-current" : "tab", "aria-current": key === current ? "page" : null }, label)),
  );
}

/** The document's metadata, with a readable message on failure. */
export function loadError(main, what, e) {
  const msg =
    e.status === 404
      ? `This document does not exist.`
      : e.status === 403
        ? `Your role cannot open this page.`
        : `The ${what} could not be loaded: ${e.message}`;
  main.append(h("p", { class: "error", role: "alert" }, msg));
}
