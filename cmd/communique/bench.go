package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"communique/server/loadtest"
)

// bench is `communique bench`: the load generator of server/loadtest. Without
// --url it starts this same binary as `communique serve` in a child process
// on a temporary data folder, so that the server's CPU and memory are read
// from /proc apart from the load generator's; with --redis or
// --redis-server it starts --instances of them sharing that Redis.
func bench(args []string, stdout, stderr io.Writer) error {
	var cfg loadtest.Config
	var asJSON, verbose bool
	var selfProfile string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Scenario, "scenario", loadtest.Summit, "summit, many-docs, throughput, connect-storm or trace")
	fs.IntVar(&cfg.Writers, "writers", 0, "drafting clients in all, spread over the documents (default: 20; throughput 10; many-docs 2 per document)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "ops per second per writer (default 5; throughput: as fast as acks allow)")
	fs.IntVar(&cfg.Followers, "followers", 0, "following clients in all, spread over the documents (default: summit 200, many-docs and connect-storm 1000)")
	fs.IntVar(&cfg.Docs, "docs", 0, "documents (many-docs; default 10)")
	fs.StringVar(&cfg.Stream, "stream", "", `stream the followers read: "draft" (every op) or "approved" (observers; default for connect-storm)`)
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured window (default 20s; connect-storm: how long sockets are held, 5s; trace: upper bound, 60s)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "editing before the window opens (default 3s)")
	fs.IntVar(&cfg.DocSize, "doc-size", 0, "code points of each document at creation; writers keep it near (default 2000)")
	fs.StringVar(&cfg.Trace, "trace", "testdata/traces/automerge-paper.json.gz", "trace scenario: the editing trace to replay")
	fs.IntVar(&cfg.Batch, "batch", 0, "trace scenario: patches per op message (default 100)")
	fs.IntVar(&cfg.ConnectParallel, "connect-parallel", 0, "handshakes in flight at once (default 256; connect-storm: all)")
	fs.StringVar(&cfg.URL, "url", "", "a server on this machine (http://127.0.0.1:PORT) instead of a child process; several, comma-separated, share the clients round-robin")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis mode: children run serve --redis on this Redis (redis://127.0.0.1:PORT[/DB]; loopback only; the run's summit stays there, nothing else is touched)")
	fs.StringVar(&cfg.RedisServer, "redis-server", "", `Redis mode on a redis-server the run starts on a free port in a temporary folder and kills at the end: its path, or "auto" (from the PATH)`)
	fs.StringVar(&cfg.RedisFsync, "redis-fsync", "", "with --redis-server: appendfsync always (default; as durable as the embedded store), everysec, no, or off (no AOF)")
	fs.IntVar(&cfg.Instances, "instances", 0, "child servers (default 1; 2 in Redis mode), clients spread over them round-robin")
	fs.StringVar(&cfg.Token, "token", "", "with --url: the admin token, or a chair's token with --summit")
	fs.StringVar(&cfg.Summit, "summit", "", "with --url: an existing summit to use instead of creating one")
	fs.StringVar(&cfg.Doc, "doc", "", "with --url: an existing document to edit instead of creating one")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "start the servers with --pprof and save each one's heap profile after connecting and a CPU profile of the window")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", ".", "where --pprof writes its profiles")
	fs.StringVar(&selfProfile, "self-profile", "", "write a CPU profile of the load generator itself to this file")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON (progress still goes to stderr)")
	fs.BoolVar(&verbose, "v", false, "log what the load generator does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.Scenario != loadtest.TraceReplay {
		cfg.Trace = ""
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Progress = stderr
	if cfg.URL == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this binary to start the server: %w", err)
		}
		cfg.ServerBinary = self
	}

	// Ctrl-C ends the run early; the report still covers what was measured
	// and the child servers (and a redis-server of the run's own) are
	// stopped either way.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if selfProfile != "" {
		f, err := os.Create(selfProfile)
		if err != nil {
			return fmt.Errorf("--self-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--self-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rep, err := loadtest.Run(ctx, cfg)
	if rep == nil {
		return err
	}
	if asJSON {
		if werr := rep.WriteJSON(stdout); werr != nil {
			return werr
		}
	} else {
		fmt.Fprintf(stdout, "\n")
		if werr := rep.WriteTable(stdout); werr != nil {
			return werr
		}
		fmt.Fprintf(stdout, "(%.1f s in all)\n", time.Since(start).Seconds())
	}
	return err
}
