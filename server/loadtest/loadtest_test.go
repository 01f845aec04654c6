package loadtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/loadtest"
	"communique/server/servertest"
	"communique/server/store/redis/redistest"
	"communique/server/ws"
)

// TestSummitScenario runs a tiny summit (2 writers, 5 followers, 2 s)
// against an in-process server and checks what the report must hold:
// every expected update delivered, latencies measured, texts converged. It
// asserts no timing.
func TestSummitScenario(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Scenario:  loadtest.Summit,
		Writers:   2,
		Followers: 5,
		Rate:      10,
		Duration:  2 * time.Second,
		Warmup:    500 * time.Millisecond,
		URL:       s.URL,
		Token:     servertest.AdminToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expected == 0 || rep.Delivered != rep.Expected {
		t.Errorf("delivered %d of %d expected updates; want all, and some", rep.Delivered, rep.Expected)
	}
	if rep.OpsAcked == 0 || rep.Ack.Count != rep.OpsAcked || rep.Ack.P50 <= 0 || rep.Ack.Max <= 0 {
		t.Errorf("ack latency %+v for %d acked ops; want one sample per op, non-zero", rep.Ack, rep.OpsAcked)
	}
	if rep.Fanout.Count != rep.Delivered || rep.Fanout.P99 <= 0 {
		t.Errorf("fan-out latency %+v for %d deliveries; want one sample each, non-zero", rep.Fanout, rep.Delivered)
	}
	if rep.Converged == nil || !*rep.Converged {
		t.Errorf("converged = %v; want true (notes: %v)", rep.Converged, rep.Notes)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
	if rep.ServerLatency == nil || rep.ServerLatency.Commits == 0 {
		t.Errorf("server latency from /metrics: %+v; want commits", rep.ServerLatency)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "fan-out latency") {
		t.Errorf("table lacks the fan-out row:\n%s", table.String())
	}
}

// TestTraceScenario replays a small trace over the socket and checks that
// the server ends on its final text.
func TestTraceScenario(t *testing.T) {
	s := servertest.Start(t, servertest.Options{WS: ws.Config{OpsPerSecond: 1e6, OpsBurst: 1e6}})
	// A trace file of a few typed words, in the editing-traces format.
	dir := t.TempDir()
	path := dir + "/tiny.json"
	writeFile(t, path, `{"startContent":"","endContent":"Seoul 서울 🌐 2013!","txns":[`+
		tinyTrace("Seoul 서울 🌐 2013!")+`]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Scenario:  loadtest.TraceReplay,
		Trace:     path,
		Batch:     3,
		Followers: 2,
		URL:       s.URL,
		Token:     servertest.AdminToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr := rep.Trace; tr == nil || !tr.TextOK || tr.Replayed != tr.Patches || tr.Messages == 0 {
		t.Fatalf("trace report %+v; want every patch replayed and the final text matched", rep.Trace)
	}
}

// TestOTClientConverges drives two OTClients and a server stand-in by hand:
// concurrent edits are transformed on both sides to the same text.
func TestOTClientConverges(t *testing.T) {
	a, b := loadtest.NewOTClient("a"), loadtest.NewOTClient("b")
	a.Reset("서울 2013", 0)
	b.Reset("서울 2013", 0)
	outA, err := a.Edit(ot.Op{}.Retain(2).Insert(" 🌐").Retain(5))
	if err != nil || outA == nil {
		t.Fatal(outA, err)
	}
	outB, err := b.Edit(ot.Op{}.Retain(3).Delete(4).Insert("2026"))
	if err != nil || outB == nil {
		t.Fatal(outB, err)
	}
	// The server takes a's op first: b's is transformed over it.
	opB, _, err := ot.Transform(outB.Op, outA.Op)
	if err != nil {
		t.Fatal(err)
	}
	rawA, _ := outA.Op.MarshalJSON()
	rawB, _ := opB.MarshalJSON()
	if settled, _, err := a.Ack(outA.Seq, 1); err != nil || !settled {
		t.Fatal(settled, err)
	}
	if _, _, err := b.Receive(1, "a", outA.Seq, rawA); err != nil {
		t.Fatal(err)
	}
	if settled, _, err := b.Ack(outB.Seq, 2); err != nil || !settled {
		t.Fatal(settled, err)
	}
	if _, _, err := a.Receive(2, "b", outB.Seq, rawB); err != nil {
		t.Fatal(err)
	}
	if a.Text != b.Text || a.Text != "서울 🌐 2026" || a.Len() != len([]rune(a.Text)) {
		t.Errorf("a %q (%d), b %q; want both %q", a.Text, a.Len(), b.Text, "서울 🌐 2026")
	}
}

// tinyTrace types text one code point per transaction.
func tinyTrace(text string) string {
	var parts []string
	pos := 0
	for _, r := range text {
		q, _ := json.Marshal(string(r))
		parts = append(parts, fmt.Sprintf(`{"patches":[[%d,0,%s]]}`, pos, q))
		pos++
	}
	return strings.Join(parts, ",")
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRedisMode runs `communique bench`'s Redis mode as a short summit: two
// child servers (the real binary) sharing a Redis, writers and followers
// spread over both, so every delivery to a follower on the other instance
// crossed the Redis bus. It checks the report, and that the children (and a
// redis-server the run started) are gone afterwards. It asserts no timing.
//
// The Redis is COMMUNIQUE_TEST_REDIS if set (the run's summit has a random
// id there), else one the run starts itself from the PATH (--redis-server
// auto); without either the test is skipped loudly, or fails when
// COMMUNIQUE_REQUIRE_REDIS=1.
func TestRedisMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts server processes")
	}
	cfg := loadtest.Config{
		Scenario:  loadtest.Summit,
		Writers:   2,
		Followers: 4,
		Rate:      10,
		Duration:  1500 * time.Millisecond,
		Warmup:    300 * time.Millisecond,
	}
	if u := os.Getenv(redistest.EnvURL); u != "" {
		cfg.Redis = u
	} else if _, err := exec.LookPath("redis-server"); err == nil {
		cfg.RedisServer = "auto"
		cfg.RedisFsync = loadtest.FsyncEverysec
	} else {
		redistest.URL(t) // skips loudly, or fails when Redis is required
	}
	cfg.ServerBinary = servertest.BuildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Store != "redis" || rep.Instances != 2 || rep.Server == nil || len(rep.Server.Pids) != 2 || rep.Redis == nil {
		t.Fatalf("store %q, %d instances, server %+v, redis %+v; want 2 children on Redis", rep.Store, rep.Instances, rep.Server, rep.Redis)
	}
	if cfg.RedisServer != "" && (!rep.Redis.Started || rep.Redis.Durability != "appendonly yes, appendfsync everysec") {
		t.Errorf("redis %+v; want a redis-server of the run's own with AOF everysec", rep.Redis)
	}
	if rep.Expected == 0 || rep.Delivered != rep.Expected {
		t.Errorf("delivered %d of %d expected updates; want all, and some", rep.Delivered, rep.Expected)
	}
	if rep.Converged == nil || !*rep.Converged {
		t.Errorf("converged = %v; want true (notes: %v)", rep.Converged, rep.Notes)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
	if rep.Server.RSSConnectedKiB <= 0 || rep.ServerLatency == nil || rep.ServerLatency.Commits == 0 {
		t.Errorf("server %+v, latency %+v; want RSS from /proc and commits from both /metrics", rep.Server, rep.ServerLatency)
	}
	// Run stops what it started before it returns.
	pids := rep.Server.Pids
	if rep.Redis.Started {
		pids = append(pids, rep.Redis.Pid)
	}
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d still runs after Run returned", pid)
		}
	}
}
