// DraftSession (src/session.js) with a fake WebSocket: what it sends on
// connect, reconnect and gaps, and where it draws other drafters' cursors
// while its own edits are unacknowledged.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

// A browser-ish global environment, before the module is loaded.
const sockets = [];
class FakeWebSocket {
  static OPEN = 1;
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    sockets.push(this);
  }
  send(s) {
    this.sent.push(JSON.parse(s));
  }
  close() {
    this.readyState = 3;
  }
  // test side
  deliver(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}
globalThis.WebSocket = FakeWebSocket;
globalThis.location = { protocol: "http:", host: "127.0.0.1:1" };
globalThis.addEventListener = () => {};
globalThis.removeEventListener = () => {};
if (!globalThis.navigator) globalThis.navigator = { onLine: true };

const { DraftSession } = await import("../../src/session.js");

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

function newSession() {
  const seen = { init: [], remote: [], peers: [], status: [] };
  const s = new DraftSession("s1", "d1", {
    init: (text) => seen.init.push(text),
    remote: (op) => seen.remote.push(op),
    peers: (list) => seen.peers.push(list),
    status: (st) => seen.status.push(st),
    localText: () => "",
  });
  return { s, seen };
}

const peer = (client, cursor) => ({ client, name: "United Kingdom", role: "delegate", delegation: "GBR", stream: "draft", cursor });

beforeEach(() => {
  sockets.length = 0;
});

test("connects, edits, and resends the op in flight on reconnect with since", async () => {
  const { s, seen } = newSession();
  s.start();
  assert.equal(sockets.length, 1);
  assert.match(sockets[0].url, /\/api\/summits\/s1\/docs\/d1\/ws\?stream=draft$/);
  sockets[0].deliver({ type: "hello", version: 3, head: 3, text: "ab🌐", client: "me", presence: [] });
  assert.deepEqual(seen.init, ["ab🌐"]);
  s.edit([3, "!"]);
  await tick(30);
  const op = sockets[0].sent.find((m) => m.type === "op");
  assert.deepEqual({ ...op, src: "x" }, { type: "op", version: 3, op: [3, "!"], src: "x", seq: 1 });
  // The connection drops before the ack; the next socket asks from version 3.
  sockets[0].drop();
  s.edit([4, "?"]);
  assert.equal(s.pending, 2);
  await tick(150);
  assert.equal(sockets.length, 2);
  assert.match(sockets[1].url, /&since=3$/);
  sockets[1].deliver({ type: "hello", version: 3, head: 4, client: "me2", presence: [] });
  await tick(30);
  const resent = sockets[1].sent.filter((m) => m.type === "op");
  assert.deepEqual(resent, [{ ...op }], "the same op, src and seq");
  // The catch-up carries our op: that is the ack; the buffer goes next.
  sockets[1].deliver({ type: "op", version: 4, op: [3, "!"], src: op.src, seq: 1 });
  await tick(30);
  const next = sockets[1].sent.filter((m) => m.type === "op")[1];
  assert.deepEqual(next, { type: "op", version: 4, op: [4, "?"], src: op.src, seq: 2 });
  sockets[1].deliver({ type: "ack", seq: 1, version: 4 }); // the late repeat is ignored
  sockets[1].deliver({ type: "ack", seq: 2, version: 5 });
  assert.equal(s.pending, 0);
  assert.equal(s.state, "synchronized");
  s.stop();
});

test("a version gap reconnects from the last version seen", async () => {
  const { s } = newSession();
  s.start();
  sockets[0].deliver({ type: "hello", version: 0, head: 0, text: "", client: "me", presence: [] });
  sockets[0].deliver({ type: "op", version: 1, op: ["a"], src: "o", seq: 1 });
  sockets[0].deliver({ type: "op", version: 3, op: [2, "c"], src: "o", seq: 3 }); // 2 is missing
  await tick(20);
  assert.equal(sockets.length, 2);
  assert.match(sockets[1].url, /&since=1$/);
  s.stop();
});

test("others' cursors move through our unacknowledged edits and later ops", async () => {
  const { s, seen } = newSession();
  s.start();
  sockets[0].deliver({ type: "hello", version: 5, head: 5, text: "0123456789", client: "me", presence: [peer("g", { anchor: 4, head: 6 })] });
  assert.deepEqual(seen.peers.at(-1)[0].cursor, { anchor: 4, head: 6 });
  s.edit(["🌐🌐", 10]); // ours, in flight: 2 code points in front (the editor maps drawn cursors itself)
  // Someone deletes 0..2 (version 6); GBR's cursor was reported at 5.
  sockets[0].deliver({ type: "op", version: 6, op: [-2, 8], src: "o", seq: 1 });
  assert.deepEqual(seen.peers.at(-1)[0].cursor, { anchor: 4, head: 6 });
  // A cursor reported at a version the page has not reached yet waits.
  sockets[0].deliver({ type: "presence", event: "cursor", version: 7, peer: peer("g", { anchor: 1, head: 1 }) });
  assert.equal(seen.peers.at(-1)[0].cursor, null);
  sockets[0].deliver({ type: "ack", seq: 1, version: 7 });
  assert.deepEqual(seen.peers.at(-1)[0].cursor, { anchor: 1, head: 1 });
  sockets[0].deliver({ type: "presence", event: "leave", version: 7, peer: peer("g") });
  assert.deepEqual(seen.peers.at(-1), []);
  s.stop();
});

test("rate_limited: the op in flight is resent with the same seq", async () => {
  const { s } = newSession();
  s.start();
  sockets[0].deliver({ type: "hello", version: 0, head: 0, text: "", client: "me", presence: [] });
  s.edit(["x"]);
  await tick(30);
  sockets[0].deliver({ type: "error", code: "rate_limited", message: "slow", seq: 1 });
  await tick(260);
  const ops = sockets[0].sent.filter((m) => m.type === "op");
  assert.equal(ops.length, 2);
  assert.deepEqual(ops[0], ops[1]);
  s.stop();
});
