// The client's OT (src/ot.js): code point arithmetic, the ot.js laws on
// random ops with astral text, the protocol's tie-break, and agreement with
// the server's own ot package (Go) on the same random cases.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  cpLen,
  cpToUtf16,
  utf16ToCp,
  cpSlice,
  apply,
  compose,
  transform,
  transformIndex,
  baseLen,
  targetLen,
  canonical,
  diffOp,
  replaceOp,
  check,
  isNoop,
} from "../../src/ot.js";
import { rng, randomText, randomOp } from "./gen.mjs";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

test("code points, not UTF-16 units", () => {
  assert.equal(cpLen("🌐"), 1);
  assert.equal("🌐".length, 2);
  assert.equal(cpLen("👨‍👩‍👧"), 5); // three people, two joiners
  assert.equal(cpLen("e\u0301"), 2);
  assert.equal(cpLen("\r\n"), 2);
  assert.equal(cpLen("한국어"), 3);
  assert.equal(cpLen("a\ud800b"), 3, "a lone surrogate counts as one");
  assert.equal(cpToUtf16("a🌐b", 2), 3);
  assert.equal(utf16ToCp("a🌐b", 3), 2);
  assert.equal(cpSlice("🌐a🌐b", 1, 3), "a🌐");
});

test("the protocol's example", () => {
  assert.equal(apply("Seoul 2013", [6, -4, "Conference 2013"]), "Seoul Conference 2013");
  assert.equal(apply("🌐 Seoul", [1, " 2013", 6]), "🌐 2013 Seoul");
  assert.throws(() => apply("abc", [2]), /length/);
});

test("check refuses malformed ops", () => {
  for (const bad of [[0], [""], [null], [1.5], [true], [{}], [[1]], "x"]) assert.throws(() => check(bad));
  assert.doesNotThrow(() => check([3, -1, "a"]));
});

test("tie-break: the op being transformed inserts first", () => {
  // Both insert at 0 of "x": a (being transformed) goes left.
  const [a2, b2] = transform(["A", 1], ["B", 1]);
  assert.equal(apply(apply("x", ["A", 1]), b2), "ABx");
  assert.equal(apply(apply("x", ["B", 1]), a2), "ABx");
  // With astral text in front, positions still count code points.
  const [c2] = transform([1, "🌐", 1], [1, "中", 1]);
  assert.equal(apply(apply("ab", [1, "中", 1]), c2), "a🌐中b");
});

test("transformIndex sticks left at an insert unless asked", () => {
  assert.equal(transformIndex(1, [1, "xy", 1]), 1);
  assert.equal(transformIndex(1, [1, "xy", 1], true), 3);
  assert.equal(transformIndex(2, [1, -1, 1]), 1);
  assert.equal(transformIndex(9, [1, -1, 1]), 2, "clamped to the end");
});

test("canonical order: insert before delete", () => {
  assert.deepEqual(canonical([1, -1, "a", 1]), [1, "a", -1, 1]);
  assert.deepEqual(replaceOp(3, 1, 2, "xy"), [1, "xy", -1, 1]);
});

test("diffOp turns a into b without splitting surrogates", () => {
  const r = rng(7);
  for (let i = 0; i < 500; i++) {
    const a = randomText(r, 10);
    const b = randomText(r, 10);
    const op = diffOp(a, b);
    assert.equal(apply(a, op), b);
  }
  assert.deepEqual(diffOp("a🌐b", "a🌍b"), [1, "🌍", -1, 1]);
});

test("random ops: apply, compose, transform laws", () => {
  const r = rng(20260101);
  for (let i = 0; i < 3000; i++) {
    const s = randomText(r, 12);
    const n = cpLen(s);
    const a = randomOp(r, n);
    const b = randomOp(r, n);
    assert.equal(baseLen(a), n);
    const sa = apply(s, a);
    assert.equal(cpLen(sa), targetLen(a));
    // compose
    const c = randomOp(r, cpLen(sa));
    assert.equal(apply(s, compose(a, c)), apply(sa, c), `compose case ${i}`);
    // transform (TP1)
    const [a2, b2] = transform(a, b);
    assert.equal(apply(apply(s, a), b2), apply(apply(s, b), a2), `transform case ${i}: ${JSON.stringify([s, a, b])}`);
    // transforming against a no-op changes nothing
    assert.deepEqual(transform(a, [n].filter(Boolean))[0], canonical(a));
    assert.ok(isNoop(transform([n].filter(Boolean), a)[0]));
  }
});

test("agrees with the server's ot package (Go) on random cases", (t) => {
  const r = rng(424242);
  const cases = [];
  for (let i = 0; i < 2000; i++) {
    const text = randomText(r, 12);
    const n = cpLen(text);
    cases.push({ text, a: randomOp(r, n), b: randomOp(r, n), pos: r.int(n + 2) });
  }
  const go = spawnSync("go", ["run", "./web/test/otcheck"], {
    cwd: repoRoot,
    input: cases.map((c) => JSON.stringify(c)).join("\n") + "\n",
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (go.error && go.error.code === "ENOENT") {
    if (process.env.CI === "true") throw new Error("go is required in CI");
    t.skip("go is not installed");
    return;
  }
  assert.equal(go.status, 0, `go run ./web/test/otcheck failed:\n${go.stderr}`);
  const results = go.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(results.length, cases.length);
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const want = results[i];
    assert.equal(want.err, undefined, `Go refused case ${i}: ${want.err}`);
    const got = transform(c.a, c.b);
    const ctx = `case ${i}: ${JSON.stringify(c)}`;
    assert.deepEqual(got, want.transform, `transform ${ctx}`);
    assert.deepEqual(compose(c.a, got[1]), want.compose, `compose ${ctx}`);
    assert.equal(apply(c.text, c.a), want.apply_a, `apply ${ctx}`);
    assert.equal(transformIndex(c.pos, c.a, false), want.index, `transformIndex ${ctx}`);
    assert.equal(transformIndex(c.pos, c.a, true), want.index_right, `transformIndex right ${ctx}`);
  }
});
