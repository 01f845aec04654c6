// Package ws serves document streams over WebSocket: the upgrade with its
// origin check, one reader and one writer goroutine per connection, message
// decoding and validation, rate limits, keepalive and a bounded send queue.
package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"communique/server/auth"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/wire"
)

// Config holds the connection limits. Zero fields take DefaultConfig's.
type Config struct {
	MaxFrameBytes  int64         // a bigger frame closes the connection with 1009
	SendQueue      int           // frames queued for a slow reader before it is dropped
	WriteWait      time.Duration // time allowed to write one frame
	PongWait       time.Duration // a connection silent for this long is closed
	PingPeriod     time.Duration // must be less than PongWait
	OpsPerSecond   float64       // per connection, sustained
	OpsBurst       int           // per connection
	TokenOpsFactor float64       // a token's limit is this many connections' worth
	MaxViolations  int           // rate-limited messages tolerated before closing
	// BlockingReads gives every socket a reader goroutine of its own
	// instead of the shared poller: what happens where epoll is missing,
	// selectable so that tests cover that path on Linux too.
	BlockingReads bool
}

// DefaultConfig is used for every zero field of a Config.
var DefaultConfig = Config{
	MaxFrameBytes:  1 << 20,
	SendQueue:      512,
	WriteWait:      10 * time.Second,
	PongWait:       60 * time.Second,
	PingPeriod:     50 * time.Second,
	OpsPerSecond:   50,
	OpsBurst:       100,
	TokenOpsFactor: 8,
	MaxViolations:  50,
}

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.MaxFrameBytes > 0 {
		d.MaxFrameBytes = c.MaxFrameBytes
	}
	if c.SendQueue > 0 {
		d.SendQueue = c.SendQueue
	}
	if c.WriteWait > 0 {
		d.WriteWait = c.WriteWait
	}
	if c.PongWait > 0 {
		d.PongWait = c.PongWait
	}
	if c.PingPeriod > 0 {
		d.PingPeriod = c.PingPeriod
	}
	if d.PingPeriod >= d.PongWait {
		d.PingPeriod = d.PongWait * 9 / 10
	}
	if c.OpsPerSecond > 0 {
		d.OpsPerSecond = c.OpsPerSecond
	}
	if c.OpsBurst > 0 {
		d.OpsBurst = c.OpsBurst
	}
	if c.TokenOpsFactor > 0 {
		d.TokenOpsFactor = c.TokenOpsFactor
	}
	if c.MaxViolations > 0 {
		d.MaxViolations = c.MaxViolations
	}
	d.BlockingReads = c.BlockingReads
	return d
}

// Close codes this server uses besides gorilla's own 1009 for big frames.
const (
	closeGoingAway = websocket.CloseGoingAway       // 1001: shutting down
	closePolicy    = websocket.ClosePolicyViolation // 1008: revoked token, flooding
	closeTryAgain  = websocket.CloseTryAgainLater   // 1013: send queue full
)

// conn is one WebSocket connection subscribed to one stream of one document.
//
// An idle connection costs as little as we can make it, because thousands
// of observers sit on one server: after the upgrade the HTTP handler
// writes the hello and returns (freeing net/http's buffers for the
// connection), and a goroutine of its own runs the reader; the send queue
// is a slice that exists only while frames wait; pings come from a timer.
//
// Writing has two paths. What a session flushes goes to the Handler's few
// fan-out workers, which write each connection's queue with one
// non-blocking writev (fanOut): the common case, the socket has room. The
// rest — what a full socket did not take, the hello, pings, the close — is
// for the connection's writer goroutine, started when needed and gone once
// the queue is empty, which may block (up to WriteWait). c.writing says
// that one of them owns the socket's writes, so they never overlap.
type conn struct {
	h       *Handler
	nc      net.Conn        // the upgraded connection: frames are written to it as they are
	raw     syscall.RawConn // nc's descriptor, for non-blocking writes and reads (nil: none)
	pollID  uint64          // the connection's id in the Handler's poller (0: not polled)
	who     auth.Principal
	client  string
	stream  store.Stream
	session *doc.Session
	limiter *rate.Limiter
	tokenRL *rate.Limiter
	rs      readState // the reader's (read.go)
	// lastRead is when bytes last came from the client (Unix ns): a
	// connection silent for PongWait is closed (pingTick).
	lastRead atomic.Int64

	mu      sync.Mutex
	first   []*wire.Frame // hello and catch-up: written before anything queued
	queue   []*wire.Frame // frames waiting for the writer, at most cfg.SendQueue
	spare   []*wire.Frame // the writer's last batch, kept for its capacity
	rest    [][]byte      // what a non-blocking write left unwritten; the writer goroutine sends it first
	started bool          // upgraded: a writer may run
	writing bool          // a fan-out worker or the writer goroutine owns the socket's writes
	inWrite bool          // the writer is writing to the socket (it may be blocked there)
	pingDue bool
	pong    []byte // a client ping's payload to answer; nil: none due
	kicked  bool
	code    int
	reason  string
	// peerClosed: the client sent a close frame. The writer answers it
	// with the close frame (code is the client's) and nothing else: no
	// data frame may follow a close frame on the socket.
	peerClosed bool
	finished   bool          // the writer closed the socket; nothing more is written
	done       chan struct{} // closed when finished
	reading    bool          // a reader goroutine is reading the socket (read.go)
	ended      bool          // the end of the connection (conn.end) has begun
	pinger     *time.Timer
	nextPing   int64 // when the next ping is due (Unix ns)
}

// Send queues f without blocking (doc.Peer). It reports false when the
// queue is full; the frame goes out at the next Flush.
//
// The queue bound (Config.SendQueue) is for a reader that falls behind:
// it applies while the writer is blocked on the socket. Before that — the
// handshake, or a writer not yet scheduled on a busy machine — frames pile
// up through no fault of the reader, so a looser bound only guards memory.
func (c *conn) Send(f *wire.Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return true // the reader is about to unsubscribe; nothing is written any more
	}
	limit := c.h.cfg.SendQueue
	if !c.inWrite {
		limit = max(4*limit, 256)
	}
	if len(c.queue) >= limit {
		return false
	}
	c.queue = append(c.queue, f)
	return true
}

// Flush hands what Send queued to the fan-out workers (doc.Flusher). The
// session flushes once per round of sends, so that a batch's frames leave
// in one write.
func (c *conn) Flush() {
	c.mu.Lock()
	hand := len(c.queue) > 0 && c.started && !c.writing && !c.finished && c.raw != nil
	if hand {
		c.writing = true
	} else if len(c.queue) > 0 {
		c.wakeLocked()
	}
	c.mu.Unlock()
	if hand {
		c.h.fan.push(c)
	}
}

// wakeLocked starts the writer goroutine unless one is running. c.mu is
// held.
func (c *conn) wakeLocked() {
	if c.started && !c.writing && !c.finished {
		c.writing = true
		go c.writer()
	}
}

// Kick closes the connection from any goroutine (doc.Peer). The first reason
// wins.
func (c *conn) Kick(reason string) { c.kickWith(closeTryAgain, reason) }

func (c *conn) kickWith(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.kicked {
		c.kicked, c.code, c.reason = true, code, reason
		c.wakeLocked()
	}
}

func (c *conn) isKicked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kicked
}

// start writes the hello and the catch-up, with whatever was queued since
// the subscription, on the calling goroutine (the HTTP handler's, which
// exists anyway: a connection costs no extra goroutine to say hello), and
// lets writers run from then on.
func (c *conn) start(sub doc.Subscription) {
	first := make([]*wire.Frame, 0, 1+len(sub.CatchUp))
	first = append(first, sub.Hello.Frame())
	first = append(first, sub.CatchUp...)
	now := time.Now()
	c.lastRead.Store(now.UnixNano())
	c.mu.Lock()
	c.first, c.started = first, true
	c.nextPing = now.Add(c.h.cfg.PingPeriod).UnixNano()
	c.pinger = time.AfterFunc(c.h.cfg.PingPeriod, c.pingTick)
	c.writing = true // this goroutine is the writer until the queue is empty
	c.mu.Unlock()
	c.writer()
}

// startReading hands the socket to the Handler's poller, or to a reader
// goroutine of its own where there is no poller.
func (c *conn) startReading() {
	c.mu.Lock()
	if c.finished {
		c.endLocked(websocket.CloseNormalClosure, "") // the hello could not be written; unlocks
		return
	}
	if p := c.h.poller(); p != nil && c.raw != nil && !c.h.cfg.BlockingReads {
		err := p.add(c)
		if err == nil {
			c.mu.Unlock()
			return
		}
		c.h.log.Warn("socket not polled; reading it with a goroutine", "client", c.client, "err", err)
	}
	c.pollID = 0
	c.reading = true // before the goroutine starts, so finish never ends the connection under it
	c.mu.Unlock()
	go c.readBlocking()
}

// pingTick runs when a ping is due or the client's silence may have
// reached PongWait, whichever comes first, and sets the timer again.
func (c *conn) pingTick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	cfg := c.h.cfg
	now := time.Now().UnixNano()
	quietUntil := c.lastRead.Load() + int64(cfg.PongWait)
	if now >= quietUntil {
		if !c.kicked {
			c.h.log.Debug("client silent for the pong wait; closing", "client", c.client)
			c.kicked, c.code, c.reason = true, closeGoingAway, "no pong within the pong wait"
			c.wakeLocked()
		}
		return
	}
	if now >= c.nextPing {
		c.pingDue = true
		c.nextPing = now + int64(cfg.PingPeriod)
		c.wakeLocked()
	}
	c.pinger.Reset(time.Duration(min(c.nextPing, quietUntil) - now))
}

// writer writes what is queued, pings when due, and closes the socket once
// the connection is kicked or a write fails. Whatever is queued when it
// runs goes out in one write: under load a connection's frames pile up
// while it waits for its turn, and one system call for all of them keeps
// the cost per delivered frame down as followers grow.
func (c *conn) writer() {
	cfg := c.h.cfg
	for {
		c.mu.Lock()
		if c.kicked {
			code, reason, peerClosed := c.code, c.reason, c.peerClosed
			c.mu.Unlock()
			c.close(code, reason, peerClosed)
			return
		}
		first, batch, ping, pong, rest := c.first, c.queue, c.pingDue, c.pong, c.rest
		if len(first) == 0 && len(batch) == 0 && !ping && pong == nil && rest == nil {
			c.writing = false
			c.mu.Unlock()
			// Non-blocking writes need no deadline; a stale one would
			// only send them here.
			_ = c.nc.SetWriteDeadline(time.Time{})
			return
		}
		c.first, c.queue, c.spare, c.pingDue, c.pong, c.rest = nil, c.spare, nil, false, nil, nil
		c.inWrite = true
		c.mu.Unlock()

		deadline := time.Now().Add(cfg.WriteWait)
		var err error
		if rest != nil {
			err = c.writeBuffers(deadline, rest)
		}
		if err == nil {
			err = c.writeFrames(deadline, first, batch)
		}
		if err == nil && pong != nil {
			err = c.writeControl(opPong, pong, deadline)
		}
		if err == nil && ping {
			err = c.writeControl(opPing, nil, deadline)
		}
		clear(batch)
		c.mu.Lock()
		c.inWrite = false
		if cap(batch) <= 64 { // a burst's big queue is not kept for an idle connection
			c.spare = batch[:0]
		}
		c.mu.Unlock()
		if err != nil {
			c.finish()
			return
		}
	}
}

// close ends a kicked connection. What was queued before the close goes
// out first — acks of ops that were applied, the rate_limited error that
// explains a 1008 — so the client knows what happened; a reader too slow
// for its queue (1013) is not waited for, and the client's own close is
// answered at once with its code and nothing before it (the client has
// said it is going; browsers fail a connection that receives data after
// the closing handshake).
func (c *conn) close(code int, reason string, peerClosed bool) {
	defer c.finish()
	deadline := time.Now().Add(c.h.cfg.WriteWait)
	c.mu.Lock()
	rest := c.rest
	c.rest = nil
	c.mu.Unlock()
	if rest != nil {
		// The tail of a frame already begun must go out, whatever the
		// code: the close frame cannot follow half a frame.
		if c.writeBuffers(deadline, rest) != nil {
			return
		}
	}
	if peerClosed {
		msg := []byte{} // the client's close had no code: neither has the answer
		if code != websocket.CloseNoStatusReceived {
			msg = websocket.FormatCloseMessage(code, "")
		}
		_ = c.writeControl(opClose, msg, deadline)
		return
	}
	if code != closeTryAgain {
		for {
			c.mu.Lock()
			first, batch := c.first, c.queue
			c.first, c.queue = nil, nil
			c.mu.Unlock()
			if len(first) == 0 && len(batch) == 0 {
				break
			}
			if c.writeFrames(deadline, first, batch) != nil {
				return
			}
		}
	}
	msg := websocket.FormatCloseMessage(code, truncate(reason, 120))
	_ = c.writeControl(opClose, msg, deadline)
}

// writeControl writes one control frame (payload ≤ 125 bytes).
func (c *conn) writeControl(op byte, payload []byte, deadline time.Time) error {
	b := make([]byte, 0, 2+len(payload))
	b = append(b, 0x80|op, byte(len(payload)))
	b = append(b, payload...)
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

// finish closes the socket and marks the writing side done; a reader
// blocked on the socket returns, and if none is reading, the end of the
// connection begins here. Only the writer goroutine calls it, once.
func (c *conn) finish() {
	c.mu.Lock()
	c.finished, c.writing = true, false
	c.first, c.queue, c.spare, c.rest, c.pong = nil, nil, nil, nil, nil
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.mu.Unlock()
	if c.pollID != 0 {
		c.h.poll.remove(c)
	}
	_ = c.nc.Close()
	close(c.done)
	c.mu.Lock()
	if c.ended || c.reading {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.mu.Unlock()
	// Not on this goroutine, which may be a fan-out worker: end waits
	// for the session (Unsubscribe), and the session may be waiting for
	// the workers.
	go c.end(websocket.CloseNormalClosure, "")
}

// writeFrames writes the frames of both lists, in order, in one system
// call. Server frames are never masked, so each frame's bytes are the same
// for every recipient and go out as wire.Frame built them; gorilla writes
// only control frames (pings, pongs, closes), each in one write of its own,
// and the socket serialises writes, so frames never interleave.
func (c *conn) writeFrames(deadline time.Time, a, b []*wire.Frame) error {
	switch {
	case len(a)+len(b) == 0:
		return nil
	case len(a) == 0 && len(b) == 1:
		a = b
		fallthrough
	case len(a) == 1 && len(b) == 0:
		if err := c.nc.SetWriteDeadline(deadline); err != nil {
			return err
		}
		_, err := c.nc.Write(a[0].Wire())
		return err
	}
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	bufs := make(net.Buffers, 0, len(a)+len(b))
	for _, f := range a {
		bufs = append(bufs, f.Wire())
	}
	for _, f := range b {
		bufs = append(bufs, f.Wire())
	}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// writeBuffers writes bufs with a blocking write.
func (c *conn) writeBuffers(deadline time.Time, bufs [][]byte) error {
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	b := net.Buffers(bufs)
	_, err := b.WriteTo(c.nc)
	return err
}

// fanOut is run by a fan-out worker for a connection whose writes it owns
// (Flush set c.writing): it writes what is queued without blocking, which
// is the common case — the socket has room — and costs no goroutine and no
// deadline. Whatever cannot be written now (a full socket buffer), and
// pings, kicks and the hello, go to the connection's writer goroutine,
// which may block.
func (c *conn) fanOut(iov []syscall.Iovec) []syscall.Iovec {
	for {
		c.mu.Lock()
		if c.finished {
			c.mu.Unlock()
			return iov
		}
		if c.kicked || c.pingDue || c.pong != nil || len(c.first) > 0 || c.rest != nil {
			c.mu.Unlock()
			go c.writer() // takes over c.writing
			return iov
		}
		batch := c.queue
		if len(batch) == 0 {
			c.writing = false
			c.mu.Unlock()
			return iov
		}
		c.queue, c.spare = c.spare, nil
		c.inWrite = true
		c.mu.Unlock()

		var rest [][]byte
		var err error
		rest, iov, err = c.tryWrite(batch, iov)
		clear(batch)
		c.mu.Lock()
		c.inWrite = false
		if cap(batch) <= 64 {
			c.spare = batch[:0]
		}
		if err != nil {
			c.mu.Unlock()
			c.finish()
			return iov
		}
		if rest != nil {
			c.rest = rest
			c.mu.Unlock()
			go c.writer()
			return iov
		}
		c.mu.Unlock()
	}
}

// tryWrite writes the frames with non-blocking writev calls until the
// socket takes no more; rest is what is left (nil when all went). iov is
// scratch space, returned for reuse.
func (c *conn) tryWrite(frames []*wire.Frame, iov []syscall.Iovec) (rest [][]byte, _ []syscall.Iovec, err error) {
	i, off := 0, 0 // first frame not fully written, bytes of it written
	for i < len(frames) {
		iov = iov[:0]
		total := 0
		for j := i; j < len(frames) && len(iov) < maxIovec; j++ {
			b := frames[j].Wire()
			if j == i {
				b = b[off:]
			}
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
			total += len(b)
		}
		var n int
		var werr error
		if cerr := c.raw.Write(func(fd uintptr) bool {
			for {
				r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
				switch e {
				case 0:
					n = int(r)
				case syscall.EINTR:
					continue
				case syscall.EAGAIN:
				default:
					werr = e
				}
				return true // never wait here: a full socket goes to the writer goroutine
			}
		}); cerr != nil {
			if !errors.Is(cerr, os.ErrDeadlineExceeded) {
				return nil, iov, cerr
			}
			// A deadline some blocking write left (gorilla's pong, say)
			// has passed: it does not concern this write, which never
			// waits; the writer goroutine sends it with a fresh one.
			break
		}
		if werr != nil {
			return nil, iov, werr
		}
		written := n
		for n > 0 {
			left := len(frames[i].Wire()) - off
			if n < left {
				off += n
				break
			}
			n -= left
			i, off = i+1, 0
		}
		if written < total {
			break // the socket is full
		}
	}
	if i == len(frames) {
		return nil, iov, nil
	}
	rest = make([][]byte, 0, len(frames)-i)
	rest = append(rest, frames[i].Wire()[off:])
	for _, f := range frames[i+1:] {
		rest = append(rest, f.Wire())
	}
	return rest, iov, nil
}

// maxIovec is the most buffers one writev takes (Linux's IOV_MAX).
const maxIovec = 1024

// handle acts on one client message; stop ends the connection with code
// and reason.
//
//go:noinline
func (c *conn) handle(mt int, data []byte, violations *int) (code int, reason string, stop bool) {
	cfg := c.h.cfg
	ctx := context.Background() // the reader is the only caller: nothing to cancel
	if c.isKicked() {
		// Kicked (token revoked, flooding, shutdown) but the writer has
		// not closed the socket yet: nothing read from now on is acted
		// on, so an edit sent after DELETE …/tokens/{id} answered is
		// never applied.
		return websocket.CloseNormalClosure, "", true
	}
	if mt != websocket.TextMessage {
		c.reply(wire.Error(wire.CodeBadMessage, "binary frames are not part of the protocol; send JSON text frames", nil))
		return 0, "", false
	}
	m, perr := decode(data)
	if perr != nil {
		c.reply(wire.Error(perr.code, perr.msg, perr.seq))
		return 0, "", false
	}
	switch m.kind {
	case msgOp:
		if !c.who.CanEdit() || c.stream != store.Draft {
			c.reply(wire.Error(wire.CodeForbidden, c.forbiddenWhy(), &m.seq))
			return 0, "", false
		}
		if !c.limiter.Allow() || !c.tokenRL.Allow() {
			*violations++
			if *violations > cfg.MaxViolations {
				return closePolicy, "rate limit exceeded repeatedly", true
			}
			c.reply(wire.Error(wire.CodeRateLimited, "too many ops: resend later with the same src and seq", &m.seq))
			return 0, "", false
		}
		err := c.session.SubmitAsync(ctx, c, doc.Edit{
			Stream: store.Draft,
			Base:   m.version,
			Op:     m.op,
			Author: c.who.Author(),
			Name:   c.who.Name,
			Src:    m.src,
			Seq:    m.seq,
		})
		if err != nil {
			c.reply(wire.Error(wire.CodeUnavailable, "document is closing: reconnect with since", &m.seq))
			return closeGoingAway, "document is closing: reconnect with since", true
		}
	case msgPresence:
		if !c.limiter.Allow() {
			return 0, "", false // cursors are best effort: drop the excess quietly
		}
		if err := c.session.SetCursor(ctx, c, m.version, m.cursor); err != nil {
			return closeGoingAway, "document is closing: reconnect with since", true
		}
	case msgPing:
		c.reply(wire.NewFrame(map[string]any{"type": "pong", "time": time.Now().UnixMilli()}))
	}
	return 0, "", false
}

func (c *conn) forbiddenWhy() string {
	if c.stream != store.Draft {
		return "ops are accepted on the draft stream only; the approved text changes through approvals"
	}
	return fmt.Sprintf("role %s cannot edit", c.who.Role)
}

// reply queues a frame for this connection only; a full queue drops it like
// any slow reader.
func (c *conn) reply(f *wire.Frame) {
	if !c.Send(f) {
		c.Kick("send queue full: reconnect with since")
		return
	}
	c.Flush()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Serve upgrades r to a WebSocket on stream of the session and starts the
// connection; it returns once the connection runs on goroutines of its own
// (or was refused). It takes over the caller's reference to the session
// (doc.Registry.Acquire) and releases it when the connection ends. The
// caller has authenticated who and checked the stream against the role.
// since is the version a reconnecting client has.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, who auth.Principal, s *doc.Session, stream store.Stream, since *uint64) {
	if !h.origins.permits(r) {
		writeHTTPError(w, http.StatusForbidden, wire.CodeForbidden, "origin not allowed")
		s.Release()
		return
	}
	c := &conn{
		h:       h,
		who:     who,
		client:  "c" + auth.NewID(),
		stream:  stream,
		session: s,
		done:    make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(h.cfg.OpsPerSecond), h.cfg.OpsBurst),
	}
	info := wire.Peer{Client: c.client, Name: who.Name, Role: string(who.Role), Delegation: who.Delegation}
	sub, err := s.Subscribe(r.Context(), c, stream, since, info)
	if err != nil {
		code := doc.Code(err)
		status := http.StatusServiceUnavailable
		switch code {
		case wire.CodeBadVersion:
			status = http.StatusBadRequest
		case wire.CodeInternal:
			status = http.StatusInternalServerError
		}
		writeHTTPError(w, status, code, err.Error())
		s.Release()
		return
	}
	sub.Hello.Limits = wire.Limits{
		MaxFrameBytes: h.cfg.MaxFrameBytes,
		MaxDocRunes:   h.maxDocRunes,
		OpsPerSecond:  h.cfg.OpsPerSecond,
	}
	wsc, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has answered the client already.
		s.Unsubscribe(c)
		s.Release()
		return
	}
	// From here on the socket is ours: frames are read (read.go) and
	// written (writeFrames, writeControl) by this package, and gorilla's
	// Conn, with its buffers, is left to the garbage collector.
	c.nc = wsc.NetConn()
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	h.track(c, true)
	h.trim.handshake()
	h.log.Debug("socket open", "client", c.client, "summit", s.Summit(), "doc", s.ID(), "stream", stream, "role", who.Role)
	c.start(sub)
	c.startReading()
}

// Handler serves WebSocket connections and keeps track of them, so that a
// revoked token's sockets and, at shutdown, all sockets can be closed.
type Handler struct {
	cfg         Config
	maxDocRunes int
	log         *slog.Logger
	upgrader    websocket.Upgrader
	origins     originPolicy

	mu      sync.Mutex
	conns   map[*conn]struct{}
	byToken map[string]map[*conn]struct{}
	// revoked remembers the tokens KickToken closed, so that a handshake
	// that authenticated just before the revocation and is tracked just
	// after it is closed too. Token ids are random and never reused; the
	// set grows by one small entry per revoked token.
	revoked map[string]struct{}
	tokenRL map[string]*tokenLimit
	onCount func(delta int)
	fan     fanout

	// poll waits for the idle sockets' bytes (read.go); made with the
	// first socket, stopped by Close. nil: every socket has a reader
	// goroutine.
	pollOnce sync.Once
	poll     *poller
	trim     memTrim
}

// poller returns the Handler's poller, starting it with the first socket.
func (h *Handler) poller() *poller {
	h.pollOnce.Do(func() {
		p, err := newPoller(h.log)
		if err != nil {
			h.log.Warn("no socket poller: every socket gets a reader goroutine", "err", err)
			return
		}
		h.poll = p
	})
	return h.poll
}

// Close stops the poller, after CloseAll at shutdown: sockets not closed by
// then are no longer read.
func (h *Handler) Close() {
	h.pollOnce.Do(func() {}) // no poller may start after this
	h.trim.stop()
	if h.poll != nil {
		h.poll.stop()
	}
}

// fanout is the pool of workers that write what sessions flushed, one
// connection after another, with non-blocking writes. A few workers instead
// of a goroutine per connection and frame: when an op goes to thousands of
// followers, thousands of runnable goroutines would make the session and
// the store's committer wait their turn behind them (commits slowed tenfold
// under load in measurements), and each would cost a goroutine start and a
// deadline. Workers start when there is work and exit when there is none.
type fanout struct {
	mu      sync.Mutex
	queue   []*conn
	head    int
	workers int
	max     int
}

func (f *fanout) push(c *conn) {
	f.mu.Lock()
	f.queue = append(f.queue, c)
	start := f.workers < f.max
	if start {
		f.workers++
	}
	f.mu.Unlock()
	if start {
		go f.work()
	}
}

func (f *fanout) work() {
	var iov []syscall.Iovec // scratch for writev, kept across connections
	for n := 1; ; n++ {
		f.mu.Lock()
		if f.head == len(f.queue) {
			f.queue, f.head = f.queue[:0], 0
			if cap(f.queue) > 1<<16 {
				f.queue = nil // not kept at the size of a past burst
			}
			f.workers--
			f.mu.Unlock()
			return
		}
		c := f.queue[f.head]
		f.queue[f.head] = nil
		f.head++
		f.mu.Unlock()
		iov = c.fanOut(iov)
		if n%yieldEvery == 0 {
			// Non-blocking writes never give the processor up: let the
			// session, the store's committer and the readers run every
			// few connections, not only after a whole fan-out.
			runtime.Gosched()
		}
	}
}

// yieldEvery is how many connections a fan-out worker writes between
// yields: a few hundred microseconds of writes.
const yieldEvery = 32

type tokenLimit struct {
	lim  *rate.Limiter
	refs int
}

// NewHandler returns a Handler. allowedOrigins are browser origins accepted
// besides the server's own. onCount, if set, is told of every connection
// opened (+1) and closed (-1).
func NewHandler(cfg Config, maxDocRunes int, allowedOrigins []string, log *slog.Logger, onCount func(int)) *Handler {
	cfg = cfg.withDefaults()
	h := &Handler{
		cfg:         cfg,
		maxDocRunes: maxDocRunes,
		log:         log,
		origins:     newOriginPolicy(allowedOrigins),
		conns:       make(map[*conn]struct{}),
		byToken:     make(map[string]map[*conn]struct{}),
		revoked:     make(map[string]struct{}),
		tokenRL:     make(map[string]*tokenLimit),
		onCount:     onCount,
		fan:         fanout{max: max(2, runtime.GOMAXPROCS(0))},
	}
	h.upgrader = websocket.Upgrader{
		// Client messages are small (an op is a few hundred bytes) and
		// rare; every connection keeps this buffer for its whole life.
		ReadBufferSize:  512,
		WriteBufferSize: 1024,
		// Frames are written by conn.writeFrames, never through gorilla's
		// write buffer; with a pool, gorilla allocates none per connection.
		WriteBufferPool: &sync.Pool{},
		// The origin was checked before the upgrade (origin.go), with the
		// exact-match rules documented there.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeHTTPError(w, status, wire.CodeBadRequest, reason.Error())
		},
	}
	return h
}

func (h *Handler) track(c *conn, open bool) {
	h.mu.Lock()
	if open {
		h.conns[c] = struct{}{}
		set := h.byToken[c.who.TokenID]
		if set == nil {
			set = make(map[*conn]struct{})
			h.byToken[c.who.TokenID] = set
		}
		set[c] = struct{}{}
		c.tokenRL = h.tokenLimiter(c.who.TokenID)
		if _, gone := h.revoked[c.who.TokenID]; gone {
			c.kickWith(closePolicy, "token revoked")
		}
	} else {
		delete(h.conns, c)
		if set := h.byToken[c.who.TokenID]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(h.byToken, c.who.TokenID)
			}
		}
		h.releaseTokenLimiter(c.who.TokenID)
	}
	h.mu.Unlock()
	if h.onCount != nil {
		if open {
			h.onCount(1)
		} else {
			h.onCount(-1)
		}
	}
}

// tokenLimiter returns the limiter shared by every connection of a token:
// limits count per connection and per token, never per address, because a
// whole delegation types from one venue network. h.mu is held.
func (h *Handler) tokenLimiter(tokenID string) *rate.Limiter {
	tl := h.tokenRL[tokenID]
	if tl == nil {
		r := h.cfg.OpsPerSecond * h.cfg.TokenOpsFactor
		tl = &tokenLimit{lim: rate.NewLimiter(rate.Limit(r), int(float64(h.cfg.OpsBurst)*h.cfg.TokenOpsFactor))}
		h.tokenRL[tokenID] = tl
	}
	tl.refs++
	return tl.lim
}

// releaseTokenLimiter is called with h.mu held.
func (h *Handler) releaseTokenLimiter(tokenID string) {
	if tl := h.tokenRL[tokenID]; tl != nil {
		tl.refs--
		if tl.refs <= 0 {
			delete(h.tokenRL, tokenID)
		}
	}
}

// KickToken closes every socket of a revoked token.
func (h *Handler) KickToken(tokenID string) int {
	h.mu.Lock()
	h.revoked[tokenID] = struct{}{}
	list := make([]*conn, 0, len(h.byToken[tokenID]))
	for c := range h.byToken[tokenID] {
		list = append(list, c)
	}
	h.mu.Unlock()
	for _, c := range list {
		c.kickWith(closePolicy, "token revoked")
	}
	return len(list)
}

// CloseAll closes every socket (at shutdown) with 1001 so clients reconnect
// elsewhere or later with since.
func (h *Handler) CloseAll() {
	h.mu.Lock()
	list := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		list = append(list, c)
	}
	h.mu.Unlock()
	for _, c := range list {
		c.kickWith(closeGoingAway, "server shutting down: reconnect with since")
	}
}

// Count is the number of open sockets.
func (h *Handler) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}
