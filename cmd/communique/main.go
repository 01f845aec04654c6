// Command communique is the Communiqué server: live co-drafting of a
// summit's outcome documents. See README.md and docs/.
//
//	communique serve [flags]   run the server
//	communique bench [flags]   load-test a server (see bench.go)
//	communique version         print the version
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"communique/server"
	"communique/server/auth"
	busredis "communique/server/bus/redis"
	"communique/server/demo"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/store/bolt"
	redisstore "communique/server/store/redis"
	"communique/server/ws"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		if err := serve(args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "communique:", err)
			return 1
		}
		return 0
	case "bench":
		if err := bench(args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "communique bench:", err)
			return 1
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "communique", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "communique: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  communique serve [flags]   run the server (communique serve -h for flags)
  communique bench [flags]   load-test a server on this machine (communique bench -h)
  communique version         print the version
`)
}

// options are serve's settings: a flag wins over its environment variable,
// which wins over the default.
type options struct {
	addr           string
	data           string
	redis          string
	adminToken     string
	allowedOrigins string
	demo           bool
	pprof          bool
	secureCookies  bool
	logLevel       string
	maxDocRunes    int
	maxFrameBytes  int64
	opsPerSecond   float64
	opsBurst       int
}

func parseServe(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", env("COMMUNIQUE_ADDR", "127.0.0.1:8080"), "listen address (env COMMUNIQUE_ADDR)")
	fs.StringVar(&o.data, "data", env("COMMUNIQUE_DATA", "communique-data"), "folder of the embedded store (env COMMUNIQUE_DATA)")
	fs.StringVar(&o.redis, "redis", env("COMMUNIQUE_REDIS", ""), "redis:// URL of a shared store for several instances (env COMMUNIQUE_REDIS)")
	fs.StringVar(&o.adminToken, "admin-token", env("COMMUNIQUE_ADMIN_TOKEN", ""), "the admin token; generated and printed once when absent (env COMMUNIQUE_ADMIN_TOKEN)")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", env("COMMUNIQUE_ALLOWED_ORIGINS", ""), "comma-separated browser origins allowed besides the server's own (env COMMUNIQUE_ALLOWED_ORIGINS)")
	fs.BoolVar(&o.demo, "demo", env("COMMUNIQUE_DEMO", "") == "1", "create the demo summit (Seoul 2013) and print fresh tokens for it (env COMMUNIQUE_DEMO=1)")
	fs.BoolVar(&o.pprof, "pprof", env("COMMUNIQUE_PPROF", "") == "1", "serve /debug/pprof/ to the admin token (env COMMUNIQUE_PPROF=1)")
	fs.BoolVar(&o.secureCookies, "secure-cookies", env("COMMUNIQUE_SECURE_COOKIES", "") == "1", "mark session cookies Secure even over plain HTTP, behind a proxy that terminates TLS (env COMMUNIQUE_SECURE_COOKIES=1)")
	fs.StringVar(&o.logLevel, "log-level", env("COMMUNIQUE_LOG_LEVEL", "info"), "debug, info, warn or error (env COMMUNIQUE_LOG_LEVEL)")
	fs.IntVar(&o.maxDocRunes, "max-doc-size", doc.DefaultConfig.MaxDocRunes, "largest document, in code points")
	fs.Int64Var(&o.maxFrameBytes, "max-frame-bytes", ws.DefaultConfig.MaxFrameBytes, "largest WebSocket frame; bigger ones close the connection with 1009")
	fs.Float64Var(&o.opsPerSecond, "ops-per-second", ws.DefaultConfig.OpsPerSecond, "ops a connection may send per second, sustained (a token: 8 times that)")
	fs.IntVar(&o.opsBurst, "ops-burst", ws.DefaultConfig.OpsBurst, "ops a connection may send in a burst")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func serve(args []string, stdout, stderr io.Writer) error {
	o, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	st, bus, closeStore, err := openStore(o, log)
	if err != nil {
		return err
	}
	defer closeStore()

	adminHash, err := adminTokenHash(o, stdout)
	if err != nil {
		return err
	}

	cfg := server.Config{
		AdminTokenHash: adminHash,
		AllowedOrigins: splitList(o.allowedOrigins),
		Pprof:          o.pprof,
		SecureCookies:  o.secureCookies,
		Doc:            doc.Config{MaxDocRunes: o.maxDocRunes},
		WS:             ws.Config{MaxFrameBytes: o.maxFrameBytes, OpsPerSecond: o.opsPerSecond, OpsBurst: o.opsBurst},
		Log:            log,
	}
	if bus != nil {
		cfg.Bus = bus
	}
	srv, err := server.New(cfg, st)
	if err != nil {
		return err
	}
	if bus != nil {
		// Messages may have been lost while the bus was down: every open
		// document reads what it missed from the store.
		bus.OnReconnect(srv.CatchUp)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var tokens []demo.Token
	if o.demo {
		if tokens, err = demo.Seed(ctx, st); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if o.demo {
		// After listening, so the links name the real port (--addr :0).
		printDemo(stdout, linkAddr(ln.Addr()), tokens)
	}
	log.Info("listening", "addr", ln.Addr().String(), "data", o.data, "version", version)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// openStore opens the embedded store in --data, or with --redis the Redis
// store and its bus. closeStore closes what was opened, bus first.
func openStore(o options, log *slog.Logger) (st store.Store, bus *busredis.Bus, closeStore func(), err error) {
	if o.redis == "" {
		b, err := bolt.Open(o.data, bolt.Options{Logger: log})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open store: %w", err)
		}
		return b, nil, func() {
			if err := b.Close(); err != nil {
				log.Error("close store", "err", err)
			}
		}, nil
	}
	if o.adminToken == "" {
		return nil, nil, nil, errors.New("--redis needs --admin-token (or COMMUNIQUE_ADMIN_TOKEN): every instance must accept the same one")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := redisstore.Open(ctx, o.redis, redisstore.Options{Logger: log, ReadTimeout: 2 * time.Second})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open redis store: %w", err)
	}
	b := busredis.New(r.Client(), r.Prefix(), log)
	return r, b, func() {
		b.Close()
		if err := r.Close(); err != nil {
			log.Error("close redis store", "err", err)
		}
	}, nil
}

// adminTokenHash returns the hash of the admin token: the one given, or the
// one generated at the first start on this data folder. A generated token is
// printed once; only its hash is kept (in the data folder), like every other
// token.
func adminTokenHash(o options, stdout io.Writer) ([]byte, error) {
	if o.adminToken != "" {
		return auth.Hash(o.adminToken), nil
	}
	path := filepath.Join(o.data, "admin-token.sha256")
	if b, err := os.ReadFile(path); err == nil {
		h, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%s is damaged: delete it to generate a new admin token, or pass --admin-token", path)
		}
		return h, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read admin token hash: %w", err)
	}
	secret, err := auth.NewSecret()
	if err != nil {
		return nil, err
	}
	h := auth.Hash(secret)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(h)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save admin token hash: %w", err)
	}
	fmt.Fprintf(stdout, "Admin token (generated once for %s; keep it, it is not shown again): %s\n", o.data, secret)
	return h, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// linkAddr is the address to print in links: a wildcard listener (":8080")
// is reached through the loopback address on this machine.
func linkAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.Port))
	}
	return a.String()
}

func printDemo(w io.Writer, addr string, tokens []demo.Token) {
	base := "http://" + addr
	fmt.Fprintf(w, "\nDemo summit %q is ready at %s\n", demo.SummitID, base)
	fmt.Fprintf(w, "Documents: %s\n\nInvitations (fresh at each start; earlier demo tokens are revoked).\n", strings.Join(demo.Docs(), ", "))
	fmt.Fprintf(w, "Open a link in a browser to join as that participant; the token is for scripts:\n\n")
	var delegate string
	for _, t := range tokens {
		who := t.Name
		if t.Delegation != "" {
			who = t.Delegation + " — " + t.Name
		}
		fmt.Fprintf(w, "  %-9s %-32s %s\n", t.Role, who, t.Secret)
		fmt.Fprintf(w, "  %-9s %s/join#token=%s\n", "", base, t.Secret)
		if t.Role == store.RoleDelegate && delegate == "" {
			delegate = t.Secret
		}
	}
	fmt.Fprintf(w, "\nTry it:\n  curl -H 'Authorization: Bearer %s' %s/api/summits/%s/docs\n", delegate, base, demo.SummitID)
	fmt.Fprintf(w, "  WebSocket: ws://%s/api/summits/%s/docs/chair-summary/ws?token=%s\n\n", addr, demo.SummitID, delegate)
}
