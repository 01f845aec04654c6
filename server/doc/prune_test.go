package doc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"communique/ot"
	"communique/server/changes"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/store/bolt"
)

// longDoc creates document id with a text too long to be pruned on the
// session goroutine, so its snapshots take the background path
// (prune.go).
func longDoc(t *testing.T, st *bolt.Store, id string) string {
	t.Helper()
	text := strings.Repeat("Participants agreed that capacity building matters. ", 40) // 2,080 code points
	if err := st.CreateDoc(context.Background(), store.Doc{Summit: "s", ID: id, Title: id}, text); err != nil {
		t.Fatal(err)
	}
	return text
}

// replaceAt is the op replacing with new the first old in text that
// starts at or after code point from (the texts here are ASCII).
func replaceAt(t *testing.T, text ot.Text, from int, old, new string) ot.Op {
	t.Helper()
	i := strings.Index(text.String()[from:], old)
	if i < 0 {
		t.Fatalf("%q not in the text after %d", old, from)
	}
	pos, n := from+i, len(old)
	return ot.Op{}.Retain(pos).Insert(new).Delete(n).Retain(text.Len() - pos - n)
}

func submit(t *testing.T, s *doc.Session, author string, op func(v *doc.View) ot.Op) doc.Result {
	t.Helper()
	v := s.View()
	res := s.Submit(context.Background(), doc.Edit{Stream: store.Draft, Base: v.DraftVersion, Op: op(v), Author: author})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res
}

// reopened is the draft's authorship as a fresh registry loads it from st.
func reopened(t *testing.T, st *bolt.Store, id string) changes.Authorship {
	t.Helper()
	r := newRegistry(t, st, doc.Config{})
	s, err := r.Acquire(context.Background(), "s", id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	return s.View().Auth
}

// countPrunes is a log handler that counts the background prunes a
// session took in ("draft authorship pruned", at debug level).
type countPrunes struct{ n atomic.Int64 }

func (h *countPrunes) Enabled(context.Context, slog.Level) bool { return true }
func (h *countPrunes) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "draft authorship pruned" {
		h.n.Add(1)
	}
	return nil
}
func (h *countPrunes) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countPrunes) WithGroup(string) slog.Handler      { return h }

func sameAuthorship(t *testing.T, what string, got, want changes.Authorship) {
	t.Helper()
	if !reflect.DeepEqual(got.Spans(), want.Spans()) {
		t.Errorf("%s: spans %+v; want %+v", what, got.Spans(), want.Spans())
	}
	if !reflect.DeepEqual(got.Marks(), want.Marks()) {
		t.Errorf("%s: marks %+v; want %+v", what, got.Marks(), want.Marks())
	}
}

// TestDraftPrunedInBackground: on a long draft the periodic snapshot's
// prune runs off the session goroutine and lands with a later append: a
// deletion the draft has undone (GBR deletes a phrase and types it back)
// stops counting, one still pending (KOR's) stays, and what a restart
// loads is exactly what the session holds.
func TestDraftPrunedInBackground(t *testing.T) {
	st := openStore(t, bolt.Options{FsyncDisabled: true})
	longDoc(t, st, "long")
	r := newRegistry(t, st, doc.Config{SnapshotEvery: 5})
	ctx := context.Background()
	s, err := r.Acquire(ctx, "s", "long")
	if err != nil {
		t.Fatal(err)
	}
	submit(t, s, "GBR", func(v *doc.View) ot.Op { return replaceAt(t, v.Draft, 0, "capacity building ", "") })
	submit(t, s, "GBR", func(v *doc.View) ot.Op { return replaceAt(t, v.Draft, 0, "matters", "capacity building matters") })
	submit(t, s, "KOR", func(v *doc.View) ot.Op { return replaceAt(t, v.Draft, 1000, " agreed", "") })
	hasGBR := func() bool {
		return slices.ContainsFunc(s.View().Auth.Marks(), func(m changes.Mark) bool { return m.Author == "GBR" })
	}
	if !hasGBR() {
		t.Fatalf("GBR's deletion left no mark: %+v", s.View().Auth.Marks())
	}
	// Typing at the end (a hunk whose old wording is empty explains no
	// deletion) until a snapshot has carried a prune in.
	deadline := time.Now().Add(10 * time.Second)
	for hasGBR() {
		if time.Now().After(deadline) {
			t.Fatalf("GBR's undone deletion still marked after %d versions", s.View().DraftVersion)
		}
		submit(t, s, "USA", func(v *doc.View) ot.Op { return ot.Op{}.Retain(v.Draft.Len()).Insert("!") })
		time.Sleep(time.Millisecond)
	}
	if got := s.View().Auth.Marks(); len(got) != 1 || got[0].Author != "KOR" || got[0].Text != " agreed" {
		t.Errorf("marks after the prune %+v; want KOR's only", got)
	}
	for _, c := range s.Changes().Changes {
		if c.Old == " agreed" && !slices.Equal(c.Authors, []string{"KOR"}) {
			t.Errorf("KOR's deletion %+v; want it blamed on KOR", c)
		}
	}
	held := s.View().Auth
	s.Release()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sameAuthorship(t, "reopened", reopened(t, st, "long"), held)
}

// TestDraftAuthorshipSurvivesRestart: five delegations edit a long draft
// at once (inserts and deletes at random places, so marks pile up and the
// background prunes find work), with a snapshot due every 25 versions and
// a chair's rejection in the middle (a synchronous prune that makes any
// background result from before it stale). After every phase the
// authorship a restart loads equals the one the session holds.
func TestDraftAuthorshipSurvivesRestart(t *testing.T) {
	st := openStore(t, bolt.Options{FsyncDisabled: true})
	longDoc(t, st, "long")
	ctx := context.Background()
	prunes := &countPrunes{}
	for phase := range 3 {
		r := doc.NewRegistry(st, doc.Config{SnapshotEvery: 25}, slog.New(prunes), doc.Hooks{})
		s, err := r.Acquire(ctx, "s", "long")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for w := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(phase), uint64(w)))
				for i := range 120 {
					v := s.View()
					n := v.Draft.Len()
					var op ot.Op
					if pos := rng.IntN(n); rng.IntN(2) == 0 {
						k := min(1+rng.IntN(6), n-pos)
						op = ot.Op{}.Retain(pos).Delete(k).Retain(n - pos - k)
					} else {
						op = ot.Op{}.Retain(pos).Insert(fmt.Sprint("w", w, "i", i, " ")).Retain(n - pos)
					}
					res := s.Submit(ctx, doc.Edit{Stream: store.Draft, Base: v.DraftVersion, Op: op,
						Author: fmt.Sprint("D", w), Src: fmt.Sprint("p", phase, "w", w), Seq: uint64(i + 1)})
					if res.Err != nil {
						errs <- res.Err
						return
					}
					// Spread out, so prunes (which rest nine times as
					// long as they took) land in several places.
					time.Sleep(300 * time.Microsecond)
					if phase == 1 && w == 0 && i == 60 {
						// The chair rejects whatever is listed first.
						if p := s.Changes(); len(p.Changes) > 0 {
							_, err := s.Decide(ctx, doc.Decision{IDs: []string{p.Changes[0].ID}, Name: "chair"})
							if err != nil && !errors.Is(err, doc.ErrStaleChange) {
								errs <- err
								return
							}
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		held := s.View().Auth
		if held.MarkCount() == 0 {
			t.Fatalf("phase %d: no marks at all; the test edits nothing that counts", phase)
		}
		s.Release()
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		sameAuthorship(t, fmt.Sprint("phase ", phase, ": reopened"), reopened(t, st, "long"), held)
	}
	if prunes.n.Load() == 0 {
		t.Errorf("no background prune was taken in: the test missed what it is for")
	}
	t.Logf("%d background prunes taken in", prunes.n.Load())
}
