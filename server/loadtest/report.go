package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run. Durations are in milliseconds.
type Report struct {
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	Target   string    `json:"target"` // "child", or the URLs given
	// Store and Instances describe child servers: "embedded" (bbolt, one
	// instance) or "redis" (Instances sharing it; see Redis).
	Store     string  `json:"store,omitempty"`
	Instances int     `json:"instances,omitempty"`
	Docs      int     `json:"docs"`
	Writers   int     `json:"writers"`
	Followers int     `json:"followers"`
	Stream    string  `json:"follow_stream,omitempty"`
	Rate      float64 `json:"rate_per_writer,omitempty"` // ops/s; 0: as fast as acks allow
	WindowS   float64 `json:"window_s"`                  // the measured interval

	Connect        Latency `json:"connect"`          // dial to hello, every socket
	ConnectPhaseS  float64 `json:"connect_phase_s"`  // all sockets open
	ConnectErrors  int     `json:"connect_errors"`   // sockets that never opened
	Edits          uint64  `json:"edits"`            // edits made by writers (all phases)
	OpsSent        uint64  `json:"ops_sent"`         // op messages sent (all phases)
	OpsAcked       uint64  `json:"ops_acked"`        // acked ops sent in the window
	OpsPerS        float64 `json:"ops_per_s"`        // OpsAcked / window
	Ack            Latency `json:"ack"`              // send to ack, ops sent in the window
	Fanout         Latency `json:"fanout"`           // writer's send to follower's receipt
	Delivered      uint64  `json:"delivered"`        // follower receipts of ops sent in the window
	Expected       uint64  `json:"expected"`         // acked ops × followers of their document
	DeliveredPerS  float64 `json:"delivered_per_s"`  // Delivered / window
	ExpectedPerS   float64 `json:"expected_per_s"`   // Expected / window
	DeliveredPct   float64 `json:"delivered_pct"`    // 100 × Delivered / Expected
	FramesInWindow uint64  `json:"frames_in_window"` // ops and acks received by all clients during the window
	Reconnects     uint64  `json:"reconnects"`
	// LoadCPUPercent is the load generator's own CPU during the window, in
	// percent of one core: it shares the machine with the server.
	LoadCPUPercent float64           `json:"load_cpu_pct"`
	Errors         map[string]uint64 `json:"errors"`
	Converged      *bool             `json:"converged,omitempty"` // every writer and the server hold the same text

	// ServerLatency comes from the servers' /metrics, summed over the
	// instances.
	ServerLatency *ServerLatency `json:"server_latency,omitempty"`
	// Server is only there when the load generator started the servers;
	// with several instances its CPU and memory are their sums.
	Server *ServerReport `json:"server,omitempty"`
	Redis  *RedisReport  `json:"redis,omitempty"` // Redis mode
	Trace  *TraceReport  `json:"trace,omitempty"`
	Notes  []string      `json:"notes,omitempty"`
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func summarize(s *Snapshot) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{
		Count: s.Count(),
		P50:   ms(s.Quantile(0.50)),
		P95:   ms(s.Quantile(0.95)),
		P99:   ms(s.Quantile(0.99)),
		Max:   ms(s.Max()),
		Mean:  ms(s.Mean()),
	}
}

// ServerReport is what /proc says about the server processes. With
// several instances, CPU, RSS and memory statistics are summed over them
// and profiles are one file per instance (comma-separated).
type ServerReport struct {
	Pid                int     `json:"pid"`                // the first instance's
	Pids               []int   `json:"pids"`               // every instance's
	CPUSeconds         float64 `json:"cpu_s"`              // user + system during the window
	CPUPercent         float64 `json:"cpu_pct"`            // of one core, during the window
	CPUPerUpdateMicros float64 `json:"cpu_per_update_us"`  // CPU / frames delivered in the window
	RSSBeforeKiB       int64   `json:"rss_before_kib"`     // before any socket
	RSSConnectedKiB    int64   `json:"rss_connected_kib"`  // every socket open, before editing
	RSSEndKiB          int64   `json:"rss_end_kib"`        // at the end of the window
	KiBPerConnection   float64 `json:"kib_per_connection"` // (connected − before) / sockets
	// KiBPerIdleConnection is (end − before) / sockets after the sockets
	// sat idle for the window (connect-storm), the garbage of the
	// handshakes collected.
	KiBPerIdleConnection float64 `json:"kib_per_idle_connection,omitempty"`
	HeapProfile          string  `json:"heap_profile,omitempty"`
	// MemStats (KiB; with --pprof, read after connecting) splits the
	// memory into heap and goroutine stacks.
	MemStats   map[string]int64 `json:"memstats_kib,omitempty"`
	CPUProfile string           `json:"cpu_profile,omitempty"`
}

// RedisReport describes the Redis of a Redis-mode run.
type RedisReport struct {
	URL        string `json:"url"`              // password hidden
	Started    bool   `json:"started_by_bench"` // a redis-server of the run's own
	Durability string `json:"durability,omitempty"`
	// Pid, CPU and RSS of the redis-server when it runs on this machine
	// (its work is part of what Redis mode costs; not in Server's sums).
	Pid        int     `json:"pid,omitempty"`
	CPUSeconds float64 `json:"cpu_s,omitempty"`
	CPUPercent float64 `json:"cpu_pct,omitempty"`
	RSSEndKiB  int64   `json:"rss_end_kib,omitempty"`
}

// TraceReport is the outcome of a trace replay.
type TraceReport struct {
	File        string  `json:"file"`
	Patches     int     `json:"patches"`
	Replayed    int     `json:"replayed"`
	Messages    uint64  `json:"messages"` // op messages (patches batched per message)
	Batch       int     `json:"batch"`
	Seconds     float64 `json:"seconds"`
	PatchesPerS float64 `json:"patches_per_s"`
	FinalRunes  int     `json:"final_runes"`
	TextOK      bool    `json:"text_ok"` // the server's draft equals the trace's endContent
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

// WriteTable writes r as a table for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	lat := func(k string, l Latency) {
		if l.Count == 0 {
			row(k, "—")
			return
		}
		row(k, "p50 %s  p95 %s  p99 %s  max %s  (n=%d)", fmtMS(l.P50), fmtMS(l.P95), fmtMS(l.P99), fmtMS(l.Max), l.Count)
	}
	fmt.Fprintf(tw, "scenario\t%s (%s)\n", r.Scenario, r.Target)
	switch {
	case r.Store == "redis":
		row("servers", "%d instances sharing Redis (CPU and RSS below are their sums)", r.Instances)
	case r.Store != "":
		row("servers", "%d instance, %s store", r.Instances, r.Store)
	}
	if rr := r.Redis; rr != nil {
		started := "given"
		if rr.Started {
			started = "started by bench"
		}
		durability := rr.Durability
		if durability == "" {
			durability = "durability unknown"
		}
		line := fmt.Sprintf("%s (%s), %s", rr.URL, started, durability)
		if rr.Pid != 0 {
			line += fmt.Sprintf("; redis-server %.0f%% of a core in the window, %d KiB RSS", rr.CPUPercent, rr.RSSEndKiB)
		}
		row("redis", "%s", line)
	}
	shape := fmt.Sprintf("%d doc(s), %d writer(s)", r.Docs, r.Writers)
	if r.Rate > 0 {
		shape += fmt.Sprintf(" × %g ops/s", r.Rate)
	} else if r.Writers > 0 {
		shape += " as fast as acks allow"
	}
	shape += fmt.Sprintf(", %d follower(s)", r.Followers)
	if r.Stream != "" && r.Followers > 0 {
		shape += " on the " + r.Stream + " stream"
	}
	row("load", "%s", shape)
	row("window", "%.1f s", r.WindowS)
	lat("connect", r.Connect)
	row("connect phase", "%.2f s, %d failed", r.ConnectPhaseS, r.ConnectErrors)
	if r.Writers > 0 {
		row("ops", "%d acked in the window, %.0f ops/s (%d edits, %d messages in all)", r.OpsAcked, r.OpsPerS, r.Edits, r.OpsSent)
		lat("ack latency", r.Ack)
	}
	if r.Followers > 0 && r.Writers > 0 {
		lat("fan-out latency", r.Fanout)
		row("delivered", "%d of %d expected (%.2f%%): %.0f/s of %.0f/s", r.Delivered, r.Expected, r.DeliveredPct, r.DeliveredPerS, r.ExpectedPerS)
	}
	if r.Converged != nil {
		row("converged", "%v", *r.Converged)
	}
	if t := r.Trace; t != nil {
		row("trace", "%s: %d of %d patches in %d messages of %d, %.2f s (%.0f patches/s), final text %d code points, matches endContent: %v",
			t.File, t.Replayed, t.Patches, t.Messages, t.Batch, t.Seconds, t.PatchesPerS, t.FinalRunes, t.TextOK)
	}
	if l := r.ServerLatency; l != nil {
		row("server-side", "op receipt→ack p50 %s p99 %s; store commit p50 %s p99 %s; %.0f commits, %.2f ops per commit",
			fmtMS(l.OpP50), fmtMS(l.OpP99), fmtMS(l.CommitP50), fmtMS(l.CommitP99), l.Commits, l.OpsPerCommit)
	}
	if s := r.Server; s != nil {
		row("server CPU", "%.2f s in the window (%.0f%% of a core), %.2f µs per delivered frame (%d frames)", s.CPUSeconds, s.CPUPercent, s.CPUPerUpdateMicros, r.FramesInWindow)
		row("server RSS", "%d KiB before, %d KiB connected, %d KiB at the end: %.1f KiB per connection", s.RSSBeforeKiB, s.RSSConnectedKiB, s.RSSEndKiB, s.KiBPerConnection)
		if s.KiBPerIdleConnection > 0 {
			row("idle RSS", "%.1f KiB per connection after %.0f s idle", s.KiBPerIdleConnection, r.WindowS)
		}
		if s.CPUProfile != "" {
			row("CPU profile", "%s", s.CPUProfile)
		}
		if s.HeapProfile != "" {
			row("heap profile", "%s", s.HeapProfile)
		}
		if m := s.MemStats; m != nil {
			row("server memory", "after a GC: heap in use %d KiB (allocated %d), stacks %d KiB of %d goroutines, Sys %d KiB, %d GCs",
				m["HeapInuse"], m["HeapAlloc"], m["Stack"], m["Goroutines"], m["Sys"], m["NumGC"])
		}
	}
	if r.LoadCPUPercent > 0 {
		row("load generator", "%.0f%% of a core during the window", r.LoadCPUPercent)
	}
	row("reconnects", "%d", r.Reconnects)
	if len(r.Errors) == 0 {
		row("errors", "none")
	} else {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s ×%d", k, r.Errors[k])
		}
		row("errors", "%s", strings.Join(parts, "; "))
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	return tw.Flush()
}

func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}
