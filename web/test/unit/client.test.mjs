// The client's protocol state machine (src/client.js) against a model of
// the server's semantics (docs/protocol.md): the server transforms an
// incoming op over every op since its base version, the incoming op's
// insert going first; it acks the sender after every earlier op and sends
// the op to everyone else; a resent (src, seq) is acked again, not applied;
// a reconnect with since gets every op after since, the client's own
// included. Random schedules with local edits, reordering between clients,
// dropped connections, lost frames, page reloads (the client's state carried
// over as a snapshot) and rate limiting must converge, and in
// insert-only runs every typed character must end up in the text once.

import { test } from "node:test";
import assert from "node:assert/strict";
import { OTClient, SYNCHRONIZED, AWAITING_ACK, AWAITING_WITH_BUFFER, GapError } from "../../src/client.js";
import { apply, transform, cpLen } from "../../src/ot.js";
import { rng, randomText, randomOp, randomInsert } from "./gen.mjs";

class ServerModel {
  constructor(text, r) {
    this.text = text;
    this.version = 0;
    this.log = []; // {version, op, src, seq}
    this.last = new Map(); // src → {seq, version}
    this.conns = new Set();
    this.r = r;
    this.refuse = 0; // probability of answering rate_limited
  }
  connect(conn, since) {
    conn.inbox = [];
    this.conns.add(conn);
    if (since === undefined) {
      conn.inbox.push({ type: "hello", version: this.version, head: this.version, text: this.text });
      return;
    }
    assert.ok(since <= this.version, "since ahead of the server");
    conn.inbox.push({ type: "hello", version: since, head: this.version });
    for (const e of this.log) if (e.version > since) conn.inbox.push({ type: "op", ...e });
  }
  disconnect(conn) {
    this.conns.delete(conn);
  }
  receive(conn, msg) {
    if (!this.conns.has(conn)) return; // the socket is gone
    const l = this.last.get(msg.src);
    if (l && msg.seq <= l.seq) {
      conn.inbox.push({ type: "ack", seq: msg.seq, version: l.version });
      return;
    }
    if (this.refuse && this.r() < this.refuse) {
      conn.inbox.push({ type: "error", code: "rate_limited", message: "slow down", seq: msg.seq });
      return;
    }
    assert.ok(msg.version <= this.version, `op version ${msg.version} ahead of ${this.version}`);
    let op = msg.op;
    for (const e of this.log) if (e.version > msg.version) op = transform(op, e.op)[0];
    this.text = apply(this.text, op);
    this.version++;
    const e = { version: this.version, op, src: msg.src, seq: msg.seq, author: msg.src };
    this.log.push(e);
    this.last.set(msg.src, { seq: msg.seq, version: this.version });
    for (const c of this.conns) {
      if (c === conn) c.inbox.push({ type: "ack", seq: msg.seq, version: this.version });
      else c.inbox.push({ type: "op", ...e });
    }
  }
}

class Peer {
  constructor(name, server) {
    this.name = name;
    this.server = server;
    this.conn = { inbox: [] };
    this.outbox = [];
    this.client = null;
    this.text = null;
    this.online = false;
    this.typed = []; // markers typed (insert-only runs)
    this.retryPending = false;
  }
  connect() {
    this.server.connect(this.conn, this.client ? this.client.version : undefined);
    this.online = true;
    this.awaitHello = true;
  }
  disconnect(r) {
    // Frames on their way to the server may or may not arrive; frames on
    // their way back are lost.
    if (r() < 0.5) while (this.outbox.length) this.server.receive(this.conn, this.outbox.shift());
    this.outbox = [];
    this.server.disconnect(this.conn);
    this.conn = { inbox: [] };
    this.online = false;
    this.client?.close();
  }
  send(msg) {
    if (msg && this.online) this.outbox.push(msg);
  }
  edit(op, marker) {
    this.text = apply(this.text, op);
    if (marker) this.typed.push(marker);
    this.send(this.client.applyLocal(op));
  }
  handle() {
    const f = this.conn.inbox.shift();
    if (!f) return false;
    if (f.type === "hello") {
      this.awaitHello = false;
      if (!this.client) {
        this.client = new OTClient({ version: f.version, length: cpLen(f.text), src: `src-${this.name}` });
        this.text = f.text;
      } else {
        assert.equal(f.version, this.client.version);
      }
      this.send(this.client.open());
    } else if (f.type === "op") {
      const { op, send } = this.client.serverOp(f);
      if (op) this.text = apply(this.text, op);
      this.send(send);
    } else if (f.type === "ack") {
      this.send(this.client.serverAck(f));
    } else if (f.type === "error") {
      assert.equal(this.client.serverError(f), "retry");
      this.retryPending = true;
    }
    return true;
  }
  retry() {
    if (this.retryPending && this.client.inflight && this.online) this.send(this.client.message());
    this.retryPending = false;
  }
}

function run(seed, { peers = 3, steps = 400, insertOnly = false, refuse = 0 } = {}) {
  const r = rng(seed);
  const server = new ServerModel(randomText(r, 10), r);
  server.refuse = refuse;
  const ps = Array.from({ length: peers }, (_, i) => new Peer(`p${i}`, server));
  for (const p of ps) {
    p.connect();
    p.handle(); // hello
  }
  let n = 0;
  for (let step = 0; step < steps; step++) {
    const p = r.pick(ps);
    const k = r.int(100);
    if (k < 30 && p.client) {
      const len = cpLen(p.text);
      if (insertOnly) {
        // Insert at the start, the end or right after a marker, so no
        // marker is ever cut in two by another.
        const marker = `⟨${p.name}.${n++}🌐⟩`;
        const at = [0, len];
        for (const m of p.text.matchAll(/⟩/g)) at.push(cpLen(p.text.slice(0, m.index + 1)));
        p.edit(randomInsert(r, len, marker, r.pick(at)), marker);
      } else p.edit(randomOp(r, len));
      assert.equal(p.client.length, cpLen(p.text));
    } else if (k < 55) {
      if (p.outbox.length) server.receive(p.conn, p.outbox.shift());
    } else if (k < 85) {
      if (p.online) p.handle();
    } else if (k < 88) {
      if (p.online && !p.awaitHello) p.disconnect(r);
    } else if (k < 90) {
      // The page is reloaded: the client's state survives through a
      // snapshot (JSON), the socket does not.
      if (p.client && !p.awaitHello) {
        if (p.online) p.disconnect(r);
        p.client = OTClient.restore(JSON.parse(JSON.stringify(p.client.snapshot())));
      }
    } else if (k < 95) {
      if (!p.online) p.connect();
    } else {
      p.retry();
    }
  }
  // Everyone comes back and the network drains.
  server.refuse = 0;
  for (const p of ps) if (!p.online) p.connect();
  for (let rounds = 0; rounds < 10000; rounds++) {
    let moved = false;
    for (const p of ps) {
      p.retry();
      while (p.outbox.length) {
        server.receive(p.conn, p.outbox.shift());
        moved = true;
      }
      while (p.handle()) moved = true;
    }
    if (!moved) break;
  }
  for (const p of ps) {
    assert.equal(p.client.state, SYNCHRONIZED, `${p.name} still has unacknowledged edits (seed ${seed})`);
    assert.equal(p.client.version, server.version, `${p.name} version (seed ${seed})`);
    assert.equal(p.text, server.text, `${p.name} diverged (seed ${seed})`);
  }
  // Each (src, seq) was applied once.
  const seen = new Set(server.log.map((e) => `${e.src}/${e.seq}`));
  assert.equal(seen.size, server.log.length, `an op was applied twice (seed ${seed})`);
  if (insertOnly) {
    for (const p of ps) {
      for (const m of p.typed) {
        assert.equal(server.text.split(m).length - 1, 1, `${m} typed by ${p.name} is not in the text exactly once (seed ${seed})`);
      }
    }
  }
  return server;
}

test("states: synchronized → awaiting ack → awaiting with buffer", () => {
  const c = new OTClient({ version: 4, length: 3, src: "me" });
  c.open();
  assert.equal(c.state, SYNCHRONIZED);
  const m1 = c.applyLocal([3, "a"]);
  assert.deepEqual(m1, { type: "op", version: 4, op: [3, "a"], src: "me", seq: 1 });
  assert.equal(c.state, AWAITING_ACK);
  assert.equal(c.applyLocal([4, "b"]), null);
  assert.equal(c.applyLocal([5, "c"]), null);
  assert.equal(c.state, AWAITING_WITH_BUFFER);
  assert.equal(c.pendingEdits, 3);
  // Someone else's op arrives before our ack: the buffer is rebased.
  const { op } = c.serverOp({ type: "op", version: 5, op: ["X", 3], src: "other", seq: 9 });
  assert.deepEqual(op, ["X", 6]); // over "a" in flight and "bc" buffered
  const m2 = c.serverAck({ type: "ack", seq: 1, version: 6 });
  assert.deepEqual(m2, { type: "op", version: 6, op: [5, "bc"], src: "me", seq: 2 });
  assert.equal(c.state, AWAITING_ACK);
  assert.equal(c.serverAck({ type: "ack", seq: 1, version: 6 }), null, "a repeated ack is ignored");
  c.serverAck({ type: "ack", seq: 2, version: 7 });
  assert.equal(c.state, SYNCHRONIZED);
  assert.equal(c.pendingEdits, 0);
});

test("own op in a catch-up counts as the ack", () => {
  const c = new OTClient({ version: 0, length: 0, src: "me" });
  c.open();
  c.applyLocal(["hi"]);
  c.close();
  c.applyLocal([2, "!"]); // typed offline
  assert.equal(c.pendingEdits, 2);
  const resend = c.open();
  assert.deepEqual(resend, { type: "op", version: 0, op: ["hi"], src: "me", seq: 1 });
  const { op, send } = c.serverOp({ type: "op", version: 1, op: ["hi"], src: "me", seq: 1 });
  assert.equal(op, null);
  assert.deepEqual(send, { type: "op", version: 1, op: [2, "!"], src: "me", seq: 2 });
  assert.equal(c.serverAck({ type: "ack", seq: 1, version: 1 }), null, "the late ack of the same seq is ignored");
});

test("a version gap is reported", () => {
  const c = new OTClient({ version: 3, length: 0 });
  assert.throws(() => c.serverOp({ type: "op", version: 5, op: ["x"] }), GapError);
});

test("remote positions move through unacknowledged edits", () => {
  const c = new OTClient({ version: 0, length: 4, src: "me" });
  c.open();
  c.applyLocal(["🌐🌐", 4]);
  assert.equal(c.serverToLocal(0), 0); // stays before our own insert (sticks left)
  assert.equal(c.serverToLocal(3), 5);
});

test("errors: retry, ignore, refused for good", () => {
  const c = new OTClient({ version: 0, length: 0, src: "me" });
  c.open();
  c.applyLocal(["a"]);
  assert.equal(c.serverError({ type: "error", code: "rate_limited", seq: 1 }), "retry");
  assert.equal(c.serverError({ type: "error", code: "unavailable", seq: 1 }), "retry");
  assert.equal(c.serverError({ type: "error", code: "bad_message" }), "ignore");
  assert.equal(c.serverError({ type: "error", code: "bad_op", seq: 1 }), "bad_op");
  assert.equal(c.serverError({ type: "error", code: "adopted", seq: 1 }), "adopted");
});

test("random schedules converge (mixed edits)", () => {
  for (let seed = 1; seed <= 150; seed++) run(seed, { peers: 3, steps: 300 });
});

test("random schedules lose nothing typed (insert-only, offline periods)", () => {
  for (let seed = 1000; seed < 1100; seed++) run(seed, { peers: 3, steps: 300, insertOnly: true });
});

test("random schedules with rate limiting converge", () => {
  for (let seed = 5000; seed < 5060; seed++) run(seed, { peers: 2, steps: 250, refuse: 0.3 });
});
