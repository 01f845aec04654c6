// Renders a document's text (Markdown by convention) as reading
// typography: headings, paragraphs, lists, quotes, rules, **strong** and
// *emphasis*. Only text nodes are created: content can never become markup.

import { h } from "./dom.js";

function inline(text) {
  const out = [];
  const re = /(\*\*|__)(.+?)\1|(\*|_)(?=\S)(.+?)(?<=\S)\3/gu;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[2] !== undefined ? h("strong", null, m[2]) : h("em", null, m[4]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** DOM nodes for text. */
export function renderMarkdown(text) {
  const blocks = [];
  const lines = text.split("\n");
  let para = [];
  let list = null;
  const flushPara = () => {
    if (para.length) blocks.push(h("p", null, inline(para.join(" "))));
    para = [];
  };
  const flushList = () => {
    if (list) blocks.push(list);
    list = null;
  };
  for (const raw of lines) {
    const line = raw.replace(/\r$/, "");
    let m;
    if (!line.trim()) {
      flushPara();
      flushList();
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      flushPara();
      flushList();
      const level = Math.min(6, m[1].length + 1); // the page's own h1 is the document title
      blocks.push(h(`h${level}`, { class: `md-h${m[1].length}` }, inline(m[2])));
    } else if ((m = /^\s*([-*+])\s+(.*)$/.exec(line))) {
      flushPara();
      if (!list || list.tagName !== "UL") {
        flushList();
        list = h("ul");
      }
      list.appendChild(h("li", null, inline(m[2])));
    } else if ((m = /^\s*(\d+)[.)]\s+(.*)$/.exec(line))) {
      flushPara();
      if (!list || list.tagName !== "OL") {
        flushList();
        list = h("ol", { start: m[1] === "1" ? null : m[1] });
      }
      list.appendChild(h("li", null, inline(m[2])));
    } else if ((m = /^>\s?(.*)$/.exec(line))) {
      flushPara();
      flushList();
      blocks.push(h("blockquote", null, inline(m[1])));
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flushPara();
      flushList();
      blocks.push(h("hr"));
    } else {
      flushList();
      para.push(line.trim());
    }
  }
  flushPara();
  flushList();
  return blocks;
}
