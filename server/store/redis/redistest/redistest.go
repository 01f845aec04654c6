// Package redistest gives tests a real Redis: the one named by
// COMMUNIQUE_TEST_REDIS, or a redis-server of their own on a free port in a
// temporary folder. It never uses a Redis it was not told about (such as
// one on the default port 6379).
//
// Without COMMUNIQUE_TEST_REDIS and without redis-server on the PATH, tests
// are skipped with a loud notice, unless COMMUNIQUE_REQUIRE_REDIS=1 (as in
// CI), which makes them fail instead.
package redistest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"communique/server/store/redis/redisproc"
)

// Environment variables.
const (
	EnvURL     = "COMMUNIQUE_TEST_REDIS"    // redis:// URL of a Redis tests may write to
	EnvRequire = "COMMUNIQUE_REQUIRE_REDIS" // "1": missing Redis fails tests instead of skipping
)

// URL returns the URL of a Redis for t: COMMUNIQUE_TEST_REDIS if set, else
// a redis-server started for t (stopped when t ends). Tests sharing one
// Redis must use distinct key prefixes (see Prefix).
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return StartServer(t).URL()
}

// Prefix returns a key prefix no other test uses.
func Prefix(t testing.TB) string {
	var b [6]byte
	rand.Read(b[:])
	return "cqt-" + hex.EncodeToString(b[:])
}

// Server is a redis-server process owned by one test (see redisproc; this
// wrapper fails the test instead of returning errors).
type Server struct {
	*redisproc.Server
	t testing.TB
}

// StartServer starts a redis-server on a free 127.0.0.1 port, with no
// persistence unless args say otherwise (later arguments win, e.g.
// "--appendonly", "yes"), and waits until it answers. It is killed when t
// ends.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server is not on the PATH")
	}
	return startServer(t, bin, redisproc.FreeAddr, args)
}

func startServer(t testing.TB, bin string, free func() (string, error), args []string) *Server {
	t.Helper()
	s, err := redisproc.Start(redisproc.Options{Bin: bin, Dir: t.TempDir(), Args: args, FreeAddr: free})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return &Server{Server: s, t: t}
}

// Pause freezes the server (SIGSTOP): connections are accepted by the
// kernel but nothing answers, like a Redis stuck on a slow disk.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.Server.Pause(); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.Server.Resume(); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Restart kills the server if it runs and starts it again on the same port
// and folder with the same arguments, so it reloads what it persisted.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Server.Restart(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// missing skips t loudly, or fails it when Redis is required.
func missing(t testing.TB, why string) {
	t.Helper()
	banner := func(lines ...string) string {
		out := "\n" + strings.Repeat("*", 64)
		for _, l := range lines {
			out += "\n*  " + l
		}
		return out + "\n" + strings.Repeat("*", 64)
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(banner("NO REDIS: "+why+".",
			EnvRequire+"=1, so this test FAILS. Install redis-server",
			"or set "+EnvURL+"=redis://host:port."))
	}
	t.Skip(banner("NO REDIS: "+why+".",
		"Redis tests are SKIPPED. Install redis-server, or set",
		EnvURL+"=redis://host:port; set "+EnvRequire+"=1 to make this fail."))
}

// Cluster is a Redis Cluster of masters without replicas, owned by one test.
type Cluster struct {
	Nodes []*Server
}

// URL is a redis:// URL naming every node (the first as host, the others
// as addr= seeds).
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// StartCluster starts n (at least 3) cluster-enabled redis-servers, joins
// them with redis-cli --cluster create, and waits until every node reports
// cluster_state:ok. The nodes are killed when t ends.
func StartCluster(t testing.TB, n int, args ...string) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server is not on the PATH")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		missing(t, "redis-cli is not on the PATH")
	}
	c := &Cluster{}
	nodeArgs := append([]string{
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "2000",
	}, args...)
	for range n {
		c.Nodes = append(c.Nodes, startServer(t, bin, redisproc.FreeClusterAddr, nodeArgs))
	}
	create := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		create = append(create, s.Addr)
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	deadline := time.Now().Add(redisproc.StartTimeout)
	for _, s := range c.Nodes {
		for {
			out, err := exec.Command(cli, "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port()), "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %s not ok within %s: %s %v", s.Addr, redisproc.StartTimeout, out, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}
