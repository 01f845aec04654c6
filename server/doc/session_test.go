package doc_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"communique/ot"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/store/bolt"
	"communique/server/wire"
)

func openStore(t *testing.T, opts bolt.Options) *bolt.Store {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	st, err := bolt.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.CreateSummit(ctx, store.Summit{ID: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDoc(ctx, store.Doc{Summit: "s", ID: "d", Title: "D"}, "hello"); err != nil {
		t.Fatal(err)
	}
	return st
}

func newRegistry(t *testing.T, st doc.Store, cfg doc.Config) *doc.Registry {
	t.Helper()
	r := doc.NewRegistry(st, cfg, slog.New(slog.DiscardHandler), doc.Hooks{})
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// TestIdleSessionIsReleased checks that a document nobody uses is closed and
// dropped from memory, and that the next use loads it again with its text.
func TestIdleSessionIsReleased(t *testing.T) {
	st := openStore(t, bolt.Options{})
	r := newRegistry(t, st, doc.Config{IdleTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	s, err := r.Acquire(ctx, "s", "d")
	if err != nil {
		t.Fatal(err)
	}
	res := s.Submit(ctx, doc.Edit{Stream: store.Draft, Base: 0, Op: ot.Op{}.Retain(5).Insert(" world"), Author: "KOR"})
	if res.Err != nil || res.Version != 1 {
		t.Fatalf("submit: %+v", res)
	}
	s.Release()
	deadline := time.Now().Add(5 * time.Second)
	for r.Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session still open after its idle timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s, err = r.Acquire(ctx, "s", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if v := s.View(); v.Draft.String() != "hello world" || v.DraftVersion != 1 {
		t.Fatalf("reloaded draft %q at %d; want %q at 1", v.Draft.String(), v.DraftVersion, "hello world")
	}
}

// TestHeldSessionStaysOpen checks that a session with a holder is not evicted.
func TestHeldSessionStaysOpen(t *testing.T) {
	st := openStore(t, bolt.Options{})
	r := newRegistry(t, st, doc.Config{IdleTimeout: 10 * time.Millisecond})
	s, err := r.Acquire(context.Background(), "s", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	time.Sleep(50 * time.Millisecond)
	if r.Open() != 1 {
		t.Fatalf("open sessions = %d; want 1 while held", r.Open())
	}
}

// TestMissingDocumentIsNotCreated checks that opening an unknown document
// fails with ErrNotFound and leaves nothing in memory.
func TestMissingDocumentIsNotCreated(t *testing.T) {
	st := openStore(t, bolt.Options{})
	r := newRegistry(t, st, doc.Config{})
	_, err := r.Acquire(context.Background(), "s", "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v; want ErrNotFound", err)
	}
	if r.Open() != 0 {
		t.Fatalf("open sessions = %d; want 0", r.Open())
	}
}

type peer struct {
	frames chan *wire.Frame
	kicked atomic.Bool
}

func (p *peer) Send(f *wire.Frame) bool {
	select {
	case p.frames <- f:
		return true
	default:
		return false
	}
}
func (p *peer) Kick(string) { p.kicked.Store(true) }

// TestFailedCommitRollsBack makes the store fail one commit: the submitter
// gets ErrUnavailable, subscribers see nothing, the text and version are as
// before, and the next edit succeeds on the old version.
func TestFailedCommitRollsBack(t *testing.T) {
	var fail atomic.Bool
	st := openStore(t, bolt.Options{FailCommit: func() error {
		if fail.Load() {
			return errors.New("disk full (injected)")
		}
		return nil
	}})
	r := newRegistry(t, st, doc.Config{})
	ctx := context.Background()
	s, err := r.Acquire(ctx, "s", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	watcher := &peer{frames: make(chan *wire.Frame, 16)}
	if _, err := s.Subscribe(ctx, watcher, store.Draft, nil, wire.Peer{Client: "w"}); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	res := s.Submit(ctx, doc.Edit{Stream: store.Draft, Op: ot.Op{}.Insert("X").Retain(5), Author: "KOR", Src: "a", Seq: 1})
	if !errors.Is(res.Err, doc.ErrUnavailable) {
		t.Fatalf("submit during failure: %+v; want ErrUnavailable", res)
	}
	if v := s.View(); v.Draft.String() != "hello" || v.DraftVersion != 0 {
		t.Fatalf("after failed commit: %q at %d; want %q at 0", v.Draft.String(), v.DraftVersion, "hello")
	}
	fail.Store(false)
	res = s.Submit(ctx, doc.Edit{Stream: store.Draft, Op: ot.Op{}.Insert("X").Retain(5), Author: "KOR", Src: "a", Seq: 1})
	if res.Err != nil || res.Version != 1 || res.Text.String() != "Xhello" {
		t.Fatalf("resend after recovery: %+v", res)
	}
	select {
	case f := <-watcher.frames:
		var m wire.OpMsg
		if err := jsonUnmarshal(f.Data, &m); err != nil || m.Version != 1 {
			t.Fatalf("watcher got %s; want the op at version 1", f.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher got no op")
	}
}
