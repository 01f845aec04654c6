package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"communique/server/store"

	"go.etcd.io/bbolt"
)

// Append stores a's records, moves the head, records each src's last seq
// and replaces the snapshot, all in one transaction shared with concurrent
// calls. It returns once that transaction is committed and fsynced.
func (s *Store) Append(ctx context.Context, a store.Append) error {
	name := keyString(a.Key)
	if len(a.Records) == 0 && a.Snapshot == nil {
		// Nothing to make durable: don't spend a commit and an fsync on it.
		err := s.view(ctx, func(tx *bbolt.Tx) error {
			if streamID(tx, a.Key) == nil {
				return fmt.Errorf("stream: %w", store.ErrNotFound)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("append %s: %w", name, err)
		}
		return nil
	}
	apply, err := prepareAppend(a)
	if err != nil {
		return fmt.Errorf("append %s: %w", name, err)
	}
	if err := s.submit(ctx, apply); err != nil {
		return fmt.Errorf("append %s: %w", name, err)
	}
	return nil
}

// prepareAppend checks and encodes a outside the committer (so callers do
// that CPU work in parallel) and returns the part that needs the stream.
func prepareAppend(a store.Append) (func(tx *bbolt.Tx) error, error) {
	recs := make([][]byte, len(a.Records))
	clients := make(map[string]store.ClientSeq)
	for i := range a.Records {
		r := &a.Records[i]
		if i > 0 && r.Version != a.Records[0].Version+uint64(i) {
			return nil, fmt.Errorf("record %d has version %d; want %d: %w", i, r.Version, a.Records[0].Version+uint64(i), store.ErrConflict)
		}
		var err error
		if recs[i], err = store.EncodeRecord(r); err != nil {
			return nil, fmt.Errorf("encode record v%d: %w", r.Version, err)
		}
		if r.Src != "" {
			clients[r.Src] = store.ClientSeq{Seq: r.Seq, Version: r.Version}
		}
	}
	var snap []byte
	if a.Snapshot != nil {
		if n := len(a.Records); n > 0 && a.Snapshot.Version != a.Records[n-1].Version {
			return nil, fmt.Errorf("snapshot at version %d; want %d (the last record's): %w", a.Snapshot.Version, a.Records[n-1].Version, store.ErrConflict)
		}
		var err error
		if snap, err = store.EncodeSnapshot(a.Snapshot); err != nil {
			return nil, fmt.Errorf("encode snapshot v%d: %w", a.Snapshot.Version, err)
		}
	}
	// Sorted so that writes (and any error) are deterministic.
	srcs := slices.Sorted(maps.Keys(clients))
	seqs := make([][]byte, len(srcs))
	for i, src := range srcs {
		cs := clients[src]
		var err error
		if seqs[i], err = encode(&cs); err != nil {
			return nil, fmt.Errorf("encode client seq %s: %w", src, err)
		}
	}

	// The closure keeps only what it computed here, never the caller's
	// slices.
	key, n := a.Key, uint64(len(a.Records))
	var first uint64
	if n > 0 {
		first = a.Records[0].Version
	}
	snapV := uint64(0)
	if a.Snapshot != nil {
		snapV = a.Snapshot.Version
	}

	return func(tx *bbolt.Tx) error {
		// Validate: nothing below returns a rejection after a write.
		sid := streamID(tx, key)
		if sid == nil {
			return reject(fmt.Errorf("stream: %w", store.ErrNotFound))
		}
		head, ops, err := streamParts(tx, sid)
		if err != nil {
			return reject(err)
		}
		if n > 0 {
			if adopted, err := docAdopted(tx, key); err != nil {
				return reject(err)
			} else if adopted {
				return reject(store.ErrAdopted)
			}
		}
		last := head
		if n > 0 {
			if first != head+1 {
				return reject(fmt.Errorf("first record has version %d; head is %d: %w", first, head, store.ErrConflict))
			}
			last = first + n - 1
		}
		if snap != nil && snapV != last {
			return reject(fmt.Errorf("snapshot at version %d; head would be %d: %w", snapV, last, store.ErrConflict))
		}

		// Write. Versions only grow, so pages can be filled completely:
		// nothing will ever be inserted between existing keys.
		ops.FillPercent = 1.0
		for i, rec := range recs {
			v := first + uint64(i)
			if err := ops.Put(encodeU64(v), rec); err != nil {
				return fmt.Errorf("put op v%d: %w", v, err)
			}
		}
		clients := tx.Bucket(bktClients)
		for i, src := range srcs {
			if err := clients.Put(append(bytes.Clone(sid), src...), seqs[i]); err != nil {
				return fmt.Errorf("put client seq %s: %w", src, err)
			}
		}
		if err := tx.Bucket(bktHeads).Put(sid, encodeU64(last)); err != nil {
			return fmt.Errorf("put head: %w", err)
		}
		if snap != nil {
			if err := tx.Bucket(bktSnaps).Put(sid, snap); err != nil {
				return fmt.Errorf("put snapshot: %w", err)
			}
			if err := putSnapHist(tx, sid, snapV, snap); err != nil {
				return fmt.Errorf("put snapshot history: %w", err)
			}
		}
		return nil
	}, nil
}

// putSnapHist keeps snapshot snap of stream sid at version v for SnapshotAt.
func putSnapHist(tx *bbolt.Tx, sid []byte, v uint64, snap []byte) error {
	b, err := tx.Bucket(bktSnapHist).CreateBucketIfNotExists(sid)
	if err != nil {
		return err
	}
	b.FillPercent = 1.0 // versions only grow
	return b.Put(encodeU64(v), snap)
}

// SnapshotAt returns the newest snapshot of k at or before version v.
func (s *Store) SnapshotAt(ctx context.Context, k store.StreamKey, v uint64) (store.Snapshot, error) {
	name := keyString(k)
	var snap store.Snapshot
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		sid := streamID(tx, k)
		if sid == nil {
			return store.ErrNotFound
		}
		b := tx.Bucket(bktSnapHist).Bucket(sid)
		if b == nil {
			return fmt.Errorf("%w: no snapshot history", store.ErrCorrupt)
		}
		c := b.Cursor()
		key, val := c.Seek(encodeU64(v))
		if key == nil || !bytes.Equal(key, encodeU64(v)) {
			key, val = c.Prev()
		}
		if key == nil {
			return fmt.Errorf("%w: no snapshot at or before version %d", store.ErrCorrupt, v)
		}
		var err error
		if snap, err = decode[store.Snapshot](val); err != nil {
			return fmt.Errorf("%w: snapshot: %w", store.ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot %s at v%d: %w", name, v, err)
	}
	return snap, nil
}

// streamParts returns the head and the ops bucket of stream sid.
func streamParts(tx *bbolt.Tx, sid []byte) (head uint64, ops *bbolt.Bucket, err error) {
	head, err = decodeU64(tx.Bucket(bktHeads).Get(sid))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: head: %w", store.ErrCorrupt, err)
	}
	if ops = tx.Bucket(bktOps).Bucket(sid); ops == nil {
		return 0, nil, fmt.Errorf("%w: no ops bucket", store.ErrCorrupt)
	}
	return head, ops, nil
}

// LoadStream returns the newest snapshot, every op after it and the
// clients map. Any record that does not decode, or any gap or stray
// version between the snapshot and the head, is reported as ErrCorrupt:
// an empty or shortened stream would silently lose text.
func (s *Store) LoadStream(ctx context.Context, k store.StreamKey) (store.StreamState, error) {
	name := keyString(k)
	var st store.StreamState
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		sid := streamID(tx, k)
		if sid == nil {
			return store.ErrNotFound
		}
		head, ops, err := streamParts(tx, sid)
		if err != nil {
			return err
		}
		sv := tx.Bucket(bktSnaps).Get(sid)
		if sv == nil {
			return fmt.Errorf("%w: no snapshot", store.ErrCorrupt)
		}
		if st.Snapshot, err = decode[store.Snapshot](sv); err != nil {
			return fmt.Errorf("%w: snapshot: %w", store.ErrCorrupt, err)
		}
		if st.Snapshot.Version > head {
			return fmt.Errorf("%w: snapshot at version %d is past head %d", store.ErrCorrupt, st.Snapshot.Version, head)
		}
		if st.Ops, err = readOps(ctx, ops, st.Snapshot.Version, head, 0); err != nil {
			return err
		}
		st.Clients = make(map[string]store.ClientSeq)
		c := tx.Bucket(bktClients).Cursor()
		for key, v := c.Seek(sid); key != nil && bytes.HasPrefix(key, sid); key, v = c.Next() {
			cs, err := decode[store.ClientSeq](v)
			if err != nil {
				return fmt.Errorf("%w: client seq %q: %w", store.ErrCorrupt, key[len(sid):], err)
			}
			st.Clients[string(key[len(sid):])] = cs
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			s.log.Error("corrupt stream", "stream", name, "err", err)
		}
		return store.StreamState{}, fmt.Errorf("load stream %s: %w", name, err)
	}
	return st, nil
}

// Since returns up to limit records with Version > v (all if limit <= 0).
func (s *Store) Since(ctx context.Context, k store.StreamKey, v uint64, limit int) ([]store.OpRecord, error) {
	name := keyString(k)
	var out []store.OpRecord
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		sid := streamID(tx, k)
		if sid == nil {
			return store.ErrNotFound
		}
		head, ops, err := streamParts(tx, sid)
		if err != nil {
			return err
		}
		out, err = readOps(ctx, ops, v, head, limit)
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			s.log.Error("corrupt stream", "stream", name, "err", err)
		}
		return nil, fmt.Errorf("since %s v%d: %w", name, v, err)
	}
	return out, nil
}

// readOps reads the ops (of one stream's ops bucket) after version from up to head (at most limit of
// them if limit > 0), checking that they are exactly from+1, from+2, ...
func readOps(ctx context.Context, ops *bbolt.Bucket, from, head uint64, limit int) ([]store.OpRecord, error) {
	if from >= head {
		return nil, nil
	}
	want := head - from
	if limit > 0 && uint64(limit) < want {
		want = uint64(limit)
	}
	out := make([]store.OpRecord, 0, want)
	c := ops.Cursor()
	next := from + 1
	for k, v := c.Seek(encodeU64(next)); uint64(len(out)) < want; k, v = c.Next() {
		if len(out)%4096 == 4095 {
			// A very long replay should still notice a caller giving up.
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if k == nil {
			return nil, fmt.Errorf("%w: op %d missing (head is %d)", store.ErrCorrupt, next, head)
		}
		kv, err := decodeU64(k)
		if err != nil {
			return nil, fmt.Errorf("%w: op key %x: %w", store.ErrCorrupt, k, err)
		}
		if kv != next {
			return nil, fmt.Errorf("%w: op %d missing (found %d next)", store.ErrCorrupt, next, kv)
		}
		r, err := decode[store.OpRecord](v)
		if err != nil {
			return nil, fmt.Errorf("%w: op %d: %w", store.ErrCorrupt, next, err)
		}
		if r.Version != next {
			return nil, fmt.Errorf("%w: op stored at %d says version %d", store.ErrCorrupt, next, r.Version)
		}
		out = append(out, r)
		next++
	}
	return out, nil
}

// Head returns the version of the newest op of k: a cheap check of whether
// another writer has appended.
func (s *Store) Head(ctx context.Context, k store.StreamKey) (uint64, error) {
	var head uint64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		sid := streamID(tx, k)
		if sid == nil {
			return store.ErrNotFound
		}
		var err error
		head, _, err = streamParts(tx, sid)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", keyString(k), err)
	}
	return head, nil
}
