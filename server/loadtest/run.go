// Package loadtest is Communiqué's load generator, behind `communique
// bench`: drafting clients with client-side OT and following clients on
// real WebSockets against a server it starts as a child process (or several
// sharing a Redis, or servers on this machine given by URL), with latency
// histograms and a report. It also holds OTClient, the client OT state
// machine the test harness shares.
//
// Everything here is production code (no testing imports), so the binary
// carries it.
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"communique/ot"
	"communique/ot/ottrace"
)

// Scenarios.
const (
	Summit       = "summit"        // one document: writers at a rate, followers
	ManyDocs     = "many-docs"     // Docs documents, writers and followers spread over them
	Throughput   = "throughput"    // one document, writers as fast as acks allow
	ConnectStorm = "connect-storm" // Followers sockets opened at once, then held idle
	TraceReplay  = "trace"         // one writer replays an editing trace; the final text is checked
)

// Config describes a run. Zero fields take the scenario's defaults.
type Config struct {
	Scenario  string
	Writers   int     // drafting clients in all (spread over the documents)
	Rate      float64 // ops/s per writer (summit, many-docs)
	Followers int     // following clients in all (spread over the documents)
	Docs      int     // documents (many-docs)
	// Stream the followers read: "draft" (default: they receive every op
	// the writers make) or "approved" (what observers may open; it changes
	// only on approvals, so followers then receive no ops).
	Stream   string
	Duration time.Duration // measured window (connect-storm: how long sockets are held)
	Warmup   time.Duration // editing before the window opens
	DocSize  int           // code points of each document at creation; writers keep it near
	Trace    string        // trace scenario: the trace file
	Batch    int           // trace scenario: patches per op message
	// ConnectParallel bounds concurrent handshakes (default 256; the
	// connect-storm scenario opens everything at once).
	ConnectParallel int

	// Servers on this machine (when URL is set; several, comma-separated,
	// are instances sharing one store: clients are spread over them and the
	// first creates the summit): Token is the admin's, or a chair's
	// together with Summit. Summit and Doc name existing ones to use
	// instead of creating them.
	URL, Token, Summit, Doc string
	// Otherwise ServerBinary is run as `ServerBinary serve …`, Instances
	// times (default 1, or 2 with Redis).
	ServerBinary string
	Instances    int
	// Redis makes the children share the Redis at this URL (loopback
	// only). The run writes its own summit there, with a random id, and
	// leaves it; it touches no other key.
	Redis string
	// RedisServer (without Redis) is a redis-server binary, or "auto" for
	// the one on the PATH, that the run starts on a free port in a
	// temporary folder for the children and kills at the end, with
	// RedisFsync as its durability (FsyncAlways by default).
	RedisServer string
	RedisFsync  string
	Pprof       bool   // profile the server (child started with --pprof)
	ProfileDir  string // where profiles go (default: the current folder)

	Progress io.Writer // a progress line every second (nil: none)
	Log      *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	switch c.Scenario {
	case "", Summit:
		c.Scenario = Summit
		def(&c.Writers, 20)
		def(&c.Followers, 200)
		c.Docs = 1
		if c.Rate == 0 {
			c.Rate = 5
		}
	case ManyDocs:
		def(&c.Docs, 10)
		def(&c.Writers, 2*c.Docs)
		def(&c.Followers, 1000)
		if c.Rate == 0 {
			c.Rate = 5
		}
	case Throughput:
		def(&c.Writers, 10)
		c.Docs, c.Rate = 1, 0
	case ConnectStorm:
		def(&c.Followers, 1000)
		c.Writers, c.Docs, c.Rate = 0, 1, 0
		if c.Stream == "" {
			c.Stream = "approved" // observers: what thousands of people open
		}
		if c.Duration == 0 {
			c.Duration = 5 * time.Second
		}
		if c.ConnectParallel == 0 {
			c.ConnectParallel = c.Followers
		}
	case TraceReplay:
		if c.Trace == "" {
			return c, errors.New("the trace scenario needs a trace file (--trace)")
		}
		c.Writers, c.Docs, c.Rate = 1, 1, 0
		def(&c.Batch, 100)
		if c.Duration == 0 {
			c.Duration = 60 * time.Second // an upper bound: the replay ends when the trace does
		}
	default:
		return c, fmt.Errorf("unknown scenario %q (summit, many-docs, throughput, connect-storm, trace)", c.Scenario)
	}
	if c.Writers < 0 || c.Followers < 0 || c.Docs < 1 || c.Rate < 0 {
		return c, errors.New("writers, followers and rate must not be negative, docs at least 1")
	}
	if c.Stream == "" {
		c.Stream = "draft"
	}
	if c.Stream != "draft" && c.Stream != "approved" {
		return c, fmt.Errorf(`stream must be "draft" or "approved", not %q`, c.Stream)
	}
	if c.Duration == 0 {
		c.Duration = 20 * time.Second
	}
	if c.Warmup == 0 && c.Scenario != TraceReplay && c.Scenario != ConnectStorm {
		c.Warmup = 3 * time.Second
	}
	def(&c.DocSize, 2000)
	def(&c.ConnectParallel, 256)
	if c.Doc != "" && c.Docs > 1 {
		return c, errors.New("--doc names one document; many-docs creates its own")
	}
	if c.URL == "" && c.ServerBinary == "" {
		return c, errors.New("no server: give a URL or a server binary")
	}
	if c.URL != "" && c.Token == "" {
		return c, errors.New("a URL needs a token (the admin's, or a chair's with --summit)")
	}
	if c.URL != "" && len(splitURLs(c.URL)) == 0 {
		return c, errors.New("--url names no server")
	}
	redisMode := c.Redis != "" || c.RedisServer != ""
	if c.URL != "" && (redisMode || c.Instances != 0) {
		return c, errors.New("--url loads servers that run already: --redis, --redis-server and --instances start children")
	}
	if c.Redis != "" && c.RedisServer != "" {
		return c, errors.New("give --redis (a Redis that runs) or --redis-server (one to start), not both")
	}
	if c.Redis != "" {
		if err := checkRedisURL(c.Redis); err != nil {
			return c, err
		}
	}
	if c.RedisFsync != "" && c.RedisServer == "" {
		return c, errors.New("--redis-fsync sets up a redis-server the run starts (--redis-server)")
	}
	switch c.RedisFsync {
	case "":
		c.RedisFsync = FsyncAlways
	case FsyncAlways, FsyncEverysec, FsyncNo, FsyncOff:
	default:
		return c, fmt.Errorf("--redis-fsync %q: want always, everysec, no or off", c.RedisFsync)
	}
	if c.Instances < 0 {
		return c, errors.New("instances must not be negative")
	}
	if c.URL == "" && c.Instances == 0 {
		c.Instances = 1
		if redisMode {
			c.Instances = 2
		}
	}
	if c.Instances > 1 && !redisMode {
		return c, errors.New("several instances need a shared store: add --redis or --redis-server")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// runner is one run's state, shared by its clients.
type runner struct {
	cfg Config
	log *slog.Logger
	// targets are the servers clients are spread over; target, the first,
	// creates the summit and is asked for the final text.
	targets  []*Target
	target   *Target
	children []*Child // when the run started the servers
	summit   string
	docs     []*docRun
	base     time.Time // the run's clock: now() is nanoseconds since base

	writers   []*writer
	followers []*follower
	bySrc     map[string]*writer // read-only once clients exist

	// The window, in now() units; ops sent inside it are measured.
	winStart, winEnd atomic.Int64
	stopping         atomic.Bool

	connectHist, ackHist, fanoutHist Histogram

	edits, sent, acked, expected, delivered atomic.Uint64
	deliveredTotal, writerDeliveries        atomic.Uint64 // every op frame and ack, any time
	reconnects                              atomic.Uint64

	errMu  sync.Mutex
	errors map[string]uint64
}

type docRun struct {
	id        string
	followers int
	writers   []*writer
}

func (r *runner) now() int64 { return int64(time.Since(r.base)) }

func (r *runner) inWindow(t int64) bool { return t >= r.winStart.Load() && t < r.winEnd.Load() }

func (r *runner) count(key string) {
	r.errMu.Lock()
	r.errors[key]++
	r.errMu.Unlock()
}

// observe is a follower's receipt, at now, of the op src sent as seq.
func (r *runner) observe(src []byte, seq uint64, now int64) {
	w := r.bySrc[string(src)]
	if w == nil {
		return // not one of ours (a person editing the same document)
	}
	sent, ok := w.log.get(seq)
	if !ok || !r.inWindow(sent) {
		return
	}
	r.fanoutHist.Record(time.Duration(now - sent))
	r.delivered.Add(1)
}

// Run performs one scenario and returns its report. Every socket is closed
// and a child server stopped before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: cfg.Log, base: time.Now(), bySrc: map[string]*writer{}, errors: map[string]uint64{}}
	r.winStart.Store(1<<63 - 1) // nothing counts before the window opens
	r.winEnd.Store(1<<63 - 1)
	if limit, err := RaiseFileLimit(); err != nil {
		r.log.Warn("cannot raise the open-file limit", "err", err)
	} else if need := uint64(cfg.Writers+cfg.Followers) + 64; limit < need {
		return nil, fmt.Errorf("%d sockets need %d open files; the limit is %d (raise the hard limit: ulimit -Hn)", cfg.Writers+cfg.Followers, need, limit)
	}
	rep := &Report{Scenario: cfg.Scenario, Started: time.Now().UTC(), Docs: cfg.Docs, Writers: cfg.Writers,
		Followers: cfg.Followers, Stream: cfg.Stream, Rate: cfg.Rate}
	stopServers, err := r.startServers(ctx, rep)
	defer stopServers() // also on Ctrl-C (ctx) and on every error below
	if err != nil {
		return nil, err
	}
	r.target = r.targets[0]
	var trace *ottrace.Trace
	if cfg.Scenario == TraceReplay {
		if trace, err = ottrace.Load(cfg.Trace); err != nil {
			return nil, err
		}
	}
	if err := r.setup(ctx, trace); err != nil {
		return nil, err
	}
	if cfg.Redis != "" && cfg.Summit == "" {
		rep.Notes = append(rep.Notes, fmt.Sprintf("summit %s (its documents and tokens) stays in the Redis at %s under key prefix cq; no other key was touched",
			r.summit, redactURL(cfg.Redis)))
	}

	before, haveStats := r.procStat()
	if s := rep.Server; s != nil && haveStats {
		s.RSSBeforeKiB = before.RSSKiB
	}

	// Connect everything; followers read from the moment they are in. On
	// the way out: cancel, close every socket, wait for every client.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer r.closeAll()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	failed := r.connectAll(runCtx)
	rep.ConnectPhaseS = time.Since(t0).Seconds()
	rep.ConnectErrors = failed
	rep.Connect = summarize(r.connectHist.Snapshot())
	for _, f := range r.followers {
		if f.conn.Load() != nil {
			wg.Go(func() { f.run(runCtx) })
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Let the server settle (handshake garbage, presence) before reading
	// its memory.
	time.Sleep(time.Second)
	if s := rep.Server; s != nil {
		if st, ok := r.procStat(); ok {
			s.RSSConnectedKiB = st.RSSKiB
			if n := len(r.writers) + len(r.followers) - failed; n > 0 {
				s.KiBPerConnection = float64(st.RSSKiB-s.RSSBeforeKiB) / float64(n)
			}
		}
		if cfg.Pprof {
			s.HeapProfile = r.saveProfiles(ctx, "/debug/pprof/heap?gc=1", "heap")
			s.MemStats = r.memStats(ctx)
		}
	}

	switch cfg.Scenario {
	case ConnectStorm:
		err = r.hold(runCtx, rep)
	case TraceReplay:
		err = r.replay(runCtx, &wg, trace, rep)
	default:
		err = r.edit(runCtx, &wg, rep)
	}
	r.stopping.Store(true)
	cancel()
	r.closeAll()
	wg.Wait()
	r.finish(rep)
	return rep, err
}

// setup creates the summit, documents and tokens through the HTTP API.
func (r *runner) setup(ctx context.Context, trace *ottrace.Trace) error {
	cfg := r.cfg
	// A long random tag: on a shared Redis (--redis) the summit's keys
	// must not collide with another run's.
	tag := randomTag()
	r.summit = cfg.Summit
	if r.summit == "" {
		r.summit = "bench-" + tag
		if err := r.target.CreateSummit(ctx, r.summit, "Load test "+tag); err != nil {
			return fmt.Errorf("create summit (the token must be the admin's, or give --summit): %w", err)
		}
	}
	text := InitialText(cfg.DocSize)
	if trace != nil {
		text = trace.Start
	}
	for i := range cfg.Docs {
		d := &docRun{id: cfg.Doc}
		if d.id == "" {
			d.id = fmt.Sprintf("d%d-%s", i+1, tag)
			if err := r.target.CreateDoc(ctx, r.summit, d.id, "Load test document "+d.id, text); err != nil {
				return fmt.Errorf("create document: %w", err)
			}
		}
		r.docs = append(r.docs, d)
	}
	for i := range cfg.Writers {
		code := fmt.Sprintf("W%03d", i+1)
		tok, err := r.target.CreateToken(ctx, r.summit, "delegate", code, "Writer "+code)
		if err != nil {
			return fmt.Errorf("create writer token: %w", err)
		}
		di := i % len(r.docs)
		d := r.docs[di]
		w := &writer{r: r, d: d, idx: i, token: tok, rng: mrand.New(mrand.NewPCG(uint64(i)+1, 7)),
			t: r.spread(di, len(d.writers)), ot: NewOTClient(fmt.Sprintf("w%03d-%s", i+1, tag[:8]))}
		d.writers = append(d.writers, w)
		r.writers = append(r.writers, w)
		r.bySrc[w.ot.Src] = w
	}
	if cfg.Followers > 0 {
		// One token for every follower: tokens are cheap, but thousands
		// of them would only slow the setup down.
		role, delegation := "delegate", "FOLLOW"
		if cfg.Stream == "approved" {
			role, delegation = "observer", ""
		}
		tok, err := r.target.CreateToken(ctx, r.summit, role, delegation, "Follower")
		if err != nil {
			return fmt.Errorf("create follower token: %w", err)
		}
		for i := range cfg.Followers {
			di := i % len(r.docs)
			d := r.docs[di]
			r.followers = append(r.followers, &follower{r: r, d: d, t: r.spread(di, d.followers), token: tok, stream: cfg.Stream})
			d.followers++
		}
	}
	return nil
}

// spread picks the server of the k-th client of the di-th document: round
// robin within each document, so each document's writers and followers are
// split between the instances (the cross-instance path is what Redis mode
// measures), shifted by document so the totals stay even.
func (r *runner) spread(di, k int) *Target {
	return r.targets[(di+k)%len(r.targets)]
}

// connectAll opens every socket, at most ConnectParallel at a time, and
// returns how many failed.
func (r *runner) connectAll(ctx context.Context) int {
	sem := make(chan struct{}, r.cfg.ConnectParallel)
	var failed atomic.Int64
	var wg sync.WaitGroup
	connect := func(kind string, fn func(context.Context, *uint64) error) {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, nil); err != nil {
				failed.Add(1)
				r.count(kind + " connect failed: " + shortErr(err))
			}
		})
	}
	// Writers first: their presence joins reach every follower after.
	for _, w := range r.writers {
		connect("writer", w.connect)
	}
	for _, f := range r.followers {
		connect("follower", f.connect)
	}
	wg.Wait()
	return int(failed.Load())
}

// edit runs the writers through the warm-up, the window and the drain.
func (r *runner) edit(ctx context.Context, wg *sync.WaitGroup, rep *Report) error {
	mode := "rate"
	if r.cfg.Scenario == Throughput {
		mode = "fast"
	}
	editing := make(chan struct{})
	for _, w := range r.writers {
		if w.conn != nil {
			wg.Go(func() { w.run(ctx, editing, mode) })
		}
	}
	stop := r.progress(ctx)
	defer stop()
	start := r.now() + int64(r.cfg.Warmup)
	r.winStart.Store(start)
	r.winEnd.Store(start + int64(r.cfg.Duration))
	if !sleepCtx(ctx, r.cfg.Warmup) {
		return ctx.Err()
	}
	f0, c0, ok0 := r.framesNow(), r.cpuNow(), len(r.children) > 0
	redis0, redisOK := r.redisStat(rep)
	self0, _ := ReadProcStat(os.Getpid())
	m0 := r.scrape(ctx)
	var profile chan string
	if r.cfg.Pprof && len(r.children) > 0 {
		// The servers profile themselves for the length of the window.
		profile = make(chan string, 1)
		go func() {
			profile <- r.saveProfiles(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(r.cfg.Duration.Seconds()))), "cpu")
		}()
	}
	if !sleepCtx(ctx, r.cfg.Duration) {
		return ctx.Err()
	}
	f1, c1 := r.framesNow(), r.cpuNow()
	if self1, err := ReadProcStat(os.Getpid()); err == nil {
		rep.LoadCPUPercent = 100 * (self1.CPU - self0.CPU).Seconds() / r.cfg.Duration.Seconds()
	}
	close(editing)
	rep.ServerLatency = serverLatency(m0, r.scrape(ctx))
	rep.WindowS = r.cfg.Duration.Seconds()
	rep.FramesInWindow = f1 - f0
	if s := rep.Server; s != nil && ok0 {
		s.CPUSeconds = (c1.CPU - c0.CPU).Seconds()
		s.CPUPercent = 100 * s.CPUSeconds / rep.WindowS
		if rep.FramesInWindow > 0 {
			s.CPUPerUpdateMicros = 1e6 * s.CPUSeconds / float64(rep.FramesInWindow)
		}
		s.RSSEndKiB = c1.RSSKiB
	}
	if redis1, ok := r.redisStat(rep); ok && redisOK {
		rep.Redis.CPUSeconds = (redis1.CPU - redis0.CPU).Seconds()
		rep.Redis.CPUPercent = 100 * rep.Redis.CPUSeconds / rep.WindowS
		rep.Redis.RSSEndKiB = redis1.RSSKiB
	}
	r.drain(ctx, 15*time.Second)
	if profile != nil {
		select {
		case rep.Server.CPUProfile = <-profile:
		case <-time.After(15 * time.Second):
			r.count("cpu profile: no answer")
		}
	}
	return r.checkConvergence(ctx, rep)
}

// scrape reads the servers' latency histograms, summed over the
// instances (nil if it cannot).
func (r *runner) scrape(ctx context.Context) map[string]*promHist {
	var sum map[string]*promHist
	for _, t := range r.targets {
		h, err := t.scrapeHists(ctx, metricOp, metricCommit)
		if err != nil {
			r.log.Warn("read /metrics", "server", t.URL, "err", err)
			return nil
		}
		if sum = addHists(sum, h); sum == nil {
			r.log.Warn("read /metrics: the servers' histograms differ", "server", t.URL)
			return nil
		}
	}
	return sum
}

func (r *runner) framesNow() uint64 { return r.deliveredTotal.Load() + r.writerDeliveries.Load() }

func (r *runner) cpuNow() ProcStat {
	st, _ := r.procStat()
	return st
}

// drain waits until no writer has an op in flight and every follower has
// the version its writers ended on, or until timeout.
func (r *runner) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, d := range r.docs {
			var head uint64
			for _, w := range d.writers {
				if w.conn != nil && !w.idle.Load() {
					done = false
				}
				head = max(head, w.version.Load())
			}
			for _, w := range d.writers {
				if w.conn != nil && w.version.Load() != head {
					done = false
				}
			}
			if r.cfg.Stream == "draft" {
				for _, f := range r.followers {
					if f.d == d && f.conn.Load() != nil && f.last.Load() < head {
						done = false
					}
				}
			}
		}
		if done {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.count("drain: not settled within " + timeout.String())
}

// checkConvergence compares every writer's text with the server's draft.
func (r *runner) checkConvergence(ctx context.Context, rep *Report) error {
	if len(r.writers) == 0 {
		return nil
	}
	ok := true
	for _, d := range r.docs {
		draft, err := r.target.GetDraft(ctx, r.summit, d.id)
		if err != nil {
			return err
		}
		for _, w := range d.writers {
			// Writers publish their text once they stopped editing and
			// have nothing in flight; their goroutines still own w.ot.
			text := w.final.Load()
			if w.version.Load() != draft.Version || text == nil || *text != draft.Text {
				ok = false
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: writer %d at version %d differs from the server's draft at %d",
					d.id, w.idx+1, w.version.Load(), draft.Version))
			}
		}
	}
	rep.Converged = &ok
	return nil
}

// progress prints a line every second until stopped.
func (r *runner) progress(ctx context.Context) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		prevAck, prevFan := r.ackHist.Snapshot(), r.fanoutHist.Snapshot()
		prevSent, prevFrames := r.sent.Load(), r.framesNow()
		prevCPU := r.cpuNow()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
			}
			ack, fan := r.ackHist.Snapshot(), r.fanoutHist.Snapshot()
			sent, frames, cpu := r.sent.Load(), r.framesNow(), r.cpuNow()
			phase := "warm-up"
			if now := r.now(); now >= r.winEnd.Load() {
				phase = "drain"
			} else if now >= r.winStart.Load() {
				phase = "window"
			}
			da, df := ack.Sub(prevAck), fan.Sub(prevFan)
			line := fmt.Sprintf("[%6.1fs %-7s] ops %5d/s  frames %7d/s  ack p99 %-8s fan-out p99 %-8s errors %d",
				time.Since(r.base).Seconds(), phase, sent-prevSent, frames-prevFrames,
				fmtMS(ms(da.Quantile(0.99))), fmtMS(ms(df.Quantile(0.99))), r.errorCount())
			if len(r.children) > 0 {
				line += fmt.Sprintf("  server %3.0f%% CPU %d MiB", 100*(cpu.CPU-prevCPU.CPU).Seconds(), cpu.RSSKiB>>10)
			}
			fmt.Fprintln(r.cfg.Progress, line)
			prevAck, prevFan, prevSent, prevFrames, prevCPU = ack, fan, sent, frames, cpu
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *runner) errorCount() uint64 {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	var n uint64
	for _, c := range r.errors {
		n += c
	}
	return n
}

// hold keeps the sockets of a connect storm open and idle, then reads the
// server's memory.
func (r *runner) hold(ctx context.Context, rep *Report) error {
	if !sleepCtx(ctx, r.cfg.Duration) {
		return ctx.Err()
	}
	rep.WindowS = r.cfg.Duration.Seconds()
	if s := rep.Server; s != nil {
		if st, ok := r.procStat(); ok {
			s.RSSEndKiB = st.RSSKiB
			if n := len(r.followers) - rep.ConnectErrors; n > 0 {
				s.KiBPerIdleConnection = float64(st.RSSKiB-s.RSSBeforeKiB) / float64(n)
			}
		}
	}
	return nil
}

// replay sends the trace through the one writer, Batch patches per message,
// waiting for each ack, and checks the server's final text.
func (r *runner) replay(ctx context.Context, wg *sync.WaitGroup, tr *ottrace.Trace, rep *Report) error {
	w := r.writers[0]
	if w.conn == nil {
		return errors.New("the trace writer could not connect")
	}
	defer closeConn(w.conn)
	var patches []ottrace.Patch
	for _, txn := range tr.Txns {
		patches = append(patches, txn.Patches...)
	}
	tp := &TraceReport{File: r.cfg.Trace, Patches: len(patches), Batch: r.cfg.Batch}
	rep.Trace = tp
	stop := r.progress(ctx)
	defer stop()
	start := r.now()
	r.winStart.Store(start)
	r.winEnd.Store(start + int64(r.cfg.Duration))
	f0, c0 := r.framesNow(), r.cpuNow()
	m0 := r.scrape(ctx)
	var profile chan string
	if r.cfg.Pprof && len(r.children) > 0 {
		// The replay's length is not known in advance: profile its first
		// five seconds.
		profile = make(chan string, 1)
		go func() { profile <- r.saveProfiles(ctx, "/debug/pprof/profile?seconds=5", "cpu") }()
	}
	deadline := time.Now().Add(r.cfg.Duration)
	var err error
	for tp.Replayed < len(patches) && time.Now().Before(deadline) && ctx.Err() == nil {
		n := min(r.cfg.Batch, len(patches)-tp.Replayed)
		var op ot.Op
		if op, err = composePatches(patches[tp.Replayed:tp.Replayed+n], w.ot.Len()); err != nil {
			break
		}
		if err = w.replayOne(ctx, op); err != nil {
			break
		}
		tp.Replayed += n
		tp.Messages++
	}
	end := r.now()
	r.winEnd.Store(end)
	tp.Seconds = time.Duration(end - start).Seconds()
	if tp.Seconds > 0 {
		tp.PatchesPerS = float64(tp.Replayed) / tp.Seconds
	}
	rep.WindowS = tp.Seconds
	f1, c1 := r.framesNow(), r.cpuNow()
	rep.ServerLatency = serverLatency(m0, r.scrape(ctx))
	rep.FramesInWindow = f1 - f0
	if s := rep.Server; s != nil {
		s.CPUSeconds = (c1.CPU - c0.CPU).Seconds()
		if rep.WindowS > 0 {
			s.CPUPercent = 100 * s.CPUSeconds / rep.WindowS
		}
		if rep.FramesInWindow > 0 {
			s.CPUPerUpdateMicros = 1e6 * s.CPUSeconds / float64(rep.FramesInWindow)
		}
		s.RSSEndKiB = c1.RSSKiB
	}
	if profile != nil {
		select {
		case rep.Server.CPUProfile = <-profile:
		case <-time.After(15 * time.Second):
			r.count("cpu profile: no answer")
		}
	}
	if err != nil {
		return fmt.Errorf("trace replay after %d patches: %w", tp.Replayed, err)
	}
	if tp.Replayed < len(patches) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the replay stopped at the %v bound after %d of %d patches", r.cfg.Duration, tp.Replayed, len(patches)))
	}
	// Followers, if any, must reach the writer's version.
	for _, f := range r.followers {
		for i := 0; i < 500 && f.conn.Load() != nil && f.last.Load() < w.ot.Version; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	draft, err := r.target.GetDraft(ctx, r.summit, w.d.id)
	if err != nil {
		return err
	}
	tp.FinalRunes = len([]rune(draft.Text))
	tp.TextOK = tp.Replayed == len(patches) && draft.Text == tr.End && w.ot.Text == tr.End
	ok := draft.Text == w.ot.Text && draft.Version == w.ot.Version
	rep.Converged = &ok
	return nil
}

// composePatches turns patches, applied one after another to a text of n
// code points, into one op.
func composePatches(ps []ottrace.Patch, n int) (ot.Op, error) {
	var out ot.Op
	for i, p := range ps {
		op := p.Op(n)
		if i == 0 {
			out = op
		} else {
			var err error
			if out, err = ot.Compose(out, op); err != nil {
				return nil, fmt.Errorf("compose patch %d: %w", i, err)
			}
		}
		n = op.TargetLen()
	}
	return out, nil
}

// replayOne sends op and handles frames until its ack.
func (w *writer) replayOne(ctx context.Context, op ot.Op) error {
	out, err := w.ot.Edit(op)
	if err != nil {
		return err
	}
	if out == nil {
		return errors.New("an op is already in flight")
	}
	if err := w.send(out); err != nil {
		return err
	}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for w.ot.Pending() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-w.readErr:
			return fmt.Errorf("socket: %w", err)
		case <-retry.C:
			if out := w.ot.InFlight(); out != nil {
				if err := w.send(out); err != nil {
					return err
				}
			}
		case data := <-w.frames:
			again, err := w.handle(data, false)
			if err != nil {
				return err
			}
			if again {
				retry.Reset(50 * time.Millisecond)
			}
		}
	}
	w.version.Store(w.ot.Version)
	return nil
}

// finish fills the report from the counters.
func (r *runner) finish(rep *Report) {
	rep.Ack = summarize(r.ackHist.Snapshot())
	rep.Fanout = summarize(r.fanoutHist.Snapshot())
	rep.Edits, rep.OpsSent = r.edits.Load(), r.sent.Load()
	rep.OpsAcked, rep.Delivered, rep.Expected = r.acked.Load(), r.delivered.Load(), r.expected.Load()
	if rep.WindowS > 0 {
		rep.OpsPerS = float64(rep.OpsAcked) / rep.WindowS
		rep.DeliveredPerS = float64(rep.Delivered) / rep.WindowS
		rep.ExpectedPerS = float64(rep.Expected) / rep.WindowS
	}
	if rep.Expected > 0 {
		rep.DeliveredPct = 100 * float64(rep.Delivered) / float64(rep.Expected)
	}
	rep.Reconnects = r.reconnects.Load()
	r.errMu.Lock()
	rep.Errors = make(map[string]uint64, len(r.errors))
	for k, v := range r.errors {
		rep.Errors[k] = v
	}
	r.errMu.Unlock()
}

// closeAll closes every socket; the clients' goroutines then end.
func (r *runner) closeAll() {
	r.stopping.Store(true)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, f := range r.followers {
		if c := f.conn.Swap(nil); c != nil {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				closeConn(c)
			})
		}
	}
	wg.Wait()
}

// saveProfiles fetches a pprof profile from every child server at once
// into files (one per instance: bench-<scenario>-<kind>-<n>.pprof when there
// are several) and returns their paths, comma-separated ("" when all
// failed; failures are logged).
func (r *runner) saveProfiles(ctx context.Context, path, kind string) string {
	targets := r.profileTargets()
	names := make([]string, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			suffix := ""
			if len(targets) > 1 {
				suffix = fmt.Sprintf("-%d", i+1)
			}
			names[i] = r.saveProfile(ctx, t, path, kind+suffix)
		})
	}
	wg.Wait()
	var out []string
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// saveProfile fetches a pprof profile from t into a file and returns its
// path ("" on failure, which is logged).
func (r *runner) saveProfile(ctx context.Context, t *Target, path, kind string) string {
	data, err := t.fetch(ctx, path)
	if err != nil {
		r.log.Warn("profile", "kind", kind, "err", err)
		return ""
	}
	dir := r.cfg.ProfileDir
	if dir == "" {
		dir = "."
	}
	name := fmt.Sprintf("%s/bench-%s-%s.pprof", dir, r.cfg.Scenario, kind)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		r.log.Warn("profile", "kind", kind, "err", err)
		return ""
	}
	return name
}

// memStats reads a few runtime.MemStats lines (KiB) from the child
// servers' /debug/pprof/heap?debug=1, summed over them: where their memory
// is, heap or stacks.
func (r *runner) memStats(ctx context.Context) map[string]int64 {
	sum := map[string]int64{}
	for _, t := range r.profileTargets() {
		m := r.memStatsOf(ctx, t)
		if m == nil {
			return nil
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum
}

func (r *runner) memStatsOf(ctx context.Context, t *Target) map[string]int64 {
	for range 4 {
		_, _ = t.fetch(ctx, "/debug/pprof/heap?gc=1")
	}
	data, err := t.fetch(ctx, "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		r.log.Warn("memstats", "err", err)
		return nil
	}
	out := map[string]int64{}
	if g, err := t.fetch(ctx, "/debug/pprof/goroutine?debug=1"); err == nil {
		line, _, _ := strings.Cut(string(g), "\n")
		if n, err := strconv.ParseInt(strings.TrimPrefix(line, "goroutine profile: total "), 10, 64); err == nil {
			out["Goroutines"] = n
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		for _, k := range []string{"HeapAlloc", "HeapInuse", "HeapIdle", "HeapReleased", "Stack", "Sys", "NumGC"} {
			rest, ok := strings.CutPrefix(line, "# "+k+" = ")
			if !ok {
				continue
			}
			rest, _, _ = strings.Cut(rest, " ")
			if v, err := strconv.ParseInt(rest, 10, 64); err == nil {
				if k != "NumGC" {
					v >>= 10
				}
				out[k] = v
			}
		}
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func randomTag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
