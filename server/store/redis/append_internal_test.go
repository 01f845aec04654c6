package redis

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"communique/ot"
	"communique/server/store"
	"communique/server/store/redis/redistest"
)

// TestAppendRetried: the same Append call sent twice (go-redis retrying
// after a lost reply) succeeds twice and writes once; a different call at
// the same version is a conflict.
func TestAppendRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, redistest.URL(t), Options{Prefix: redistest.Prefix(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateSummit(ctx, store.Summit{ID: "s"}); err != nil {
		t.Fatalf("CreateSummit: %v", err)
	}
	if err := s.CreateDoc(ctx, store.Doc{Summit: "s", ID: "d"}, ""); err != nil {
		t.Fatalf("CreateDoc: %v", err)
	}
	k := store.StreamKey{Summit: "s", Doc: "d", Stream: store.Draft}
	keys, _ := s.keysOf(k)
	a := store.Append{Key: k, Records: []store.OpRecord{{Version: 1, Op: ot.Op{{Insert: "x"}}, Time: time.Unix(1, 0)}}}
	args, err := appendArgs(a)
	if err != nil {
		t.Fatalf("appendArgs: %v", err)
	}
	for i, want := range []string{"ok", "done"} {
		res, err := s.runAppend(ctx, s.appendKeys(k, keys), args)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if got, _, _ := scriptReply(res); got != want {
			t.Errorf("attempt %d: script says %q; want %q", i, got, want)
		}
	}
	if err := s.Append(ctx, a); !errors.Is(err, store.ErrConflict) {
		t.Errorf("another Append at version 1 = %v; want ErrConflict", err)
	}
	if rs, err := s.Since(ctx, k, 0, 0); err != nil || len(rs) != 1 {
		t.Errorf("Since = %d records, %v; want 1", len(rs), err)
	}
}
