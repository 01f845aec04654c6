// DraftSession: the draft stream of one document for an editor. It joins
// the OT client state machine (client.js) to a reconnecting socket
// (socket.js) and to an editor through handlers; positions it exchanges
// with the editor are code points in the local text.
//
// Nothing typed is lost: while offline, edits compose into the buffer; on
// reconnect (since = the last version seen) the op in flight is resent with
// its seq and the catch-up ops rebase whatever is pending.

import { OTClient, GapError, SYNCHRONIZED } from "./client.js";

/** Where a page keeps its unsaved edits when it is closed or reloaded. */
export function unsentKey(summit, doc) {
  return `communique:unsent:${summit}/${doc}`;
}
import { StreamSocket } from "./socket.js";
import { transformIndex, cpLen, apply } from "./ot.js";
import { api } from "./api.js";

const MIN_SEND_GAP = 22; // ms between two op frames: stays under 50 ops/s
const LOG_KEEP = 500; // server ops kept to move positions reported at older versions

/**
 * handlers:
 *   init(text, hello)            first text (and after a resync)
 *   remote(op, frame)            an op to apply to the local text (code points)
 *   peers(list)                  drafters, with local cursor positions
 *   status(info)                 {conn, state, pending, version, adopted, notice}
 *   localText()                  the editor's text (for a resync)
 *   adopted()                    the document was adopted: read-only
 *   hold(on)                     stop (and allow again) typing while starting afresh
 *   ended(reason)                the session is over (token revoked, signed out)
 */
export class DraftSession {
  constructor(summit, doc, handlers) {
    this.summit = summit;
    this.doc = doc;
    this.h = handlers;
    this.client = null;
    this.hello = null;
    this.peers = new Map(); // client id → {info, cursor: {anchor, head} at server version, version}
    this.log = []; // [{version, op}] in server coordinates
    this.conn = "connecting";
    this.adopted = false;
    this.notice = "";
    this.lastSend = 0;
    this.sendTimer = null;
    this.retryTimer = null;
    this.retries = 0;
    this.cursorTimer = null;
    this.myCursor = null;
    this.sentCursor = null;
    this.resyncing = false;
    this.socket = new StreamSocket(summit, doc, "draft", {
      since: () => (this.client ? this.client.version : undefined),
      hello: (m, fresh) => this.onHello(m, fresh),
      frame: (m) => this.onFrame(m),
      status: (s) => {
        this.conn = s;
        this.emitStatus();
      },
      down: () => {
        this.client?.close();
        this.emitStatus();
      },
      failed: (n, code) => this.onFailed(n, code),
    });
  }

  start() {
    this.socket.start();
  }

  /**
   * Continues from a snapshot of a previous page (see unsentKey): its
   * unacknowledged edits and its text. The socket then opens with since =
   * the snapshot's version and resends them with their src and seq.
   */
  restoreFrom(saved) {
    this.client = OTClient.restore(saved.client);
    this.restoredText = saved.text;
    this.notice = `${this.client.pendingEdits} edit${this.client.pendingEdits === 1 ? "" : "s"} typed before the page was closed ${this.client.pendingEdits === 1 ? "was" : "were"} not yet saved: sending now.`;
  }

  /** What to keep if the page goes away now, or null when nothing is unsaved. */
  unsent() {
    if (!this.client || !this.client.pendingEdits || this.adopted || this.restoredText !== undefined) return null;
    return { client: this.client.snapshot(), text: this.h.localText(), saved: Date.now() };
  }

  /**
   * The page moves on while edits are unacknowledged: the session goes on
   * without an editor until the server has them all, then stops.
   */
  detach(text) {
    if (!this.pending) {
      this.stop();
      return;
    }
    let local = text;
    const keep = () => {
      const u = this.unsent();
      if (u) {
        try {
          localStorage.setItem(unsentKey(this.summit, this.doc), JSON.stringify(u));
        } catch {
          /* nothing more can be done */
        }
      }
    };
    addEventListener("pagehide", keep);
    const stop = this.stop.bind(this);
    this.stop = () => {
      removeEventListener("pagehide", keep);
      stop();
    };
    this.h = {
      init: () => {},
      remote: (op) => {
        local = apply(local, op);
      },
      localText: () => local,
      status: (st) => {
        if (!st.pending || st.adopted) this.stop();
      },
    };
    setTimeout(() => this.stop(), 120000);
  }

  stop() {
    this.socket.stop();
    clearTimeout(this.sendTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.cursorTimer);
  }

  get state() {
    return this.client ? this.client.state : SYNCHRONIZED;
  }

  get pending() {
    return this.client ? this.client.pendingEdits : 0;
  }

  get identity() {
    return this.hello ? this.hello.delegation || this.hello.role : "";
  }

  emitStatus() {
    this.h.status?.({
      conn: this.conn,
      state: this.state,
      pending: this.pending,
      version: this.client ? this.client.version : 0,
      adopted: this.adopted,
      notice: this.notice,
    });
  }

  // --- from the editor ---

  /** The user edited the local text: op in code points; edits counts user actions. */
  edit(op, edits = 1) {
    if (!this.client || this.adopted) return;
    const msg = this.client.applyLocal(op, edits);
    if (msg) this.sendOp(msg);
    this.emitStatus();
  }

  /** The local selection (code points), or null. */
  cursor(sel) {
    this.myCursor = sel;
    this.scheduleCursor();
  }

  // --- sending ---

  sendOp(msg) {
    const wait = this.lastSend + MIN_SEND_GAP - Date.now();
    clearTimeout(this.sendTimer);
    if (wait > 0) {
      // Send the op in flight as it is then (it may have been rebased).
      this.sendTimer = setTimeout(() => this.resend(), wait);
      return;
    }
    this.lastSend = Date.now();
    this.socket.send(msg);
  }

  resend() {
    if (this.client?.inflight && this.socket.open) this.sendOp(this.client.message());
  }

  scheduleCursor() {
    if (this.cursorTimer) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = null;
      this.flushCursor();
    }, 60);
  }

  // The cursor is reported only when nothing is in flight: then local
  // positions are the server's positions at client.version.
  flushCursor() {
    if (!this.client || !this.socket.open || this.client.state !== SYNCHRONIZED) return;
    const c = this.myCursor;
    const key = c ? `${c.anchor}:${c.head}@${this.client.version}` : "none";
    if (key === this.sentCursor) return;
    this.sentCursor = key;
    this.socket.send({ type: "presence", version: this.client.version, cursor: c ? { anchor: c.anchor, head: c.head } : null });
  }

  // --- from the socket ---

  onHello(m, fresh) {
    this.hello = m;
    if (m.adopted) this.adopted = true;
    if (this.restoredText !== undefined && !fresh) {
      // The first hello after a restore: the editor starts from the saved text.
      const text = this.restoredText;
      this.restoredText = undefined;
      this.h.init(text, m);
    }
    if (fresh || !this.client) {
      this.client = new OTClient({ version: m.version, length: cpLen(m.text ?? ""), src: this.client?.src });
      this.log = [];
      this.h.init(m.text ?? "", m);
      this.h.hold?.(false);
    } else if (m.version !== this.client.version) {
      // Cannot happen (hello.version echoes since); start afresh.
      this.resync("the server answered from another version");
      return;
    }
    this.peers.clear();
    for (const p of m.presence || []) this.peers.set(p.client, { info: p, cursor: p.cursor || null, version: m.head });
    this.sentCursor = null;
    const msg = this.client.open();
    if (msg && !this.adopted) this.sendOp(msg);
    this.emitPeers();
    this.emitStatus();
    this.scheduleCursor();
    if (this.adopted) this.h.adopted?.();
  }

  onFrame(m) {
    try {
      switch (m.type) {
        case "op":
          return this.onOp(m);
        case "ack":
          return this.onAck(m);
        case "error":
          return this.onError(m);
        case "presence":
          return this.onPresence(m);
        case "adopted":
          return this.onAdopted();
      }
    } catch (e) {
      if (e instanceof GapError) {
        this.socket.restart();
        return;
      }
      this.resync(String(e.message || e));
    }
  }

  remember(version, op) {
    this.log.push({ version, op });
    if (this.log.length > LOG_KEEP) this.log.splice(0, this.log.length - LOG_KEEP);
  }

  onOp(m) {
    const { op, send } = this.client.serverOp(m);
    this.remember(m.version, m.op); // as the server applied it (our own, in a catch-up, too)
    if (op !== null) this.h.remote(op, m);
    if (send) this.sendOp(send);
    this.emitPeers();
    this.emitStatus();
    if (op === null) this.scheduleCursor();
  }

  onAck(m) {
    const inflight = this.client.inflight;
    const send = this.client.serverAck(m);
    if (inflight && inflight.seq === m.seq && this.client.version === m.version) {
      this.remember(m.version, inflight.op);
    }
    this.retries = 0;
    if (send) this.sendOp(send);
    if (this.client.pendingEdits === 0 && this.notice.includes("before the page was closed")) this.notice = "";
    this.emitPeers();
    this.emitStatus();
    this.scheduleCursor();
  }

  onError(m) {
    if (!this.client) return;
    const what = this.client.serverError(m);
    if (what === "ignore") return;
    if (what === "retry") {
      this.retries++;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.resend(), Math.min(5000, 200 * this.retries));
      return;
    }
    if (what === "adopted") {
      this.onAdopted();
      return;
    }
    this.resync(`the server refused an edit (${m.code}: ${m.message})`);
  }

  async onAdopted() {
    if (this.adopted && !this.client?.pendingEdits) {
      this.h.adopted?.();
      return;
    }
    this.adopted = true;
    const lost = this.client ? this.client.discard() : 0;
    if (lost) {
      this.notice = `The document was adopted: ${lost} edit${lost === 1 ? "" : "s"} not yet saved could not be applied.`;
      try {
        const d = await api("GET", `/api/summits/${this.summit}/docs/${this.doc}`);
        this.client = new OTClient({ version: d.draft.version, length: cpLen(d.draft.text), src: this.client.src });
        this.h.init(d.draft.text, this.hello);
      } catch {
        /* the text stays as typed; it is read-only now */
      }
    }
    this.h.adopted?.();
    this.emitStatus();
  }

  onPresence(m) {
    const p = m.peer;
    if (!p || p.client === this.hello?.client) return;
    if (m.event === "leave") this.peers.delete(p.client);
    else this.peers.set(p.client, { info: p, cursor: p.cursor || null, version: m.version });
    this.emitPeers();
  }

  /**
   * Moves a position reported at server version v to the local text (or,
   * with local false, to the server's text at the client's version), or
   * null if v is out of reach (then the next report will place it).
   */
  toLocal(pos, v, local = true) {
    const c = this.client;
    if (!c || v > c.version) return null;
    if (v < c.version) {
      const first = this.log.length ? this.log[0].version : c.version + 1;
      if (v + 1 < first) return null;
      for (const e of this.log) if (e.version > v) pos = transformIndex(pos, e.op, false);
    }
    return local ? c.serverToLocal(pos) : pos;
  }

  emitPeers() {
    const c = this.client;
    const list = [];
    for (const [id, p] of this.peers) {
      let cursor = null;
      if (p.cursor && c) {
        if (p.version < c.version) {
          // Bring the reported cursor to the version the client has, once.
          const a = this.toLocal(p.cursor.anchor, p.version, false);
          const h = this.toLocal(p.cursor.head, p.version, false);
          p.cursor = a === null || h === null ? null : { anchor: a, head: h };
          p.version = c.version;
        }
        if (p.cursor && p.version === c.version) cursor = { anchor: c.serverToLocal(p.cursor.anchor), head: c.serverToLocal(p.cursor.head) };
      }
      list.push({ id, ...p.info, cursor });
    }
    this.h.peers?.(list);
  }

  async onFailed(n, code) {
    // The socket keeps failing: find out whether the session is still valid,
    // and whether the server still has the version we ask it to start from.
    try {
      await api("GET", "/api/me");
      const d = await api("GET", `/api/summits/${this.summit}/docs/${this.doc}`);
      if (this.client && d.draft && d.draft.version < this.client.version) {
        this.resync(`the server is at version ${d.draft.version}, behind this page's ${this.client.version}`);
        return;
      }
    } catch (e) {
      if (e.status === 401) {
        this.stop();
        this.h.ended?.("Your invitation is no longer valid. Ask the chair's office for a new link.");
        return;
      }
      if (e.status === 404) {
        this.stop();
        this.h.ended?.("This document no longer exists.");
        return;
      }
    }
    if (code === 1008) this.notice = "The server closed the connection; reconnecting.";
    this.emitStatus();
  }

  /**
   * Starts afresh after something that should not happen (a refused edit,
   * a text that does not fit). Unsaved local text is merged into the draft
   * with PUT …/draft from the last version the client had, so it survives.
   */
  async resync(why) {
    if (this.resyncing) return;
    this.resyncing = true;
    console.warn("communiqué: resynchronising:", why);
    this.h.hold?.(true); // no typing until the fresh text is in
    this.socket.stop();
    const c = this.client;
    const text = this.restoredText !== undefined ? this.restoredText : this.h.localText();
    this.restoredText = undefined;
    try {
      if (c && c.pendingEdits && !this.adopted) {
        await api("PUT", `/api/summits/${this.summit}/docs/${this.doc}/draft`, { base_version: c.version, text });
      }
    } catch (e) {
      this.notice = `Some edits could not be saved: ${e.message}`;
    }
    this.client = null;
    this.resyncing = false;
    this.socket.start();
  }
}
