package servertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildBinary builds cmd/communique into a temporary folder of t and returns
// its path. The build cache makes every build after the first quick.
func BuildBinary(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "communique")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/communique")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Process is a communique serve running as a child process, for tests of
// what only a real process shows: kill -9, signals, the command line.
type Process struct {
	Endpoint
	Cmd  *exec.Cmd
	Data string

	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// StartProcess runs `bin serve --data data --addr addr --admin-token
// AdminToken extra...` and waits until it answers /healthz.
func StartProcess(t testing.TB, bin, data, addr string, extra ...string) *Process {
	t.Helper()
	args := append([]string{"serve", "--data", data, "--addr", addr, "--admin-token", AdminToken}, extra...)
	p := &Process{Data: data, exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout = &lockedWriter{mu: &p.mu, w: &p.stderr}
	pr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr pipe: %v", err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.Kill() })
	select {
	case a := <-addrc:
		p.Addr, p.URL = a, "http://"+a
	case <-p.exited:
		t.Fatalf("server exited before listening: %v\n%s", p.err, p.Output())
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not listen\n%s", p.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitHealthy(ctx, p.URL); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	return p
}

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Kill()
	<-p.exited
}

// Stop sends SIGTERM and waits; it returns the exit error (nil for 0).
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("no exit within %v after SIGTERM", timeout)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
