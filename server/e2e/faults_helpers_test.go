package e2e

// Helpers shared by the faults_*_test.go files (FAULTS.md). Every name here
// starts with "fault" or "flt" so it cannot collide with the helpers of the
// other e2e files, which share the package.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"communique/server/doc"
	"communique/server/servertest"
	"communique/server/ws"
)

// fltWait bounds every wait for an event. It is a deadline for something
// that must happen, never a claim about how fast it happens.
const fltWait = 10 * time.Second

// faultOptions are small limits, so that the limit cases are cheap to reach.
func faultOptions() servertest.Options {
	return servertest.Options{
		WS: ws.Config{
			MaxFrameBytes: 64 << 10,
			SendQueue:     16,
			OpsPerSecond:  20,
			OpsBurst:      5,
			// PongWait stays at its default except in TestFaultSilentClient:
			// on a loaded 2-core machine under -race, a healthy client's
			// pong can be late by more than a short wait.
		},
		Doc:          doc.Config{MaxDocRunes: 1000},
		MaxBodyBytes: 1 << 20,
	}
}

// faultEnv is one server with a summit, a document and a token of every
// role, plus tokens of a second summit.
type faultEnv struct {
	s       *servertest.Server
	summit  string
	doc     string
	initial string

	chair, kor, gbr, obs string // secrets in summit
	otherChair, otherKor string // secrets in the other summit
	other                string // the other summit's id
}

const (
	fltSummit = "seoul-2013"
	fltDoc    = "chair-summary"
	fltOther  = "bletchley-2023"
	fltText   = "Seoul 2013" // 10 code points
)

func newFaultEnv(t *testing.T, opts servertest.Options) *faultEnv {
	t.Helper()
	s := servertest.Start(t, opts)
	e := &faultEnv{s: s, summit: fltSummit, doc: fltDoc, initial: fltText, other: fltOther}
	s.Summit(t, e.summit)
	s.Summit(t, e.other)
	s.Doc(t, e.summit, e.doc, e.initial)
	s.Doc(t, e.other, e.doc, "Bletchley 2023")
	e.chair = s.Token(t, e.summit, "chair", "")
	e.kor = s.Token(t, e.summit, "delegate", "KOR")
	e.gbr = s.Token(t, e.summit, "delegate", "GBR")
	e.obs = s.Token(t, e.summit, "observer", "")
	e.otherChair = s.Token(t, e.other, "chair", "")
	e.otherKor = s.Token(t, e.other, "delegate", "KOR")
	return e
}

// docPath is the HTTP path of a document of the env's summit.
func (e *faultEnv) docPath(d string) string {
	return "/api/summits/" + e.summit + "/docs/" + d
}

// get is the document as the chair sees it (both streams).
func (e *faultEnv) get(t *testing.T, d string) servertest.DocState {
	t.Helper()
	return e.s.GetDoc(t, e.summit, d, e.chair)
}

// fltUnchanged fails unless the document's streams are exactly as before.
func fltUnchanged(t *testing.T, e *faultEnv, d string, before servertest.DocState) {
	t.Helper()
	now := e.get(t, d)
	if now.Draft == nil || before.Draft == nil {
		t.Fatalf("draft missing: before %+v, now %+v", before.Draft, now.Draft)
	}
	if *now.Draft != *before.Draft {
		t.Errorf("draft = %+v; want unchanged %+v", *now.Draft, *before.Draft)
	}
	if now.Approved != before.Approved {
		t.Errorf("approved = %+v; want unchanged %+v", now.Approved, before.Approved)
	}
}

// fltDial opens a socket and reads its hello, failing the test otherwise.
func fltDial(t *testing.T, e *faultEnv, d, token string, q url.Values) (*servertest.Conn, servertest.Frame) {
	t.Helper()
	c, resp, err := e.s.Dial(e.summit, d, token, q, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: status %d: %v", d, status, err)
	}
	t.Cleanup(c.Close)
	h := c.Expect(t, "hello")
	return c, h
}

// fltNext is the next frame that is not presence (joins and leaves of other
// test connections are not what these tests look at).
func fltNext(c *servertest.Conn, timeout time.Duration) (servertest.Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.Next(time.Until(deadline))
		if err != nil || f.Type != "presence" {
			return f, err
		}
	}
}

// fltExpect is fltNext that fails the test unless the frame has type typ.
func fltExpect(t *testing.T, c *servertest.Conn, typ string) servertest.Frame {
	t.Helper()
	f, err := fltNext(c, fltWait)
	if err != nil {
		t.Fatalf("waiting for %q: %v", typ, err)
	}
	if f.Type != typ {
		t.Fatalf("got frame %s; want type %q", f.Raw, typ)
	}
	return f
}

// fltQuiet proves that c has received nothing but presence since its last
// frame: it sends a ping and the next other frame must be the pong. Call it
// after the input under test was answered on its own socket: the session
// broadcasts an applied op before it answers the sender, so a broadcast
// caused by that input would already be queued ahead of the pong.
func fltQuiet(t *testing.T, c *servertest.Conn) {
	t.Helper()
	if err := c.Send(`{"type":"ping"}`); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if f := fltExpect(t, c, "pong"); f.Type != "pong" {
		t.Fatalf("got %s; want pong", f.Raw)
	}
}

// fltOpMsg is an op message.
func fltOpMsg(version uint64, op any, src string, seq uint64) map[string]any {
	return map[string]any{"type": "op", "version": version, "op": op, "src": src, "seq": seq}
}

// fltCloseCode waits for c to be closed and returns the close code the
// server sent, or -1 when it closed without a close frame.
func fltCloseCode(t *testing.T, c *servertest.Conn) int {
	t.Helper()
	deadline := time.Now().Add(fltWait)
	for {
		_, err := c.Next(time.Until(deadline))
		if errors.Is(err, servertest.ErrTimeout) {
			t.Fatalf("socket still open after %v", fltWait)
		}
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		}
	}
}

// fltHTTP sends a request without following redirects (a redirect is an
// answer of its own here), with target as it is: escapes like %2F stay
// escaped on the wire.
func fltHTTP(t *testing.T, base, method, target, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+target, body)
	if err != nil {
		t.Fatalf("request %s %q: %v", method, target, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       fltWait,
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %q: read body: %v", method, target, err)
	}
	return resp.StatusCode, data
}

// fltErrorBody checks that body is the protocol's JSON error with code.
func fltErrorBody(t *testing.T, body []byte, code string) {
	t.Helper()
	r := servertest.Response{Body: body}
	if got := r.ErrorCode(); got != code {
		t.Errorf("error code = %q (body %s); want %q", got, bytes.TrimSpace(body), code)
	}
}

// fltStillLive proves that watch still receives edits: the chair appends a
// character on a socket of its own, and watch's next frame (presence
// aside) must be that op at the next version.
func fltStillLive(t *testing.T, e *faultEnv, watch *servertest.Conn) {
	t.Helper()
	c, h := fltDial(t, e, e.doc, e.chair, nil)
	defer c.Close()
	n := len([]rune(*h.Text))
	if err := c.Send(fltOpMsg(h.Version, []any{n, "."}, "live-check", h.Version+1)); err != nil {
		t.Fatal(err)
	}
	if a := fltExpect(t, c, "ack"); a.Version != h.Version+1 {
		t.Fatalf("chair's op: got %s; want ack at %d", a.Raw, h.Version+1)
	}
	if f := fltExpect(t, watch, "op"); f.Version != h.Version+1 || f.Author != "chair" {
		t.Fatalf("watcher got %s; want the chair's op at %d", f.Raw, h.Version+1)
	}
}
