package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/doc"
	"communique/server/servertest"
)

// fltLog reads the whole draft log of d through a catch-up from version 0
// and checks it: versions 1..head without a gap or a repeat, and no
// (src, seq) applied twice. It returns the ops' frames.
func fltLog(t *testing.T, e *faultEnv, d string) []servertest.Frame {
	t.Helper()
	c, h := fltDial(t, e, d, e.chair, url.Values{"since": {"0"}})
	defer c.Close()
	seen := map[string]uint64{}
	var ops []servertest.Frame
	for v := uint64(1); v <= h.Head; v++ {
		f := fltExpect(t, c, "op")
		if f.Version != v {
			t.Fatalf("log: version %d where %d belongs", f.Version, v)
		}
		if f.Src != "" {
			k := fmt.Sprintf("%s/%d", f.Src, f.Seq)
			if first, dup := seen[k]; dup {
				t.Errorf("log: (src, seq) %s applied twice, at %d and %d", k, first, v)
			}
			seen[k] = v
		}
		ops = append(ops, f)
	}
	return ops
}

// TestFaultResend covers FAULTS.md case 13: an op resent with the same
// (src, seq) and its old base version — on the same socket, after a
// reconnect with since, with a different body, after a server restart,
// after the document was evicted from memory — is acknowledged with its
// original version and never applied again; nothing is broadcast for it.
func TestFaultResend(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	opts.Doc.IdleTimeout = 200 * time.Millisecond
	e := newFaultEnv(t, opts)

	a, _ := fltDial(t, e, e.doc, e.kor, nil)
	first := fltOpMsg(0, ot.Op{}.Retain(10).Insert(" A"), "a", 1)
	if err := a.Send(first); err != nil {
		t.Fatal(err)
	}
	if ack := fltExpect(t, a, "ack"); ack.Version != 1 {
		t.Fatalf("got %s; want ack at 1", ack.Raw)
	}
	// Someone else edits, so the resend's base is really old.
	b, _ := fltDial(t, e, e.doc, e.gbr, nil)
	if err := b.Send(fltOpMsg(1, ot.Op{}.Insert("B ").Retain(12), "b", 1)); err != nil {
		t.Fatal(err)
	}
	if ack := fltExpect(t, b, "ack"); ack.Version != 2 {
		t.Fatalf("got %s; want ack at 2", ack.Raw)
	}
	fltExpect(t, a, "op")
	want := servertest.StreamState{Version: 2, Text: "B Seoul 2013 A"}

	// resend sends first again on a fresh socket and checks the answer.
	resend := func(t *testing.T, c *servertest.Conn, msg map[string]any) {
		t.Helper()
		if err := c.Send(msg); err != nil {
			t.Fatal(err)
		}
		ack := fltExpect(t, c, "ack")
		if ack.Seq != 1 || ack.Version != 1 {
			t.Errorf("got %s; want ack of seq 1 at its original version 1", ack.Raw)
		}
		if d := e.get(t, e.doc); *d.Draft != want {
			t.Errorf("draft = %+v; want %+v", *d.Draft, want)
		}
	}
	tests := []struct {
		name   string
		before func(t *testing.T)
		since  string // "" for a plain connection
		msg    map[string]any
	}{
		{"same socket", nil, "", first},
		{"after a reconnect with since=0", nil, "0", first},
		{"after a reconnect with since=1", nil, "1", first},
		{"with another body", nil, "0", fltOpMsg(0, ot.Op{}.Retain(10).Insert(" Z"), "a", 1)},
		{"after a restart", func(t *testing.T) { e.s.Restart(t) }, "0", first},
		{"after the document was evicted", func(t *testing.T) { fltAwaitEvicted(t, e) }, "0", first},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b.Close()
			if tc.before != nil {
				a.Close()
				tc.before(t)
			}
			c := a
			if tc.name != "same socket" {
				a.Close()
				var h servertest.Frame
				c, h = fltDial(t, e, e.doc, e.kor, url.Values{"since": {tc.since}})
				if h.Text != nil {
					t.Errorf("hello with since has text: %s", h.Raw)
				}
				// The catch-up comes first; with since=0 it holds the
				// original op itself, which a client takes as its ack.
				for v := fltSince(tc.since) + 1; v <= 2; v++ {
					if f := fltExpect(t, c, "op"); f.Version != v {
						t.Fatalf("catch-up: got %s; want version %d", f.Raw, v)
					}
				}
			}
			w, _ := fltDial(t, e, e.doc, e.gbr, nil)
			resend(t, c, tc.msg)
			fltQuiet(t, w)
			w.Close()
			a = c
		})
	}
	ops := fltLog(t, e, e.doc)
	if len(ops) != 2 {
		t.Errorf("log has %d ops; want 2", len(ops))
	}
}

func fltSince(s string) uint64 {
	var v uint64
	fmt.Sscan(s, &v)
	return v
}

// fltAwaitEvicted waits until the server holds no document in memory
// (communique_open_documents is 0): every socket must be closed and the
// idle timeout short.
func fltAwaitEvicted(t *testing.T, e *faultEnv) {
	t.Helper()
	deadline := time.Now().Add(fltWait)
	for {
		r := e.s.MustDo(t, http.StatusOK, "GET", "/metrics", "", nil)
		if strings.Contains(string(r.Body), "\ncommunique_open_documents 0\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("documents still open after %v", fltWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultDisconnectBeforeAck covers FAULTS.md case 14: 40 times, a
// client sends an op and drops its connection before the ack can arrive
// (half of the time with an RST, which may discard the op unread), while
// another client edits; it reconnects with since, resends its op as it
// was, and ends on the server's text. Every op is in the log exactly once.
func TestFaultDisconnectBeforeAck(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	opts.Doc.MaxDocRunes = 100000
	e := newFaultEnv(t, opts)
	a := e.s.NewClient(t, e.summit, e.doc, e.kor, "a")
	b := e.s.NewClient(t, e.summit, e.doc, e.gbr, "b")
	const rounds = 40
	for r := 1; r <= rounds; r++ {
		if err := a.Edit(fltAppend(a.Text, fmt.Sprintf("«a%d»", r))); err != nil {
			t.Fatal(err)
		}
		if r%2 == 0 {
			if tcp, ok := a.Conn.WS.NetConn().(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // close with RST
			}
		}
		a.Disconnect()
		if err := b.Edit(ot.Op{}.Insert(fmt.Sprintf("«b%d»", r)).Retain(ot.NewText(b.Text).Len())); err != nil {
			t.Fatal(err)
		}
		// Reconnect resends a's op as it was (same seq, same base).
		if err := a.Reconnect(); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		for _, c := range []*servertest.Client{a, b} {
			fltPumpUntil(t, c, c.Pending)
		}
	}
	head := e.get(t, e.doc).Draft.Version
	for _, c := range []*servertest.Client{a, b} {
		fltPumpUntil(t, c, func() bool { return c.Version < head })
	}
	d := e.get(t, e.doc)
	if a.Text != d.Draft.Text || b.Text != d.Draft.Text || a.Version != d.Draft.Version || b.Version != d.Draft.Version {
		t.Fatalf("a at %d, b at %d, server at %d; texts equal: %v %v", a.Version, b.Version, d.Draft.Version, a.Text == d.Draft.Text, b.Text == d.Draft.Text)
	}
	for r := 1; r <= rounds; r++ {
		for _, m := range []string{fmt.Sprintf("«a%d»", r), fmt.Sprintf("«b%d»", r)} {
			if n := strings.Count(d.Draft.Text, m); n != 1 {
				t.Errorf("%s appears %d times; want once", m, n)
			}
		}
	}
	if ops := fltLog(t, e, e.doc); len(ops) != 2*rounds {
		t.Errorf("log has %d ops; want %d", len(ops), 2*rounds)
	}
}

// fltAppend is an op that appends s to text.
func fltAppend(text, s string) ot.Op {
	return ot.Op{}.Retain(ot.NewText(text).Len()).Insert(s)
}

// TestFaultSameBase covers FAULTS.md case 15: 1,000 rounds in which two clients each submit an op on the same base
// version at once (both insert at position 0, so each round also exercises
// the tie-break) give versions 1..N with no gap or duplicate, each client's
// acks are the versions the other did not get, and all texts are equal.
func TestFaultSameBase(t *testing.T) {
	rounds := 1000
	if testing.Short() {
		rounds = 100
	}
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	opts.Doc = doc.Config{MaxDocRunes: 100000}
	opts.Bolt.FsyncDisabled = true // ordering, not durability, is under test
	e := newFaultEnv(t, opts)
	a := e.s.NewClient(t, e.summit, e.doc, e.kor, "a")
	b := e.s.NewClient(t, e.summit, e.doc, e.gbr, "b")
	for r := 1; r <= rounds; r++ {
		if a.Version != b.Version {
			t.Fatalf("round %d: a at %d, b at %d; want the same base", r, a.Version, b.Version)
		}
		for _, c := range []*servertest.Client{a, b} {
			if err := c.Edit(ot.Op{}.Insert(c.Src).Retain(ot.NewText(c.Text).Len())); err != nil {
				t.Fatal(err)
			}
		}
		want := uint64(2 * r)
		for _, c := range []*servertest.Client{a, b} {
			fltPumpUntil(t, c, func() bool { return c.Pending() || c.Version < want })
		}
	}
	if a.Text != b.Text {
		t.Fatalf("a and b differ after %d rounds", rounds)
	}
	if d := e.get(t, e.doc); d.Draft.Text != a.Text || d.Draft.Version != uint64(2*rounds) {
		t.Fatalf("server at %d differs from the clients at %d", d.Draft.Version, a.Version)
	}
	if n := strings.Count(a.Text, "a"); n != rounds {
		t.Errorf("%d a's; want %d", n, rounds)
	}
	got := map[uint64]string{}
	for _, c := range []*servertest.Client{a, b} {
		if len(c.Acked) != rounds {
			t.Errorf("client %s got %d acks; want %d", c.Src, len(c.Acked), rounds)
		}
		for _, v := range c.Acked {
			if other, dup := got[v]; dup {
				t.Errorf("version %d acked to both %s and %s", v, other, c.Src)
			}
			got[v] = c.Src
		}
	}
	if ops := fltLog(t, e, e.doc); len(ops) != 2*rounds {
		t.Errorf("log has %d ops; want %d", len(ops), 2*rounds)
	}
}

// TestFaultEvictAndRestart covers FAULTS.md case 16 (its failing-load half
// is TestFaultCorruptRecord): clients edit while offline and reconnect
// with since after their document was evicted from memory, and again while
// the server restarts under them; the document comes back from the store
// with every edit exactly once and all texts converge.
func TestFaultEvictAndRestart(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	opts.Doc.IdleTimeout = 200 * time.Millisecond
	e := newFaultEnv(t, opts)
	// The clients use a copy of the address: Restart rewrites the server's
	// own fields while their goroutines read them.
	ep := &servertest.Endpoint{Addr: e.s.Addr, URL: e.s.URL}
	a, err := ep.Connect(e.summit, e.doc, e.kor, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ep.Connect(e.summit, e.doc, e.gbr, "b")
	if err != nil {
		t.Fatal(err)
	}
	settle := func(t *testing.T, cs ...*servertest.Client) {
		t.Helper()
		for _, c := range cs {
			if err := c.Settle(fltWait); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cs {
			if err := c.Pump(200 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Edit(fltAppend(a.Text, " «a1»")); err != nil {
		t.Fatal(err)
	}
	settle(t, a, b)

	t.Run("evicted", func(t *testing.T) {
		a.Disconnect()
		b.Disconnect()
		fltAwaitEvicted(t, e)
		// Both edit offline, on the version they had.
		if err := a.Edit(fltAppend(a.Text, " «a2»")); err != nil {
			t.Fatal(err)
		}
		if err := b.Edit(ot.Op{}.Insert("«b1» ").Retain(ot.NewText(b.Text).Len())); err != nil {
			t.Fatal(err)
		}
		settle(t, a, b)
		d := e.get(t, e.doc)
		if want := "«b1» Seoul 2013 «a1» «a2»"; a.Text != want || b.Text != want || d.Draft.Text != want || d.Draft.Version != 3 {
			t.Errorf("a=%q b=%q server=%q at %d; want %q at 3", a.Text, b.Text, d.Draft.Text, d.Draft.Version, want)
		}
	})

	t.Run("restarted while the clients edit", func(t *testing.T) {
		half := make(chan struct{}, 2)
		errc := make(chan error, 2)
		for _, c := range []*servertest.Client{a, b} {
			go func(c *servertest.Client) {
				errc <- func() error {
					for i := 1; i <= 10; i++ {
						if i == 5 {
							half <- struct{}{}
						}
						if err := c.Edit(fltAppend(c.Text, fmt.Sprintf(" «%s-r%d»", c.Src, i))); err != nil {
							return err
						}
						if err := c.Settle(fltWait); err != nil {
							return err
						}
					}
					return nil
				}()
			}(c)
		}
		<-half
		<-half
		e.s.Restart(t)
		for range 2 {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		settle(t, a, b)
		d := e.get(t, e.doc)
		if a.Text != d.Draft.Text || b.Text != d.Draft.Text {
			t.Fatalf("a=%q b=%q server=%q", a.Text, b.Text, d.Draft.Text)
		}
		for _, src := range []string{"a", "b"} {
			for i := 1; i <= 10; i++ {
				if m := fmt.Sprintf("«%s-r%d»", src, i); strings.Count(d.Draft.Text, m) != 1 {
					t.Errorf("%s appears %d times; want once", m, strings.Count(d.Draft.Text, m))
				}
			}
		}
		if ops := fltLog(t, e, e.doc); uint64(len(ops)) != d.Draft.Version || len(ops) != 23 {
			t.Errorf("log has %d ops, server at %d; want 23", len(ops), d.Draft.Version)
		}
	})
	a.Disconnect()
	b.Disconnect()
}

// fltPumpUntil handles c's frames while cond() is true. Unlike Settle it
// never waits for quiet, so a round costs what the server takes.
func fltPumpUntil(t *testing.T, c *servertest.Client, cond func() bool) {
	t.Helper()
	for cond() {
		f, err := fltNext(c.Conn, fltWait)
		if err != nil {
			t.Fatalf("client %s: %v", c.Src, err)
		}
		if err := c.Handle(f); err != nil {
			t.Fatal(err)
		}
	}
}
