// Package redisproc starts and stops a redis-server of one's own on a free
// 127.0.0.1 port: for tests (through redistest) and for `communique bench
// --redis-server`, which must never touch a Redis it was not given.
package redisproc

import (
	"bufio"
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
	"time"
)

// StartTimeout bounds how long a redis-server may take to answer PING.
const StartTimeout = 10 * time.Second

// Options describe a redis-server to start.
type Options struct {
	// Bin is the redis-server binary; "" looks for redis-server on the
	// PATH (a failure wraps exec.ErrNotFound).
	Bin string
	// Dir is its working folder (RDB and AOF files, redis.log); "" makes
	// a temporary one that Close removes.
	Dir string
	// Args come after the defaults (no persistence, loopback only), so
	// later ones win, e.g. "--appendonly", "yes".
	Args []string
	// FreeAddr picks the address to listen on (nil: FreeAddr).
	FreeAddr func() (string, error)
}

// Server is a redis-server process. Its methods are safe for concurrent
// use.
type Server struct {
	Addr string // 127.0.0.1:port; the same across restarts
	Dir  string // working folder

	bin    string
	args   []string
	ownDir bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start starts a redis-server and waits until it answers PING. The caller
// owns it and must Close it (on Linux the kernel also kills it if the
// calling process dies first).
func Start(opts Options) (*Server, error) {
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
	}
	free := opts.FreeAddr
	if free == nil {
		free = FreeAddr
	}
	s := &Server{Dir: opts.Dir, bin: bin, args: opts.Args}
	if s.Dir == "" {
		dir, err := os.MkdirTemp("", "communique-redis-")
		if err != nil {
			return nil, fmt.Errorf("redis-server folder: %w", err)
		}
		s.Dir, s.ownDir = dir, true
	}
	// A free port can be taken between our probe and redis-server's bind;
	// try a few.
	for attempt := 0; ; attempt++ {
		addr, err := free()
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Addr = addr
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "in use") {
			s.Close()
			return nil, err
		}
	}
}

// URL is the server's redis:// URL (without password: add it yourself when
// Args set --requirepass).
func (s *Server) URL() string { return "redis://" + s.Addr }

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Pid is the running process's id (0 when it is not running).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill stops the server with SIGKILL and waits for it to exit; no-op if
// it is not running. Its folder stays (Restart reloads from it).
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

// Close kills the server and removes its folder if Start made it.
func (s *Server) Close() {
	s.Kill()
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
		s.ownDir = false
	}
}

// Pause freezes the server (SIGSTOP): connections are accepted by the
// kernel but nothing answers, like a Redis stuck on a slow disk.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("redis-server on %s: %v to a server that is not running", s.Addr, sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redis-server on %s: %v: %w", s.Addr, sig, err)
	}
	return nil
}

// Restart kills the server if it runs and starts it again on the same port
// and folder with the same arguments, so it reloads what it persisted.
func (s *Server) Restart() error {
	s.Kill()
	return s.start()
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
		return fmt.Errorf("redis-server log file: %w", err)
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
	// Owned by the process: it ends when redis-server exits (Kill waits
	// for it).
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
// it is up, it wants a password), it exits, or StartTimeout passes.
func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(StartTimeout)
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
			return fmt.Errorf("no answer to PING within %s (last: %q, %v)", StartTimeout, reply, err)
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

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreeClusterAddr finds a port p with p+10000 free too: a cluster node
// listens on both (the second for the cluster bus).
func FreeClusterAddr() (string, error) {
	for range 100 {
		addr, err := FreeAddr()
		if err != nil {
			return "", err
		}
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
		return addr, nil
	}
	return "", errors.New("no free port pair for a cluster node")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
