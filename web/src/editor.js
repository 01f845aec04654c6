// The CodeMirror 6 editor bound to a DraftSession: local transactions
// become ops in code points, remote ops become transactions that stay out
// of the undo history (so undo only ever undoes one's own edits), other
// drafters' cursors and selections are drawn, and text can be coloured by
// author.
//
// CodeMirror positions are UTF-16 offsets; the wire counts code points.
// Every conversion goes through this file. The document is kept with "\n"
// as its only line separator, so its string is exactly the server's text
// (a CR stays a character, as on the server).

import { EditorState, StateField, StateEffect, Annotation, Transaction, Compartment, RangeSetBuilder } from "@codemirror/state";
import { EditorView, Decoration, WidgetType, keymap, drawSelection, ViewPlugin, highlightSpecialChars, placeholder } from "@codemirror/view";
import { history, historyKeymap, defaultKeymap } from "@codemirror/commands";
import { search, searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { Builder, cpLen, cpToUtf16, isRetain, isInsert, diffOp } from "./ot.js";
import { colorClass } from "./colors.js";

/** Marks transactions that carry someone else's op (value: the op frame). */
export const remoteAnn = Annotation.define();

// --- code points ↔ UTF-16 ---

function isHigh(c) {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c) {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Number of surrogate pairs (astral characters) in s. */
export function countPairs(s) {
  return s.length - cpLen(s);
}

function isSurrogate(c) {
  return c >= 0xd800 && c <= 0xdfff;
}

function surrogateAt(doc, pos) {
  return pos >= 0 && pos < doc.length && isSurrogate(doc.sliceString(pos, pos + 1).charCodeAt(0));
}

// True when UTF-16 offset pos falls inside a surrogate pair of doc.
function splitsPair(doc, pos) {
  if (pos <= 0 || pos >= doc.length) return false;
  const s = doc.sliceString(pos - 1, pos + 1);
  return isHigh(s.charCodeAt(0)) && isLow(s.charCodeAt(1));
}

/**
 * How many astral characters the document holds. While it is zero (most
 * texts), UTF-16 offsets and code points are the same numbers and no
 * conversion needs to read the text.
 */
export const astralField = StateField.define({
  create: (s) => countPairs(s.doc.toString()),
  update(n, tr) {
    if (!tr.docChanged) return n;
    // Counted from the change alone unless a surrogate sits at one of its
    // edges (a pair cut in two, or two halves brought together): then the
    // whole text is counted again.
    let exact = true;
    const old = tr.startState.doc;
    tr.changes.iterChanges((fromA, toA, _fromB, _toB, ins) => {
      if (surrogateAt(old, fromA - 1) || surrogateAt(old, toA)) exact = false;
      if (n > 0) n -= countPairs(old.sliceString(fromA, toA));
      const s = ins.toString();
      n += countPairs(s);
      if (s.length && (isSurrogate(s.charCodeAt(0)) || isSurrogate(s.charCodeAt(s.length - 1)))) exact = false;
    });
    return exact && n >= 0 ? n : countPairs(tr.state.doc.toString());
  },
});

function cpCount(doc, from, to, astral) {
  return astral === 0 ? to - from : cpLen(doc.sliceString(from, to));
}

/** UTF-16 offset → code points, in state's document. */
export function posToCp(state, pos) {
  return state.field(astralField) === 0 ? pos : cpLen(state.doc.sliceString(0, pos));
}

/** Code points → UTF-16 offset, in state's document. */
export function cpToPos(state, cp) {
  if (state.field(astralField) === 0) return Math.min(cp, state.doc.length);
  return cpToUtf16(state.doc.toString(), cp);
}

// Advances UTF-16 offset pos over n code points of doc.
function advance(doc, pos, n, astral) {
  if (astral === 0) return pos + n;
  const s = doc.sliceString(pos, Math.min(doc.length, pos + 2 * n));
  return pos + cpToUtf16(s, n);
}

/** The op (code points) of a transaction's changes, made on its start document. */
export function transactionOp(tr) {
  const doc = tr.startState.doc;
  const astral = tr.startState.field(astralField);
  let split = false;
  if (astral > 0) {
    tr.changes.iterChangedRanges((fromA, toA) => {
      if (splitsPair(doc, fromA) || splitsPair(doc, toA)) split = true;
    });
  }
  if (split) {
    // A change that cuts an astral character in two: describe it as whole
    // code points instead.
    return diffOp(doc.toString(), tr.newDoc.toString());
  }
  const b = new Builder();
  let pos = 0;
  tr.changes.iterChanges((fromA, toA, _fromB, _toB, ins) => {
    b.retain(cpCount(doc, pos, fromA, astral));
    b.insert(ins.toString());
    b.delete(cpCount(doc, fromA, toA, astral));
    pos = toA;
  });
  b.retain(cpCount(doc, pos, doc.length, astral));
  return b.done();
}

/** CodeMirror change specs for op (code points) applied to state's document. */
export function opChanges(state, op) {
  const doc = state.doc;
  const astral = state.field(astralField);
  const specs = [];
  let pos = 0;
  for (const c of op) {
    if (isRetain(c)) {
      pos = advance(doc, pos, c, astral);
    } else if (isInsert(c)) {
      specs.push({ from: pos, insert: c });
    } else {
      const end = advance(doc, pos, -c, astral);
      const last = specs[specs.length - 1];
      if (last && last.from === pos && last.to === undefined) last.to = end;
      else specs.push({ from: pos, to: end });
      pos = end;
    }
  }
  if (pos !== doc.length) throw new Error(`remote op spans ${pos} of ${doc.length} UTF-16 units`);
  return specs;
}

// --- other drafters' cursors ---

const setPeers = StateEffect.define();

class CaretWidget extends WidgetType {
  constructor(label, cls, title) {
    super();
    this.label = label;
    this.cls = cls;
    this.title = title;
  }
  eq(o) {
    return o.label === this.label && o.cls === this.cls && o.title === this.title;
  }
  toDOM() {
    const caret = document.createElement("span");
    caret.className = `cm-peer-caret ${this.cls}`;
    caret.setAttribute("aria-hidden", "true");
    const tag = document.createElement("span");
    tag.className = "cm-peer-label";
    tag.textContent = this.label;
    tag.title = this.title;
    caret.appendChild(tag);
    return caret;
  }
  ignoreEvent() {
    return true;
  }
}

// Peers: [{id, label, title, cls, anchor, head}] in UTF-16 offsets.
const peersField = StateField.define({
  create: () => [],
  update(peers, tr) {
    for (const e of tr.effects) if (e.is(setPeers)) return e.value;
    if (!tr.docChanged) return peers;
    return peers.map((p) => ({ ...p, anchor: tr.changes.mapPos(p.anchor, -1), head: tr.changes.mapPos(p.head, -1) }));
  },
  provide: (f) =>
    EditorView.decorations.from(f, (peers) => {
      const ranges = [];
      for (const p of peers) {
        const from = Math.min(p.anchor, p.head);
        const to = Math.max(p.anchor, p.head);
        if (from < to) ranges.push(Decoration.mark({ class: `cm-peer-sel ${p.cls}` }).range(from, to));
        ranges.push(Decoration.widget({ widget: new CaretWidget(p.label, p.cls, p.title), side: 1 }).range(p.head));
      }
      return Decoration.set(ranges, true);
    }),
});

// --- authorship colours ---

const setAuthors = StateEffect.define(); // {on, spans: [{from, to, author}] UTF-16}
const ownAuthor = StateEffect.define();

const markCache = new Map();
function authorMark(author) {
  let m = markCache.get(author);
  if (!m) {
    m = Decoration.mark({
      class: `cm-author ${colorClass(author)}`,
      attributes: { title: author ? `Written by ${author}` : "Original text" },
      author,
    });
    markCache.set(author, m);
  }
  return m;
}

// Marks [from, to) as author's: marks under it are cut back, and a
// neighbouring mark of the same author is joined, so runs stay whole.
function paint(set, from, to, author) {
  if (from >= to) return set;
  const add = [];
  let start = from;
  let end = to;
  const drop = (a, b, deco) => (a < to && b > from) || (author && deco.spec.author === author && (b === from || a === to));
  set.between(from, to, (a, b, deco) => {
    if (!drop(a, b, deco)) return;
    if (author && deco.spec.author === author) {
      start = Math.min(start, a);
      end = Math.max(end, b);
      return;
    }
    if (a < from) add.push(deco.range(a, from));
    if (b > to) add.push(deco.range(to, b));
  });
  if (author) add.push(authorMark(author).range(start, end));
  return set.update({ filterFrom: from, filterTo: to, filter: (a, b, deco) => !drop(a, b, deco), add, sort: true });
}

const authorsField = StateField.define({
  create: () => ({ on: false, me: "", set: Decoration.none }),
  update(v, tr) {
    let { on, me, set } = v;
    set = set.map(tr.changes);
    for (const e of tr.effects) {
      if (e.is(ownAuthor)) me = e.value;
      if (e.is(setAuthors)) {
        on = e.value.on;
        const b = new RangeSetBuilder();
        for (const s of e.value.spans || []) if (s.author && s.from < s.to) b.add(s.from, s.to, authorMark(s.author));
        set = b.finish();
      }
    }
    if (on && tr.docChanged) {
      const frame = tr.annotation(remoteAnn);
      const who = frame ? frame.author : me;
      tr.changes.iterChanges((_fa, _ta, fromB, toB) => {
        set = paint(set, fromB, toB, who);
      });
    }
    return { on, me, set };
  },
  provide: (f) => EditorView.decorations.from(f, (v) => (v.on ? v.set : Decoration.none)),
});

/** The author runs drawn now: [{from, to, author}] (UTF-16), for tests. */
export function authorRuns(state) {
  const out = [];
  const v = state.field(authorsField, false);
  if (!v) return out;
  v.set.between(0, state.doc.length, (from, to, deco) => {
    out.push({ from, to, author: deco.spec.author });
  });
  return out;
}

/** Extensions and effects the tests use to drive authorship without a view. */
export const authorship = { field: authorsField, set: setAuthors, own: ownAuthor };

// --- Markdown headings get heading typography (the text stays plain) ---

const headingLines = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.decorations = this.build(view);
    }
    update(u) {
      if (u.docChanged || u.viewportChanged) this.decorations = this.build(u.view);
    }
    build(view) {
      const b = new RangeSetBuilder();
      for (const { from, to } of view.visibleRanges) {
        for (let pos = from; pos <= to; ) {
          const line = view.state.doc.lineAt(pos);
          const m = /^(#{1,3}) /.exec(line.text);
          if (m) b.add(line.from, line.from, Decoration.line({ class: `cm-md-h${m[1].length}` }));
          pos = line.to + 1;
        }
      }
      return b.finish();
    }
  },
  { decorations: (v) => v.decorations },
);

// --- the editor ---

/**
 * Creates the editor in parent. o: {text, label, readOnly, onOp(op), onSelection(sel)}.
 * Returns a small controller; all positions it takes and gives are code points.
 */
export function createEditor(parent, o) {
  const readOnly = new Compartment();
  const ro = (on) => [EditorState.readOnly.of(on), EditorView.editable.of(!on)];
  let quiet = false; // while replacing the whole text from the server

  const listener = EditorView.updateListener.of((u) => {
    if (quiet) return;
    for (const tr of u.transactions) {
      if (!tr.docChanged || tr.annotation(remoteAnn)) continue;
      o.onOp(transactionOp(tr));
    }
    // Report the selection when the user moved it (not when someone
    // else's edit merely shifted it: the server shifts it too).
    const moved = u.focusChanged || u.transactions.some((tr) => tr.selection || (tr.docChanged && !tr.annotation(remoteAnn)));
    if (moved && u.view.hasFocus) {
      const s = u.state.selection.main;
      o.onSelection({ anchor: posToCp(u.state, s.anchor), head: posToCp(u.state, s.head) });
    }
  });

  const nonce = document.querySelector('meta[name="csp-nonce"]')?.content;
  const state = EditorState.create({
    doc: o.text,
    extensions: [
      nonce && !nonce.startsWith("__") ? EditorView.cspNonce.of(nonce) : [],
      EditorState.lineSeparator.of("\n"),
      astralField,
      peersField,
      authorsField,
      history(),
      drawSelection(),
      highlightSpecialChars(),
      highlightSelectionMatches(),
      search({ top: true }),
      headingLines,
      EditorView.lineWrapping,
      placeholder("The document is empty. Start drafting here."),
      keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap]),
      readOnly.of(ro(!!o.readOnly)),
      EditorView.contentAttributes.of({ "aria-label": o.label, spellcheck: "true", lang: "en" }),
      listener,
    ],
  });
  const view = new EditorView({ state, parent });

  return {
    view,
    /** Applies a remote op (code points, on the current text). */
    applyRemote(op, frame) {
      view.dispatch({
        changes: opChanges(view.state, op),
        annotations: [remoteAnn.of(frame || {}), Transaction.addToHistory.of(false)],
      });
    },
    /** Replaces the whole text (first load, resync); not undoable, not sent. */
    reset(text) {
      quiet = true;
      try {
        view.dispatch({
          changes: { from: 0, to: view.state.doc.length, insert: text },
          annotations: [Transaction.addToHistory.of(false)],
          effects: setPeers.of([]),
        });
      } finally {
        quiet = false;
      }
    },
    text() {
      return view.state.doc.toString();
    },
    setReadOnly(on) {
      view.dispatch({ effects: readOnly.reconfigure(ro(on)) });
    },
    /** Peers: [{id, label, title, author, cursor: {anchor, head} in code points}]. */
    setPeers(list) {
      const st = view.state;
      const peers = [];
      for (const p of list) {
        if (!p.cursor) continue;
        const anchor = Math.min(cpToPos(st, p.cursor.anchor), st.doc.length);
        const head = Math.min(cpToPos(st, p.cursor.head), st.doc.length);
        peers.push({ id: p.id, label: p.label, title: p.title, cls: colorClass(p.author), anchor, head });
      }
      view.dispatch({ effects: setPeers.of(peers) });
    },
    setOwnAuthor(a) {
      view.dispatch({ effects: ownAuthor.of(a) });
    },
    /** Colours by author: spans [{start, end, author}] in code points, or null for off. */
    setAuthors(spans) {
      const st = view.state;
      const out = [];
      if (spans) {
        const text = st.field(astralField) === 0 ? null : st.doc.toString();
        const conv = (cp) => (text === null ? Math.min(cp, st.doc.length) : cpToUtf16(text, cp));
        for (const s of spans) out.push({ from: conv(s.start), to: conv(s.end), author: s.author });
      }
      view.dispatch({ effects: setAuthors.of({ on: !!spans, spans: out }) });
    },
    focus() {
      view.focus();
    },
    destroy() {
      view.destroy();
    },
  };
}
