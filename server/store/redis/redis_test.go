package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"communique/ot"
	"communique/server/store"
	"communique/server/store/redis"
	"communique/server/store/redis/redistest"
	"communique/server/store/storetest"

	"github.com/google/go-cmp/cmp"
)

// fast are options for fault tests: a dead Redis must show within a second.
var fast = redis.Options{
	DialTimeout:  500 * time.Millisecond,
	ReadTimeout:  500 * time.Millisecond,
	WriteTimeout: 500 * time.Millisecond,
	MaxRetries:   -1,
}

// quiet drops the store's operational log lines (opened, closed, corrupt
// stream): tests check errors, not logs.
var quiet = slog.New(slog.DiscardHandler)

func open(t *testing.T, url string, opts redis.Options) *redis.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Prefix == "" {
		opts.Prefix = redistest.Prefix(t)
	}
	s, err := redis.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := redis.Open(context.Background(), url, redis.Options{Prefix: redistest.Prefix(t), Logger: quiet})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s // storetest closes it
	})
}

const (
	summit = "geneva-2026"
	doc    = "final-declaration"
)

var draft = store.StreamKey{Summit: summit, Doc: doc, Stream: store.Draft}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func rec(v uint64, text string) store.OpRecord {
	return store.OpRecord{Version: v, Op: ot.Op{{Insert: text}}, Author: "FRA", Time: t0.Add(time.Duration(v) * time.Second)}
}

func mustDoc(t *testing.T, s *redis.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateSummit(ctx, store.Summit{ID: summit, Title: "Geneva", Created: t0}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateSummit: %v", err)
	}
	if err := s.CreateDoc(ctx, store.Doc{Summit: summit, ID: doc, Title: "Declaration", Created: t0}, "Preamble\n"); err != nil {
		t.Fatalf("CreateDoc: %v", err)
	}
}

func mustAppend(t *testing.T, s *redis.Store, recs ...store.OpRecord) {
	t.Helper()
	if err := s.Append(context.Background(), store.Append{Key: draft, Records: recs}); err != nil {
		t.Fatalf("Append(v%d…): %v", recs[0].Version, err)
	}
}

func mustHead(t *testing.T, s *redis.Store) uint64 {
	t.Helper()
	h, err := s.Head(context.Background(), draft)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

// TestTwoInstances races two stores (two clients, as two server instances
// would have) for every version: exactly one append wins each.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	a := open(t, url, redis.Options{Prefix: prefix})
	b := open(t, url, redis.Options{Prefix: prefix})
	mustDoc(t, a)

	const rounds, perStore = 30, 3
	for v := uint64(1); v <= rounds; v++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2*perStore)
		for i := range errs {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				r := rec(v, fmt.Sprintf("w%d ", i))
				r.Author = fmt.Sprintf("W%d", i)
				<-start
				errs[i] = s.Append(context.Background(), store.Append{Key: draft, Records: []store.OpRecord{r}})
			})
		}
		close(start)
		wg.Wait()
		var won []int
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, i)
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d writer %d: %v; want nil or ErrConflict", v, i, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: winners %v; want exactly one", v, won)
		}
		// Both instances see the winner's op at v.
		for _, s := range []*redis.Store{a, b} {
			got, err := s.Since(context.Background(), draft, v-1, 1)
			if err != nil {
				t.Fatalf("Since: %v", err)
			}
			if want := fmt.Sprintf("W%d", won[0]); len(got) != 1 || got[0].Author != want {
				t.Fatalf("round %d: version %d = %+v; want the winner %s", v, v, got, want)
			}
		}
	}
	if h := mustHead(t, b); h != rounds {
		t.Errorf("Head = %d; want %d", h, rounds)
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	s := open(t, redistest.URL(t), redis.Options{})
	mustDoc(t, s)
	if h := mustHead(t, s); h != 0 {
		t.Errorf("Head of a new stream = %d; want 0", h)
	}
	mustAppend(t, s, rec(1, "a"), rec(2, "b"))
	if h := mustHead(t, s); h != 2 {
		t.Errorf("Head = %d; want 2", h)
	}
	for _, k := range []store.StreamKey{
		{Summit: summit, Doc: "missing", Stream: store.Draft},
		{Summit: summit, Doc: doc, Stream: "margin"},
		{Summit: summit, Doc: "a}b", Stream: store.Draft},
		{Summit: "", Doc: doc, Stream: store.Draft},
	} {
		if _, err := s.Head(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Head(%v) = %v; want ErrNotFound", k, err)
		}
	}
}

// TestKeyLayout pins the documented key names: operators and the bus rely
// on them (the bus's channel for a document shares its hash tag).
func TestKeyLayout(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	s := open(t, url, redis.Options{Prefix: prefix})
	mustDoc(t, s)
	mustAppend(t, s, store.OpRecord{Version: 1, Op: ot.Op{{Insert: "x"}}, Src: "alice#1", Seq: 1, Time: t0})
	ctx := context.Background()
	if err := s.PutToken(ctx, store.Token{ID: "t1", Summit: summit, Hash: []byte{0xab, 0xcd}, Created: t0}); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	tag := "{" + prefix + ":" + summit + ":" + doc + "}"
	for _, tc := range []struct{ key, typ string }{
		{tag + ":doc", "string"},
		{tag + ":draft:head", "string"},
		{tag + ":draft:ops", "hash"},
		{tag + ":draft:snap", "string"},
		{tag + ":draft:snaps", "zset"},
		{tag + ":draft:clients", "hash"},
		{tag + ":draft:recent", "list"},
		{tag + ":approved:head", "string"},
		{prefix + ":summit:" + summit, "string"},
		{prefix + ":docs:" + summit, "set"},
		{prefix + ":tokens:" + summit, "hash"},
		{prefix + ":token:abcd", "string"},
	} {
		got, err := s.Client().Type(ctx, tc.key).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", tc.key, err)
		}
		if got != tc.typ {
			t.Errorf("TYPE %s = %s; want %s", tc.key, got, tc.typ)
		}
	}
	if got, _ := s.Client().Get(ctx, tag+":draft:head").Result(); got != "1" {
		t.Errorf("head = %q; want \"1\"", got)
	}
}

// TestScriptCacheFlushed: a restarted or flushed Redis has forgotten the
// scripts; EVALSHA falls back to EVAL.
func TestScriptCacheFlushed(t *testing.T) {
	t.Parallel()
	s := open(t, redistest.URL(t), redis.Options{})
	mustDoc(t, s)
	mustAppend(t, s, rec(1, "a"))
	if err := s.Client().ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	mustAppend(t, s, rec(2, "b"))
	if h := mustHead(t, s); h != 2 {
		t.Errorf("Head = %d; want 2", h)
	}
}

// TestWaitReplicas: with WaitReplicas and no replica, the append is
// applied but not confirmed, and Append says so with ErrUnavailable.
func TestWaitReplicas(t *testing.T) {
	t.Parallel()
	// A server of its own: a shared one might have a replica.
	s := open(t, redistest.StartServer(t).URL(), redis.Options{WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	mustDoc(t, s)
	// The pipelined path (script, then WAIT) must also survive a flushed
	// script cache.
	if err := s.Client().ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	err := s.Append(context.Background(), store.Append{Key: draft, Records: []store.OpRecord{rec(1, "a")}})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("Append = %v; want ErrUnavailable saying 0 of 1 replicas", err)
	}
	if h := mustHead(t, s); h != 1 {
		t.Errorf("Head = %d; want 1 (applied, only unconfirmed)", h)
	}
}

// TestWaitAOF needs Redis 7.2 or later; on older servers Open must refuse
// the option rather than ignore it.
func TestWaitAOF(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "everysec")
	s, err := redis.Open(context.Background(), srv.URL(), redis.Options{Prefix: redistest.Prefix(t), WaitAOF: true, Logger: quiet})
	if err != nil {
		if !strings.Contains(err.Error(), "WAITAOF") {
			t.Fatalf("Open(WaitAOF) = %v; want an error naming WAITAOF", err)
		}
		t.Skipf("this Redis has no WAITAOF (needs 7.2+); Open refused the option as it should: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	mustDoc(t, s)
	mustAppend(t, s, rec(1, "a"), rec(2, "b"))
	if h := mustHead(t, s); h != 2 {
		t.Errorf("Head = %d; want 2", h)
	}
}

func TestWaitAOFWithoutAOF(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t) // --appendonly no
	_, err := redis.Open(context.Background(), srv.URL(), redis.Options{Prefix: redistest.Prefix(t), WaitAOF: true, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "WAITAOF") {
		t.Fatalf("Open(WaitAOF) on a Redis without AOF = %v; want an error naming WAITAOF", err)
	}
}

// TestCorrupt: undecodable values and keys of the wrong type are
// ErrCorrupt, and only that document is affected.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	s := open(t, url, redis.Options{Prefix: prefix})
	mustDoc(t, s)
	ctx := context.Background()
	other := store.StreamKey{Summit: summit, Doc: "other", Stream: store.Draft}
	if err := s.CreateDoc(ctx, store.Doc{Summit: summit, ID: "other", Created: t0}, "fine"); err != nil {
		t.Fatalf("CreateDoc: %v", err)
	}
	mustAppend(t, s, rec(1, "a"), rec(2, "b"), rec(3, "c"))
	tag := "{" + prefix + ":" + summit + ":" + doc + "}"
	c := s.Client()

	for _, tc := range []struct {
		name   string
		break_ func() error
		read   func() error
	}{
		{"op not json", func() error { return c.HSet(ctx, tag+":draft:ops", "2", "{nope").Err() },
			func() error { _, err := s.LoadStream(ctx, draft); return err }},
		{"op missing", func() error { return c.HDel(ctx, tag+":draft:ops", "2").Err() },
			func() error { _, err := s.Since(ctx, draft, 0, 0); return err }},
		{"op at wrong version", func() error {
			b, _ := c.HGet(ctx, tag+":draft:ops", "3").Result()
			return c.HSet(ctx, tag+":draft:ops", "2", b).Err()
		}, func() error { _, err := s.Since(ctx, draft, 1, 0); return err }},
		{"head not a number", func() error { return c.Set(ctx, tag+":draft:head", "3.0", 0).Err() },
			func() error { _, err := s.Head(ctx, draft); return err }},
		{"snapshot past head", func() error {
			return c.Set(ctx, tag+":draft:snap", `{"v":9,"text":""}`, 0).Err()
		}, func() error { _, err := s.LoadStream(ctx, draft); return err }},
		{"wrong type", func() error {
			if err := c.Del(ctx, tag+":draft:ops").Err(); err != nil {
				return err
			}
			return c.Set(ctx, tag+":draft:ops", "x", 0).Err()
		}, func() error { _, err := s.Since(ctx, draft, 0, 0); return err }},
		{"doc not json", func() error { return c.Set(ctx, tag+":doc", "[", 0).Err() },
			func() error { _, err := s.GetDoc(ctx, summit, doc); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Start each case from a sound stream.
			if err := c.Set(ctx, tag+":draft:head", "3", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := tc.break_(); err != nil {
				t.Fatalf("breaking the data: %v", err)
			}
			if err := tc.read(); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("read = %v; want ErrCorrupt", err)
			}
			if _, err := s.LoadStream(ctx, other); err != nil {
				t.Errorf("the other doc: LoadStream = %v; want it unaffected", err)
			}
		})
	}
}

// TestRedisKilled (FAULTS 33): a dead Redis makes every call fail with
// ErrUnavailable, never ErrNotFound; once it is back (with everything
// acknowledged, thanks to appendfsync always) the store works again.
func TestRedisKilled(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	s := open(t, srv.URL(), fast)
	mustDoc(t, s)
	mustAppend(t, s, rec(1, "a"), rec(2, "b"), rec(3, "c"))
	ctx := context.Background()

	srv.Kill()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Append", func() error {
			return s.Append(ctx, store.Append{Key: draft, Records: []store.OpRecord{rec(4, "d")}})
		}},
		{"LoadStream", func() error { _, err := s.LoadStream(ctx, draft); return err }},
		{"Since", func() error { _, err := s.Since(ctx, draft, 0, 0); return err }},
		{"Head", func() error { _, err := s.Head(ctx, draft); return err }},
		{"SnapshotAt", func() error { _, err := s.SnapshotAt(ctx, draft, 1); return err }},
		{"GetDoc", func() error { _, err := s.GetDoc(ctx, summit, doc); return err }},
		{"ListDocs", func() error { _, err := s.ListDocs(ctx, summit); return err }},
		{"GetSummit", func() error { _, err := s.GetSummit(ctx, summit); return err }},
		{"TokenByHash", func() error { _, err := s.TokenByHash(ctx, []byte("h")); return err }},
		{"CreateDoc", func() error {
			return s.CreateDoc(ctx, store.Doc{Summit: summit, ID: "new", Created: t0}, "")
		}},
	} {
		if err := tc.call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis down = %v; want ErrUnavailable", tc.name, err)
		}
	}

	srv.Restart()
	// Pooled connections to the old process fail once each (MaxRetries is
	// off here); a caller retries, as the server's session does.
	var err error
	for range 20 {
		err = s.Append(ctx, store.Append{Key: draft, Records: []store.OpRecord{rec(4, "d")}})
		if !errors.Is(err, store.ErrUnavailable) {
			break
		}
	}
	if err != nil {
		t.Fatalf("Append after restart: %v", err)
	}
	st, err := s.LoadStream(ctx, draft)
	if err != nil {
		t.Fatalf("LoadStream after restart: %v", err)
	}
	var got []uint64
	for _, r := range st.Ops {
		got = append(got, r.Version)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4}, got); diff != "" {
		t.Errorf("versions after restart (-want +got):\n%s", diff)
	}
}

// TestReadOnlyReplica: Redis refusing writes (READONLY, as a replica or a
// primary demoted by a failover does) is ErrUnavailable, not a conflict.
func TestReadOnlyReplica(t *testing.T) {
	t.Parallel()
	primary := redistest.StartServer(t, "--repl-diskless-sync-delay", "0") // sync at once
	prefix := redistest.Prefix(t)
	p := open(t, primary.URL(), redis.Options{Prefix: prefix})
	mustDoc(t, p)
	replica := redistest.StartServer(t, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port()))
	r := open(t, replica.URL(), redis.Options{Prefix: prefix, MaxRetries: -1})
	// Until the replica has synced, the stream is simply not there yet.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.Head(context.Background(), draft); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("replica never synced: Head = %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := r.Append(context.Background(), store.Append{Key: draft, Records: []store.OpRecord{rec(1, "a")}})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "READONLY") {
		t.Errorf("Append on a replica = %v; want ErrUnavailable (READONLY)", err)
	}
	if err := r.CreateSummit(context.Background(), store.Summit{ID: "other"}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CreateSummit on a replica = %v; want ErrUnavailable", err)
	}
}

// TestRedisFrozen: a Redis that stops answering (SIGSTOP) fails an Append
// with ErrUnavailable after ReadTimeout. Its outcome is unknown: the
// command may still run when Redis wakes up. Either way the stream stays
// dense, and Head tells the caller which it was.
func TestRedisFrozen(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	s := open(t, srv.URL(), fast)
	mustDoc(t, s)
	mustAppend(t, s, rec(1, "a"))
	ctx := context.Background()

	srv.Pause()
	err := s.Append(ctx, store.Append{Key: draft, Records: []store.OpRecord{rec(2, "b")}})
	srv.Resume()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Append to a frozen Redis = %v; want ErrUnavailable", err)
	}
	var head uint64
	for range 20 {
		if head, err = s.Head(ctx, draft); !errors.Is(err, store.ErrUnavailable) {
			break
		}
	}
	if err != nil || (head != 1 && head != 2) {
		t.Fatalf("Head after the timeout = %d, %v; want 1 or 2", head, err)
	}
	t.Logf("the timed-out append was applied: %v", head == 2)
	rs, err := s.Since(ctx, draft, 0, 0)
	if err != nil || uint64(len(rs)) != head {
		t.Fatalf("Since = %d records, %v; want %d", len(rs), err, head)
	}
}

// TestHeadGoesBackwards (FAULTS 36): a Redis that restarts from an older
// state (here an RDB saved before the last appends, as everysec can after a
// machine crash) shows a lower head. Head reveals it, and a writer that
// still believes in the lost versions is refused, not silently accepted.
func TestHeadGoesBackwards(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	s := open(t, srv.URL(), fast)
	mustDoc(t, s)
	ctx := context.Background()
	mustAppend(t, s, rec(1, "a"), rec(2, "b"), rec(3, "c"))
	if err := s.Client().Save(ctx).Err(); err != nil {
		t.Fatalf("SAVE: %v", err)
	}
	mustAppend(t, s, rec(4, "d"), rec(5, "e"))
	if h := mustHead(t, s); h != 5 {
		t.Fatalf("Head = %d; want 5", h)
	}

	srv.Restart() // reloads the RDB: versions 4 and 5 are lost
	var head uint64
	var err error
	for range 20 {
		if head, err = s.Head(ctx, draft); !errors.Is(err, store.ErrUnavailable) {
			break
		}
	}
	if err != nil || head != 3 {
		t.Fatalf("Head after losing writes = %d, %v; want 3", head, err)
	}
	err = s.Append(ctx, store.Append{Key: draft, Records: []store.OpRecord{rec(6, "f")}})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "head is 3") {
		t.Errorf("Append(v6) after the loss = %v; want ErrConflict naming head 3", err)
	}
}

// TestOpenErrors (FAULTS 33): clear errors for bad URLs, an unreachable
// server and a wrong password, and never the password in them.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55"
	srv := redistest.StartServer(t, "--requirepass", password)
	host := srv.Addr
	for _, tc := range []struct {
		name, url string
		opts      redis.Options
		want      []string // substrings of the error
		is        error
	}{
		{"empty", "", fast, []string{"no scheme"}, nil},
		{"no host", "redis://", fast, []string{"no host"}, nil},
		{"http", "http://x", fast, []string{`scheme "http"`}, nil},
		{"unparsable", "redis://user:" + password + "%zz@" + host, fast, []string{"not a valid URL"}, nil},
		{"bad db", "redis://:" + password + "@" + host + "/x", fast, []string{"invalid database"}, nil},
		{"unknown option", "redis://:" + password + "@" + host + "?colour=blue", fast, []string{"unexpected option"}, nil},
		{"unreachable", "redis://127.0.0.1:1", fast, []string{"127.0.0.1:1", "reachable"}, store.ErrUnavailable},
		{"wrong password", "redis://:wrong-" + password + "@" + host, fast, []string{host, "authentication failed", "WRONGPASS"}, nil},
		{"wrong user", "redis://bob:" + password + "@" + host, fast, []string{"authentication failed"}, nil},
		{"no password", "redis://" + host, fast, []string{"authentication failed"}, nil},
		{"bad prefix", "redis://:" + password + "@" + host, redis.Options{Prefix: "a{b}"}, []string{"prefix"}, nil},
		{"wait longer than read", "redis://:" + password + "@" + host,
			redis.Options{WaitReplicas: 1, WaitTimeout: time.Second, ReadTimeout: time.Second}, []string{"WaitTimeout"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Logger = quiet
			s, err := redis.Open(context.Background(), tc.url, tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded; want an error", tc.name)
			}
			t.Logf("Open error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error %q; want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("Open error %q contains the password", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Open error %v; want it to wrap %v", err, tc.is)
			}
		})
	}
	// The right password works.
	s := open(t, "redis://:"+password+"@"+host, fast)
	mustDoc(t, s)
}

// TestAfterClose: a closed store refuses work as unavailable.
func TestAfterClose(t *testing.T) {
	t.Parallel()
	s, err := redis.Open(context.Background(), redistest.URL(t), redis.Options{Prefix: redistest.Prefix(t), Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.GetSummit(context.Background(), "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetSummit after Close = %v; want ErrUnavailable", err)
	}
}
