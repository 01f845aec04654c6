package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"communique/ot"
)

// dialer is shared by every client. Small buffers, and a pool for the
// write buffer (clients rarely write), keep ten thousand followers cheap
// for the load generator, which shares the machine with the server.
var dialer = &websocket.Dialer{
	HandshakeTimeout: 60 * time.Second,
	ReadBufferSize:   2048,
	WriteBufferSize:  1024,
	WriteBufferPool:  &sync.Pool{},
}

// dial opens a socket and reads its hello.
func dial(ctx context.Context, u, token string) (*websocket.Conn, fullFrame, error) {
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, resp, err := dialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			return nil, fullFrame{}, fmt.Errorf("dial: status %d: %w", resp.StatusCode, err)
		}
		return nil, fullFrame{}, fmt.Errorf("dial: %w", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, fullFrame{}, fmt.Errorf("hello: %w", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	_, hello, err := decodeFrame(data)
	if err != nil || hello.Type != "hello" {
		c.Close()
		return nil, fullFrame{}, fmt.Errorf("first frame is not a hello: %.120s", data)
	}
	return c, hello, nil
}

// closeConn ends a socket politely but without waiting for the answer.
func closeConn(c *websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = c.Close()
}

// sendLog remembers when a writer sent each seq, so that any follower in
// the process can find the send time of an op it receives. It is a ring
// indexed by seq; followers look up recent seqs only, long before a slot is
// reused.
type sendLog struct {
	seqs  [ringSize]atomic.Uint64
	times [ringSize]atomic.Int64
}

const ringSize = 1 << 14

func (l *sendLog) put(seq uint64, t int64) {
	i := seq & (ringSize - 1)
	// Clear the seq first, so a reader never pairs the old seq with the new
	// time (see get).
	l.seqs[i].Store(0)
	l.times[i].Store(t)
	l.seqs[i].Store(seq)
}

func (l *sendLog) get(seq uint64) (int64, bool) {
	i := seq & (ringSize - 1)
	if l.seqs[i].Load() != seq {
		return 0, false
	}
	t := l.times[i].Load()
	return t, l.seqs[i].Load() == seq
}

// follower reads one document stream and measures how long each op took
// from its writer's send to here. It keeps no text: it checks that versions
// come in order without a gap, which is the protocol's promise, and leaves
// text convergence to the writers and the final read of the server.
type follower struct {
	r      *runner
	d      *docRun
	t      *Target // the instance it reads from
	token  string
	stream string

	conn atomic.Pointer[websocket.Conn]
	last atomic.Uint64 // the version it has
	buf  []byte
}

func (f *follower) connect(ctx context.Context, since *uint64) error {
	start := time.Now()
	c, hello, err := dial(ctx, f.t.wsURL(f.r.summit, f.d.id, f.stream, since), f.token)
	if err != nil {
		return err
	}
	f.r.connectHist.Record(time.Since(start))
	if since == nil {
		f.last.Store(hello.Version)
	}
	f.conn.Store(c)
	return nil
}

// run reads until the run stops, reconnecting with since when the server
// drops the socket (a send queue that overflowed, for instance).
func (f *follower) run(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		err := f.read()
		if ctx.Err() != nil || f.r.stopping.Load() {
			return
		}
		f.r.count("follower disconnected: " + shortErr(err))
		if attempt == 5 {
			return
		}
		v := f.last.Load()
		if err := f.connect(ctx, &v); err != nil {
			f.r.count("follower reconnect failed: " + shortErr(err))
			return
		}
		f.r.reconnects.Add(1)
	}
}

func (f *follower) read() error {
	c := f.conn.Load()
	for {
		_, rd, err := c.NextReader()
		if err != nil {
			return err
		}
		if f.buf, err = readAll(rd, f.buf[:0]); err != nil {
			return err
		}
		now := f.r.now()
		fr, _, err := decodeFrame(f.buf)
		if err != nil {
			f.r.count("undecodable frame")
			continue
		}
		switch fr.typ {
		case "op":
			if last := f.last.Load(); fr.version != last+1 {
				f.r.count("follower: version gap or repeat")
			}
			f.last.Store(fr.version)
			f.r.deliveredTotal.Add(1)
			f.r.observe(fr.src, fr.seq, now)
		case "error":
			f.r.count("error frame to a follower: " + string(fr.code))
		}
	}
}

// readAll appends everything from r to buf, reusing its capacity.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// writer is a drafting client: random edits at a rate (or as fast as acks
// allow), client-side OT over every op of its document, resends after
// rate_limited or unavailable, and reconnects with since.
type writer struct {
	r     *runner
	d     *docRun
	t     *Target // the instance it edits through
	idx   int
	token string
	log   sendLog
	rng   *rand.Rand

	ot      *OTClient
	conn    *websocket.Conn
	frames  chan []byte
	readErr chan error

	// Published for the runner's drain and convergence checks.
	idle    atomic.Bool            // nothing in flight or buffered
	version atomic.Uint64          // ot.Version
	final   atomic.Pointer[string] // ot.Text, once editing stopped and idle
}

func (w *writer) connect(ctx context.Context, since *uint64) error {
	start := time.Now()
	c, hello, err := dial(ctx, w.t.wsURL(w.r.summit, w.d.id, "draft", since), w.token)
	if err != nil {
		return err
	}
	w.r.connectHist.Record(time.Since(start))
	if since == nil {
		if hello.Text == nil {
			c.Close()
			return errors.New("hello without text")
		}
		w.ot.Reset(*hello.Text, hello.Version)
		w.version.Store(hello.Version)
	}
	w.conn = c
	w.frames = make(chan []byte, 256)
	w.readErr = make(chan error, 1)
	// The reader goroutine ends when the socket does; run closes the
	// socket on every way out.
	go func(c *websocket.Conn, frames chan<- []byte, errc chan<- error) {
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				errc <- err
				return
			}
			select {
			case frames <- data:
			case <-ctx.Done():
				return
			}
		}
	}(c, w.frames, w.readErr)
	if since != nil {
		// Resend the op whose answer may have been lost, unchanged: the
		// server applies it or recognises the resend.
		if out := w.ot.InFlight(); out != nil {
			return w.send(out)
		}
	}
	return nil
}

// run edits until editing closes, then keeps answering frames until ctx
// ends. mode is "rate", "fast" (throughput) or "none".
func (w *writer) run(ctx context.Context, editing <-chan struct{}, mode string) {
	defer func() {
		if w.conn != nil {
			closeConn(w.conn)
		}
	}()
	var tick <-chan time.Time
	if mode == "rate" && w.r.cfg.Rate > 0 {
		period := time.Duration(float64(time.Second) / w.r.cfg.Rate)
		// A random phase, so the writers' ticks do not line up.
		time.Sleep(time.Duration(w.rng.Int64N(int64(period))))
		t := time.NewTicker(period)
		defer t.Stop()
		tick = t.C
	}
	edit := func() {
		if err := w.edit(); err != nil {
			w.r.count("writer: " + shortErr(err))
		}
	}
	if mode == "fast" {
		edit()
	}
	var resend <-chan time.Time
	attempts := 0
	for {
		idle := !w.ot.Pending()
		w.idle.Store(idle)
		if idle && mode == "none" && w.final.Load() == nil || w.final.Load() != nil && *w.final.Load() != w.ot.Text {
			text := w.ot.Text
			w.final.Store(&text)
		}
		select {
		case <-ctx.Done():
			return
		case <-editing:
			editing, tick = nil, nil
			mode = "none"
		case <-tick:
			edit()
		case <-resend:
			resend = nil
			if out := w.ot.InFlight(); out != nil {
				if err := w.send(out); err != nil {
					w.r.count("writer: " + shortErr(err))
				}
			}
		case data := <-w.frames:
			retry, err := w.handle(data, mode == "fast")
			if err != nil {
				w.r.count("writer: " + shortErr(err))
			}
			if retry && resend == nil {
				resend = time.After(50 * time.Millisecond)
			}
		case err := <-w.readErr:
			if ctx.Err() != nil || w.r.stopping.Load() {
				return
			}
			w.r.count("writer disconnected: " + shortErr(err))
			w.conn.Close()
			w.conn = nil
			attempts++
			if attempts > 5 {
				return
			}
			v := w.ot.Version
			if err := w.connect(ctx, &v); err != nil {
				w.r.count("writer reconnect failed: " + shortErr(err))
				return
			}
			w.r.reconnects.Add(1)
		}
	}
}

// edit makes a random edit and sends it if nothing was in flight.
func (w *writer) edit() error {
	out, err := w.ot.Edit(RandomEdit(w.rng, w.ot.Len(), w.r.cfg.DocSize))
	if err != nil {
		return err
	}
	w.r.edits.Add(1)
	if out != nil {
		return w.send(out)
	}
	return nil
}

func (w *writer) send(out *Outgoing) error {
	msg, err := w.ot.Message(out)
	if err != nil {
		return err
	}
	w.log.put(out.Seq, w.r.now())
	if err := w.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		return fmt.Errorf("send: %w", err) // the reader sees the broken socket and reconnects
	}
	w.r.sent.Add(1)
	return nil
}

// handle processes one frame; retry asks for a resend of the in-flight op
// a little later.
func (w *writer) handle(data []byte, fast bool) (retry bool, err error) {
	now := w.r.now()
	fr, _, err := decodeFrame(data)
	if err != nil {
		return false, fmt.Errorf("undecodable frame: %w", err)
	}
	var next *Outgoing
	switch fr.typ {
	case "op":
		w.r.writerDeliveries.Add(1)
		var own bool
		own, next, err = w.ot.Receive(fr.version, string(fr.src), fr.seq, fr.op)
		if err != nil {
			return false, err
		}
		if own {
			w.acked(fr.seq, now)
		}
		w.version.Store(w.ot.Version)
	case "ack":
		var settled bool
		settled, next, err = w.ot.Ack(fr.seq, fr.version)
		if err != nil || !settled {
			return false, err
		}
		w.r.writerDeliveries.Add(1)
		w.acked(fr.seq, now)
		w.version.Store(w.ot.Version)
	case "error":
		code := string(fr.code)
		w.r.count("error frame: " + code)
		if code == "rate_limited" || code == "unavailable" {
			return true, nil
		}
		return false, nil
	default:
		return false, nil
	}
	if next != nil {
		return false, w.send(next)
	}
	if fast && !w.ot.Pending() {
		return false, w.edit()
	}
	return false, nil
}

// acked records the ack latency of seq and, for an op sent inside the
// measurement window, the deliveries it owes the document's followers.
func (w *writer) acked(seq uint64, now int64) {
	sent, ok := w.log.get(seq)
	if !ok || !w.r.inWindow(sent) {
		return
	}
	w.r.ackHist.Record(time.Duration(now - sent))
	w.r.acked.Add(1)
	w.r.expected.Add(uint64(w.d.followers))
}

// filler is what inserts are made of: ASCII, Hangul, CJK, Arabic, an astral
// emoji, a ZWJ sequence, a combining mark, CRLF and a dash, so that every
// position counts code points, never bytes or UTF-16 units.
var filler = []string{"a", "e", "n", "s", " ", " ", "서", "울", "首", "尔", "م", "ر", "🌐", "👨\u200d👩\u200d👧", "e\u0301", "\r\n", "—", "é"}

// RandomEdit is an insert of one to eight filler pieces or a delete of one
// to five code points, at a random place in a text of n code points; deletes
// become likelier as the text grows past size, so documents stay near it.
func RandomEdit(rng *rand.Rand, n, size int) ot.Op {
	pDelete := 0.3
	switch {
	case n > size:
		pDelete = 0.7
	case n < size/2:
		pDelete = 0.1
	}
	if n > 0 && rng.Float64() < pDelete {
		pos := rng.IntN(n)
		k := min(1+rng.IntN(5), n-pos)
		return ot.Op{}.Retain(pos).Delete(k).Retain(n - pos - k)
	}
	var b strings.Builder
	for range 1 + rng.IntN(8) {
		b.WriteString(filler[rng.IntN(len(filler))])
	}
	pos := rng.IntN(n + 1)
	return ot.Op{}.Retain(pos).Insert(b.String()).Retain(n - pos)
}

// InitialText is a document of about size code points of mixed scripts.
func InitialText(size int) string {
	var b strings.Builder
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for n < size {
		p := filler[rng.IntN(len(filler))]
		b.WriteString(p)
		n += len([]rune(p))
	}
	return b.String()
}

func shortErr(err error) string {
	if err == nil {
		return "closed"
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("close %d", ce.Code)
	}
	s := err.Error()
	// Keep error keys few: strip addresses and numbers that vary.
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s[:i], "127.0.0.1") {
		s = s[i+2:]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
