package doc

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"communique/ot"
	"communique/server/store"
	"communique/server/store/bolt"
)

// TestPruneResultDropped: a background prune's result is not used when a
// decision pruned the draft after it began (its generation is old), nor
// when the ops since its version have left memory (they cannot be
// replayed onto it); a usable one is replayed up to the head.
func TestPruneResultDropped(t *testing.T) {
	st, err := bolt.Open(t.TempDir(), bolt.Options{FsyncDisabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateSummit(ctx, store.Summit{ID: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDoc(ctx, store.Doc{Summit: "s", ID: "d", Title: "D"}, strings.Repeat("words of the draft ", 100)); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(st, Config{LogWindow: 4, SnapshotEvery: 1 << 30}, slog.New(slog.DiscardHandler), Hooks{})
	defer r.Close(ctx)
	s, err := r.Acquire(ctx, "s", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	for i := range 20 {
		v := s.View()
		op := ot.Op{}.Retain(i).Delete(1).Retain(v.Draft.Len() - i - 1)
		if res := s.Submit(ctx, Edit{Stream: store.Draft, Base: v.DraftVersion, Op: op, Author: "KOR"}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	err = s.Do(ctx, func(s *Session) {
		d := s.streams[0]
		head := d.version
		// A result from before a decision's prune.
		d.prune.gen = 2
		s.onPruned(&pruneResult{gen: 1, version: head, auth: d.auth})
		if d.prune.done != nil {
			t.Errorf("a result of generation 1 kept after generation 2's prune")
		}
		// A result of a version whose later ops left memory.
		old := &pruneResult{gen: 2, version: d.oldest() - 1, auth: d.auth}
		if _, ok := s.replayOnto(d, old); ok {
			t.Errorf("replayed from version %d, older than the %d in memory", old.version, d.oldest())
		}
		// A usable one, four ops behind (the authorship of that version,
		// rebuilt from the stored log): replayed, it is the head's.
		at := head - 4
		recs, err := st.Since(ctx, d.key, 0, int(at))
		if err != nil {
			t.Fatal(err)
		}
		k, err := replay(d.key, store.StreamState{Snapshot: store.Snapshot{Text: strings.Repeat("words of the draft ", 100)}, Ops: recs}, 4)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := s.replayOnto(d, &pruneResult{gen: 2, version: at, auth: k.auth})
		if !ok {
			t.Fatalf("a result four ops behind the head was not replayed")
		}
		if !slices.Equal(got.Marks(), d.auth.Marks()) || !slices.Equal(got.Spans(), d.auth.Spans()) {
			t.Errorf("replayed to the head: %+v; want %+v", got.Marks(), d.auth.Marks())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}
