// Follower: a live, read-only copy of one stream (the approved text for
// observers, or either stream for the chair's review). It applies every op
// to its text, reconnects with since, and reports changes.

import { StreamSocket } from "./socket.js";
import { apply } from "./ot.js";

/**
 * handlers:
 *   text(text, info)  the text changed ({version, time, author, name} of the last op, or hello)
 *   presence(m)       presence frames (join/leave)
 *   hello(m)          every hello
 *   adopted(m)
 *   status(s)
 */
export class Follower {
  constructor(summit, doc, stream, handlers) {
    this.h = handlers;
    this.text = null;
    this.version = null;
    this.last = null; // the last op frame
    this.socket = new StreamSocket(summit, doc, stream, {
      since: () => (this.text === null ? undefined : this.version),
      hello: (m, fresh) => {
        if (fresh || this.text === null) {
          this.text = m.text ?? "";
          this.version = m.version;
          this.h.text?.(this.text, { version: this.version, hello: m });
        }
        this.h.hello?.(m);
      },
      frame: (m) => this.frame(m),
      status: (s) => this.h.status?.(s),
    });
  }

  start() {
    this.socket.start();
  }

  stop() {
    this.socket.stop();
  }

  frame(m) {
    if (m.type === "op") {
      if (m.version !== this.version + 1) {
        this.socket.restart(); // a gap: catch up from the version we have
        return;
      }
      try {
        this.text = apply(this.text, m.op);
      } catch {
        this.text = null; // start afresh
        this.socket.restart();
        return;
      }
      this.version = m.version;
      this.last = m;
      this.h.text?.(this.text, { version: m.version, op: m });
    } else if (m.type === "presence") {
      this.h.presence?.(m);
    } else if (m.type === "adopted") {
      this.h.adopted?.(m);
    }
  }
}
