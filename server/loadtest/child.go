package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is a communique server run by the load generator as a child
// process, so that its CPU time and memory can be read from /proc apart
// from the load generator's own.
type Child struct {
	Target     *Target
	AdminToken string
	Pid        int
	Dir        string // its data folder, removed by Stop

	cmd    *exec.Cmd
	exited chan struct{}
	err    error

	mu   sync.Mutex
	tail []string // the last lines it logged, for error reports
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// ChildOptions say how to start a server child.
type ChildOptions struct {
	Bin string // the communique binary, run as `Bin serve …`
	// AdminToken is the token every instance accepts ("" makes a random
	// one): instances sharing a Redis must all accept the same one.
	AdminToken string
	// Redis, when set, is the redis:// URL of the shared store (`serve
	// --redis`); otherwise the child uses the embedded store in its data
	// folder.
	Redis string
	Extra []string // appended to the command line
}

// NewAdminToken returns a random admin token for children.
func NewAdminToken() (string, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return "bench-" + hex.EncodeToString(secret), nil
}

// StartChild runs `bin serve` on a fresh data folder under the system's
// temporary folder (unused with Redis, but each child has its own so none
// can write into another's or the current folder), on a free loopback
// port, with the per-connection op rate limit lifted (the throughput and
// trace scenarios send far more than a person types). It returns once the
// server answers /healthz. The child is killed if this process dies
// without stopping it.
func StartChild(ctx context.Context, opts ChildOptions, log *slog.Logger) (*Child, error) {
	if opts.AdminToken == "" {
		tok, err := NewAdminToken()
		if err != nil {
			return nil, err
		}
		opts.AdminToken = tok
	}
	dir, err := os.MkdirTemp("", "communique-bench-")
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	c := &Child{AdminToken: opts.AdminToken, Dir: dir, exited: make(chan struct{})}
	args := []string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--admin-token", c.AdminToken,
		"--ops-per-second", "1000000", "--ops-burst", "1000000"}
	if opts.Redis != "" {
		args = append(args, "--redis", opts.Redis)
	}
	args = append(args, opts.Extra...)
	c.cmd = exec.Command(opts.Bin, args...)
	c.cmd.Stdout = io.Discard
	// serve reads its defaults from COMMUNIQUE_* variables; the command
	// line above overrides most, but a COMMUNIQUE_REDIS in our environment
	// would put an embedded-store run on someone's Redis, and
	// COMMUNIQUE_DEMO would seed a summit into it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COMMUNIQUE_REDIS=") && !strings.HasPrefix(kv, "COMMUNIQUE_DEMO=") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	setDeathSignal(c.cmd)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", opts.Bin, err)
	}
	c.Pid = c.cmd.Process.Pid
	addrc := make(chan string, 1)
	// The reader keeps draining stderr for the child's whole life (a full
	// pipe would block its logging); it ends when the child exits.
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.tail = append(c.tail, line)
			if len(c.tail) > 40 {
				c.tail = c.tail[len(c.tail)-40:]
			}
			c.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-c.exited:
		c.Stop()
		return nil, fmt.Errorf("server exited before listening: %v\n%s", c.err, c.Tail())
	case <-time.After(30 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("server did not listen within 30 s\n%s", c.Tail())
	case <-ctx.Done():
		c.Stop()
		return nil, ctx.Err()
	}
	c.Target, err = NewTarget("http://"+addr, c.AdminToken)
	if err != nil {
		c.Stop()
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.Target.WaitHealthy(hctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("%w\n%s", err, c.Tail())
	}
	log.Info("server started", "pid", c.Pid, "addr", addr, "data", dir)
	return c, nil
}

// Tail is what the child logged last.
func (c *Child) Tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.tail, "\n")
}

// Stop ends the child (SIGTERM, then SIGKILL after 10 s) and removes its
// data folder. It is safe to call more than once.
func (c *Child) Stop() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	if c.Dir != "" {
		_ = os.RemoveAll(c.Dir)
		c.Dir = ""
	}
}

// ProcStat is a process's CPU time so far and its resident memory now.
type ProcStat struct {
	CPU    time.Duration // user + system
	RSSKiB int64
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// ReadProcStat reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProcStat(pid int) (ProcStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, fmt.Errorf("read stat: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return ProcStat{}, errors.New("read stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return ProcStat{}, errors.New("read stat: too few fields")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return ProcStat{}, fmt.Errorf("read stat: %w", errors.Join(err1, err2))
	}
	st := ProcStat{CPU: time.Duration(utime+stime) * clockTick}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ProcStat{}, fmt.Errorf("read status: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB"))
			if st.RSSKiB, err = strconv.ParseInt(kb, 10, 64); err != nil {
				return ProcStat{}, fmt.Errorf("read VmRSS: %w", err)
			}
		}
	}
	return st, nil
}

// RaiseFileLimit lifts this process's open-file soft limit to its hard
// limit (thousands of sockets need it); children inherit the new limit.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return uint64(rl.Cur), nil // int64 on some BSDs
}
