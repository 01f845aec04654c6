// Package storetest is the behavioural test suite every store.Store engine
// must pass. An engine's tests call Run with a function that opens a new,
// empty store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := bolt.Open(t.TempDir(), bolt.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Run closes every store it opens (with t.Cleanup) and checks that Close
// succeeds; open may register its own cleanups, which run after that.
//
// Besides store.go's comments, the suite pins down these choices so that
// engines agree on them:
//   - PutToken and CreateDoc need the summit to exist (ErrNotFound).
//   - PutToken with an existing (summit, ID) replaces that token.
//   - ListTokens and ListDocs of an unknown summit return an empty list.
//   - Appending to a stream that does not exist is ErrNotFound.
//   - A snapshot at the wrong version is ErrConflict, and nothing is written.
//   - Snapshots never drop ops: Since still returns the ops before one.
//   - Append with a done context returns an error wrapping ctx.Err() and
//     writes nothing.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"communique/ot"
	"communique/server/store"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Run runs the whole suite; each subtest opens its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Summits", testSummits},
		{"Tokens", testTokens},
		{"Docs", testDocs},
		{"AppendConsecutive", testAppendConsecutive},
		{"AppendRefused", testAppendRefused},
		{"AppendSameVersionConcurrently", testAppendSameVersionConcurrently},
		{"AppendRetryingWriters", testAppendRetryingWriters},
		{"Snapshots", testSnapshots},
		{"Since", testSince},
		{"Clients", testClients},
		{"Adopt", testAdopt},
		{"Unicode", testUnicode},
		{"CanceledContext", testCanceledContext},
		{"CallerOwnsResults", testCallerOwnsResults},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// diffOpts treats nil and empty slices and maps alike: engines may return
// either, and callers only range over them.
var diffOpts = cmp.Options{cmpopts.EquateEmpty()}

// t0 is a fixed base time; times are compared with time.Time.Equal.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)

const (
	summitID = "geneva-2026"
	docID    = "final-declaration"
	docText  = "Preamble\n"
)

var (
	draftKey    = store.StreamKey{Summit: summitID, Doc: docID, Stream: store.Draft}
	approvedKey = store.StreamKey{Summit: summitID, Doc: docID, Stream: store.Approved}
)

func mustSummit(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.CreateSummit(context.Background(), store.Summit{ID: id, Title: "Summit " + id, Created: t0}); err != nil {
		t.Fatalf("CreateSummit(%s): %v", id, err)
	}
}

// mustDoc creates summitID (if needed) and docID with docText.
func mustDoc(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetSummit(ctx, summitID); errors.Is(err, store.ErrNotFound) {
		mustSummit(t, s, summitID)
	}
	d := store.Doc{Summit: summitID, ID: docID, Title: "Final declaration", Created: t0}
	if err := s.CreateDoc(ctx, d, docText); err != nil {
		t.Fatalf("CreateDoc: %v", err)
	}
}

// rec returns a record at version v that inserts text at the start.
func rec(v uint64, text string) store.OpRecord {
	return store.OpRecord{
		Version: v,
		Op:      ot.Op{{Insert: text}},
		Author:  "FRA",
		Name:    "Marianne",
		Time:    t0.Add(time.Duration(v) * time.Second),
	}
}

func recs(from, to uint64) []store.OpRecord {
	var out []store.OpRecord
	for v := from; v <= to; v++ {
		out = append(out, rec(v, fmt.Sprintf("v%d ", v)))
	}
	return out
}

func mustAppend(t *testing.T, s store.Store, a store.Append) {
	t.Helper()
	if err := s.Append(context.Background(), a); err != nil {
		t.Fatalf("Append(%v, %d records): %v", a.Key, len(a.Records), err)
	}
}

func mustLoad(t *testing.T, s store.Store, k store.StreamKey) store.StreamState {
	t.Helper()
	st, err := s.LoadStream(context.Background(), k)
	if err != nil {
		t.Fatalf("LoadStream(%v): %v", k, err)
	}
	return st
}

func mustSince(t *testing.T, s store.Store, k store.StreamKey, v uint64, limit int) []store.OpRecord {
	t.Helper()
	got, err := s.Since(context.Background(), k, v, limit)
	if err != nil {
		t.Fatalf("Since(%v, %d, %d): %v", k, v, limit, err)
	}
	return got
}

func versions(rs []store.OpRecord) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Version
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func testSummits(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := store.Summit{ID: "nyc", Title: "New York 🗽", Created: t0}
	if err := s.CreateSummit(ctx, want); err != nil {
		t.Fatalf("CreateSummit: %v", err)
	}
	got, err := s.GetSummit(ctx, "nyc")
	if err != nil {
		t.Fatalf("GetSummit: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetSummit mismatch (-want +got):\n%s", diff)
	}

	again := store.Summit{ID: "nyc", Title: "Other", Created: t0}
	if err := s.CreateSummit(ctx, again); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateSummit(existing) = %v; want ErrExists", err)
	}
	if got, _ := s.GetSummit(ctx, "nyc"); got.Title != want.Title {
		t.Errorf("after refused CreateSummit, title = %q; want %q", got.Title, want.Title)
	}
	if _, err := s.GetSummit(ctx, "nowhere"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSummit(missing) = %v; want ErrNotFound", err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustSummit(t, s, "a")
	mustSummit(t, s, "b")
	tok := func(summit, id string, created time.Duration) store.Token {
		return store.Token{
			ID: id, Summit: summit, Role: store.RoleDelegate, Delegation: "DEU",
			Name: "Person " + id, Hash: []byte("hash-" + summit + "-" + id), Created: t0.Add(created),
		}
	}
	// Put out of creation order: List must sort by Created, not insertion.
	puts := []store.Token{
		tok("a", "t3", 3*time.Second),
		tok("a", "t1", 1*time.Second),
		tok("b", "t9", 0),
		tok("a", "t2", 2*time.Second),
	}
	for _, p := range puts {
		if err := s.PutToken(ctx, p); err != nil {
			t.Fatalf("PutToken(%s): %v", p.ID, err)
		}
	}

	listIDs := func(summit string) []string {
		t.Helper()
		ts, err := s.ListTokens(ctx, summit)
		if err != nil {
			t.Fatalf("ListTokens(%s): %v", summit, err)
		}
		var ids []string
		for _, x := range ts {
			ids = append(ids, x.ID)
		}
		return ids
	}

	t.Run("ListByCreated", func(t *testing.T) {
		for _, tc := range []struct {
			summit string
			want   []string
		}{
			{"a", []string{"t1", "t2", "t3"}},
			{"b", []string{"t9"}},
			{"unknown", nil},
		} {
			if diff := cmp.Diff(tc.want, listIDs(tc.summit), diffOpts); diff != "" {
				t.Errorf("ListTokens(%s) (-want +got):\n%s", tc.summit, diff)
			}
		}
		ts, err := s.ListTokens(ctx, "a")
		if err != nil {
			t.Fatalf("ListTokens: %v", err)
		}
		if diff := cmp.Diff(tok("a", "t1", time.Second), ts[0]); diff != "" {
			t.Errorf("ListTokens(a)[0] (-want +got):\n%s", diff)
		}
	})

	t.Run("ByHash", func(t *testing.T) {
		for _, want := range puts {
			got, err := s.TokenByHash(ctx, want.Hash)
			if err != nil {
				t.Errorf("TokenByHash(%s): %v", want.ID, err)
				continue
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("TokenByHash(%s) (-want +got):\n%s", want.ID, diff)
			}
		}
		for _, h := range [][]byte{[]byte("no such hash"), nil} {
			if _, err := s.TokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TokenByHash(%q) = %v; want ErrNotFound", h, err)
			}
		}
	})

	t.Run("Replace", func(t *testing.T) {
		// Same summit and ID, new secret: the old hash must stop working.
		newer := tok("a", "t2", 2*time.Second)
		newer.Hash = []byte("rotated")
		newer.Role = store.RoleChair
		if err := s.PutToken(ctx, newer); err != nil {
			t.Fatalf("PutToken(replace): %v", err)
		}
		if _, err := s.TokenByHash(ctx, []byte("hash-a-t2")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenByHash(old hash) = %v; want ErrNotFound", err)
		}
		got, err := s.TokenByHash(ctx, []byte("rotated"))
		if err != nil {
			t.Fatalf("TokenByHash(new hash): %v", err)
		}
		if got.Role != store.RoleChair {
			t.Errorf("replaced token role = %q; want %q", got.Role, store.RoleChair)
		}
		if diff := cmp.Diff([]string{"t1", "t2", "t3"}, listIDs("a")); diff != "" {
			t.Errorf("ListTokens after replace (-want +got):\n%s", diff)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			tok  store.Token
			want error
		}{
			{"missing summit", tok("zz", "t1", 0), store.ErrNotFound},
			{"hash of another token", store.Token{ID: "t7", Summit: "a", Hash: []byte("hash-a-t1"), Created: t0}, store.ErrExists},
		} {
			if err := s.PutToken(ctx, tc.tok); !errors.Is(err, tc.want) {
				t.Errorf("PutToken(%s) = %v; want %v", tc.name, err, tc.want)
			}
		}
		if got, _ := s.TokenByHash(ctx, []byte("hash-a-t1")); got.ID != "t1" {
			t.Errorf("after refused PutToken, hash-a-t1 belongs to %q; want t1", got.ID)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := s.DeleteToken(ctx, "a", "t1"); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
		if _, err := s.TokenByHash(ctx, []byte("hash-a-t1")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenByHash(deleted) = %v; want ErrNotFound", err)
		}
		if diff := cmp.Diff([]string{"t2", "t3"}, listIDs("a")); diff != "" {
			t.Errorf("ListTokens after delete (-want +got):\n%s", diff)
		}
		for _, tc := range []struct{ summit, id string }{
			{"a", "t1"},  // already deleted
			{"b", "t2"},  // exists, but in another summit
			{"zz", "t1"}, // no such summit
		} {
			if err := s.DeleteToken(ctx, tc.summit, tc.id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("DeleteToken(%s, %s) = %v; want ErrNotFound", tc.summit, tc.id, err)
			}
		}
		if diff := cmp.Diff([]string{"t9"}, listIDs("b")); diff != "" {
			t.Errorf("ListTokens(b) (-want +got):\n%s", diff)
		}
	})
}

func testDocs(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustSummit(t, s, summitID)
	mustSummit(t, s, "other")
	docs := []store.Doc{
		{Summit: summitID, ID: "c", Title: "Annex C", Order: 2, Created: t0},
		{Summit: summitID, ID: "b", Title: "Annex B", Order: 1, Created: t0},
		{Summit: summitID, ID: "a", Title: "Annex A", Order: 2, Created: t0},
		{Summit: summitID, ID: "z", Title: "Preamble", Order: -1, Created: t0},
		{Summit: "other", ID: "x", Title: "Other", Created: t0},
	}
	for i, d := range docs {
		if err := s.CreateDoc(ctx, d, fmt.Sprintf("text of %s\n", d.ID)); err != nil {
			t.Fatalf("CreateDoc(%d %s): %v", i, d.ID, err)
		}
	}

	t.Run("BothStreamsAtZero", func(t *testing.T) {
		for _, st := range []store.Stream{store.Draft, store.Approved} {
			got := mustLoad(t, s, store.StreamKey{Summit: summitID, Doc: "b", Stream: st})
			want := store.StreamState{Snapshot: store.Snapshot{Version: 0, Text: "text of b\n"}}
			if diff := cmp.Diff(want, got, diffOpts); diff != "" {
				t.Errorf("LoadStream(b, %s) (-want +got):\n%s", st, diff)
			}
			if rs := mustSince(t, s, store.StreamKey{Summit: summitID, Doc: "b", Stream: st}, 0, 0); len(rs) != 0 {
				t.Errorf("Since(b, %s, 0) = %d records; want 0", st, len(rs))
			}
		}
	})

	t.Run("Get", func(t *testing.T) {
		got, err := s.GetDoc(ctx, summitID, "b")
		if err != nil {
			t.Fatalf("GetDoc: %v", err)
		}
		if diff := cmp.Diff(docs[1], got); diff != "" {
			t.Errorf("GetDoc (-want +got):\n%s", diff)
		}
		for _, tc := range []struct{ summit, id string }{
			{summitID, "nope"}, {"other", "b"}, {"nowhere", "b"},
		} {
			if _, err := s.GetDoc(ctx, tc.summit, tc.id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetDoc(%s, %s) = %v; want ErrNotFound", tc.summit, tc.id, err)
			}
		}
	})

	t.Run("ListByOrderThenID", func(t *testing.T) {
		for _, tc := range []struct {
			summit string
			want   []string
		}{
			{summitID, []string{"z", "b", "a", "c"}},
			{"other", []string{"x"}},
			{"nowhere", nil},
		} {
			ds, err := s.ListDocs(ctx, tc.summit)
			if err != nil {
				t.Fatalf("ListDocs(%s): %v", tc.summit, err)
			}
			var ids []string
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			if diff := cmp.Diff(tc.want, ids, diffOpts); diff != "" {
				t.Errorf("ListDocs(%s) IDs (-want +got):\n%s", tc.summit, diff)
			}
		}
	})

	t.Run("Update", func(t *testing.T) {
		d := docs[1]
		d.Title, d.Order, d.Adopted = "Annex B (adopted)", 9, true
		if err := s.UpdateDoc(ctx, d); err != nil {
			t.Fatalf("UpdateDoc: %v", err)
		}
		got, err := s.GetDoc(ctx, summitID, "b")
		if err != nil {
			t.Fatalf("GetDoc: %v", err)
		}
		if diff := cmp.Diff(d, got); diff != "" {
			t.Errorf("GetDoc after update (-want +got):\n%s", diff)
		}
		ds, _ := s.ListDocs(ctx, summitID)
		if n := len(ds); n == 0 || ds[n-1].ID != "b" {
			t.Errorf("ListDocs after update: last = %v; want b (Order 9)", ds)
		}
		missing := store.Doc{Summit: summitID, ID: "nope"}
		if err := s.UpdateDoc(ctx, missing); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateDoc(missing) = %v; want ErrNotFound", err)
		}
		if _, err := s.GetDoc(ctx, summitID, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused UpdateDoc created the doc: GetDoc = %v; want ErrNotFound", err)
		}
	})

	t.Run("CreateRefused", func(t *testing.T) {
		k := store.StreamKey{Summit: summitID, Doc: "a", Stream: store.Draft}
		mustAppend(t, s, store.Append{Key: k, Records: recs(1, 2)})
		dup := store.Doc{Summit: summitID, ID: "a", Title: "Dup", Created: t0}
		if err := s.CreateDoc(ctx, dup, "other text"); !errors.Is(err, store.ErrExists) {
			t.Errorf("CreateDoc(existing) = %v; want ErrExists", err)
		}
		// The refused create must not have reset the existing streams.
		st := mustLoad(t, s, k)
		if st.Snapshot.Text != "text of a\n" || len(st.Ops) != 2 {
			t.Errorf("after refused CreateDoc: snapshot %q, %d ops; want %q, 2 ops", st.Snapshot.Text, len(st.Ops), "text of a\n")
		}
		if got, _ := s.GetDoc(ctx, summitID, "a"); got.Title != "Annex A" {
			t.Errorf("after refused CreateDoc: title %q; want %q", got.Title, "Annex A")
		}
		orphan := store.Doc{Summit: "nowhere", ID: "d", Created: t0}
		if err := s.CreateDoc(ctx, orphan, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateDoc(missing summit) = %v; want ErrNotFound", err)
		}
	})
}

func testAppendConsecutive(t *testing.T, s store.Store) {
	mustDoc(t, s)
	// Batches of different sizes, each starting right after the head.
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(1, 1)})
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(2, 4)})
	mustAppend(t, s, store.Append{Key: draftKey, Records: nil}) // empty: a no-op
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(5, 5)})

	got := mustLoad(t, s, draftKey)
	want := store.StreamState{Snapshot: store.Snapshot{Version: 0, Text: docText}, Ops: recs(1, 5)}
	if diff := cmp.Diff(want, got, diffOpts); diff != "" {
		t.Errorf("LoadStream(draft) (-want +got):\n%s", diff)
	}
	// The other stream of the same doc is independent.
	mustAppend(t, s, store.Append{Key: approvedKey, Records: recs(1, 1)})
	if got := versions(mustLoad(t, s, approvedKey).Ops); !cmp.Equal(got, []uint64{1}) {
		t.Errorf("approved versions = %v; want [1]", got)
	}
	if got := versions(mustSince(t, s, draftKey, 0, 0)); !cmp.Equal(got, span(1, 5)) {
		t.Errorf("draft versions after approved append = %v; want %v", got, span(1, 5))
	}
}

func testAppendRefused(t *testing.T, s store.Store) {
	mustDoc(t, s)
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(1, 3)})
	before := mustLoad(t, s, draftKey)

	withGap := recs(4, 6)
	withGap[2].Version = 7
	dupInside := recs(4, 5)
	dupInside[1].Version = 4
	for _, tc := range []struct {
		name string
		a    store.Append
		want error
	}{
		{"gap", store.Append{Key: draftKey, Records: recs(5, 6)}, store.ErrConflict},
		{"duplicate", store.Append{Key: draftKey, Records: recs(3, 4)}, store.ErrConflict},
		{"duplicate head", store.Append{Key: draftKey, Records: recs(3, 3)}, store.ErrConflict},
		{"version zero", store.Append{Key: draftKey, Records: []store.OpRecord{rec(0, "x")}}, store.ErrConflict},
		{"gap inside batch", store.Append{Key: draftKey, Records: withGap}, store.ErrConflict},
		{"duplicate inside batch", store.Append{Key: draftKey, Records: dupInside}, store.ErrConflict},
		{"snapshot behind records", store.Append{Key: draftKey, Records: recs(4, 5), Snapshot: &store.Snapshot{Version: 4, Text: "x"}}, store.ErrConflict},
		{"snapshot past head", store.Append{Key: draftKey, Snapshot: &store.Snapshot{Version: 4, Text: "x"}}, store.ErrConflict},
		{"snapshot behind head", store.Append{Key: draftKey, Snapshot: &store.Snapshot{Version: 2, Text: "x"}}, store.ErrConflict},
		{"missing doc", store.Append{Key: store.StreamKey{Summit: summitID, Doc: "nope", Stream: store.Draft}, Records: recs(1, 1)}, store.ErrNotFound},
		{"missing summit", store.Append{Key: store.StreamKey{Summit: "nope", Doc: docID, Stream: store.Draft}, Records: recs(1, 1)}, store.ErrNotFound},
		{"unknown stream", store.Append{Key: store.StreamKey{Summit: summitID, Doc: docID, Stream: "margin"}, Records: recs(1, 1)}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Append(context.Background(), tc.a)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append = %v; want %v", err, tc.want)
			}
			if diff := cmp.Diff(before, mustLoad(t, s, draftKey), diffOpts); diff != "" {
				t.Errorf("refused Append changed the stream (-before +after):\n%s", diff)
			}
		})
	}
	// The stream still takes the right next version.
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(4, 4)})
}

// testAppendSameVersionConcurrently races many writers for each version:
// exactly one may win each round, and the log ends dense.
func testAppendSameVersionConcurrently(t *testing.T, s store.Store) {
	mustDoc(t, s)
	const rounds, writers = 12, 8
	winners := make([]string, rounds+1)
	for v := uint64(1); v <= rounds; v++ {
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				r := rec(v, fmt.Sprintf("w%d ", w))
				r.Author = fmt.Sprintf("W%d", w)
				<-start
				errs[w] = s.Append(context.Background(), store.Append{Key: draftKey, Records: []store.OpRecord{r}})
			})
		}
		close(start)
		wg.Wait()
		var won []string
		for w, err := range errs {
			switch {
			case err == nil:
				won = append(won, fmt.Sprintf("W%d", w))
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d writer %d: Append = %v; want nil or ErrConflict", v, w, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d winners %v; want exactly 1", v, len(won), won)
		}
		winners[v] = won[0]
	}
	got := mustSince(t, s, draftKey, 0, 0)
	if diff := cmp.Diff(span(1, rounds), versions(got)); diff != "" {
		t.Fatalf("versions (-want +got):\n%s", diff)
	}
	for _, r := range got {
		if r.Author != winners[r.Version] {
			t.Errorf("version %d author %q; want the winner %q", r.Version, r.Author, winners[r.Version])
		}
	}
}

// testAppendRetryingWriters runs writers that each append their own ops,
// retrying on conflict the way the server's hub would: every op lands
// exactly once.
func testAppendRetryingWriters(t *testing.T, s store.Store) {
	mustDoc(t, s)
	const writers, each = 6, 8
	ctx := context.Background()
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 1; i <= each; i++ {
				for attempt := 0; ; attempt++ {
					if attempt > 200 {
						errs[w] = fmt.Errorf("op %d: gave up after %d conflicts", i, attempt)
						return
					}
					rs, err := s.Since(ctx, draftKey, 0, 0)
					if err != nil {
						errs[w] = err
						return
					}
					r := rec(uint64(len(rs))+1, "x")
					r.Src, r.Seq = fmt.Sprintf("w%d", w), uint64(i)
					err = s.Append(ctx, store.Append{Key: draftKey, Records: []store.OpRecord{r}})
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						errs[w] = err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	got := mustLoad(t, s, draftKey)
	if diff := cmp.Diff(span(1, writers*each), versions(got.Ops)); diff != "" {
		t.Fatalf("versions (-want +got):\n%s", diff)
	}
	// Each writer's seqs appear once each, in order.
	next := map[string]uint64{}
	for _, r := range got.Ops {
		if want := next[r.Src] + 1; r.Seq != want {
			t.Errorf("version %d: %s seq %d; want %d", r.Version, r.Src, r.Seq, want)
		}
		next[r.Src] = r.Seq
	}
	for w := range writers {
		src := fmt.Sprintf("w%d", w)
		if got.Clients[src].Seq != each {
			t.Errorf("Clients[%s].Seq = %d; want %d", src, got.Clients[src].Seq, each)
		}
	}
}

func testSnapshots(t *testing.T, s store.Store) {
	mustDoc(t, s)
	snap5 := store.Snapshot{Version: 5, Text: "text at 5", Extra: []byte(`{"spans":[1,2]}`)}
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(1, 4)})
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(5, 5), Snapshot: &snap5})
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(6, 7)})

	want := store.StreamState{Snapshot: snap5, Ops: recs(6, 7)}
	if diff := cmp.Diff(want, mustLoad(t, s, draftKey), diffOpts); diff != "" {
		t.Errorf("LoadStream after snapshot at 5 (-want +got):\n%s", diff)
	}

	// A snapshot alone, at the head, replaces the older one.
	snap7 := store.Snapshot{Version: 7, Text: "text at 7"}
	mustAppend(t, s, store.Append{Key: draftKey, Snapshot: &snap7})
	want = store.StreamState{Snapshot: snap7}
	if diff := cmp.Diff(want, mustLoad(t, s, draftKey), diffOpts); diff != "" {
		t.Errorf("LoadStream after snapshot at head (-want +got):\n%s", diff)
	}

	// Snapshots bound replay only: the log keeps every op.
	if diff := cmp.Diff(recs(1, 7), mustSince(t, s, draftKey, 0, 0), diffOpts); diff != "" {
		t.Errorf("Since(0) after snapshots (-want +got):\n%s", diff)
	}
	// Every snapshot is kept for SnapshotAt: the newest at or before v.
	ctx := context.Background()
	for _, tc := range []struct {
		v    uint64
		want store.Snapshot
	}{
		{0, store.Snapshot{Version: 0, Text: docText}},
		{4, store.Snapshot{Version: 0, Text: docText}},
		{5, snap5},
		{6, snap5},
		{7, snap7},
		{100, snap7},
	} {
		got, err := s.SnapshotAt(ctx, draftKey, tc.v)
		if err != nil {
			t.Fatalf("SnapshotAt(%d): %v", tc.v, err)
		}
		if diff := cmp.Diff(tc.want, got, diffOpts); diff != "" {
			t.Errorf("SnapshotAt(%d) (-want +got):\n%s", tc.v, diff)
		}
	}
	if _, err := s.SnapshotAt(ctx, store.StreamKey{Summit: summitID, Doc: "missing", Stream: store.Draft}, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SnapshotAt of a missing stream: %v; want ErrNotFound", err)
	}
	// Decisions travel with their op records.
	withDecision := rec(8, "approved wording ")
	withDecision.Decision = &store.Decision{Kind: "approve", Change: "c1", Old: "a", New: "b", Authors: []string{"KOR", "chair"}}
	mustAppend(t, s, store.Append{Key: draftKey, Records: []store.OpRecord{withDecision}})
	if diff := cmp.Diff([]store.OpRecord{withDecision}, mustSince(t, s, draftKey, 7, 0), diffOpts); diff != "" {
		t.Errorf("record with a decision (-want +got):\n%s", diff)
	}
	// The other stream still has its version-0 snapshot.
	if got := mustLoad(t, s, approvedKey).Snapshot; !cmp.Equal(got, store.Snapshot{Text: docText}, diffOpts) {
		t.Errorf("approved snapshot = %+v; want version 0 with the doc text", got)
	}
}

func testSince(t *testing.T, s store.Store) {
	mustDoc(t, s)
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(1, 10)})
	for _, tc := range []struct {
		v     uint64
		limit int
		want  []uint64
	}{
		{0, 0, span(1, 10)},
		{0, -1, span(1, 10)},
		{0, 3, span(1, 3)},
		{4, 3, span(5, 7)},
		{8, 5, span(9, 10)},
		{9, 0, []uint64{10}},
		{10, 0, nil},
		{11, 0, nil},
		{^uint64(0), 0, nil},
	} {
		t.Run(fmt.Sprintf("v%d_limit%d", tc.v, tc.limit), func(t *testing.T) {
			got := mustSince(t, s, draftKey, tc.v, tc.limit)
			if diff := cmp.Diff(tc.want, versions(got), diffOpts); diff != "" {
				t.Errorf("Since(%d, %d) versions (-want +got):\n%s", tc.v, tc.limit, diff)
			}
		})
	}
	if got := mustSince(t, s, draftKey, 4, 1); !cmp.Equal(got, recs(5, 5), diffOpts) {
		t.Errorf("Since(4, 1) = %+v; want record 5 in full", got)
	}
	missing := store.StreamKey{Summit: summitID, Doc: "nope", Stream: store.Draft}
	if _, err := s.Since(context.Background(), missing, 0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Since(missing) = %v; want ErrNotFound", err)
	}
	if _, err := s.LoadStream(context.Background(), missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LoadStream(missing) = %v; want ErrNotFound", err)
	}
}

// testAdopt: AdoptDoc succeeds only at the heads it names; afterwards
// records for the document are refused with ErrAdopted (both streams),
// while a snapshot alone is still stored, and other documents are
// untouched.
func testAdopt(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDoc(t, s)
	other := store.Doc{Summit: summitID, ID: "annex-1", Title: "Annex", Created: t0}
	if err := s.CreateDoc(ctx, other, "annex\n"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(1, 3)})
	mustAppend(t, s, store.Append{Key: approvedKey, Records: recs(1, 1)})
	d, err := s.GetDoc(ctx, summitID, docID)
	if err != nil {
		t.Fatal(err)
	}
	d.Adopted = true
	d.Adoptions = []store.Adoption{{Name: "final", By: "chair", Time: t0, ApprovedVersion: 1, DraftVersion: 3}}

	for _, tc := range []struct {
		name            string
		draft, approved uint64
	}{{"draft moved", 2, 1}, {"approved moved", 3, 0}} {
		if err := s.AdoptDoc(ctx, d, tc.draft, tc.approved); !errors.Is(err, store.ErrConflict) {
			t.Errorf("AdoptDoc at %d/%d (%s) = %v; want ErrConflict", tc.draft, tc.approved, tc.name, err)
		}
	}
	if got, _ := s.GetDoc(ctx, summitID, docID); got.Adopted {
		t.Fatal("a refused AdoptDoc adopted the document")
	}
	missing := d
	missing.ID = "nope"
	if err := s.AdoptDoc(ctx, missing, 0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AdoptDoc(missing) = %v; want ErrNotFound", err)
	}

	if err := s.AdoptDoc(ctx, d, 3, 1); err != nil {
		t.Fatalf("AdoptDoc at the heads: %v", err)
	}
	if got, _ := s.GetDoc(ctx, summitID, docID); !got.Adopted || len(got.Adoptions) != 1 {
		t.Errorf("GetDoc after AdoptDoc = %+v; want adopted with one adoption", got)
	}
	for _, k := range []store.StreamKey{draftKey, approvedKey} {
		head := mustLoad(t, s, k).Snapshot.Version
		st := mustLoad(t, s, k)
		if n := len(st.Ops); n > 0 {
			head = st.Ops[n-1].Version
		}
		err := s.Append(ctx, store.Append{Key: k, Records: recs(head+1, head+1)})
		if !errors.Is(err, store.ErrAdopted) {
			t.Errorf("Append to %s after adoption = %v; want ErrAdopted", k.Stream, err)
		}
		if now := mustLoad(t, s, k); len(now.Ops) != len(st.Ops) {
			t.Errorf("refused append changed %s: %d ops, was %d", k.Stream, len(now.Ops), len(st.Ops))
		}
		snap := store.Snapshot{Version: head, Text: "snapshot"}
		if err := s.Append(ctx, store.Append{Key: k, Snapshot: &snap}); err != nil {
			t.Errorf("snapshot-only Append to %s after adoption = %v; want nil", k.Stream, err)
		}
	}
	mustAppend(t, s, store.Append{Key: store.StreamKey{Summit: summitID, Doc: "annex-1", Stream: store.Draft}, Records: recs(1, 1)})
}

func testClients(t *testing.T, s store.Store) {
	mustDoc(t, s)
	withSrc := func(v uint64, src string, seq uint64) store.OpRecord {
		r := rec(v, "x")
		r.Src, r.Seq = src, seq
		return r
	}
	mustAppend(t, s, store.Append{Key: draftKey, Records: []store.OpRecord{
		withSrc(1, "alice#1", 1),
		withSrc(2, "bob#1", 1),
		withSrc(3, "alice#1", 2),
		rec(4, "no src"),
	}})
	mustAppend(t, s, store.Append{Key: draftKey, Records: []store.OpRecord{withSrc(5, "bob#1", 2)}})
	// The snapshot does not reset the clients map.
	mustAppend(t, s, store.Append{Key: draftKey, Snapshot: &store.Snapshot{Version: 5, Text: "t"}})

	want := map[string]store.ClientSeq{
		"alice#1": {Seq: 2, Version: 3},
		"bob#1":   {Seq: 2, Version: 5},
	}
	if diff := cmp.Diff(want, mustLoad(t, s, draftKey).Clients); diff != "" {
		t.Errorf("Clients (-want +got):\n%s", diff)
	}
	if got := mustLoad(t, s, approvedKey).Clients; len(got) != 0 {
		t.Errorf("approved Clients = %v; want empty", got)
	}
}

func testUnicode(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustSummit(t, s, summitID)
	texts := []struct{ name, text string }{
		{"emoji", "Peace 🕊️ and 👨‍👩‍👧 families 🇺🇳"},
		{"hangul", "평화 선언문 제1조"},
		{"crlf", "line one\r\nline two\r\n"},
		{"nul", "before\x00after"},
		{"mixed", "e\u0301 \u2028 \"quoted\" \\ \t </script> \U0010FFFF"},
		{"empty", ""},
	}
	for _, tc := range texts {
		t.Run(tc.name, func(t *testing.T) {
			d := store.Doc{Summit: summitID, ID: "doc-" + tc.name, Title: "Titre « " + tc.text + " »", Created: t0}
			if err := s.CreateDoc(ctx, d, tc.text); err != nil {
				t.Fatalf("CreateDoc: %v", err)
			}
			k := store.StreamKey{Summit: summitID, Doc: d.ID, Stream: store.Draft}
			if got := mustLoad(t, s, k).Snapshot.Text; got != tc.text {
				t.Errorf("version-0 text = %q; want %q", got, tc.text)
			}
			insert := tc.text
			if insert == "" {
				insert = "-" // an insert must not be empty
			}
			r := rec(1, insert)
			r.Author, r.Name, r.Src = "KOR", "김 "+tc.text, "src "+tc.text
			snap := &store.Snapshot{Version: 1, Text: tc.text + tc.text, Extra: []byte(tc.text)}
			mustAppend(t, s, store.Append{Key: k, Records: []store.OpRecord{r}, Snapshot: snap})
			mustAppend(t, s, store.Append{Key: k, Records: []store.OpRecord{rec(2, insert)}})

			got := mustLoad(t, s, k)
			want := store.StreamState{
				Snapshot: *snap,
				Ops:      []store.OpRecord{rec(2, insert)},
				Clients:  map[string]store.ClientSeq{r.Src: {Version: 1}},
			}
			if diff := cmp.Diff(want, got, diffOpts); diff != "" {
				t.Errorf("LoadStream (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]store.OpRecord{r}, mustSince(t, s, k, 0, 1), diffOpts); diff != "" {
				t.Errorf("Since (-want +got):\n%s", diff)
			}
			gd, err := s.GetDoc(ctx, summitID, d.ID)
			if err != nil {
				t.Fatalf("GetDoc: %v", err)
			}
			if gd.Title != d.Title {
				t.Errorf("title = %q; want %q", gd.Title, d.Title)
			}
		})
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	mustDoc(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 { // the engine may notice at different points; try a few times
		err := s.Append(ctx, store.Append{Key: draftKey, Records: recs(1, 1)})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Append(canceled ctx) = %v; want context.Canceled", err)
		}
	}
	if got := mustSince(t, s, draftKey, 0, 0); len(got) != 0 {
		t.Errorf("canceled Append wrote %d records; want 0", len(got))
	}
	mustAppend(t, s, store.Append{Key: draftKey, Records: recs(1, 1)})
}

func testCallerOwnsResults(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDoc(t, s)
	snap := store.Snapshot{Version: 1, Text: "t", Extra: []byte("extra")}
	a := store.Append{Key: draftKey, Records: recs(1, 1), Snapshot: &snap}
	mustAppend(t, s, a)
	// Changing what was passed in must not change what was stored...
	snap.Extra[0] = 'X'
	a.Records[0].Op[0].Insert = "changed"
	// ...nor changing what was returned.
	st := mustLoad(t, s, draftKey)
	st.Snapshot.Extra[0] = 'Y'
	rs := mustSince(t, s, draftKey, 0, 0)
	rs[0].Op[0].Insert = "changed"
	tok := store.Token{ID: "t", Summit: summitID, Hash: []byte("hash"), Created: t0}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	tok.Hash[0] = 'X'
	got, err := s.TokenByHash(ctx, []byte("hash"))
	if err != nil {
		t.Fatalf("TokenByHash after changing the caller's hash: %v", err)
	}
	got.Hash[0] = 'Y'

	if got := mustLoad(t, s, draftKey).Snapshot.Extra; string(got) != "extra" {
		t.Errorf("snapshot Extra = %q; want %q", got, "extra")
	}
	if got := mustSince(t, s, draftKey, 0, 0); !cmp.Equal(got, recs(1, 1), diffOpts) {
		t.Errorf("record = %+v; want %+v", got, recs(1, 1))
	}
	if got, err := s.TokenByHash(ctx, []byte("hash")); err != nil || string(got.Hash) != "hash" {
		t.Errorf("TokenByHash = %q, %v; want hash %q", got.Hash, err, "hash")
	}
}
