// Redlines: a base text with hunks (changes) drawn over it. Hunks come from
// the server (…/changes, …/redline) in code points of the base text:
// base[start:end] === old is replaced by new.

import { h } from "./dom.js";
import { colorClass } from "./colors.js";

/**
 * Splits base into runs: {kind: "same", text} and {kind: "change", change, index}.
 * startKey/endKey name the hunk's positions in base.
 */
export function segments(base, changes, startKey = "approved_start", endKey = "approved_end") {
  const cps = Array.from(base);
  const sorted = changes.map((c, i) => ({ c, i })).sort((a, b) => a.c[startKey] - b.c[startKey]);
  const out = [];
  let pos = 0;
  for (const { c, i } of sorted) {
    const s = Math.max(pos, Math.min(c[startKey], cps.length));
    if (s > pos) out.push({ kind: "same", text: cps.slice(pos, s).join("") });
    out.push({ kind: "change", change: c, index: i });
    pos = Math.max(s, Math.min(c[endKey], cps.length));
  }
  if (pos < cps.length) out.push({ kind: "same", text: cps.slice(pos).join("") });
  return out;
}

export function authorChips(authors) {
  if (!authors || !authors.length) return h("span", { class: "chip chip-none" }, "unattributed");
  return authors.map((a) => h("span", { class: `chip ${colorClass(a)}` }, a === "chair" ? "Chair" : a));
}

/** Text of a hunk for screen readers: "replaces “old” with “new”". */
export function describe(c) {
  const cut = (s) => (s.length > 80 ? s.slice(0, 77) + "…" : s);
  if (!c.old) return `inserts “${cut(c.new)}”`;
  if (!c.new) return `deletes “${cut(c.old)}”`;
  return `replaces “${cut(c.old)}” with “${cut(c.new)}”`;
}

/**
 * The redline as DOM: unchanged text, and each hunk as <del>/<ins> with its
 * number. markHunk(change, index, el) may decorate each hunk element.
 */
export function renderRedline(base, changes, opts = {}) {
  const { startKey, endKey, markHunk } = opts;
  const root = h("div", { class: "redline-text" });
  for (const seg of segments(base, changes, startKey, endKey)) {
    if (seg.kind === "same") {
      root.appendChild(document.createTextNode(seg.text));
      continue;
    }
    const c = seg.change;
    const el = h(
      "span",
      { class: "hunk", id: `hunk-${seg.index + 1}`, "data-change": c.id },
      h("sup", { class: "hunk-no", "aria-hidden": "true" }, String(seg.index + 1)),
      c.old ? h("del", { class: "rl-del" }, h("span", { class: "sr-only" }, "deleted: "), c.old) : null,
      c.new ? h("ins", { class: `rl-ins ${colorClass((c.authors || [])[0] || "")}` }, h("span", { class: "sr-only" }, "inserted: "), c.new) : null,
    );
    if (markHunk) markHunk(c, seg.index, el);
    root.appendChild(el);
  }
  return root;
}

/** A few words of context around a hunk, for the list of changes. */
export function context(base, c, startKey = "approved_start", endKey = "approved_end", n = 60) {
  const cps = Array.from(base);
  const before = cps.slice(Math.max(0, c[startKey] - n), c[startKey]).join("");
  const after = cps.slice(c[endKey], c[endKey] + n).join("");
  const trimB = before.replace(/^\S*\s/, "").replace(/^.*\n/s, "");
  const trimA = after.replace(/\s\S*$/, "").replace(/\n.*$/s, "");
  return { before: (c[startKey] - n > 0 || before !== trimB ? "…" : "") + trimB, after: trimA + (after !== trimA ? "…" : "") };
}
