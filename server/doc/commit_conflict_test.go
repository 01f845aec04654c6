package doc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"communique/ot"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/store/bolt"
)

// racingStore is a shared store where another instance always commits first
// while an append carries a snapshot: it slips in an op of its own (an "O"
// at the start; every op in this test inserts one code point, so the text
// at version v has 5+v) and so makes that append conflict.
type racingStore struct {
	*bolt.Store
	races atomic.Int32 // snapshot-carrying appends still to beat
	beat  atomic.Int32
}

func (s *racingStore) Append(ctx context.Context, a store.Append) error {
	if a.Snapshot != nil && len(a.Records) > 0 && s.races.Add(-1) >= 0 {
		head := a.Records[0].Version - 1
		other := store.OpRecord{Version: head + 1, Op: ot.Op{}.Insert("O").Retain(int(5 + head)),
			Author: "FRA", Src: "other-instance", Seq: uint64(head + 1), Time: time.Now()}
		if err := s.Store.Append(ctx, store.Append{Key: a.Key, Records: []store.OpRecord{other}}); err != nil {
			return err
		}
		s.beat.Add(1)
	}
	return s.Store.Append(ctx, a)
}

// TestConflictRetryCarriesNoSnapshot: when another instance keeps winning
// the race while a snapshot is due, the edit still commits on the retry
// (which carries no snapshot) instead of losing every retry and being
// refused, and a later commit stores the snapshot.
func TestConflictRetryCarriesNoSnapshot(t *testing.T) {
	st := &racingStore{Store: openStore(t, bolt.Options{})}
	// More races than a commit retries (8): with a snapshot on every retry
	// the first edit that is due one would be refused.
	const races, edits = 10, 14
	st.races.Store(races)
	r := newRegistry(t, st, doc.Config{SnapshotEvery: 2})
	ctx := context.Background()
	s, err := r.Acquire(ctx, "s", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	key := store.StreamKey{Summit: "s", Doc: "d", Stream: store.Draft}
	var version uint64
	for i := range edits {
		res := s.Submit(ctx, doc.Edit{Stream: store.Draft, Base: version, Op: ot.Op{}.Insert("X").Retain(int(5 + version)),
			Author: "KOR", Src: "a", Seq: uint64(i + 1)})
		if res.Err != nil {
			t.Fatalf("edit %d: %v (the other instance won %d races)", i+1, res.Err, st.beat.Load())
		}
		version = res.Version
	}
	if st.beat.Load() != races {
		t.Fatalf("the other instance won %d races; want %d", st.beat.Load(), races)
	}
	if want := uint64(edits + races); version != want {
		t.Errorf("version %d after %d edits and %d of the other instance; want %d", version, edits, races, want)
	}
	if got := s.View().Draft.String(); len([]rune(got)) != 5+edits+races {
		t.Errorf("draft %q; want %d code points", got, 5+edits+races)
	}
	snap, err := st.SnapshotAt(ctx, key, version)
	if err != nil || snap.Version == 0 {
		t.Errorf("newest snapshot %+v, %v; want one stored after the races", snap, err)
	}
}
