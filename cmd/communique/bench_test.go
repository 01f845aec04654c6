package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"communique/server/loadtest"
)

// childEnv makes this test binary act as `communique` itself, so that
// `bench` can start it as its server child process (see TestMain).
const childEnv = "COMMUNIQUE_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchChildServer runs `communique bench` end to end the way people
// do, with the server as a child process, and checks the JSON report:
// every update delivered, the server's CPU and memory read from /proc. It
// asserts no timing.
func TestBenchChildServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	t.Setenv(childEnv, "1") // inherited by the child
	// bench finds the server binary with os.Executable: this test binary.
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--json", "--writers", "2", "--followers", "3", "--rate", "10",
		"--duration", "1500ms", "--warmup", "300ms"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	var rep loadtest.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if rep.Target != "child" || rep.Server == nil {
		t.Fatalf("target %q, server %+v; want a child server with its stats", rep.Target, rep.Server)
	}
	if rep.Expected == 0 || rep.Delivered != rep.Expected {
		t.Errorf("delivered %d of %d", rep.Delivered, rep.Expected)
	}
	if rep.Server.RSSBeforeKiB <= 0 || rep.Server.RSSConnectedKiB <= 0 || rep.Server.Pid <= 0 {
		t.Errorf("server stats %+v; want RSS read from /proc", rep.Server)
	}
	if !strings.Contains(errOut.String(), "window") {
		t.Errorf("no progress line on stderr:\n%s", errOut.String())
	}
}

// TestBenchRefusesRemoteTargets checks that the load generator only points
// at this machine.
func TestBenchRefusesRemoteTargets(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--url", "http://example.com:8080", "--token", "x"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "loopback") {
		t.Errorf("exit %d, stderr %q; want a refusal naming loopback", code, errOut.String())
	}
	// Nor at someone else's Redis, and a Redis password never shows.
	errOut.Reset()
	code = run([]string{"bench", "--redis", "redis://:s3cret@10.1.2.3:6379/0"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "loopback") || strings.Contains(errOut.String(), "s3cret") {
		t.Errorf("exit %d, stderr %q; want a refusal naming loopback, without the password", code, errOut.String())
	}
}

// TestBenchRedisFlags checks the Redis-mode flags that need no Redis to be
// refused.
func TestBenchRedisFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--instances", "2"}, "shared store"},
		{[]string{"--redis", "redis://127.0.0.1:6379", "--redis-server", "auto"}, "not both"},
		{[]string{"--redis", "redis://127.0.0.1:6379", "--redis-fsync", "always"}, "--redis-server"},
		{[]string{"--redis-server", "auto", "--redis-fsync", "sometimes"}, "everysec"},
		{[]string{"--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--token", "x", "--instances", "2"}, "--url"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"bench"}, tc.args...), &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want a refusal naming %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
