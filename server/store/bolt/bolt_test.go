package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"communique/ot"
	"communique/server/store"
	"communique/server/store/storetest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.etcd.io/bbolt"
)

// TestMain lets the crash and lock tests re-execute this binary as a child
// process (see runChild in crash_test.go).
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

var quiet = slog.New(slog.DiscardHandler)

var diffOpts = cmp.Options{cmpopts.EquateEmpty()}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// openT opens a store in dir and closes it when the test ends.
func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{Logger: quiet})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func key(doc string) store.StreamKey {
	return store.StreamKey{Summit: "s", Doc: doc, Stream: store.Draft}
}

// record is the deterministic record at version v of doc, so that a reader
// can check content, not only versions.
func record(doc string, v uint64) store.OpRecord {
	return store.OpRecord{
		Version: v,
		Op:      ot.Op{{Insert: fmt.Sprintf("%s:%d ", doc, v)}},
		Author:  "chair",
		Time:    t0.Add(time.Duration(v) * time.Millisecond),
	}
}

func records(doc string, from, to uint64) []store.OpRecord {
	var out []store.OpRecord
	for v := from; v <= to; v++ {
		out = append(out, record(doc, v))
	}
	return out
}

// setup creates summit "s" and the given docs, each with text "<doc>\n".
func setup(t testing.TB, s store.Store, docs ...string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateSummit(ctx, store.Summit{ID: "s", Title: "S", Created: t0}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateSummit: %v", err)
	}
	for i, d := range docs {
		if err := s.CreateDoc(ctx, store.Doc{Summit: "s", ID: d, Order: i, Created: t0}, d+"\n"); err != nil {
			t.Fatalf("CreateDoc(%s): %v", d, err)
		}
	}
}

func appendT(t testing.TB, s store.Store, a store.Append) {
	t.Helper()
	if err := s.Append(context.Background(), a); err != nil {
		t.Fatalf("Append(%v): %v", a.Key, err)
	}
}

func loadT(t testing.TB, s store.Store, k store.StreamKey) store.StreamState {
	t.Helper()
	st, err := s.LoadStream(context.Background(), k)
	if err != nil {
		t.Fatalf("LoadStream(%v): %v", k, err)
	}
	return st
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openT(t, dir, Options{})
	setup(t, s, "a", "b")
	tok := store.Token{ID: "t1", Summit: "s", Role: store.RoleChair, Name: "Chair", Hash: []byte{1, 2, 3}, Created: t0}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	recs := records("a", 1, 3)
	recs[2].Src, recs[2].Seq = "c1", 7
	snap := store.Snapshot{Version: 3, Text: "a at 3", Extra: []byte("x")}
	appendT(t, s, store.Append{Key: key("a"), Records: recs, Snapshot: &snap})
	appendT(t, s, store.Append{Key: key("a"), Records: records("a", 4, 5)})
	wantStream := loadT(t, s, key("a"))
	wantDocs, err := s.ListDocs(ctx, "s")
	if err != nil {
		t.Fatalf("ListDocs: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := openT(t, dir, Options{})
	if diff := cmp.Diff(wantStream, loadT(t, s2, key("a")), diffOpts); diff != "" {
		t.Errorf("stream after reopen (-before +after):\n%s", diff)
	}
	want := store.StreamState{
		Snapshot: store.Snapshot{Version: 3, Text: "a at 3", Extra: []byte("x")},
		Ops:      records("a", 4, 5),
		Clients:  map[string]store.ClientSeq{"c1": {Seq: 7, Version: 3}},
	}
	if diff := cmp.Diff(want, wantStream, diffOpts); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	gotDocs, err := s2.ListDocs(ctx, "s")
	if err != nil {
		t.Fatalf("ListDocs after reopen: %v", err)
	}
	if diff := cmp.Diff(wantDocs, gotDocs); diff != "" {
		t.Errorf("docs after reopen (-before +after):\n%s", diff)
	}
	gotTok, err := s2.TokenByHash(ctx, []byte{1, 2, 3})
	if err != nil {
		t.Fatalf("TokenByHash after reopen: %v", err)
	}
	if diff := cmp.Diff(tok, gotTok); diff != "" {
		t.Errorf("token after reopen (-want +got):\n%s", diff)
	}
	appendT(t, s2, store.Append{Key: key("a"), Records: records("a", 6, 6)})
}

func TestOpenCreatesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	openT(t, dir, Options{})
	if info, err := os.Stat(dir); err != nil {
		t.Errorf("data folder: %v", err)
	} else if info.Mode().Perm() != 0o700 {
		t.Errorf("created data folder mode = %v; want 0700", info.Mode().Perm())
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("database file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("database file mode = %v; want 0600", info.Mode().Perm())
	}
	if _, err := Open("", Options{}); err == nil {
		t.Errorf("Open(\"\") succeeded; want an error")
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{})

	start := time.Now()
	s2, err := Open(dir, Options{Logger: quiet})
	took := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatalf("second Open succeeded; want ErrInUse")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("second Open = %v; want ErrInUse", err)
	}
	if want := "data folder " + dir + " is in use by another communique process"; !strings.Contains(err.Error(), want) {
		t.Errorf("second Open error %q; want it to contain %q", err, want)
	}
	if took > 3*time.Second {
		t.Errorf("second Open took %v; want about the 1 s lock timeout", took)
	}
}

func TestClosedStoreRefuses(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir(), Options{})
	setup(t, s, "a")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Append", func() error { return s.Append(ctx, store.Append{Key: key("a"), Records: records("a", 1, 1)}) }},
		{"CreateSummit", func() error { return s.CreateSummit(ctx, store.Summit{ID: "x"}) }},
		{"GetSummit", func() error { _, err := s.GetSummit(ctx, "s"); return err }},
		{"LoadStream", func() error { _, err := s.LoadStream(ctx, key("a")); return err }},
		{"Since", func() error { _, err := s.Since(ctx, key("a"), 0, 0); return err }},
		{"ListDocs", func() error { _, err := s.ListDocs(ctx, "s"); return err }},
		{"DeleteToken", func() error { return s.DeleteToken(ctx, "s", "t") }},
	} {
		if err := tc.call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close = %v; want ErrUnavailable", tc.name, err)
		}
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		s := openT(t, t.TempDir(), Options{})
		setup(t, s, "a")
		appendT(t, s, store.Append{Key: key("a"), Records: records("a", 1, 1)})
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	// Goroutines end a moment after they are told to; give them that.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if runtime.NumGoroutine() <= before {
			return
		}
	}
	t.Errorf("goroutines: %d before 5 Open/Close cycles, %d after", before, runtime.NumGoroutine())
}

// TestCloseWhileAppending closes the store under load: every call returns
// (nil or ErrUnavailable), and every acknowledged record survives.
func TestCloseWhileAppending(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	docs := []string{"a", "b", "c", "d", "e", "f"}
	setup(t, s, docs...)
	acked := make([]uint64, len(docs))
	errs := make([]error, len(docs))
	var wg sync.WaitGroup
	for i, d := range docs {
		wg.Go(func() {
			for v := uint64(1); ; v++ {
				err := s.Append(context.Background(), store.Append{Key: key(d), Records: records(d, v, v)})
				if err != nil {
					errs[i] = err
					return
				}
				acked[i] = v
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("doc %s: Append after Close = %v; want ErrUnavailable", docs[i], err)
		}
	}
	s2 := openT(t, dir, Options{})
	for i, d := range docs {
		got, err := s2.Since(context.Background(), key(d), 0, 0)
		if err != nil {
			t.Fatalf("Since(%s): %v", d, err)
		}
		if uint64(len(got)) < acked[i] {
			t.Errorf("doc %s: %d records after reopen; %d were acknowledged", d, len(got), acked[i])
		}
	}
}

// TestBatchIsolation drives one commit by hand, so that all of these share
// one transaction for certain: each gets its own answer, and only the good
// ones are written.
func TestBatchIsolation(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	setup(t, s, "a", "b", "c", "d", "e")
	appendT(t, s, store.Append{Key: key("b"), Records: records("b", 1, 1)})
	before := s.Stats()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	errHalfway := errors.New("failed halfway")
	mkAppend := func(ctx context.Context, a store.Append) *request {
		apply, err := prepareAppend(a)
		if err != nil {
			t.Fatalf("prepareAppend: %v", err)
		}
		return &request{ctx: ctx, apply: apply, done: make(chan error, 1)}
	}
	bg := context.Background()
	batch := []*request{
		mkAppend(bg, store.Append{Key: key("a"), Records: records("a", 1, 2)}),
		mkAppend(bg, store.Append{Key: key("b"), Records: records("b", 1, 1)}), // duplicate
		mkAppend(bg, store.Append{Key: key("c"), Records: records("c", 1, 1)}),
		mkAppend(canceled, store.Append{Key: key("d"), Records: records("d", 1, 1)}),
		{ctx: bg, done: make(chan error, 1), apply: func(tx *bbolt.Tx) error {
			// Writes, then fails: its write must vanish with it.
			if err := tx.Bucket(bktSummits).Put([]byte("ghost"), []byte("{}")); err != nil {
				return err
			}
			return errHalfway
		}},
		mkAppend(bg, store.Append{Key: key("a"), Records: records("a", 3, 3)}), // sees the first one's head
		mkAppend(bg, store.Append{Key: key("e"), Records: records("e", 1, 1)}),
	}
	s.commit(batch)

	wantErr := []error{nil, store.ErrConflict, nil, context.Canceled, errHalfway, nil, nil}
	for i, r := range batch {
		if err := <-r.done; !errors.Is(err, wantErr[i]) || (wantErr[i] == nil && err != nil) {
			t.Errorf("request %d: got %v; want %v", i, err, wantErr[i])
		}
	}
	wantHead := map[string]uint64{"a": 3, "b": 1, "c": 1, "d": 0, "e": 1}
	for doc, want := range wantHead {
		got := loadT(t, s, key(doc))
		if diff := cmp.Diff(records(doc, 1, want), got.Ops, diffOpts); diff != "" {
			t.Errorf("doc %s (-want +got):\n%s", doc, diff)
		}
	}
	if _, err := s.GetSummit(context.Background(), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSummit(ghost) = %v; want ErrNotFound (the failed request's write is visible)", err)
	}
	if got := s.Stats().Commits - before.Commits; got != 1 {
		t.Errorf("commits for the batch = %d; want 1", got)
	}
}

func TestGroupCommitSharesCommits(t *testing.T) {
	// A slow commit lets requests pile up, as a slow fsync would.
	s := openT(t, t.TempDir(), Options{FailCommit: func() error {
		time.Sleep(20 * time.Millisecond)
		return nil
	}})
	const writers, each = 16, 4
	var docs []string
	for i := range writers {
		docs = append(docs, fmt.Sprintf("d%d", i))
	}
	setup(t, s, docs...)
	before := s.Stats()
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i, d := range docs {
		wg.Go(func() {
			for v := uint64(1); v <= each; v++ {
				if err := s.Append(context.Background(), store.Append{Key: key(d), Records: records(d, v, v)}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	commits := s.Stats().Commits - before.Commits
	reqs := s.Stats().Requests - before.Requests
	if reqs != writers*each {
		t.Errorf("requests = %d; want %d", reqs, writers*each)
	}
	if commits > reqs/4 {
		t.Errorf("%d requests took %d commits; want them grouped (at most %d)", reqs, commits, reqs/4)
	}
	t.Logf("%d requests in %d commits", reqs, commits)
}

func TestFailingCommit(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	errDisk := errors.New("simulated I/O error")
	var failing atomic.Bool
	s := openT(t, dir, Options{FailCommit: func() error {
		if failing.Load() {
			return errDisk
		}
		return nil
	}})
	setup(t, s, "a", "b", "c")
	appendT(t, s, store.Append{Key: key("a"), Records: records("a", 1, 2)})
	before := loadT(t, s, key("a"))

	failing.Store(true)
	// Several concurrent requests share the failing commit(s): all fail.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, d := range []string{"a", "b", "c"} {
		wg.Go(func() {
			from := uint64(1)
			if d == "a" {
				from = 3
			}
			snap := &store.Snapshot{Version: from + 1, Text: "new"}
			errs[i] = s.Append(ctx, store.Append{Key: key(d), Records: records(d, from, from+1), Snapshot: snap})
		})
	}
	wg.Wait()
	errs = append(errs, s.CreateDoc(ctx, store.Doc{Summit: "s", ID: "z"}, "z"))
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, errDisk) {
			t.Errorf("call %d during failure = %v; want ErrUnavailable wrapping the cause", i, err)
		}
	}
	if diff := cmp.Diff(before, loadT(t, s, key("a")), diffOpts); diff != "" {
		t.Errorf("failed commit is visible (-before +after):\n%s", diff)
	}
	for _, d := range []string{"b", "c"} {
		if st := loadT(t, s, key(d)); len(st.Ops) != 0 || st.Snapshot.Version != 0 {
			t.Errorf("doc %s after failed commit: %d ops, snapshot v%d; want none, v0", d, len(st.Ops), st.Snapshot.Version)
		}
	}
	if _, err := s.GetDoc(ctx, "s", "z"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDoc(z) after failed commit = %v; want ErrNotFound", err)
	}

	failing.Store(false)
	appendT(t, s, store.Append{Key: key("a"), Records: records("a", 3, 4)})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := openT(t, dir, Options{})
	if diff := cmp.Diff(records("a", 1, 4), loadT(t, s2, key("a")).Ops, diffOpts); diff != "" {
		t.Errorf("after recovery and reopen (-want +got):\n%s", diff)
	}
}

// TestCorruptRecord damages one stream with raw bbolt while the store is
// closed: that stream reports ErrCorrupt naming the doc, the rest loads.
func TestCorruptRecord(t *testing.T) {
	opKey := func(v uint64) []byte { return encodeU64(v) }
	wrongVersion, err := store.EncodeRecord(&store.OpRecord{Version: 7, Op: ot.Op{{Insert: "x"}}, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(tx *bbolt.Tx, sid []byte) error
	}{
		{"garbage op", func(tx *bbolt.Tx, sid []byte) error {
			return tx.Bucket(bktOps).Bucket(sid).Put(opKey(2), []byte{0xff, 0, '{', 'x'})
		}},
		{"truncated op", func(tx *bbolt.Tx, sid []byte) error {
			ops := tx.Bucket(bktOps).Bucket(sid)
			v := ops.Get(opKey(2))
			return ops.Put(opKey(2), bytes.Clone(v[:len(v)/2]))
		}},
		{"invalid op field", func(tx *bbolt.Tx, sid []byte) error {
			return tx.Bucket(bktOps).Bucket(sid).Put(opKey(2), []byte(`{"v":2,"op":[0],"a":"x","t":"2026-03-01T09:00:00Z"}`))
		}},
		{"wrong version", func(tx *bbolt.Tx, sid []byte) error {
			return tx.Bucket(bktOps).Bucket(sid).Put(opKey(2), wrongVersion)
		}},
		{"missing op", func(tx *bbolt.Tx, sid []byte) error { return tx.Bucket(bktOps).Bucket(sid).Delete(opKey(2)) }},
		{"missing ops bucket", func(tx *bbolt.Tx, sid []byte) error { return tx.Bucket(bktOps).DeleteBucket(sid) }},
		{"garbage snapshot", func(tx *bbolt.Tx, sid []byte) error { return tx.Bucket(bktSnaps).Put(sid, []byte("nope")) }},
		{"missing snapshot", func(tx *bbolt.Tx, sid []byte) error { return tx.Bucket(bktSnaps).Delete(sid) }},
		{"bad head", func(tx *bbolt.Tx, sid []byte) error { return tx.Bucket(bktHeads).Put(sid, []byte("x")) }},
		{"head past log", func(tx *bbolt.Tx, sid []byte) error { return tx.Bucket(bktHeads).Put(sid, encodeU64(9)) }},
		{"garbage client", func(tx *bbolt.Tx, sid []byte) error {
			return tx.Bucket(bktClients).Put(append(sid, "c1"...), []byte("["))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			setup(t, s, "bad", "good")
			for _, d := range []string{"bad", "good"} {
				recs := records(d, 1, 3)
				recs[0].Src = "c1"
				appendT(t, s, store.Append{Key: key(d), Records: recs})
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			db, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
			if err != nil {
				t.Fatalf("raw open: %v", err)
			}
			err = db.Update(func(tx *bbolt.Tx) error { return tc.damage(tx, streamID(tx, key("bad"))) })
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("damage: %v", err)
			}

			s2 := openT(t, dir, Options{})
			_, err = s2.LoadStream(context.Background(), key("bad"))
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("LoadStream(bad) = %v; want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), "s/bad/draft") {
				t.Errorf("LoadStream(bad) error %q does not name the stream s/bad/draft", err)
			}
			if diff := cmp.Diff(records("good", 1, 3)[1:], loadT(t, s2, key("good")).Ops[1:], diffOpts); diff != "" {
				t.Errorf("LoadStream(good) (-want +got):\n%s", diff)
			}
			approved := store.StreamKey{Summit: "s", Doc: "bad", Stream: store.Approved}
			if st := loadT(t, s2, approved); st.Snapshot.Text != "bad\n" {
				t.Errorf("LoadStream(bad approved) text %q; want %q", st.Snapshot.Text, "bad\n")
			}
			appendT(t, s2, store.Append{Key: key("good"), Records: records("good", 4, 4)})
		})
	}
}

// TestSinceCorrupt: Since must not quietly skip a damaged record either.
func TestSinceCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	setup(t, s, "a")
	appendT(t, s, store.Append{Key: key("a"), Records: records("a", 1, 3)})
	s.Close()
	db, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktOps).Bucket(streamID(tx, key("a"))).Delete(encodeU64(2))
	}); err != nil {
		t.Fatalf("damage: %v", err)
	}
	db.Close()
	s2 := openT(t, dir, Options{})
	for _, tc := range []struct {
		v     uint64
		limit int
		ok    bool
	}{
		{0, 1, true}, // stops before the hole
		{0, 0, false},
		{1, 1, false},
		{2, 0, true}, // starts after it
	} {
		_, err := s2.Since(context.Background(), key("a"), tc.v, tc.limit)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Since(%d, %d) = %v; want ok=%v or ErrCorrupt", tc.v, tc.limit, err, tc.ok)
		}
	}
}

func TestRejectsInvalidUTF8(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	setup(t, s, "a")
	bad := "ok \xff"
	r := record("a", 1)
	r.Name = bad
	for _, tc := range []struct {
		name string
		a    store.Append
	}{
		{"name", store.Append{Key: key("a"), Records: []store.OpRecord{r}}},
		{"snapshot", store.Append{Key: key("a"), Snapshot: &store.Snapshot{Version: 0, Text: bad}}},
		{"insert", store.Append{Key: key("a"), Records: []store.OpRecord{{Version: 1, Op: ot.Op{{Insert: bad}}}}}},
	} {
		if err := s.Append(context.Background(), tc.a); err == nil {
			t.Errorf("Append(invalid UTF-8 %s) succeeded; want an error (JSON would alter the text)", tc.name)
		}
	}
	if st := loadT(t, s, key("a")); len(st.Ops) != 0 || st.Snapshot.Text != "a\n" {
		t.Errorf("refused appends changed the stream: %+v", st)
	}
}

func TestSchemaVersionChecked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	s.Close()
	db, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bktMeta).Put(keySchema, []byte("99")) })
	db.Close()
	if s, err := Open(dir, Options{Logger: quiet}); err == nil {
		s.Close()
		t.Fatalf("Open of a schema-99 file succeeded; want an error")
	} else if !strings.Contains(err.Error(), "schema") {
		t.Errorf("Open error %q; want it to mention the schema", err)
	}
}
