// Operations on text, in Unicode code points, in the wire form of the
// Communiqué protocol (docs/protocol.md): an op is an array that walks the
// whole text; a positive integer n keeps n code points, a negative integer
// -n deletes n code points, a non-empty string inserts itself.
//
// This is ot.js's TextOperation (apply, compose, transform, transformIndex)
// on plain arrays, counting code points instead of UTF-16 units. JavaScript
// strings are UTF-16: an astral character such as 🌐 is two units but one
// code point, so every length and position here goes through cpLen and
// friends. Nothing in this module knows about editors or sockets.

/** Number of code points in s (a lone surrogate counts as one). */
export function cpLen(s) {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** UTF-16 offset in s of code point position cp (clamped to s's end). */
export function cpToUtf16(s, cp, from = 0) {
  let i = from;
  while (cp > 0 && i < s.length) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      i += d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
    } else {
      i++;
    }
    cp--;
  }
  return i;
}

/** Code point position of UTF-16 offset off in s. */
export function utf16ToCp(s, off) {
  return cpLen(s.slice(0, off));
}

/** s sliced by code point positions [from, to). */
export function cpSlice(s, from, to) {
  const a = cpToUtf16(s, from);
  const b = to === undefined ? s.length : cpToUtf16(s, to - from, a);
  return s.slice(a, b);
}

export const isRetain = (c) => typeof c === "number" && c > 0;
export const isDelete = (c) => typeof c === "number" && c < 0;
export const isInsert = (c) => typeof c === "string";

/**
 * Builder of canonical ops: adjacent components of a kind are merged, zero
 * lengths and empty inserts are dropped, and an insert next to a delete goes
 * first (ot.js's canonical order, the same as the server's ot.Op builders).
 */
export class Builder {
  constructor() {
    this.ops = [];
  }
  retain(n) {
    if (n <= 0) return this;
    const o = this.ops;
    if (o.length && isRetain(o[o.length - 1])) o[o.length - 1] += n;
    else o.push(n);
    return this;
  }
  insert(s) {
    if (s === "") return this;
    const o = this.ops;
    const l = o.length;
    if (l && isInsert(o[l - 1])) {
      o[l - 1] += s;
    } else if (l && isDelete(o[l - 1])) {
      if (l > 1 && isInsert(o[l - 2])) o[l - 2] += s;
      else {
        o.push(o[l - 1]);
        o[l - 1] = s;
      }
    } else {
      o.push(s);
    }
    return this;
  }
  delete(n) {
    if (n <= 0) return this;
    const o = this.ops;
    if (o.length && isDelete(o[o.length - 1])) o[o.length - 1] -= n;
    else o.push(-n);
    return this;
  }
  /** Appends one wire component through the builders. */
  push(c) {
    if (isRetain(c)) return this.retain(c);
    if (isDelete(c)) return this.delete(-c);
    return this.insert(c);
  }
  done() {
    return this.ops;
  }
}

/** Throws unless op is a well-formed op (any base length). */
export function check(op) {
  if (!Array.isArray(op)) throw new Error("op: not an array");
  for (const c of op) {
    if (typeof c === "number") {
      if (!Number.isSafeInteger(c) || c === 0) throw new Error("op: bad count " + c);
    } else if (typeof c !== "string" || c === "") {
      throw new Error("op: bad component " + JSON.stringify(c));
    }
  }
  return op;
}

/** Length in code points of the text op applies to. */
export function baseLen(op) {
  let n = 0;
  for (const c of op) if (typeof c === "number") n += Math.abs(c);
  return n;
}

/** Length in code points of the text op produces. */
export function targetLen(op) {
  let n = 0;
  for (const c of op) {
    if (isRetain(c)) n += c;
    else if (isInsert(c)) n += cpLen(c);
  }
  return n;
}

/** True when op changes nothing. */
export function isNoop(op) {
  return op.every(isRetain);
}

/** Canonical copy of op. */
export function canonical(op) {
  const b = new Builder();
  for (const c of op) b.push(c);
  return b.done();
}

/** The text that results from applying op to s. Throws if op does not fit. */
export function apply(s, op) {
  const n = cpLen(s);
  if (baseLen(op) !== n) throw new Error(`apply: op base length ${baseLen(op)} != text length ${n}`);
  const out = [];
  let i = 0; // UTF-16 offset in s
  for (const c of op) {
    if (isRetain(c)) {
      const j = cpToUtf16(s, c, i);
      out.push(s.slice(i, j));
      i = j;
    } else if (isDelete(c)) {
      i = cpToUtf16(s, -c, i);
    } else {
      out.push(c);
    }
  }
  return out.join("");
}

// A cursor over an op's components that can take part of one.
class Cur {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.c = undefined; // what is left of the current component
    this.n = 0; // its length in code points
    this.next();
  }
  get end() {
    return this.c === undefined;
  }
  next() {
    if (this.i >= this.op.length) {
      this.c = undefined;
      this.n = 0;
      return;
    }
    this.c = this.op[this.i++];
    this.n = typeof this.c === "number" ? Math.abs(this.c) : cpLen(this.c);
  }
  retain() {
    return isRetain(this.c);
  }
  del() {
    return isDelete(this.c);
  }
  ins() {
    return isInsert(this.c);
  }
  // Consumes m code points (m <= n) and returns them as a component.
  take(m) {
    let out;
    if (isRetain(this.c)) {
      out = m;
      this.c -= m;
    } else if (isDelete(this.c)) {
      out = -m;
      this.c += m;
    } else if (m === this.n) {
      out = this.c;
    } else {
      const k = cpToUtf16(this.c, m);
      out = this.c.slice(0, k);
      this.c = this.c.slice(k);
    }
    this.n -= m;
    if (this.n === 0) this.next();
    return out;
  }
}

/**
 * compose(a, b) has the effect of a followed by b:
 * apply(apply(s, a), b) === apply(s, compose(a, b)).
 * b must apply to a's result (baseLen(b) === targetLen(a)).
 */
export function compose(a, b) {
  if (targetLen(a) !== baseLen(b)) {
    throw new Error(`compose: target length ${targetLen(a)} != base length ${baseLen(b)}`);
  }
  const out = new Builder();
  const ca = new Cur(a);
  const cb = new Cur(b);
  while (!ca.end || !cb.end) {
    if (ca.del()) {
      out.push(ca.take(ca.n));
      continue;
    }
    if (cb.ins()) {
      out.push(cb.take(cb.n));
      continue;
    }
    if (ca.end || cb.end) throw new Error("compose: ops have incompatible lengths");
    const m = Math.min(ca.n, cb.n);
    if (ca.retain() && cb.retain()) {
      out.retain(m);
      ca.take(m);
      cb.take(m);
    } else if (ca.ins() && cb.del()) {
      ca.take(m); // inserted by a, deleted by b: never existed
      cb.take(m);
    } else if (ca.ins() && cb.retain()) {
      out.insert(ca.take(m));
      cb.take(m);
    } else {
      // a retains, b deletes
      out.delete(m);
      ca.take(m);
      cb.take(m);
    }
  }
  return out.done();
}

/**
 * transform(a, b) takes two ops made concurrently on the same text and
 * returns [a2, b2] with apply(apply(s, a), b2) === apply(apply(s, b), a2).
 *
 * Tie-break (the protocol's): when a and b insert at the same position, a's
 * text goes first. a is the op being transformed: on the server the incoming
 * op, on a client its own unacknowledged op, transformed over the ops that
 * arrive from the server. Both sides therefore agree.
 */
export function transform(a, b) {
  if (baseLen(a) !== baseLen(b)) {
    throw new Error(`transform: base lengths differ (${baseLen(a)}, ${baseLen(b)})`);
  }
  // The tie-break looks at component order, so canonicalise first (the
  // server does the same).
  a = canonical(a);
  b = canonical(b);
  const a2 = new Builder();
  const b2 = new Builder();
  const ca = new Cur(a);
  const cb = new Cur(b);
  while (!ca.end || !cb.end) {
    if (ca.ins()) {
      const n = ca.n;
      a2.insert(ca.take(n));
      b2.retain(n);
      continue;
    }
    if (cb.ins()) {
      const n = cb.n;
      a2.retain(n);
      b2.insert(cb.take(n));
      continue;
    }
    if (ca.end || cb.end) throw new Error("transform: ops have different lengths");
    const m = Math.min(ca.n, cb.n);
    if (ca.retain() && cb.retain()) {
      a2.retain(m);
      b2.retain(m);
    } else if (ca.del() && cb.retain()) {
      a2.delete(m);
    } else if (ca.retain() && cb.del()) {
      b2.delete(m);
    } // both delete: nothing left on either side
    ca.take(m);
    cb.take(m);
  }
  return [a2.done(), b2.done()];
}

/**
 * Where position pos (code points, in op's base text) ends up after op.
 * A position inside deleted text goes to where the deletion was. At an
 * insert at pos, the position stays before the inserted text unless
 * stickRight (the server moves remote cursors with stickRight false).
 */
export function transformIndex(pos, op, stickRight = false) {
  const base = baseLen(op);
  pos = Math.max(0, Math.min(pos, base));
  let b = 0;
  let t = 0;
  for (const c of op) {
    if (isRetain(c)) {
      if (pos < b + c) return t + pos - b;
      b += c;
      t += c;
    } else if (isDelete(c)) {
      if (pos < b - c) pos = b - c;
      b -= c;
    } else {
      if (b === pos && !stickRight) return t;
      t += cpLen(c);
    }
  }
  return t;
}

/** The op that replaces code points [from, to) of a text of length len with s. */
export function replaceOp(len, from, to, s) {
  return new Builder().retain(from).insert(s).delete(to - from).retain(len - to).done();
}

/**
 * An op turning a into b: the common prefix and suffix are kept and the
 * middle replaced (in code points, never splitting a surrogate pair).
 */
export function diffOp(a, b) {
  const ca = Array.from(a);
  const cb = Array.from(b);
  let p = 0;
  while (p < ca.length && p < cb.length && ca[p] === cb[p]) p++;
  let s = 0;
  while (s < ca.length - p && s < cb.length - p && ca[ca.length - 1 - s] === cb[cb.length - 1 - s]) s++;
  return new Builder()
    .retain(p)
    .insert(cb.slice(p, cb.length - s).join(""))
    .delete(ca.length - p - s)
    .retain(s)
    .done();
}
