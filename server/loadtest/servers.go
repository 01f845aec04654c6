package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"communique/server/store/redis/redisproc"
)

// Redis durability settings of a redis-server the run starts itself
// (Config.RedisFsync).
const (
	FsyncAlways   = "always"   // AOF, fsynced before every reply: the embedded store's promise
	FsyncEverysec = "everysec" // AOF, fsynced once a second
	FsyncNo       = "no"       // AOF, fsync left to the OS
	FsyncOff      = "off"      // no AOF, no RDB: nothing survives a restart
)

// splitURLs splits a comma-separated list of server URLs.
func splitURLs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkRedisURL accepts only a redis:// URL on this machine: the run writes
// a summit into it, and must never be pointed at someone else's Redis by
// mistake. Cluster seeds (addr=host:port) must be local too.
func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse repeats its input, which may hold a password.
		return errors.New("--redis is not a valid URL")
	}
	if u.Scheme != "redis" {
		return fmt.Errorf("--redis %s: scheme must be redis:// (loopback only)", u.Redacted())
	}
	hosts := []string{u.Hostname()}
	for _, a := range u.Query()["addr"] {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("--redis %s: addr=%s: %w", u.Redacted(), a, err)
		}
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		if !isLoopback(h) {
			return fmt.Errorf("--redis %s: %w", u.Redacted(), ErrNotLoopback)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a Redis URL's password for reports and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(redis URL)"
	}
	return u.Redacted()
}

// startServers brings up what the run loads: the servers at cfg.URL, or
// child servers (after a redis-server of the run's own, if asked). stop
// ends whatever was started, children first; it is safe to call once
// startServers returned, whatever it returned.
func (r *runner) startServers(ctx context.Context, rep *Report) (stop func(), err error) {
	cfg := r.cfg
	var started []func()
	stop = func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i]()
		}
		started = nil
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()

	if cfg.URL != "" {
		for _, u := range splitURLs(cfg.URL) {
			t, err := NewTarget(u, cfg.Token)
			if err != nil {
				return stop, err
			}
			r.targets = append(r.targets, t)
		}
		urls := make([]string, len(r.targets))
		for i, t := range r.targets {
			urls[i] = t.URL
		}
		rep.Target = strings.Join(urls, ",")
		return stop, nil
	}

	redisURL := cfg.Redis
	if cfg.RedisServer != "" {
		bin := cfg.RedisServer
		if bin == "auto" {
			bin = "" // redis-server from the PATH
		}
		srv, err := redisproc.Start(redisproc.Options{Bin: bin, Args: redisArgs(cfg.RedisFsync)})
		if err != nil {
			return stop, fmt.Errorf("start a redis-server for the run: %w", err)
		}
		started = append(started, srv.Close)
		redisURL = srv.URL()
		r.log.Info("redis-server started", "addr", srv.Addr, "pid", srv.Pid(), "dir", srv.Dir, "appendfsync", cfg.RedisFsync)
	}
	token, err := NewAdminToken()
	if err != nil {
		return stop, err
	}
	opts := ChildOptions{Bin: cfg.ServerBinary, AdminToken: token, Redis: redisURL}
	if cfg.Pprof {
		opts.Extra = append(opts.Extra, "--pprof")
	}
	rep.Target, rep.Store, rep.Instances = "child", "embedded", cfg.Instances
	rep.Server = &ServerReport{}
	for range cfg.Instances {
		c, err := StartChild(ctx, opts, r.log)
		if err != nil {
			return stop, err
		}
		started = append(started, c.Stop)
		r.children = append(r.children, c)
		r.targets = append(r.targets, c.Target)
		rep.Server.Pids = append(rep.Server.Pids, c.Pid)
	}
	rep.Server.Pid = r.children[0].Pid
	if redisURL != "" {
		rep.Store = "redis"
		rep.Redis = r.inspectRedis(ctx, redisURL, cfg.RedisServer != "")
	}
	return stop, nil
}

// redisArgs are a started redis-server's durability settings.
func redisArgs(fsync string) []string {
	if fsync == FsyncOff {
		return nil // redisproc's default: no AOF, no RDB
	}
	return []string{"--appendonly", "yes", "--appendfsync", fsync}
}

// inspectRedis reads what the report should say about the Redis: its
// durability setting and, when it runs on this machine as a process we can
// see, its pid (its CPU counts as the cost of Redis mode too). It never
// writes.
func (r *runner) inspectRedis(ctx context.Context, rawURL string, ours bool) *RedisReport {
	rr := &RedisReport{URL: redactURL(rawURL), Started: ours}
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		// checkRedisURL accepted it; a cluster URL's addr= seeds are not
		// go-redis' syntax. Without details the report only names it.
		r.log.Warn("inspect redis", "err", err)
		return rr
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v, err := c.ConfigGet(ctx, "appendonly").Result(); err == nil {
		if v["appendonly"] == "yes" {
			f, _ := c.ConfigGet(ctx, "appendfsync").Result()
			rr.Durability = "appendonly yes, appendfsync " + f["appendfsync"]
		} else {
			save, _ := c.ConfigGet(ctx, "save").Result()
			rr.Durability = fmt.Sprintf("appendonly no (RDB save %q)", save["save"])
		}
	} else {
		r.log.Warn("inspect redis: CONFIG GET", "err", err)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		r.log.Warn("inspect redis: INFO", "err", err)
		return rr
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				break
			}
			// A Redis in a container reports a pid of another namespace:
			// only trust it if that process here is a redis-server.
			comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			if err == nil && strings.HasPrefix(string(comm), "redis-server") {
				rr.Pid = pid
			}
		}
	}
	return rr
}

// procStat sums CPU time and resident memory over the child servers.
func (r *runner) procStat() (ProcStat, bool) {
	if len(r.children) == 0 {
		return ProcStat{}, false
	}
	var sum ProcStat
	for _, c := range r.children {
		st, err := ReadProcStat(c.Pid)
		if err != nil {
			r.log.Warn("read server stats", "pid", c.Pid, "err", err)
			return ProcStat{}, false
		}
		sum.CPU += st.CPU
		sum.RSSKiB += st.RSSKiB
	}
	return sum, true
}

// redisStat reads the redis-server's process, if the report found it.
func (r *runner) redisStat(rep *Report) (ProcStat, bool) {
	if rep.Redis == nil || rep.Redis.Pid == 0 {
		return ProcStat{}, false
	}
	st, err := ReadProcStat(rep.Redis.Pid)
	if err != nil {
		r.log.Warn("read redis-server stats", "err", err)
		return ProcStat{}, false
	}
	return st, true
}

// profileTargets are the servers to profile: the children (only they run
// with --pprof).
func (r *runner) profileTargets() []*Target {
	out := make([]*Target, len(r.children))
	for i, c := range r.children {
		out[i] = c.Target
	}
	return out
}
