// Random texts and ops for the unit tests. The alphabet has what breaks
// naive position code: astral characters (🌐 is 2 UTF-16 units, 1 code
// point), a family emoji (5 code points joined by ZWJ), a combining accent,
// CRLF, Hangul, CJK and Arabic.

import { Builder, cpLen } from "../../src/ot.js";

export const PIECES = ["a", "b", "c", " ", "\n", "🌐", "👨‍👩‍👧", "e\u0301", "\r\n", "한", "국", "中", "文", "ش", "x"];

/** A seeded PRNG (mulberry32), so failures can be replayed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (n) => Math.floor(next() * n);
  next.pick = (arr) => arr[next.int(arr.length)];
  return next;
}

export function randomText(r, max = 12) {
  let s = "";
  const n = r.int(max + 1);
  for (let i = 0; i < n; i++) s += r.pick(PIECES);
  return s;
}

/** A random op on a text of len code points. */
export function randomOp(r, len) {
  const b = new Builder();
  let left = len;
  while (left > 0) {
    const k = r.int(4);
    const n = 1 + r.int(Math.min(left, 4));
    if (k === 0) b.insert(randomText(r, 3) || "z");
    else if (k === 1) {
      b.delete(n);
      left -= n;
    } else {
      b.retain(n);
      left -= n;
    }
  }
  if (r() < 0.4) b.insert(randomText(r, 3) || "y");
  return b.done();
}

/** A random insert-only op (nothing typed is ever deleted). */
export function randomInsert(r, len, marker, at = r.int(len + 1)) {
  return new Builder().retain(at).insert(marker).retain(len - at).done();
}

export { cpLen };
