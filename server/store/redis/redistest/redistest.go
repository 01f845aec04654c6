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
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables.
const (
	EnvURL     = "COMMUNIQUE_TEST_REDIS"    // redis:// URL of a Redis tests may write to
	EnvRequire = "COMMUNIQUE_REQUIRE_REDIS" // "1": missing Redis fails tests instead of skipping
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

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

// Server is a redis-server process owned by one test.
type Server struct {
	Addr string // 127.0.0.1:port; the same across restarts
	Dir  string // working folder: RDB and AOF files, redis.log

	t    testing.TB
	bin  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
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
	return startServer(t, bin, freeAddr, args)
}

func startServer(t testing.TB, bin string, free func(testing.TB) string, args []string) *Server {
	t.Helper()
	s := &Server{Dir: t.TempDir(), t: t, bin: bin, args: args}
	// A free port can be taken between our probe and redis-server's bind;
	// try a few.
	for attempt := 0; ; attempt++ {
		s.Addr = free(t)
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("redistest: %v", err)
		}
	}
	t.Cleanup(s.Kill)
	return s
}

// URL is the server's redis:// URL (without password: add it yourself when
// args set --requirepass).
func (s *Server) URL() string { return "redis://" + s.Addr }

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Kill stops the server with SIGKILL and waits for it to exit; no-op if
// it is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Pause freezes the server (SIGSTOP): connections are accepted by the
// kernel but nothing answers, like a Redis stuck on a slow disk.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v to a server that is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// Restart kills the server if it runs and starts it again on the same port
// and folder with the same arguments, so it reloads what it persisted.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--daemonize", "no", "--protected-mode", "yes",
	}, s.args...)
	logPath := filepath.Join(s.Dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	if err := waitReady(s.Addr, exited); err != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("redis-server on %s: %w\n--- redis.log ---\n%s", s.Addr, err, tail(string(log), 2000))
	}
	s.cmd, s.exited = cmd, exited
	return nil
}

// waitReady polls addr with PING until the server answers (NOAUTH counts:
// it is up, it wants a password), it exits, or startTimeout passes.
func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		default:
		}
		reply, err := pingOnce(addr)
		if err == nil && (strings.HasPrefix(reply, "+PONG") || strings.HasPrefix(reply, "-NOAUTH")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %s (last: %q, %v)", startTimeout, reply, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pingOnce(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freeClusterAddr finds a port p with p+10000 free too: a cluster node
// listens on both (the second for the cluster bus).
func freeClusterAddr(t testing.TB) string {
	for range 100 {
		addr := freeAddr(t)
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("redistest: no free port pair for a cluster node")
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
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
		c.Nodes = append(c.Nodes, startServer(t, bin, freeClusterAddr, nodeArgs))
	}
	create := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		create = append(create, s.Addr)
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, s := range c.Nodes {
		for {
			out, err := exec.Command(cli, "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port()), "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %s not ok within %s: %s %v", s.Addr, startTimeout, out, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}
