package e2e

// End-to-end tests of FAULTS.md cases 33–37: Redis and many instances. The
// instances are in-process servers, each with a Redis store and bus of its
// own (separate clients, as separate processes would have), or the real
// binary where only a process shows the behaviour (start-up, kill -9). The
// Redis is a redis-server of the test's own (redistest.StartServer) when the
// test kills, pauses or restarts it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"communique/ot"
	busredis "communique/server/bus/redis"
	"communique/server/doc"
	"communique/server/servertest"
	"communique/server/store"
	"communique/server/store/bolt"
	redisstore "communique/server/store/redis"
	"communique/server/store/redis/redistest"
	"communique/server/ws"
)

const (
	rfDoc     = "annex-7"
	rfInitial = "Seoul Declaration 🌐 서울 — annex\n"
)

// rfLog collects an instance's log; it is printed when the test fails, and
// tests look in it for the path the server took.
type rfLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *rfLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *rfLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *rfLog) Count(s string) int { return strings.Count(l.String(), s) }

func rfLogger(t *testing.T, name string) (*slog.Logger, *rfLog) {
	l := &rfLog{}
	var w io.Writer = l
	if os.Getenv("COMMUNIQUE_TEST_LOG") == "1" {
		w = io.MultiWriter(l, os.Stderr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			s := l.String()
			if len(s) > 12000 {
				s = "…" + s[len(s)-12000:]
			}
			t.Logf("--- log of instance %s ---\n%s", name, s)
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})), l
}

// rfInstance is one in-process instance over a Redis store and bus of its
// own.
type rfInstance struct {
	*servertest.Server
	Name  string
	Store *redisstore.Store
	Bus   *busredis.Bus
	Log   *rfLog
}

type rfConfig struct {
	Doc doc.Config
	// NoReconnectCatchUp leaves the bus' OnReconnect unwired (the binary
	// wires it to CatchUp), so that only the edit path can notice a
	// store that went back.
	NoReconnectCatchUp bool
}

// rfStart starts an instance named name on the Redis at url, with short
// Redis timeouts so a dead or frozen Redis shows quickly, and a rate limit
// out of the way (tests that hammer are about commits, not the limiter).
func rfStart(t *testing.T, url, prefix, name string, cfg rfConfig) *rfInstance {
	t.Helper()
	log, buf := rfLogger(t, name)
	st, err := redisstore.Open(context.Background(), url, redisstore.Options{
		Prefix: prefix, Logger: log,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("instance %s: %v", name, err)
	}
	b := busredis.New(st.Client(), st.Prefix(), log)
	// Registered before the server's own cleanup, so run after it.
	t.Cleanup(func() {
		b.Close()
		st.Close()
	})
	s := servertest.Start(t, servertest.Options{
		Store: st, Bus: b, Instance: name, Doc: cfg.Doc, Log: log,
		WS: ws.Config{OpsPerSecond: 10000, OpsBurst: 10000},
	})
	if !cfg.NoReconnectCatchUp {
		b.OnReconnect(s.Srv.CatchUp) // as cmd/communique does
	}
	return &rfInstance{Server: s, Name: name, Store: st, Bus: b, Log: buf}
}

// rfSetup creates summit and the document on e and returns a delegate
// token per delegation.
func rfSetup(t *testing.T, e *servertest.Endpoint, summit string, delegations ...string) []string {
	t.Helper()
	e.Summit(t, summit)
	e.Doc(t, summit, rfDoc, rfInitial)
	var toks []string
	for _, d := range delegations {
		toks = append(toks, e.Token(t, summit, "delegate", d))
	}
	return toks
}

// rfClient is a servertest.Client that remembers, for every version, which
// op (src/seq) it was shown — in an op frame or in an ack of its own — so a
// test can prove that no two clients were ever shown two different ops at
// one version (a forked history), and that each of those ops is in the log.
type rfClient struct {
	*servertest.Client
	seen    map[uint64]string
	forks   []string
	errs    map[string]int // error frames by code
	acks    int            // ack frames
	frames  int            // frames of any kind
	refused bool           // an unavailable or rate_limited came since the last resend
	marks   int            // markers made, for unique names
}

// marker returns a marker no other edit uses.
func (c *rfClient) marker() string {
	c.marks++
	return fmt.Sprintf("«%s:%d»", c.Src, c.marks)
}

func rfConnect(t *testing.T, e *servertest.Endpoint, summit, tok, src string) *rfClient {
	t.Helper()
	return &rfClient{Client: e.NewClient(t, summit, rfDoc, tok, src), seen: map[uint64]string{}, errs: map[string]int{}}
}

func (c *rfClient) see(v uint64, id string) {
	if old, ok := c.seen[v]; ok && old != id {
		c.forks = append(c.forks, fmt.Sprintf("client %s was shown version %d as %s, then as %s", c.Src, v, old, id))
		return
	}
	c.seen[v] = id
}

func (c *rfClient) record(f servertest.Frame) {
	c.frames++
	switch f.Type {
	case "op":
		c.see(f.Version, fmt.Sprintf("%s/%d", f.Src, f.Seq))
	case "ack":
		c.acks++
		c.see(f.Version, fmt.Sprintf("%s/%d", c.Src, f.Seq))
	case "error":
		c.errs[f.Code]++
		if f.Code == "unavailable" || f.Code == "rate_limited" {
			c.refused = true
		}
	}
}

// pump is servertest.Client.Pump, recording every frame. Error frames other
// than unavailable and rate_limited fail it (Client.Handle's rule).
func (c *rfClient) pump(idle time.Duration) error {
	for c.Conn != nil {
		f, err := c.Conn.Next(idle)
		if errors.Is(err, servertest.ErrTimeout) {
			return nil
		}
		if err != nil {
			c.Disconnect()
			return nil
		}
		c.record(f)
		if err := c.Handle(f); err != nil {
			return err
		}
	}
	return nil
}

// settle pumps until nothing is pending and the stream is quiet,
// reconnecting with since and resending the in-flight op as needed.
func (c *rfClient) settle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.Conn == nil {
			if err := c.Reconnect(); err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		if err := c.pump(100 * time.Millisecond); err != nil {
			return err
		}
		if !c.Pending() && c.Conn != nil {
			return nil
		}
		c.Resend()
		c.refused = false
	}
	return fmt.Errorf("client %s did not settle within %v (seq %d, pending %v)", c.Src, timeout, c.LastSeq(), c.Pending())
}

// edit makes one random edit carrying marker (see randomEdit) and reports
// whether the marker went in.
func (c *rfClient) edit(r *mrand.Rand, marker string) (bool, error) {
	op, inserted := randomEdit(r, c.Text, marker)
	return inserted, c.Edit(op)
}

// typeUntil edits with markers until stop is closed, with one op in flight:
// the next edit is made only once the previous one was acknowledged; an op
// refused with unavailable or rate_limited is resent. A client waiting for
// an answer for 15 s is a hang and fails it. With leaveOnDisconnect, a
// lost connection ends it without error (its instance died).
func (c *rfClient) typeUntil(r *mrand.Rand, stop <-chan struct{}, pace time.Duration, leaveOnDisconnect bool) ([]string, error) {
	var markers []string
	last, lastFrames := time.Now(), c.frames
	for {
		select {
		case <-stop:
			return markers, nil
		default:
		}
		if !c.Pending() {
			m := c.marker()
			ins, err := c.edit(r, m)
			if err != nil {
				return markers, err
			}
			if ins {
				markers = append(markers, m)
			}
			if pace > 0 {
				time.Sleep(pace)
			}
		}
		if err := c.pump(2 * time.Millisecond); err != nil {
			return markers, err
		}
		if c.Conn == nil {
			if leaveOnDisconnect {
				return markers, nil
			}
			return markers, fmt.Errorf("client %s: connection lost", c.Src)
		}
		if c.refused {
			c.refused = false
			time.Sleep(5 * time.Millisecond)
			c.Resend()
		}
		if c.frames != lastFrames {
			last, lastFrames = time.Now(), c.frames
		} else if c.Pending() && time.Since(last) > 15*time.Second {
			return markers, fmt.Errorf("client %s: no answer for 15 s with seq %d in flight (a hang)", c.Src, c.LastSeq())
		}
	}
}

// rfConverge waits until every endpoint serves one draft version, then
// until every client has it, and fails if the texts differ.
func rfConverge(t *testing.T, summit string, eps []*servertest.Endpoint, clients []*rfClient) servertest.StreamState {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var ds []servertest.DocState
	for {
		ds = ds[:0]
		same := true
		for _, e := range eps {
			d := e.GetDoc(t, summit, rfDoc, servertest.AdminToken)
			ds = append(ds, d)
			same = same && d.Draft.Version == ds[0].Draft.Version
		}
		if same || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, d := range ds {
		if d.Draft.Version != ds[0].Draft.Version || d.Draft.Text != ds[0].Draft.Text {
			t.Fatalf("instances differ: #0 at %d %q; #%d at %d %q", ds[0].Draft.Version, ds[0].Draft.Text, i, d.Draft.Version, d.Draft.Text)
		}
	}
	want := *ds[0].Draft
	for _, c := range clients {
		for c.Version < want.Version && time.Now().Before(deadline) {
			if c.Conn == nil {
				if err := c.Reconnect(); err != nil {
					t.Fatalf("client %s: %v", c.Src, err)
				}
			}
			if err := c.pump(50 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.pump(50 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if c.Pending() || c.Version != want.Version || c.Text != want.Text {
			t.Fatalf("client %s at %d (pending %v) has %q; servers at %d have %q", c.Src, c.Version, c.Pending(), c.Text, want.Version, want.Text)
		}
	}
	return want
}

// rfCheck reads the draft log from Redis with a store of its own (Since(0))
// and checks it against what was served and what clients were shown:
// versions 1..N with no gap, no (src, seq) twice, a replay equal to the
// served draft, every version a client was shown (op or ack) holding that
// very op, no client shown two ops at one version, and every marker
// exactly once in the text.
func rfCheck(t *testing.T, url, prefix, summit string, served servertest.StreamState, clients []*rfClient, markers []string) []store.OpRecord {
	t.Helper()
	st, err := redisstore.Open(context.Background(), url, redisstore.Options{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Since(context.Background(), store.StreamKey{Summit: summit, Doc: rfDoc, Stream: store.Draft}, 0, 0)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	text, seen := rfInitial, map[string]uint64{}
	for i, rec := range recs {
		if rec.Version != uint64(i+1) {
			t.Fatalf("log record %d has version %d", i, rec.Version)
		}
		if rec.Src != "" {
			k := fmt.Sprintf("%s/%d", rec.Src, rec.Seq)
			if v, dup := seen[k]; dup {
				t.Fatalf("(src, seq) %s logged twice: versions %d and %d", k, v, rec.Version)
			}
			seen[k] = rec.Version
		}
		if text, err = ot.Apply(text, rec.Op); err != nil {
			t.Fatalf("replay version %d: %v", rec.Version, err)
		}
	}
	if uint64(len(recs)) != served.Version || text != served.Text {
		t.Fatalf("replay of %d logged ops gives %q; served draft at %d is %q", len(recs), text, served.Version, served.Text)
	}
	shown := map[uint64]string{}
	for _, c := range clients {
		for _, f := range c.forks {
			t.Errorf("forked history: %s", f)
		}
		for v, id := range c.seen {
			if v == 0 || v > uint64(len(recs)) {
				t.Errorf("client %s was shown %s at version %d; the log ends at %d", c.Src, id, v, len(recs))
				continue
			}
			if got := fmt.Sprintf("%s/%d", recs[v-1].Src, recs[v-1].Seq); got != id {
				t.Errorf("client %s was shown %s at version %d; the log has %s there", c.Src, id, v, got)
			}
			if other, ok := shown[v]; ok && other != id {
				t.Errorf("forked history: version %d shown as %s and as %s", v, other, id)
			}
			shown[v] = id
		}
		for seq, v := range c.Acked {
			if k := fmt.Sprintf("%s/%d", c.Src, seq); seen[k] != v {
				t.Errorf("client %s: seq %d acknowledged at version %d; logged at %d", c.Src, seq, v, seen[k])
			}
		}
	}
	for _, m := range markers {
		if n := strings.Count(served.Text, m); n != 1 {
			t.Errorf("marker %s appears %d times; want 1", m, n)
		}
	}
	return recs
}

func rfSettleAll(t *testing.T, clients []*rfClient, timeout time.Duration) {
	t.Helper()
	for _, c := range clients {
		if err := c.settle(timeout); err != nil {
			t.Fatal(err)
		}
	}
}

func rfEndpoints(insts ...*rfInstance) []*servertest.Endpoint {
	var eps []*servertest.Endpoint
	for _, in := range insts {
		eps = append(eps, &in.Endpoint)
	}
	return eps
}

// rfRandomEdits makes n random edits with markers on random clients,
// pumping now and then, and returns the markers.
func rfRandomEdits(t *testing.T, r *mrand.Rand, clients []*rfClient, n int, markers []string) []string {
	t.Helper()
	for i := 0; i < n; i++ {
		c := clients[r.IntN(len(clients))]
		m := c.marker()
		ins, err := c.edit(r, m)
		if err != nil {
			t.Fatal(err)
		}
		if ins {
			markers = append(markers, m)
		}
		if err := c.pump(time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if c.refused {
			c.refused = false
			c.Resend()
		}
	}
	return markers
}

func rfSummitID() string {
	var b [4]byte
	rand.Read(b[:])
	return "rf-" + hex.EncodeToString(b[:])
}

// TestRedisFault33DownAtStart: the real binary with --redis pointing at a
// closed port exits non-zero with a message naming Redis and the address
// (never the password), and --redis without --admin-token is refused.
func TestRedisFault33DownAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	bin := servertest.BuildBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	run := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = t.TempDir()
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "COMMUNIQUE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("communique %s did not exit within 30 s:\n%s", strings.Join(args, " "), out)
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run: %v", err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}

	code, out := run("serve", "--redis", "redis://:s3cret-pw@"+addr, "--admin-token", "x", "--addr", "127.0.0.1:0")
	if code == 0 {
		t.Fatalf("serve with Redis down exited 0:\n%s", out)
	}
	for _, want := range []string{"open redis", addr, "is it running"} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up error does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret-pw") {
		t.Errorf("start-up error shows the Redis password:\n%s", out)
	}
	if strings.Contains(out, "msg=listening") {
		t.Errorf("server listened although Redis is down:\n%s", out)
	}

	code, out = run("serve", "--redis", "redis://"+addr, "--addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "--admin-token") {
		t.Fatalf("--redis without --admin-token: exit %d, output:\n%s", code, out)
	}
}

// TestRedisFault33DownLater takes Redis away under two instances with
// clients on both — killed, or frozen (SIGSTOP: the kernel still accepts
// connections, nothing answers, and what was sent runs once it thaws) —
// and brings it back. While it is away: every edit in flight gets an
// unavailable error frame and no ack at all arrives; an HTTP PUT gets 503
// unavailable; GET of the document still answers from memory on both
// instances. After it returns (AOF with appendfsync always, so a kill loses
// nothing acknowledged): clients resend (same src and seq) and everything
// converges with every marker exactly once, a dense log without repeated
// (src, seq), and no client shown an op the log does not have.
func TestRedisFault33DownLater(t *testing.T) {
	for _, mode := range []string{"kill", "pause"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
			prefix := redistest.Prefix(t)
			summit := "seoul-2013"
			a := rfStart(t, srv.URL(), prefix, "a", rfConfig{})
			b := rfStart(t, srv.URL(), prefix, "b", rfConfig{})
			toks := rfSetup(t, &a.Endpoint, summit, "KOR", "GBR", "HUN", "NLD")
			var clients []*rfClient
			for i, tok := range toks {
				e := []*servertest.Endpoint{&a.Endpoint, &b.Endpoint}[i%2]
				clients = append(clients, rfConnect(t, e, summit, tok, fmt.Sprintf("d%d", i)))
			}
			r := mrand.New(mrand.NewPCG(33, 1))
			markers := rfRandomEdits(t, r, clients, 40, nil)
			rfSettleAll(t, clients, 20*time.Second)
			before := rfConverge(t, summit, rfEndpoints(a, b), clients)

			switch mode {
			case "kill":
				srv.Kill()
			case "pause":
				srv.Pause()
			}
			acks := make([]int, len(clients))
			refused := make([]int, len(clients))
			for i, c := range clients {
				acks[i], refused[i] = c.acks, c.errs["unavailable"]
				markers = rfRandomEdits(t, r, []*rfClient{c}, 2, markers) // one in flight, one buffered
			}
			deadline := time.Now().Add(30 * time.Second)
			for i := 0; i < len(clients); {
				c := clients[i]
				if err := c.pump(20 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
				if c.Conn == nil {
					t.Fatalf("client %s lost its connection while Redis was away", c.Src)
				}
				if c.errs["unavailable"] > refused[i] {
					i++
					continue
				}
				if time.Now().After(deadline) {
					t.Fatalf("client %s got no unavailable error for its edit within 30 s with Redis away (errors %v)", c.Src, c.errs)
				}
			}
			// PUT needs the store (its token is looked up there, then the
			// edit is committed): refused with 503 unavailable.
			put := b.Do(t, "PUT", "/api/summits/"+summit+"/docs/"+rfDoc+"/draft", toks[1],
				map[string]any{"base_version": before.Version, "text": before.Text + "PUT while Redis is away"})
			if put.Status != http.StatusServiceUnavailable || put.ErrorCode() != "unavailable" {
				t.Errorf("PUT with Redis away: %d %s; want 503 unavailable", put.Status, put.Body)
			}
			// Reads of an open document answer from memory.
			for _, e := range rfEndpoints(a, b) {
				d := e.GetDoc(t, summit, rfDoc, servertest.AdminToken)
				if d.Draft.Version != before.Version || d.Draft.Text != before.Text {
					t.Errorf("GET with Redis away: %d %q; want %d %q", d.Draft.Version, d.Draft.Text, before.Version, before.Text)
				}
			}
			// A delegate whose token the instance resolved before (at
			// the handshake) reads too: tokens are cached (auth.Options).
			if g := a.Do(t, "GET", "/api/summits/"+summit+"/docs/"+rfDoc, toks[0], nil); g.Status != http.StatusOK {
				t.Errorf("GET with a delegate token while Redis is away: %d %s; want 200 from memory", g.Status, g.ErrorCode())
			}
			for i, c := range clients {
				if c.acks != acks[i] {
					t.Errorf("client %s got %d acks while Redis was away", c.Src, c.acks-acks[i])
				}
			}

			switch mode {
			case "kill":
				srv.Restart()
			case "pause":
				srv.Resume()
			}
			markers = rfRandomEdits(t, r, clients, 30, markers)
			rfSettleAll(t, clients, 30*time.Second)
			served := rfConverge(t, summit, rfEndpoints(a, b), clients)
			recs := rfCheck(t, srv.URL(), prefix, summit, served, clients, markers)
			t.Logf("%s: %d ops logged, %d markers; unavailable errors per client: %d %d %d %d", mode, len(recs), len(markers),
				clients[0].errs["unavailable"], clients[1].errs["unavailable"], clients[2].errs["unavailable"], clients[3].errs["unavailable"])
		})
	}
}

// TestRedisFault34PubSubKilled kills every pub/sub connection on the Redis
// (CLIENT KILL TYPE pubsub) while a writer on each instance types, twice,
// and once more right before the writers' last edits. A follower on each
// instance must be shown every op, in order, with no gap (the client checks
// each version is the next), including those published while its instance
// was not subscribed: the instance notices (OnReconnect → CatchUp, or the
// head poll) and reads the log.
func TestRedisFault34PubSubKilled(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	summit := "seoul-2013"
	a := rfStart(t, url, prefix, "a", rfConfig{})
	b := rfStart(t, url, prefix, "b", rfConfig{})
	toks := rfSetup(t, &a.Endpoint, summit, "KOR", "GBR", "HUN", "NLD")
	wa := rfConnect(t, &a.Endpoint, summit, toks[0], "wa")
	wb := rfConnect(t, &b.Endpoint, summit, toks[1], "wb")
	fa := rfConnect(t, &a.Endpoint, summit, toks[2], "fa")
	fb := rfConnect(t, &b.Endpoint, summit, toks[3], "fb")
	killPubSub := func() {
		t.Helper()
		n, err := a.Store.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Int()
		if err != nil {
			t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
		}
		if n < 2 {
			t.Fatalf("CLIENT KILL TYPE pubsub killed %d connections; want both instances' (2)", n)
		}
	}

	var markers []string
	for round := 0; round < 2; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 4)
		got := make([][]string, 2)
		for i, w := range []*rfClient{wa, wb} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = w.typeUntil(mrand.New(mrand.NewPCG(34, uint64(10*round+i))), stop, 0, false)
			}()
		}
		for i, f := range []*rfClient{fa, fb} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if errs[2+i] = f.pump(10 * time.Millisecond); errs[2+i] != nil {
						return
					}
					if f.Conn == nil {
						errs[2+i] = fmt.Errorf("follower %s lost its connection", f.Src)
						return
					}
				}
			}()
		}
		time.Sleep(400 * time.Millisecond)
		killPubSub()
		time.Sleep(800 * time.Millisecond)
		close(stop)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		markers = append(markers, got[0]...)
		markers = append(markers, got[1]...)
	}
	// The last ops are published right after the kill, likely while
	// nobody is subscribed; nothing else will carry them to the other
	// instance.
	rfSettleAll(t, []*rfClient{wa, wb}, 10*time.Second)
	killPubSub()
	r := mrand.New(mrand.NewPCG(34, 99))
	markers = rfRandomEdits(t, r, []*rfClient{wa, wb}, 2, markers)
	rfSettleAll(t, []*rfClient{wa, wb}, 10*time.Second)
	clients := []*rfClient{wa, wb, fa, fb}
	served := rfConverge(t, summit, rfEndpoints(a, b), clients)
	recs := rfCheck(t, url, prefix, summit, served, clients, markers)
	for _, f := range []*rfClient{fa, fb} {
		if uint64(len(f.seen)) != served.Version {
			t.Errorf("follower %s was shown %d ops; want all %d", f.Src, len(f.seen), served.Version)
		}
	}
	// The follower on b was shown a's ops in a's order (and the other way
	// round): seq increases along versions.
	for _, p := range [][2]*rfClient{{fb, wa}, {fa, wb}} {
		var last uint64
		for v := uint64(1); v <= served.Version; v++ {
			var seq uint64
			if n, _ := fmt.Sscanf(p[0].seen[v], p[1].Src+"/%d", &seq); n == 1 {
				if seq <= last {
					t.Errorf("follower %s was shown %s/%d at version %d after seq %d", p[0].Src, p[1].Src, seq, v, last)
				}
				last = seq
			}
		}
	}
	t.Logf("%d ops; pub/sub connections lost: a %d, b %d", len(recs), a.Log.Count("pub/sub connection lost"), b.Log.Count("pub/sub connection lost"))
}

// TestRedisFault35ConcurrentCommits has a writer on each of two instances
// hammer one document, one op in flight each, so that both instances
// append to the same stream at once and the loser takes in the winner's ops
// and redoes its batch. Every version is one op (dense log, no repeated
// (src, seq)), every acknowledged op is logged at the version acked, the
// texts agree, and every error frame is unavailable or rate_limited (a
// batch that lost the race too often) and was recovered by a resend; no
// edit waits forever.
func TestRedisFault35ConcurrentCommits(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	summit := "seoul-2013"
	a := rfStart(t, url, prefix, "a", rfConfig{})
	b := rfStart(t, url, prefix, "b", rfConfig{})
	toks := rfSetup(t, &a.Endpoint, summit, "KOR", "GBR")
	wa := rfConnect(t, &a.Endpoint, summit, toks[0], "wa")
	wb := rfConnect(t, &b.Endpoint, summit, toks[1], "wb")
	clients := []*rfClient{wa, wb}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	got := make([][]string, 2)
	for i, w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = w.typeUntil(mrand.New(mrand.NewPCG(35, uint64(i))), stop, 0, false)
		}()
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rfSettleAll(t, clients, 20*time.Second)
	served := rfConverge(t, summit, rfEndpoints(a, b), clients)
	recs := rfCheck(t, url, prefix, summit, served, clients, append(got[0], got[1]...))
	// Both wrote: the instances really contended.
	n := map[string]int{}
	for _, rec := range recs {
		n[rec.Src]++
	}
	if n["wa"] < 10 || n["wb"] < 10 {
		t.Fatalf("ops logged per writer %v; too few to prove anything", n)
	}
	interleaved := 0
	for i := 1; i < len(recs); i++ {
		if recs[i].Src != recs[i-1].Src {
			interleaved++
		}
	}
	t.Logf("%d ops (%v), writer changes along the log %d, errors wa %v wb %v, retries exhausted: a %d b %d",
		len(recs), n, interleaved, wa.errs, wb.errs, a.Log.Count("still losing the race"), b.Log.Count("still losing the race"))
}

// TestRedisFault36StoreWentBack makes Redis really go back in time: with
// RDB only, SAVE at version K, edit on to K+M, kill -9 Redis and restart it
// from the snapshot, so its head is K while both instances served K+M.
// The instances still hold the lost ops and must write them back (on their
// head poll, or — with polling and reconnect catch-up off — on the next
// edit, whose append is refused as stale) rather than give versions K+1… to
// new ops: afterwards the log is dense, holds exactly the ops clients were
// shown at each version, and every marker is there once. When the lost ops
// are beyond what memory holds (a tiny log window), edits are refused with
// unavailable and nothing is appended: the store stays at K instead of
// forking.
func TestRedisFault36StoreWentBack(t *testing.T) {
	cases := []struct {
		name   string
		cfg    rfConfig
		beyond bool
	}{
		{"poll", rfConfig{}, false},
		{"next-edit", rfConfig{Doc: doc.Config{PollInterval: time.Hour}, NoReconnectCatchUp: true}, false},
		{"beyond-memory", rfConfig{Doc: doc.Config{LogWindow: 2}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.StartServer(t) // no AOF, no automatic RDB: only SAVE persists
			prefix := redistest.Prefix(t)
			summit := "seoul-2013"
			a := rfStart(t, srv.URL(), prefix, "a", tc.cfg)
			b := rfStart(t, srv.URL(), prefix, "b", tc.cfg)
			toks := rfSetup(t, &a.Endpoint, summit, "KOR", "GBR")
			ca := rfConnect(t, &a.Endpoint, summit, toks[0], "ca")
			cb := rfConnect(t, &b.Endpoint, summit, toks[1], "cb")
			clients := []*rfClient{ca, cb}
			r := mrand.New(mrand.NewPCG(36, 1))
			markers := rfRandomEdits(t, r, clients, 12, nil)
			rfSettleAll(t, clients, 10*time.Second)
			atK := rfConverge(t, summit, rfEndpoints(a, b), clients)
			if err := a.Store.Client().Do(context.Background(), "SAVE").Err(); err != nil {
				t.Fatalf("SAVE: %v", err)
			}
			markers = rfRandomEdits(t, r, clients, 16, markers)
			rfSettleAll(t, clients, 10*time.Second)
			atKM := rfConverge(t, summit, rfEndpoints(a, b), clients)
			if atKM.Version < atK.Version+8 {
				t.Fatalf("only %d ops after the snapshot", atKM.Version-atK.Version)
			}

			srv.Restart() // SIGKILL, then start from dump.rdb
			key := store.StreamKey{Summit: summit, Doc: rfDoc, Stream: store.Draft}
			if tc.name != "poll" { // (the poll may already have repaired it)
				head, err := a.Store.Head(context.Background(), key)
				for i := 0; err != nil && i < 50; i++ { // the store's connections are re-dialled
					time.Sleep(20 * time.Millisecond)
					head, err = a.Store.Head(context.Background(), key)
				}
				if err != nil || head != atK.Version {
					t.Fatalf("after the restart Redis has head %d (%v); want the snapshot's %d", head, err, atK.Version)
				}
			}

			if tc.beyond {
				// Memory holds at most 4 ops; 8 or more were lost.
				for _, c := range clients {
					before, acks := c.errs["unavailable"], c.acks
					rfRandomEdits(t, r, []*rfClient{c}, 1, nil)
					deadline := time.Now().Add(20 * time.Second)
					for c.errs["unavailable"] == before {
						if err := c.pump(20 * time.Millisecond); err != nil {
							t.Fatal(err)
						}
						if c.acks != acks {
							t.Fatalf("client %s: an edit was acknowledged on a store that lost ops no instance holds", c.Src)
						}
						if time.Now().After(deadline) {
							t.Fatalf("client %s: no unavailable error within 20 s", c.Src)
						}
					}
				}
				time.Sleep(1500 * time.Millisecond) // a head poll or two on each instance
				head, err := a.Store.Head(context.Background(), key)
				if err != nil || head != atK.Version {
					t.Fatalf("store head %d (%v) after refused edits; want it left at %d", head, err, atK.Version)
				}
				for _, e := range rfEndpoints(a, b) {
					d := e.GetDoc(t, summit, rfDoc, servertest.AdminToken)
					if d.Draft.Version != atKM.Version || d.Draft.Text != atKM.Text {
						t.Errorf("an instance serves %d %q; want what it served, %d", d.Draft.Version, d.Draft.Text, atKM.Version)
					}
				}
				for _, c := range clients {
					if len(c.forks) > 0 || uint64(len(c.seen)) != atKM.Version {
						t.Errorf("client %s: shown %d versions, forks %v", c.Src, len(c.seen), c.forks)
					}
				}
				if a.Log.Count("beyond what memory holds")+b.Log.Count("beyond what memory holds") == 0 {
					t.Errorf("no instance said the store lost ops beyond its memory")
				}
				return
			}

			// The next edit (on a) must land after K+M, not at K+1. Then
			// one on b: without polling (next-edit) b learns a's op only
			// from the bus, whose message may have gone out while b was
			// resubscribing after the restart; b's own append is then
			// refused as stale and b reads the log.
			markers = rfRandomEdits(t, r, []*rfClient{ca}, 1, markers)
			if err := ca.settle(15 * time.Second); err != nil {
				t.Fatal(err)
			}
			markers = rfRandomEdits(t, r, []*rfClient{cb}, 1, markers)
			rfSettleAll(t, clients, 15*time.Second)
			served := rfConverge(t, summit, rfEndpoints(a, b), clients)
			if served.Version != atKM.Version+2 {
				t.Fatalf("served version %d after two edits; want %d", served.Version, atKM.Version+2)
			}
			rfCheck(t, srv.URL(), prefix, summit, served, clients, markers)
			if a.Log.Count("writing back the missing ops")+b.Log.Count("writing back the missing ops") == 0 {
				t.Errorf("no instance wrote back the ops the store lost")
			}
			if tc.name == "next-edit" && a.Log.Count("writing back the missing ops") == 0 {
				t.Errorf("instance a did not write back the lost ops on the edit's conflict")
			}
		})
	}
}

// TestRedisFault37InstanceKilled runs two real binaries over one Redis,
// writers on instance A and a follower on B, kills A with SIGKILL while the
// writers type, and moves the writers to B: each reconnects with since and
// resends its op in flight. Nothing A acknowledged is lost, nothing is
// applied twice (every marker once, dense log, no repeated (src, seq)), and
// the follower on B was shown every op in order.
func TestRedisFault37InstanceKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	url := redistest.URL(t)
	summit := rfSummitID() // the binary uses the default key prefix
	bin := servertest.BuildBinary(t)
	pa := servertest.StartProcess(t, bin, t.TempDir(), "127.0.0.1:0", "--redis", url)
	pb := servertest.StartProcess(t, bin, t.TempDir(), "127.0.0.1:0", "--redis", url)
	toks := rfSetup(t, &pa.Endpoint, summit, "KOR", "GBR", "HUN", "KEN")
	var writers []*rfClient
	for i := 0; i < 3; i++ {
		writers = append(writers, rfConnect(t, &pa.Endpoint, summit, toks[i], fmt.Sprintf("w%d", i)))
	}
	follower := rfConnect(t, &pb.Endpoint, summit, toks[3], "fb")

	stop := make(chan struct{}) // for the follower
	var wg, wgW sync.WaitGroup
	errs := make([]error, 4)
	got := make([][]string, 3)
	for i, w := range writers {
		wgW.Add(1)
		go func() {
			defer wgW.Done()
			// 40 ops a second at most: under the binary's rate limit. It
			// returns when A is gone (the connection drops).
			got[i], errs[i] = w.typeUntil(mrand.New(mrand.NewPCG(37, uint64(i))), nil, 25*time.Millisecond, true)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if errs[3] = follower.pump(10 * time.Millisecond); errs[3] != nil || follower.Conn == nil {
				if errs[3] == nil {
					errs[3] = errors.New("the follower on B lost its connection")
				}
				return
			}
		}
	}()
	time.Sleep(1200 * time.Millisecond)
	pa.Kill()
	writersDone := make(chan struct{})
	go func() {
		wgW.Wait()
		close(writersDone)
	}()
	select {
	case <-writersDone:
	case <-time.After(20 * time.Second):
		t.Fatal("writers did not notice instance A's death")
	}
	close(stop)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var markers []string
	ackedByA := 0
	for i, w := range writers {
		markers = append(markers, got[i]...)
		ackedByA += len(w.Acked)
		w.MoveTo(&pb.Endpoint)
		if err := w.Reconnect(); err != nil {
			t.Fatalf("writer %s reconnecting to B: %v", w.Src, err)
		}
	}
	if ackedByA < 15 {
		t.Fatalf("A acknowledged only %d ops before it died; the test proves little", ackedByA)
	}
	r := mrand.New(mrand.NewPCG(37, 99))
	for i := 0; i < 12; i++ {
		markers = rfRandomEdits(t, r, writers, 1, markers)
		time.Sleep(25 * time.Millisecond) // the rate limit
	}
	rfSettleAll(t, writers, 20*time.Second)
	clients := append(writers, follower)
	served := rfConverge(t, summit, []*servertest.Endpoint{&pb.Endpoint}, clients)
	recs := rfCheck(t, url, "cq", summit, served, clients, markers)
	if uint64(len(follower.seen)) != served.Version {
		t.Errorf("the follower on B was shown %d ops; want all %d", len(follower.seen), served.Version)
	}
	t.Logf("%d ops logged, %d acknowledged by A before SIGKILL", len(recs), ackedByA)
}

// rfGateStore is a store whose appends a test can hold, fail, or precede
// with another instance's write.
type rfGateStore struct {
	store.Store
	mu   sync.Mutex
	hook func(a store.Append) error // nil error: the append goes through
}

func (g *rfGateStore) Append(ctx context.Context, a store.Append) error {
	g.mu.Lock()
	h := g.hook
	g.mu.Unlock()
	if h != nil && len(a.Records) > 0 {
		if err := h(a); err != nil {
			return err
		}
	}
	return g.Store.Append(ctx, a)
}

func (g *rfGateStore) set(h func(store.Append) error) {
	g.mu.Lock()
	g.hook = h
	g.mu.Unlock()
}

// rfGated starts a single server over a gated embedded store and opens a
// raw draft socket on the document.
func rfGated(t *testing.T) (*servertest.Server, *rfGateStore, *servertest.Conn) {
	t.Helper()
	st, err := bolt.Open(t.TempDir(), bolt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &rfGateStore{Store: st}
	s := servertest.Start(t, servertest.Options{Store: g})
	tok := rfSetup(t, &s.Endpoint, "seoul-2013", "KOR")[0]
	conn, _, err := s.Dial("seoul-2013", rfDoc, tok, url.Values{"stream": {"draft"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	conn.Expect(t, "hello")
	return s, g, conn
}

func rfOpMsg(base uint64, op ot.Op, src string, seq uint64) map[string]any {
	return map[string]any{"type": "op", "version": base, "op": op, "src": src, "seq": seq}
}

// rfQueueWhileHeld sends frames while the session is held in an append,
// then a ping: its pong proves the socket's reader has handed every frame
// before it to the session (the reader handles frames in order), so they
// are all waiting in its inbox and are taken as one batch.
func rfQueueWhileHeld(t *testing.T, conn *servertest.Conn, frames ...any) {
	t.Helper()
	for _, f := range append(frames, map[string]string{"type": "ping"}) {
		if err := conn.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	conn.Expect(t, "pong")
}

// TestRedisFault33ResendOfRefusedOpNotAcked: an op and two resends of it
// (same src and seq, as a client resends while waiting) reach a session
// whose store refuses the commit. The resends are in one batch with the
// op's second attempt, where they are recognised as resends of it; since
// that commit fails too, they must be refused like it, not acknowledged
// with the version the failed commit would have given (an ack for an op
// that was never stored — found by TestRedisFault33DownLater/kill).
func TestRedisFault33ResendOfRefusedOpNotAcked(t *testing.T) {
	s, g, conn := rfGated(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	g.set(func(store.Append) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return fmt.Errorf("test: Redis is away: %w", store.ErrUnavailable)
	})
	op := ot.Op{}.Insert("«kor:1»").Retain(ot.NewText(rfInitial).Len())
	if err := conn.Send(rfOpMsg(0, op, "kor", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the op never reached the store")
	}
	rfQueueWhileHeld(t, conn, rfOpMsg(0, op, "kor", 1), rfOpMsg(0, op, "kor", 1))
	close(release)
	for i := 0; i < 3; i++ {
		f, err := conn.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		if f.Type != "error" || f.Code != "unavailable" || f.Seq != 1 {
			t.Fatalf("answer %d to an op the store refused: %s; want an unavailable error", i+1, f.Raw)
		}
	}
	g.set(nil) // the store is back: the resend is applied once
	if err := conn.Send(rfOpMsg(0, op, "kor", 1)); err != nil {
		t.Fatal(err)
	}
	if f := conn.Expect(t, "ack"); f.Version != 1 {
		t.Fatalf("ack %s; want version 1", f.Raw)
	}
	d := s.GetDoc(t, "seoul-2013", rfDoc, servertest.AdminToken)
	if d.Draft.Version != 1 || strings.Count(d.Draft.Text, "«kor:1»") != 1 {
		t.Fatalf("draft %d %q", d.Draft.Version, d.Draft.Text)
	}
}

// TestRedisFault35ResendRedoneAfterConflict: an op and a resend of it are
// in one batch; another instance appends first, so the batch is redone on
// top of its op (FAULTS 35). Both answers must carry the version the op
// got in the redo, not the one it had before (which the other instance's
// op now holds).
func TestRedisFault35ResendRedoneAfterConflict(t *testing.T) {
	s, g, conn := rfGated(t)
	n := ot.NewText(rfInitial).Len()
	key := store.StreamKey{Summit: "seoul-2013", Doc: rfDoc, Stream: store.Draft}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	calls := 0
	g.set(func(a store.Append) error {
		calls++
		switch calls {
		case 1: // hold the first batch while the next one queues up
			entered <- struct{}{}
			<-release
		case 2: // another instance takes version 2 first
			other := ot.Op{}.Insert("«gbr:1»").Retain(n + 7)
			err := g.Store.Append(context.Background(), store.Append{Key: key, Records: []store.OpRecord{
				{Version: 2, Op: other, Author: "GBR", Src: "gbr", Seq: 1, Time: time.Now()},
			}})
			if err != nil {
				t.Errorf("the other instance's append: %v", err)
			}
		}
		return nil
	})
	if err := conn.Send(rfOpMsg(0, ot.Op{}.Retain(n).Insert("«kor:1»"), "kor", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the op never reached the store")
	}
	op2 := ot.Op{}.Retain(n + 7).Insert("«kor:2»")
	rfQueueWhileHeld(t, conn, rfOpMsg(1, op2, "kor", 2), rfOpMsg(1, op2, "kor", 2))
	close(release)
	want := []string{"ack 1 1", "op 2 gbr/1", "ack 2 3", "ack 2 3"}
	for _, w := range want {
		f, err := conn.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %q: %v", w, err)
		}
		var got string
		if f.Type == "op" {
			got = fmt.Sprintf("op %d %s/%d", f.Version, f.Src, f.Seq)
		} else {
			got = fmt.Sprintf("%s %d %d", f.Type, f.Seq, f.Version)
		}
		if got != w {
			t.Fatalf("got %q (%s); want %q", got, f.Raw, w)
		}
	}
	d := s.GetDoc(t, "seoul-2013", rfDoc, servertest.AdminToken)
	if d.Draft.Version != 3 || strings.Count(d.Draft.Text, "«kor:2»") != 1 {
		t.Fatalf("draft %d %q", d.Draft.Version, d.Draft.Text)
	}
}

// TestRedisFault35RetriesBounded: another instance wins every race for the
// next version (it appends just before each attempt of this one). The
// session takes in its op and redoes the batch a bounded number of times
// (1 + 8 attempts), then answers with a clear unavailable error instead of
// trying forever; the client's resend succeeds once the contention stops,
// on top of everything the winner wrote.
func TestRedisFault35RetriesBounded(t *testing.T) {
	s, g, conn := rfGated(t)
	key := store.StreamKey{Summit: "seoul-2013", Doc: rfDoc, Stream: store.Draft}
	attempts := 0
	g.set(func(a store.Append) error {
		attempts++
		v := a.Records[0].Version
		text := rfInitial
		recs, err := g.Store.Since(context.Background(), key, 0, 0)
		if err != nil {
			return err
		}
		for _, r := range recs {
			text, _ = ot.Apply(text, r.Op)
		}
		other := ot.Op{}.Insert(fmt.Sprintf("«gbr:%d»", v)).Retain(ot.NewText(text).Len())
		if err := g.Store.Append(context.Background(), store.Append{Key: key, Records: []store.OpRecord{
			{Version: v, Op: other, Author: "GBR", Src: "gbr", Seq: v, Time: time.Now()},
		}}); err != nil {
			t.Errorf("the other instance's append at %d: %v", v, err)
		}
		return nil
	})
	op := ot.Op{}.Retain(ot.NewText(rfInitial).Len()).Insert("«kor:1»")
	if err := conn.Send(rfOpMsg(0, op, "kor", 1)); err != nil {
		t.Fatal(err)
	}
	var last servertest.Frame
	for {
		f, err := conn.Next(20 * time.Second)
		if err != nil {
			t.Fatalf("no answer (a hang?): %v", err)
		}
		if f.Type == "op" {
			continue // the winner's ops, taken in at each retry
		}
		last = f
		break
	}
	if last.Type != "error" || last.Code != "unavailable" || !strings.Contains(last.Message, "losing the race") {
		t.Fatalf("answer after losing every race: %s; want unavailable (still losing the race)", last.Raw)
	}
	if attempts != 9 {
		t.Errorf("%d attempts; want 9 (the first and 8 retries)", attempts)
	}
	g.set(nil)
	if err := conn.Send(rfOpMsg(0, op, "kor", 1)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := conn.Next(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "ack" {
			if f.Version != 10 {
				t.Fatalf("ack %s; want version 10, after the winner's 9 ops", f.Raw)
			}
			break
		}
		if f.Type != "op" {
			t.Fatalf("unexpected %s", f.Raw)
		}
	}
	d := s.GetDoc(t, "seoul-2013", rfDoc, servertest.AdminToken)
	if d.Draft.Version != 10 || strings.Count(d.Draft.Text, "«kor:1»") != 1 || strings.Count(d.Draft.Text, "«gbr:") != 9 {
		t.Fatalf("draft %d %q", d.Draft.Version, d.Draft.Text)
	}
}

// TestRedisRevokedTokenOnBothInstances: instances cache resolved tokens
// (auth.Options), so a revocation on one must reach the other over the
// bus: the token's socket there is closed with 1008 and its next request
// there is 401, although that instance had the token cached.
func TestRedisRevokedTokenOnBothInstances(t *testing.T) {
	srv := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	summit := "seoul-2013"
	a := rfStart(t, srv.URL(), prefix, "a", rfConfig{})
	b := rfStart(t, srv.URL(), prefix, "b", rfConfig{})
	rfSetup(t, &a.Endpoint, summit)
	id, secret := a.TokenWithID(t, summit, "delegate", "FRA")
	docPath := "/api/summits/" + summit + "/docs/" + rfDoc
	b.MustDo(t, http.StatusOK, "GET", docPath, secret, nil) // cached on b now
	conn, _, err := b.Dial(summit, rfDoc, secret, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Expect(t, "hello")

	a.MustDo(t, http.StatusNoContent, "DELETE", "/api/summits/"+summit+"/tokens/"+id, servertest.AdminToken, nil)
	for {
		_, err := conn.Next(10 * time.Second)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != websocket.ClosePolicyViolation {
				t.Errorf("socket on b closed with %d; want 1008", ce.Code)
			}
			break
		}
		if err != nil {
			t.Fatalf("socket on b: %v; want a close frame", err)
		}
	}
	// The kick and the cache both act on the same bus message, the cache
	// first: once the socket is closed, b refuses the token.
	for _, e := range []*servertest.Endpoint{&a.Endpoint, &b.Endpoint} {
		if r := e.Do(t, "GET", docPath, secret, nil); r.Status != http.StatusUnauthorized {
			t.Errorf("GET on %s after the revocation: %d; want 401", e.Addr, r.Status)
		}
	}
}

// mutableBus is instance b's bus in TestRedisPresenceOfSilentInstance and
// TestRedisAdoptRacesEdit: muted, b publishes nothing, as a crashed or
// cut-off instance; deaf, it hears nothing.
type mutableBus struct {
	doc.Bus
	muted, deaf atomic.Bool
}

func (m *mutableBus) Subscribe(topic string, fn func(msg []byte)) func() {
	return m.Bus.Subscribe(topic, func(msg []byte) {
		if !m.deaf.Load() {
			fn(msg)
		}
	})
}

// rfStartMutable starts an instance like rfStart, on a mutableBus.
func rfStartMutable(t *testing.T, url, prefix, name string, cfg rfConfig) (*servertest.Server, *mutableBus) {
	t.Helper()
	st, err := redisstore.Open(context.Background(), url, redisstore.Options{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	inner := busredis.New(st.Client(), st.Prefix(), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { inner.Close(); st.Close() })
	bus := &mutableBus{Bus: inner}
	return servertest.Start(t, servertest.Options{Store: st, Bus: bus, Instance: name, Doc: cfg.Doc}), bus
}

func (m *mutableBus) Publish(ctx context.Context, topic string, msg []byte) error {
	if m.muted.Load() {
		return nil
	}
	return m.Bus.Publish(ctx, topic, msg)
}

// TestRedisPresenceOfSilentInstance: a drafter on instance b is shown on
// instance a; when b falls silent (it died, or its link to Redis did) a
// expires b's drafters within the expiry (35 poll intervals) and tells its
// clients they left; when b is heard again, its heartbeat brings them
// back.
func TestRedisPresenceOfSilentInstance(t *testing.T) {
	srv := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	summit := "seoul-2013"
	// Heartbeats every second, expiry after 3.5 s: short for a test, long
	// enough that a loaded machine does not expire a live instance.
	fast := rfConfig{Doc: doc.Config{PollInterval: 100 * time.Millisecond}}
	a := rfStart(t, srv.URL(), prefix, "a", fast)

	b, bus := rfStartMutable(t, srv.URL(), prefix, "b", fast)

	toks := rfSetup(t, &a.Endpoint, summit, "KOR")
	obs := a.Token(t, summit, "observer", "")
	watch, _, err := a.Dial(summit, rfDoc, obs, url.Values{"stream": {"approved"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	watch.Expect(t, "hello")
	drafter, _, err := b.Dial(summit, rfDoc, toks[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer drafter.Close()
	h := drafter.Expect(t, "hello")
	if err := drafter.Send(map[string]any{"type": "presence", "version": h.Version, "cursor": nil}); err != nil {
		t.Fatal(err)
	}
	next := func(event string) {
		t.Helper()
		f, err := watch.Next(10 * time.Second)
		if err != nil || f.Type != "presence" || f.Event != event || !strings.Contains(string(f.Raw), h.Client) {
			t.Fatalf("observer on a got %s (%v); want the %s of %s", f.Raw, err, event, h.Client)
		}
	}
	next("join")

	bus.muted.Store(true)
	next("leave") // expired: b is silent
	bus.muted.Store(false)
	next("join") // b's heartbeat
	late, _, err := a.Dial(summit, rfDoc, toks[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if hello := late.Expect(t, "hello"); !strings.Contains(string(hello.Raw), h.Client) {
		t.Errorf("a's hello %s does not list b's drafter %s", hello.Raw, h.Client)
	}
}

// TestRedisAdoptRacesEdit: adoption on one instance and an edit committed
// on another are serialised by the store. An edit b committed that a has
// not heard of yet makes a's adoption fail with 409 conflict (and a then
// shows it as pending); once nothing is pending a adopts, and an edit that
// b, not having heard of it, tries to commit is refused with "adopted" —
// the draft stays as adopted and b's clients are told.
func TestRedisAdoptRacesEdit(t *testing.T) {
	srv := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	summit := "seoul-2013"
	// No polling: a hears of b's edits only through the bus, which the
	// test controls.
	quiet := rfConfig{Doc: doc.Config{PollInterval: time.Hour}, NoReconnectCatchUp: true}
	a := rfStart(t, srv.URL(), prefix, "a", quiet)
	b, bus := rfStartMutable(t, srv.URL(), prefix, "b", quiet)

	toks := rfSetup(t, &a.Endpoint, summit, "KOR")
	chair := a.Token(t, summit, "chair", "")
	P := "/api/summits/" + summit + "/docs/" + rfDoc
	a.MustDo(t, http.StatusOK, "GET", P+"/changes", chair, nil) // a's session is open

	kor, _, err := b.Dial(summit, rfDoc, toks[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kor.Close()
	h := kor.Expect(t, "hello")
	sawAdopted := false
	edit := func(seq uint64, base uint64) servertest.Frame {
		t.Helper()
		if err := kor.Send(map[string]any{"type": "op", "version": base, "op": []any{"¶ ", len([]rune(rfInitial))}, "src": "kor", "seq": seq}); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := kor.Next(10 * time.Second)
			if err != nil {
				t.Fatalf("waiting for the answer to op %d: %v", seq, err)
			}
			sawAdopted = sawAdopted || f.Type == "adopted"
			if f.Type == "ack" || f.Type == "error" {
				return f
			}
		}
	}

	// 1. b commits an edit a does not hear of; a's adoption must fail.
	bus.muted.Store(true)
	if f := edit(1, h.Version); f.Type != "ack" {
		t.Fatalf("edit on b: %s; want an ack", f.Raw)
	}
	r := a.Do(t, "POST", P+"/adopt", chair, map[string]any{"name": "final"})
	if r.Status != http.StatusConflict || r.ErrorCode() != "conflict" {
		t.Fatalf("adopt on a over an edit it had not seen: %d %s; want 409 conflict", r.Status, r.Body)
	}
	var ch struct {
		Changes []struct{ ID string } `json:"changes"`
	}
	a.MustDo(t, http.StatusOK, "GET", P+"/changes", chair, nil).JSON(t, &ch)
	if len(ch.Changes) != 1 {
		t.Fatalf("a lists %d pending changes after the refused adoption; want b's edit", len(ch.Changes))
	}
	bus.muted.Store(false)

	// 2. Nothing pending: a adopts while b hears nothing; b's next edit is
	// refused by the store.
	a.MustDo(t, http.StatusOK, "POST", P+"/changes/"+ch.Changes[0].ID+"/reject", chair, nil)
	before := a.GetDoc(t, summit, rfDoc, chair)
	bus.deaf.Store(true)
	a.MustDo(t, http.StatusOK, "POST", P+"/adopt", chair, map[string]any{"name": "final"})
	f := edit(2, before.Draft.Version)
	if f.Type != "error" || f.Code != "adopted" {
		t.Fatalf("edit on b after the adoption on a: %s; want error adopted", f.Raw)
	}
	after := a.GetDoc(t, summit, rfDoc, chair)
	if after.Draft.Version != before.Draft.Version || after.Draft.Text != before.Draft.Text {
		t.Errorf("draft after the refused edit: %d %q; want the adopted %d %q", after.Draft.Version, after.Draft.Text, before.Draft.Version, before.Draft.Text)
	}
	if !sawAdopted {
		if f, err := kor.Next(10 * time.Second); err != nil || f.Type != "adopted" {
			t.Errorf("b's client got %s (%v); want the adopted notice", f.Raw, err)
		}
	}
}
