// The client side of the draft stream's protocol, as a pure state machine:
// no sockets, no timers, no editor. A DraftSession (session.js) feeds it
// the frames it receives and the edits the user makes, and sends what it
// returns. Unit tests drive it directly against a model of the server.
//
// States (ot.js's client): synchronized (nothing unacknowledged), awaiting
// ack (one op in flight), awaiting with buffer (one op in flight and the
// edits made since, composed into one op that goes out with the ack).
//
// Versions: `version` is the last server version this client has seen
// (through an op or an ack); the op in flight is based on it. On a
// reconnect the socket is opened with since=version, the op in flight is
// resent unchanged (same src and seq), and the catch-up ops are handled as
// usual; one of them carrying our own src and seq is the ack.

import { compose, transform, transformIndex, isNoop, baseLen, targetLen, check } from "./ot.js";

export const SYNCHRONIZED = "synchronized";
export const AWAITING_ACK = "awaiting ack";
export const AWAITING_WITH_BUFFER = "awaiting with buffer";

/** A random id for the client's whole life (src). */
export function randomSrc() {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Errors after which the op in flight is not applied and must be resent later. */
export const RETRY_CODES = new Set(["rate_limited", "unavailable"]);

export class OTClient {
  /**
   * @param {object} o
   * @param {number} o.version the version of the text the client starts from
   * @param {number} o.length its length in code points
   * @param {string} [o.src]
   */
  constructor({ version, length, src = randomSrc() }) {
    this.version = version;
    this.src = src;
    this.seq = 0;
    this.inflight = null; // {op, seq, base, edits}
    this.buffer = null; // {op, edits}
    this.length = length; // of the local text, in code points
    this.connected = false;
  }

  get state() {
    if (!this.inflight) return SYNCHRONIZED;
    return this.buffer ? AWAITING_WITH_BUFFER : AWAITING_ACK;
  }

  /** Number of local edits not yet acknowledged by the server. */
  get pendingEdits() {
    return (this.inflight ? this.inflight.edits : 0) + (this.buffer ? this.buffer.edits : 0);
  }

  /** The op message for the op in flight. */
  message() {
    const f = this.inflight;
    return { type: "op", version: f.base, op: f.op, src: this.src, seq: f.seq };
  }

  /**
   * The user changed the local text by op (made on the local text). Returns
   * the message to send now, or null (buffered, or not connected).
   */
  applyLocal(op, edits = 1) {
    check(op);
    if (baseLen(op) !== this.length) {
      throw new Error(`local op base length ${baseLen(op)} != local text length ${this.length}`);
    }
    this.length = targetLen(op);
    if (isNoop(op)) return null;
    if (!this.inflight) {
      this.inflight = { op, seq: ++this.seq, base: this.version, edits };
      return this.connected ? this.message() : null;
    }
    if (!this.buffer) this.buffer = { op, edits };
    else this.buffer = { op: compose(this.buffer.op, op), edits: this.buffer.edits + edits };
    return null;
  }

  /**
   * The socket is open and its hello received (hello.version must equal
   * this.version when reconnecting with since). Returns the message to
   * (re)send, if any: the op in flight, unchanged.
   */
  open() {
    this.connected = true;
    return this.inflight ? this.message() : null;
  }

  /** The socket closed. Edits go on locally; nothing is lost. */
  close() {
    this.connected = false;
  }

  /**
   * A server op frame. Returns {op, send}: op is the op to apply to the
   * local text (null when the frame was our own op, i.e. its ack), send a
   * message to send now (or null). Throws on a version gap.
   */
  serverOp(frame) {
    if (frame.version !== this.version + 1) {
      throw new GapError(`op version ${frame.version} after ${this.version}`);
    }
    if (this.inflight && frame.src === this.src && frame.seq === this.inflight.seq) {
      // Our own op seen in a catch-up: it counts as the ack.
      return { op: null, send: this.acked(frame.version) };
    }
    let op = check(frame.op);
    if (this.inflight) {
      [this.inflight.op, op] = transform(this.inflight.op, op);
      this.inflight.base = frame.version;
    }
    if (this.buffer) {
      [this.buffer.op, op] = transform(this.buffer.op, op);
    }
    this.version = frame.version;
    this.length = this.length - baseLen(op) + targetLen(op);
    return { op, send: null };
  }

  /** An ack frame. Returns a message to send now, or null. */
  serverAck(frame) {
    if (!this.inflight || frame.seq !== this.inflight.seq) return null; // a repeated ack of something settled
    if (frame.version !== this.version + 1) {
      throw new GapError(`ack version ${frame.version} after ${this.version}`);
    }
    return this.acked(frame.version);
  }

  acked(version) {
    this.version = version;
    this.inflight = null;
    if (this.buffer) {
      this.inflight = { op: this.buffer.op, seq: ++this.seq, base: version, edits: this.buffer.edits };
      this.buffer = null;
      return this.connected ? this.message() : null;
    }
    return null;
  }

  /**
   * An error frame. Returns "retry" (resend the op in flight later, same seq),
   * "ignore" (not about our op) or the code (the op in flight was refused
   * for good).
   */
  serverError(frame) {
    if (RETRY_CODES.has(frame.code)) return "retry";
    if (!this.inflight || frame.seq === undefined || frame.seq !== this.inflight.seq) {
      return frame.code === "adopted" ? "adopted" : "ignore";
    }
    return frame.code;
  }

  /**
   * Moves a position in the server's text at this.version to the local
   * text (through the op in flight and the buffer).
   */
  serverToLocal(pos) {
    if (this.inflight) pos = transformIndex(pos, this.inflight.op, false);
    if (this.buffer) pos = transformIndex(pos, this.buffer.op, false);
    return pos;
  }

  /**
   * The state to carry over a page reload while edits are unacknowledged
   * (JSON-safe). A client made from it with restore() continues with the same
   * src and seq, so a resend of something the server already has is
   * recognised, not applied twice.
   */
  snapshot() {
    return { version: this.version, src: this.src, seq: this.seq, length: this.length, inflight: this.inflight, buffer: this.buffer };
  }

  static restore(snap) {
    const c = new OTClient({ version: snap.version, length: snap.length, src: snap.src });
    c.seq = snap.seq;
    c.inflight = snap.inflight ? { ...snap.inflight, op: check(snap.inflight.op) } : null;
    c.buffer = snap.buffer ? { ...snap.buffer, op: check(snap.buffer.op) } : null;
    return c;
  }

  /** Drops every unacknowledged edit (after the document was adopted). */
  discard() {
    const n = this.pendingEdits;
    this.inflight = null;
    this.buffer = null;
    return n;
  }
}

/** Thrown when frames skip or repeat a version: reconnect with since. */
export class GapError extends Error {}
