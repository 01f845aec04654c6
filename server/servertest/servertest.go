// Package servertest starts real Communiqué servers for tests — in process
// on a 127.0.0.1 listener over a real data folder — and drives them over
// HTTP and real WebSockets.
package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"communique/server"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/store/bolt"
	"communique/server/ws"
)

// AdminToken is the admin token of every test server.
const AdminToken = "test-admin-token"

// Options adjust a test server.
type Options struct {
	Doc            doc.Config
	WS             ws.Config
	AllowedOrigins []string
	Dir            string // data folder; a fresh t.TempDir() when empty
	Bolt           bolt.Options
	Log            *slog.Logger // default: discard, or stderr when COMMUNIQUE_TEST_LOG=1
	// Store, when set, is used instead of a store of the server's own (and
	// not closed by Stop): two servers over one store and a Bus behave as
	// two instances of a deployment.
	Store    store.Store
	Bus      doc.Bus
	Instance string
	// MaxBodyBytes and ReadHeaderTimeout are server.Config's; zero keeps
	// the server's defaults. Tests set them small to stay fast.
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	SecureCookies     bool
}

// Endpoint is a server's address, with helpers to call it over HTTP and
// WebSocket. It may be an in-process Server or a separate Process.
type Endpoint struct {
	Addr string // host:port
	URL  string // http://host:port
}

// Server is a running in-process server.
type Server struct {
	Endpoint
	t      testing.TB
	opts   Options
	Dir    string
	Store  *bolt.Store // the server's own store; nil when Options.Store is set
	Data   store.Store // the store the server uses
	Srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

// Start starts a server; it is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Log == nil {
		if os.Getenv("COMMUNIQUE_TEST_LOG") == "1" {
			opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			opts.Log = slog.New(slog.DiscardHandler)
		}
	}
	if opts.Bolt.Logger == nil {
		opts.Bolt.Logger = opts.Log
	}
	s := &Server{t: t, opts: opts, Dir: opts.Dir}
	s.start(t, "127.0.0.1:0")
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) start(t testing.TB, addr string) {
	t.Helper()
	var st store.Store = s.opts.Store
	s.Store = nil
	if st == nil {
		b, err := bolt.Open(s.Dir, s.opts.Bolt)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		st, s.Store = b, b
	}
	srv, err := server.New(server.Config{
		AdminToken:        AdminToken,
		AllowedOrigins:    s.opts.AllowedOrigins,
		MaxBodyBytes:      s.opts.MaxBodyBytes,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		Doc:               s.opts.Doc,
		WS:                s.opts.WS,
		Log:               s.opts.Log,
		Bus:               s.opts.Bus,
		Instance:          s.opts.Instance,
		SecureCookies:     s.opts.SecureCookies,
	}, st)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Data, s.Srv, s.cancel = st, srv, cancel
	s.Addr = ln.Addr().String()
	s.URL = "http://" + s.Addr
	s.done = make(chan error, 1)
	go func() { s.done <- srv.Serve(ctx, ln) }()
}

// Stop shuts the server down gracefully and closes its store. It is safe to
// call more than once.
func (s *Server) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("server stopped with: %v", err)
	}
	if s.opts.Store == nil {
		if err := s.Store.Close(); err != nil {
			s.t.Errorf("close store: %v", err)
		}
	}
	s.cancel = nil
}

// Restart stops the server and starts a new one on the same data folder and
// address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	addr := s.Addr
	s.Stop()
	s.start(t, addr)
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Body   []byte
}

// JSON decodes the body into v or fails the test.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// ErrorCode is the code of a protocol error body, or "".
func (r Response) ErrorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// Do sends a request with token as bearer (none when empty). body is sent
// as JSON unless it is a []byte or string, which are sent as they are.
func (s *Endpoint) Do(t testing.TB, method, path, token string, body any) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Body: data}
}

// MustDo is Do that fails the test unless the status is want.
func (s *Endpoint) MustDo(t testing.TB, want int, method, path, token string, body any) Response {
	t.Helper()
	r := s.Do(t, method, path, token, body)
	if r.Status != want {
		t.Fatalf("%s %s: status %d (%s); want %d", method, path, r.Status, r.Body, want)
	}
	return r
}

// Summit creates a summit.
func (s *Endpoint) Summit(t testing.TB, id string) {
	t.Helper()
	s.MustDo(t, http.StatusCreated, "POST", "/api/summits", AdminToken, map[string]string{"id": id, "title": "Summit " + id})
}

// Doc creates a document.
func (s *Endpoint) Doc(t testing.TB, summit, id, text string) {
	t.Helper()
	s.MustDo(t, http.StatusCreated, "POST", "/api/summits/"+summit+"/docs", AdminToken,
		map[string]string{"id": id, "title": "Document " + id, "text": text})
}

// Token issues a token and returns its secret. delegation is ignored for
// roles other than delegate.
func (s *Endpoint) Token(t testing.TB, summit, role, delegation string) string {
	t.Helper()
	r := s.MustDo(t, http.StatusCreated, "POST", "/api/summits/"+summit+"/tokens", AdminToken,
		map[string]string{"role": role, "delegation": delegation, "name": role + " " + delegation})
	var out struct{ Token string }
	r.JSON(t, &out)
	return out.Token
}

// TokenWithID issues a token and returns its id and secret.
func (s *Endpoint) TokenWithID(t testing.TB, summit, role, delegation string) (id, secret string) {
	t.Helper()
	r := s.MustDo(t, http.StatusCreated, "POST", "/api/summits/"+summit+"/tokens", AdminToken,
		map[string]string{"role": role, "delegation": delegation})
	var out struct{ ID, Token string }
	r.JSON(t, &out)
	return out.ID, out.Token
}

// DocState is GET …/docs/{d}.
type DocState struct {
	ID       string
	Title    string
	Adopted  bool
	Draft    *StreamState
	Approved StreamState
}

// StreamState is one stream of DocState.
type StreamState struct {
	Version uint64
	Text    string
}

// GetDoc fetches a document with token.
func (s *Endpoint) GetDoc(t testing.TB, summit, id, token string) DocState {
	t.Helper()
	r := s.MustDo(t, http.StatusOK, "GET", "/api/summits/"+summit+"/docs/"+id, token, nil)
	var d DocState
	r.JSON(t, &d)
	return d
}

// WaitHealthy polls /healthz of url until it answers 200 or the deadline.
func WaitHealthy(ctx context.Context, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s not healthy: %w", url, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
