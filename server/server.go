// Package server assembles Communiqué: the HTTP API and WebSocket endpoints
// over document sessions (server/doc), authentication (server/auth) and a
// store (server/store). cmd/communique turns flags into a Config and runs it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"communique/server/auth"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/ws"
)

// Config is everything a Server needs besides its store.
type Config struct {
	AdminToken     string   // the admin token, or
	AdminTokenHash []byte   // its auth.Hash (one of the two is required)
	AllowedOrigins []string // browser origins allowed besides the server's own
	MaxBodyBytes   int64    // HTTP request bodies; default 8 MiB
	// ReadHeaderTimeout cuts clients that send request headers (a socket
	// upgrade included) too slowly; default 10 s.
	ReadHeaderTimeout time.Duration
	Pprof             bool // expose /debug/pprof/ (admin token required)
	// SecureCookies marks the session cookie Secure even on plain HTTP:
	// for a server behind a proxy that terminates TLS.
	SecureCookies bool
	Doc           doc.Config
	WS            ws.Config
	Log           *slog.Logger
	// Bus, when set, links this instance to others sharing the same store
	// (Redis mode): ops, metadata, presence and token revocations travel
	// on it. Instance names this one on the bus (random when empty).
	Bus      doc.Bus
	Instance string
}

// Server is a Communiqué server over one store.
type Server struct {
	cfg     Config
	store   store.Store
	auth    *auth.Authenticator
	docs    *doc.Registry
	ws      *ws.Handler
	metrics *metrics
	// decisionLog remembers what GET …/decisions has read of each log.
	decisionLog decisionLog
	log         *slog.Logger
	handler     http.Handler

	draining    atomic.Bool
	unsubRevoke func()
}

// revokeTopic is the bus topic on which revoked token ids travel.
const revokeTopic = "_tokens/revoked" // ids start with a letter or digit: no document topic can be this

// CatchUp makes every open document read what other instances wrote; call
// it when the bus reconnected and may have lost messages.
func (s *Server) CatchUp() { s.docs.CatchUpAll() }

// New returns a Server over st. The caller keeps ownership of st and closes
// it after Shutdown.
func New(cfg Config, st store.Store) (*Server, error) {
	if cfg.AdminToken != "" {
		cfg.AdminTokenHash = auth.Hash(cfg.AdminToken)
	}
	if len(cfg.AdminTokenHash) == 0 {
		return nil, errors.New("server: an admin token is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, store: st, log: cfg.Log}
	s.metrics = newMetrics()
	var authOpts auth.Options
	if cfg.Bus != nil {
		// Redis mode: tokens are a network round trip away, and must
		// resolve while Redis is briefly unreachable (auth.Options).
		authOpts = auth.Options{CacheTTL: 30 * time.Second, StaleIfUnavailable: 10 * time.Minute}
	}
	s.auth = auth.New(st, cfg.AdminTokenHash, authOpts)
	s.docs = doc.NewRegistry(st, cfg.Doc, cfg.Log, s.metrics.docHooks())
	s.metrics.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "communique_open_documents",
		Help: "Documents currently held in memory.",
	}, func() float64 { return float64(s.docs.Open()) }))
	if cfg.Bus != nil {
		if cfg.Instance == "" {
			cfg.Instance = auth.NewID()
		}
		s.cfg.Instance = cfg.Instance
		s.docs.UseBus(cfg.Bus, cfg.Instance)
	}
	s.ws = ws.NewHandler(cfg.WS, s.docs.Config().MaxDocRunes, cfg.AllowedOrigins, cfg.Log, s.metrics.connCount)
	s.handler = s.routes()
	if cfg.Bus != nil {
		// A token revoked on any instance closes its sockets on all.
		s.unsubRevoke = cfg.Bus.Subscribe(revokeTopic, func(msg []byte) {
			s.auth.Forget(string(msg))
			s.ws.KickToken(string(msg))
		})
	}
	return s, nil
}

// Handler is the server's HTTP handler (API, WebSocket, metrics, health).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		mux.Handle("/debug/pprof/", s.adminOnly(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", s.adminOnly(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/trace", s.adminOnly(http.HandlerFunc(pprof.Trace)))
		mux.Handle("/debug/pprof/symbol", s.adminOnly(http.HandlerFunc(pprof.Symbol)))
	}

	mux.Handle("POST /api/summits", s.api(s.createSummit))
	mux.Handle("GET /api/summits/{s}", s.api(s.getSummit))
	mux.Handle("POST /api/summits/{s}/tokens", s.api(s.createToken))
	mux.Handle("GET /api/summits/{s}/tokens", s.api(s.listTokens))
	mux.Handle("DELETE /api/summits/{s}/tokens/{id}", s.api(s.deleteToken))
	mux.Handle("POST /api/summits/{s}/docs", s.api(s.createDoc))
	mux.Handle("GET /api/summits/{s}/docs", s.api(s.listDocs))
	mux.Handle("GET /api/summits/{s}/docs/{d}", s.api(s.getDoc))
	mux.Handle("PUT /api/summits/{s}/docs/{d}/draft", s.api(s.putDraft))
	mux.Handle("GET /api/summits/{s}/docs/{d}/ws", s.api(s.openSocket))
	mux.Handle("PATCH /api/summits/{s}/docs/{d}", s.api(s.updateDoc))
	mux.Handle("PUT /api/summits/{s}/order", s.api(s.reorder))
	mux.Handle("GET /api/summits/{s}/docs/{d}/changes", s.api(s.listChanges))
	mux.Handle("POST /api/summits/{s}/docs/{d}/changes/{id}/approve", s.api(s.decideOne(true)))
	mux.Handle("POST /api/summits/{s}/docs/{d}/changes/{id}/reject", s.api(s.decideOne(false)))
	mux.Handle("POST /api/summits/{s}/docs/{d}/changes/approve-all", s.api(s.decideAll(true)))
	mux.Handle("POST /api/summits/{s}/docs/{d}/changes/reject-all", s.api(s.decideAll(false)))
	mux.Handle("POST /api/summits/{s}/docs/{d}/adopt", s.api(s.adopt))
	mux.Handle("GET /api/summits/{s}/docs/{d}/history", s.api(s.history))
	mux.Handle("GET /api/summits/{s}/docs/{d}/text", s.api(s.textVersion))
	mux.Handle("GET /api/summits/{s}/docs/{d}/redline", s.api(s.redline))
	mux.Handle("GET /api/summits/{s}/docs/{d}/blame", s.api(s.blame))
	mux.Handle("GET /api/summits/{s}/docs/{d}/decisions", s.api(s.decisions))
	mux.Handle("GET /api/summits/{s}/export", s.api(s.export))
	mux.Handle("POST /api/session", http.HandlerFunc(s.createSession))
	mux.Handle("DELETE /api/session", http.HandlerFunc(s.deleteSession))
	mux.Handle("GET /api/me", s.api(s.me))
	mux.Handle("GET /{$}", s.webPage())
	mux.Handle("GET /join", s.webPage())
	mux.Handle("GET /s/", s.webPage())
	mux.Handle("GET /assets/", s.webFiles())
	mux.Handle("GET /favicon.svg", s.webFiles())
	mux.Handle("/api/", s.api(func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
		path := r.URL.Path
		if len(path) > 200 {
			path = path[:200] + "…"
		}
		return apiErr(http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+path)
	}))
	return s.logRequests(mux)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Serve answers on ln until ctx is cancelled, then shuts down gracefully:
// it stops accepting, closes sockets with 1001 (clients reconnect with
// since), lets every document commit and answer what it has in hand, and
// returns. Nothing acknowledged is at risk: acks follow the fsync.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, // slow-header clients are cut off
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	return s.shutdown(hs, errc)
}

func (s *Server) shutdown(hs *http.Server, errc chan error) error {
	s.draining.Store(true)
	s.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Shutdown does not touch hijacked (WebSocket) connections; close them
	// ourselves, then stop the document sessions, which commit what they
	// have.
	err := hs.Shutdown(ctx)
	if s.unsubRevoke != nil {
		s.unsubRevoke()
	}
	s.ws.CloseAll()
	defer s.ws.Close()
	if cerr := s.docs.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Close stops the document sessions without an HTTP server (tests that use
// Handler directly).
func (s *Server) Close(ctx context.Context) error {
	s.draining.Store(true)
	if s.unsubRevoke != nil {
		s.unsubRevoke()
	}
	s.ws.CloseAll()
	defer s.ws.Close()
	return s.docs.Close(ctx)
}
