// Small DOM helpers. Text from the server only ever becomes text nodes
// (never HTML), so no document content can inject markup.

/**
 * h("button", {class: "x", onclick: fn, "aria-label": "…"}, "text", child…)
 * Attributes: on* are listeners; true/false toggle boolean attributes;
 * null/undefined are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

const live = { polite: null };

/** Says msg to screen readers (and nothing on screen). */
export function announce(msg) {
  if (!live.polite) {
    live.polite = h("div", { class: "sr-only", "aria-live": "polite", role: "status" });
    document.body.appendChild(live.polite);
  }
  live.polite.textContent = "";
  setTimeout(() => (live.polite.textContent = msg), 30);
}

export function hhmm(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

export function dateTime(ms) {
  const d = new Date(ms);
  return d.toLocaleString([], { day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

let uid = 0;
export function id(prefix = "id") {
  return `${prefix}-${++uid}`;
}

/** A toast-like notice in the page's notice area. kind: info | error | success */
export function notify(msg, kind = "info", ms = 6000) {
  let box = document.getElementById("notices");
  if (!box) {
    box = h("div", { id: "notices", class: "notices", role: "status", "aria-live": "polite" });
    document.body.appendChild(box);
  }
  const n = h("div", { class: `notice notice-${kind}` }, msg);
  box.appendChild(n);
  if (ms) setTimeout(() => n.remove(), ms);
  return n;
}
