// A reconnecting WebSocket to one stream of one document. It knows the
// protocol's transport rules (hello first, reconnect with since, ping) and
// nothing about editing: DraftSession and Follower build on it.
//
// The socket authenticates with the session cookie (same origin), so no
// token ever appears in a URL.

const PING_EVERY = 20000; // ms; the server answers {"type":"pong"}
const SILENCE_LIMIT = 45000; // ms without any frame: the link is dead

export function wsURL(summit, doc, stream, since) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let u = `${proto}//${location.host}/api/summits/${encodeURIComponent(summit)}/docs/${encodeURIComponent(doc)}/ws?stream=${stream}`;
  if (since !== undefined && since !== null) u += `&since=${since}`;
  return u;
}

/**
 * StreamSocket keeps one socket open while started. handlers:
 *   since()            → the version to reconnect from (undefined: fresh)
 *   hello(msg, fresh)  → the first frame of each connection
 *   frame(msg)         → every later frame
 *   status(s)          → "connecting" | "online" | "offline" | "closed"
 *   failed(n)          → called after n failed attempts in a row (to check the session)
 */
export class StreamSocket {
  constructor(summit, doc, stream, handlers) {
    this.summit = summit;
    this.doc = doc;
    this.stream = stream;
    this.h = handlers;
    this.ws = null;
    this.stopped = true;
    this.failures = 0;
    this.timer = null;
    this.pinger = null;
    this.lastFrame = 0;
    this.status = "closed";
    this.onOnline = () => {
      if (!this.stopped && !this.ws) this.connectSoon(0);
    };
    this.onOffline = () => {
      // The browser knows the network is gone: do not wait for a timeout.
      if (this.ws) this.drop();
      this.setStatus("offline");
    };
  }

  start() {
    this.stopped = false;
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      ws.close(1000);
    }
    this.setStatus("closed");
  }

  setStatus(s) {
    if (s === this.status) return;
    this.status = s;
    this.h.status?.(s);
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.helloSeen;
  }

  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  connectSoon(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  connect() {
    if (this.stopped || this.ws) return;
    if (navigator.onLine === false) {
      // Trying now would only log a failed connection: wait for "online".
      this.setStatus("offline");
      return;
    }
    this.setStatus("connecting");
    const since = this.h.since?.();
    const ws = new WebSocket(wsURL(this.summit, this.doc, this.stream, since));
    this.ws = ws;
    this.helloSeen = false;
    this.fresh = since === undefined || since === null;
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => this.closed(ev);
    ws.onerror = () => {}; // onclose follows and decides
  }

  receive(data) {
    this.lastFrame = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!this.helloSeen) {
      if (msg.type !== "hello") return;
      this.helloSeen = true;
      this.failures = 0;
      this.setStatus("online");
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.ping(), PING_EVERY);
      this.h.hello(msg, this.fresh);
      return;
    }
    if (msg.type === "pong") return;
    this.h.frame(msg);
  }

  ping() {
    if (!this.ws) return;
    if (Date.now() - this.lastFrame > SILENCE_LIMIT) {
      this.drop();
      this.connectSoon(0);
      return;
    }
    this.send({ type: "ping" });
  }

  /** Closes the current socket at once (the network is gone, or a gap). */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.helloSeen = false;
    clearInterval(this.pinger);
    ws.onclose = ws.onmessage = ws.onerror = null;
    try {
      ws.close(4000, "client reconnects");
    } catch {
      /* already closing */
    }
    this.h.down?.();
  }

  /** Reconnects now (after a gap): the new socket starts from since(). */
  restart() {
    this.drop();
    this.connectSoon(0);
  }

  closed(ev) {
    const hadHello = this.helloSeen;
    this.ws = null;
    this.helloSeen = false;
    clearInterval(this.pinger);
    if (this.stopped) return;
    this.h.down?.();
    if (!hadHello) this.failures++;
    if (ev.code === 1008 && hadHello) {
      // Token revoked (or flooding): the session decides what to do.
      this.h.failed?.(this.failures, ev.code);
    } else if (this.failures > 0 && this.failures % 3 === 0) {
      this.h.failed?.(this.failures, ev.code);
    }
    this.setStatus(navigator.onLine === false ? "offline" : "connecting");
    if (this.stopped) return;
    const delay = Math.min(10000, 250 * 2 ** Math.min(this.failures, 6)) * (0.75 + Math.random() / 2);
    this.connectSoon(hadHello ? 100 : delay);
  }
}
