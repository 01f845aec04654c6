// The editor binding's conversions (src/editor.js): CodeMirror changes in
// UTF-16 offsets ↔ wire ops in code points, on texts with astral
// characters, CRLF and combining marks — including changes that cut an
// astral character in two, which must still give a valid op.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EditorState } from "@codemirror/state";
import { astralField, transactionOp, opChanges, posToCp, cpToPos, countPairs, authorRuns, authorship, remoteAnn } from "../../src/editor.js";
import { apply, cpLen } from "../../src/ot.js";
import { rng, randomText, randomOp } from "./gen.mjs";

function state(text) {
  return EditorState.create({ doc: text, extensions: [EditorState.lineSeparator.of("\n"), astralField] });
}

test("the document string is the server's text (CR kept, \\n the only separator)", () => {
  const s = state("a\r\nb\rc🌐");
  assert.equal(s.doc.toString(), "a\r\nb\rc🌐");
  assert.equal(s.field(astralField), 1);
});

test("a local change becomes an op in code points", () => {
  const s = state("🌐 Seoul");
  const tr = s.update({ changes: { from: 3, to: 8, insert: "서울" } });
  assert.deepEqual(transactionOp(tr), [2, "서울", -5]);
  assert.equal(apply("🌐 Seoul", transactionOp(tr)), "🌐 서울");
});

test("a remote op becomes UTF-16 changes", () => {
  const s = state("🌐🌐ab");
  const tr = s.update({ changes: opChanges(s, [1, "x", -1, 2]) });
  assert.equal(tr.newDoc.toString(), "🌐xab");
  assert.equal(tr.state.field(astralField), 1);
});

test("positions convert both ways", () => {
  const s = state("a🌐b👨‍👩‍👧c");
  for (let cp = 0; cp <= cpLen(s.doc.toString()); cp++) assert.equal(posToCp(s, cpToPos(s, cp)), cp);
  assert.equal(cpToPos(s, 2), 3);
});

test("random local changes (UTF-16, may cut surrogate pairs) give ops that reproduce them", () => {
  const r = rng(99);
  for (let i = 0; i < 3000; i++) {
    let s = state(randomText(r, 10));
    for (let k = 0; k < 3; k++) {
      const before = s.doc.toString();
      const len = s.doc.length;
      const changes = [];
      let pos = 0;
      while (pos < len && changes.length < 3) {
        const from = pos + r.int(Math.max(1, len - pos));
        const to = Math.min(len, from + r.int(4));
        changes.push({ from, to, insert: r() < 0.7 ? randomText(r, 2) : "" });
        pos = to + 1;
      }
      if (r() < 0.3) changes.push({ from: len, insert: randomText(r, 2) || "z" });
      const tr = s.update({ changes });
      const after = tr.newDoc.toString();
      if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(after)) {
        // Cutting a pair can leave a lone surrogate, which no UTF-8 text
        // (the wire) can hold; the op still describes the change exactly.
      }
      const op = transactionOp(tr);
      assert.equal(apply(before, op), after, `case ${i}: ${JSON.stringify({ before, changes })}`);
      assert.equal(tr.state.field(astralField), countPairs(after), `astral count, case ${i}`);
      s = tr.state;
    }
  }
});

test("random remote ops apply to the editor as to the text", () => {
  const r = rng(123);
  for (let i = 0; i < 3000; i++) {
    const text = randomText(r, 12);
    const s = state(text);
    const op = randomOp(r, cpLen(text));
    const tr = s.update({ changes: opChanges(s, op) });
    assert.equal(tr.newDoc.toString(), apply(text, op), `case ${i}: ${JSON.stringify({ text, op })}`);
    assert.equal(tr.state.field(astralField), countPairs(tr.newDoc.toString()));
  }
});

test("colours by author follow every edit, in runs that never overlap", () => {
  const r = rng(31337);
  const who = ["KOR", "GBR", "chair"];
  for (let i = 0; i < 400; i++) {
    let s = EditorState.create({ doc: "0123456789", extensions: [EditorState.lineSeparator.of("\n"), astralField, authorship.field] });
    s = s.update({ effects: [authorship.own.of("KOR"), authorship.set.of({ on: true, spans: [{ from: 2, to: 5, author: "GBR" }] })] }).state;
    const model = Array.from("0123456789", (_, k) => (k >= 2 && k < 5 ? "GBR" : "")); // author per UTF-16 unit
    for (let k = 0; k < 8; k++) {
      const len = s.doc.length;
      const from = r.int(len + 1);
      const to = Math.min(len, from + r.int(3));
      const insert = r() < 0.8 ? "abc".slice(0, 1 + r.int(3)) : "";
      const remote = r() < 0.6;
      const author = remote ? r.pick(who) : "KOR";
      s = s.update({ changes: { from, to, insert }, annotations: remote ? [remoteAnn.of({ author })] : [] }).state;
      model.splice(from, to - from, ...Array.from(insert, () => author));
    }
    // Every unit is coloured by who wrote it, and runs never overlap.
    const runs = authorRuns(s);
    const got = Array.from({ length: s.doc.length }, () => "");
    let prevEnd = 0;
    for (const run of runs) {
      assert.ok(run.from >= prevEnd && run.from < run.to, `overlapping or empty run, case ${i}`);
      prevEnd = run.to;
      for (let k = run.from; k < run.to; k++) got[k] = run.author;
    }
    assert.deepEqual(got, model, `case ${i}`);
  }
});
