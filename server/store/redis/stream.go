package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"communique/server/store"

	goredis "github.com/redis/go-redis/v9"
)

// readChunk is how many ops one HMGET asks for, and readBatch how many
// HMGETs go in one round trip: big replays stay a few round trips without
// one huge reply blocking Redis.
const (
	readChunk = 1024
	readBatch = 8
)

// Append stores a's records, moves the head, records each src's last seq
// and replaces the snapshot in one script run (see appendLua), atomically
// for the stream. It returns once Redis has replied (see the package
// comment for what that means for durability) and, with Options.WaitAOF or
// WaitReplicas, once Redis has confirmed the wait.
func (s *Store) Append(ctx context.Context, a store.Append) error {
	name := keyString(a.Key)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append %s: %w", name, err)
	}
	keys, ok := s.keysOf(a.Key)
	if !ok {
		return fmt.Errorf("append %s: stream: %w", name, store.ErrNotFound)
	}
	args, err := appendArgs(a)
	if err != nil {
		return fmt.Errorf("append %s: %w", name, err)
	}
	res, err := s.runAppend(ctx, s.appendKeys(a.Key, keys), args)
	if err != nil {
		return fmt.Errorf("append %s: %w", name, classify(ctx, err))
	}
	status, head, err := scriptReply(res)
	if err != nil {
		return fmt.Errorf("append %s: %w", name, err)
	}
	switch status {
	case "ok":
		return nil
	case "done":
		s.log.Debug("append already applied by an earlier attempt", "stream", name)
		return nil
	case "notfound":
		return fmt.Errorf("append %s: stream: %w", name, store.ErrNotFound)
	case "adopted":
		return fmt.Errorf("append %s: %w", name, store.ErrAdopted)
	case "conflict":
		if len(a.Records) > 0 {
			return fmt.Errorf("append %s: first record has version %d; head is %s: %w", name, a.Records[0].Version, head, store.ErrConflict)
		}
		return fmt.Errorf("append %s: snapshot at version %d; head is %s: %w", name, a.Snapshot.Version, head, store.ErrConflict)
	default:
		return fmt.Errorf("append %s: unexpected script reply %q", name, status)
	}
}

// appendKeys are appendLua's KEYS: the stream's and its document's (which
// says whether it is adopted).
func (s *Store) appendKeys(k store.StreamKey, keys streamKeys) []string {
	return append(keys.list(), s.docKey(k.Summit, k.Doc))
}

// appendArgs checks and encodes a into appendLua's ARGV.
func appendArgs(a store.Append) ([]any, error) {
	n := len(a.Records)
	clients := make(map[string]store.ClientSeq)
	recs := make([]any, 0, 2*n)
	for i := range a.Records {
		r := &a.Records[i]
		want := a.Records[0].Version + uint64(i)
		switch {
		case r.Version == 0:
			return nil, fmt.Errorf("record %d has version 0; versions start at 1: %w", i, store.ErrConflict)
		case r.Version != want:
			return nil, fmt.Errorf("record %d has version %d; want %d: %w", i, r.Version, want, store.ErrConflict)
		case r.Version > maxVersion:
			return nil, fmt.Errorf("record %d has version %d, past the largest storable version 2^53", i, r.Version)
		}
		b, err := store.EncodeRecord(r)
		if err != nil {
			return nil, fmt.Errorf("encode record v%d: %w", r.Version, err)
		}
		recs = append(recs, formatVersion(r.Version), b)
		if r.Src != "" {
			clients[r.Src] = store.ClientSeq{Seq: r.Seq, Version: r.Version}
		}
	}
	var expect, newHead, snapV string
	var snap []byte
	if n > 0 {
		expect = formatVersion(a.Records[0].Version - 1)
		newHead = formatVersion(a.Records[n-1].Version)
	}
	if a.Snapshot != nil {
		if n > 0 && a.Snapshot.Version != a.Records[n-1].Version {
			return nil, fmt.Errorf("snapshot at version %d; want %d (the last record's): %w", a.Snapshot.Version, a.Records[n-1].Version, store.ErrConflict)
		}
		if a.Snapshot.Version > maxVersion {
			return nil, fmt.Errorf("snapshot at version %d, past the largest storable version 2^53: %w", a.Snapshot.Version, store.ErrConflict)
		}
		var err error
		if snap, err = store.EncodeSnapshot(a.Snapshot); err != nil {
			return nil, fmt.Errorf("encode snapshot v%d: %w", a.Snapshot.Version, err)
		}
		snapV = formatVersion(a.Snapshot.Version)
	}
	// Sorted so that what is written does not depend on map order.
	srcs := slices.Sorted(maps.Keys(clients))
	args := make([]any, 0, 7+len(recs)+2*len(srcs))
	args = append(args, newAppendID(), expect, newHead, snapV, snap, n, len(srcs))
	args = append(args, recs...)
	for _, src := range srcs {
		cs := clients[src]
		b, err := encode(&cs)
		if err != nil {
			return nil, fmt.Errorf("encode client seq %s: %w", src, err)
		}
		args = append(args, src, b)
	}
	return args, nil
}

// newAppendID returns a random id that tells a retried Append from another
// writer's (see appendLua).
func newAppendID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// runAppend runs appendLua and, if Options ask for it, WAIT or WAITAOF on
// the same connection: both wait for what that connection wrote.
func (s *Store) runAppend(ctx context.Context, keys []string, args []any) (any, error) {
	if !s.opts.WaitAOF && s.opts.WaitReplicas == 0 {
		return s.appendScript.Run(ctx, s.c, keys, args...).Result()
	}
	node, err := s.nodeFor(ctx, keys[0])
	if err != nil {
		return nil, err
	}
	ms := s.opts.WaitTimeout.Milliseconds()
	for _, evalSha := range []bool{true, false} {
		pipe := node.Pipeline()
		var res *goredis.Cmd
		if evalSha {
			res = s.appendScript.EvalSha(ctx, pipe, keys, args...)
		} else {
			res = s.appendScript.Eval(ctx, pipe, keys, args...)
		}
		var wait *goredis.Cmd
		if s.opts.WaitAOF {
			wait = pipe.Do(ctx, "WAITAOF", 1, s.opts.WaitReplicas, ms)
		} else {
			wait = pipe.Do(ctx, "WAIT", s.opts.WaitReplicas, ms)
		}
		_, _ = pipe.Exec(ctx) // errors are on the commands
		if evalSha && goredis.HasErrorPrefix(res.Err(), "NOSCRIPT") {
			continue // a restarted Redis forgot the script: send it in full
		}
		v, err := res.Result()
		if err != nil {
			return nil, err
		}
		if status, _, _ := scriptReply(v); status == "ok" {
			// (After "done" the wait covers only this connection's writes,
			// not the earlier attempt's; that attempt's reply was lost.)
			if err := s.checkWaitReply(wait); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	return nil, errors.New("script missing after EVAL")
}

// checkWaitReply turns a WAIT or WAITAOF reply short of Options into an error.
func (s *Store) checkWaitReply(wait *goredis.Cmd) error {
	v, err := wait.Result()
	if err != nil {
		return err
	}
	if s.opts.WaitAOF {
		got, _ := v.([]any)
		if len(got) != 2 {
			return fmt.Errorf("WAITAOF replied %v", v)
		}
		local, _ := got[0].(int64)
		replicas, _ := got[1].(int64)
		if local < 1 || replicas < int64(s.opts.WaitReplicas) {
			return fmt.Errorf("%w: applied, but WAITAOF confirmed the fsync on %d local and %d of %d replicas within %s",
				store.ErrUnavailable, local, replicas, s.opts.WaitReplicas, s.opts.WaitTimeout)
		}
		return nil
	}
	replicas, _ := v.(int64)
	if replicas < int64(s.opts.WaitReplicas) {
		return fmt.Errorf("%w: applied, but only %d of %d replicas confirmed it within %s",
			store.ErrUnavailable, replicas, s.opts.WaitReplicas, s.opts.WaitTimeout)
	}
	return nil
}

// nodeFor returns the client of the server that holds key.
func (s *Store) nodeFor(ctx context.Context, key string) (*goredis.Client, error) {
	switch c := s.c.(type) {
	case *goredis.Client:
		return c, nil
	case *goredis.ClusterClient:
		return c.MasterForKey(ctx, key)
	default:
		return nil, fmt.Errorf("no single node for %T", c)
	}
}

// scriptReply splits a script's {status, head} reply.
func scriptReply(v any) (status, head string, err error) {
	parts, _ := v.([]any)
	if len(parts) == 0 {
		return "", "", fmt.Errorf("unexpected script reply %v", v)
	}
	status, _ = parts[0].(string)
	if len(parts) > 1 {
		head, _ = parts[1].(string)
	}
	return status, head, nil
}

// Head returns the stream's current version. It is one GET: cheap enough
// to poll, to notice ops whose pub/sub message was lost, or a head that went
// backwards because Redis lost acknowledged appends.
func (s *Store) Head(ctx context.Context, k store.StreamKey) (uint64, error) {
	name := keyString(k)
	keys, ok := s.keysOf(k)
	if !ok {
		return 0, fmt.Errorf("head %s: %w", name, store.ErrNotFound)
	}
	head, err := s.c.Get(ctx, keys.head).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, fmt.Errorf("head %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", name, classify(ctx, err))
	}
	v, err := parseVersion(head)
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", name, err)
	}
	return v, nil
}

// LoadStream reads the head, the newest snapshot and the clients map in one
// MULTI (so they agree), then the ops after the snapshot. Ops up to a head
// once read never change, so that second read needs no transaction. A
// missing or undecodable record, or a snapshot past the head, is
// ErrCorrupt: an empty or shortened stream would silently lose text.
func (s *Store) LoadStream(ctx context.Context, k store.StreamKey) (store.StreamState, error) {
	name := keyString(k)
	st, err := s.loadStream(ctx, k)
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			s.log.Error("corrupt stream", "stream", name, "err", err)
		}
		return store.StreamState{}, fmt.Errorf("load stream %s: %w", name, err)
	}
	return st, nil
}

func (s *Store) loadStream(ctx context.Context, k store.StreamKey) (store.StreamState, error) {
	keys, ok := s.keysOf(k)
	if !ok {
		return store.StreamState{}, store.ErrNotFound
	}
	pipe := s.c.TxPipeline()
	headCmd := pipe.Get(ctx, keys.head)
	snapCmd := pipe.Get(ctx, keys.snap)
	clientsCmd := pipe.HGetAll(ctx, keys.clients)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return store.StreamState{}, classify(ctx, err)
	}
	headStr, err := headCmd.Result()
	if errors.Is(err, goredis.Nil) {
		return store.StreamState{}, store.ErrNotFound
	}
	if err != nil {
		return store.StreamState{}, classify(ctx, err)
	}
	head, err := parseVersion(headStr)
	if err != nil {
		return store.StreamState{}, fmt.Errorf("head: %w", err)
	}
	snapJSON, err := snapCmd.Bytes()
	if errors.Is(err, goredis.Nil) {
		return store.StreamState{}, fmt.Errorf("%w: no snapshot", store.ErrCorrupt)
	}
	if err != nil {
		return store.StreamState{}, classify(ctx, err)
	}
	var st store.StreamState
	if st.Snapshot, err = decode[store.Snapshot](snapJSON); err != nil {
		return store.StreamState{}, fmt.Errorf("%w: snapshot: %w", store.ErrCorrupt, err)
	}
	if st.Snapshot.Version > head {
		return store.StreamState{}, fmt.Errorf("%w: snapshot at version %d is past head %d", store.ErrCorrupt, st.Snapshot.Version, head)
	}
	raw, err := clientsCmd.Result()
	if err != nil {
		return store.StreamState{}, classify(ctx, err)
	}
	st.Clients = make(map[string]store.ClientSeq, len(raw))
	for src, v := range raw {
		cs, err := decode[store.ClientSeq]([]byte(v))
		if err != nil {
			return store.StreamState{}, fmt.Errorf("%w: client seq %q: %w", store.ErrCorrupt, src, err)
		}
		st.Clients[src] = cs
	}
	if st.Ops, err = s.readOps(ctx, keys.ops, st.Snapshot.Version, head, 0); err != nil {
		return store.StreamState{}, err
	}
	return st, nil
}

// Since returns up to limit records with Version > v (all if limit <= 0).
func (s *Store) Since(ctx context.Context, k store.StreamKey, v uint64, limit int) ([]store.OpRecord, error) {
	name := keyString(k)
	out, err := s.since(ctx, k, v, limit)
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			s.log.Error("corrupt stream", "stream", name, "err", err)
		}
		return nil, fmt.Errorf("since %s v%d: %w", name, v, err)
	}
	return out, nil
}

func (s *Store) since(ctx context.Context, k store.StreamKey, v uint64, limit int) ([]store.OpRecord, error) {
	keys, ok := s.keysOf(k)
	if !ok {
		return nil, store.ErrNotFound
	}
	headStr, err := s.c.Get(ctx, keys.head).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, classify(ctx, err)
	}
	head, err := parseVersion(headStr)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	return s.readOps(ctx, keys.ops, v, head, limit)
}

// readOps reads the ops after version from up to head (at most limit of
// them if limit > 0) from the ops hash, checking that each one is there and
// says the version it is stored at.
func (s *Store) readOps(ctx context.Context, opsKey string, from, head uint64, limit int) ([]store.OpRecord, error) {
	if from >= head {
		return nil, nil
	}
	want := head - from
	if limit > 0 && uint64(limit) < want {
		want = uint64(limit)
	}
	out := make([]store.OpRecord, 0, want)
	next, last := from+1, from+want
	for next <= last {
		pipe := s.c.Pipeline()
		var cmds []*goredis.SliceCmd
		for b := 0; b < readBatch && next <= last; b++ {
			n := min(last-next+1, readChunk)
			fields := make([]string, n)
			for i := range fields {
				fields[i] = formatVersion(next + uint64(i))
			}
			cmds = append(cmds, pipe.HMGet(ctx, opsKey, fields...))
			next += n
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, classify(ctx, err)
		}
		for _, cmd := range cmds {
			for _, v := range cmd.Val() {
				want := from + uint64(len(out)) + 1
				str, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("%w: op %d missing (head is %d)", store.ErrCorrupt, want, head)
				}
				r, err := decode[store.OpRecord]([]byte(str))
				if err != nil {
					return nil, fmt.Errorf("%w: op %d: %w", store.ErrCorrupt, want, err)
				}
				if r.Version != want {
					return nil, fmt.Errorf("%w: op stored at %d says version %d", store.ErrCorrupt, want, r.Version)
				}
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// SnapshotAt returns the newest snapshot of k at or before version v.
func (s *Store) SnapshotAt(ctx context.Context, k store.StreamKey, v uint64) (store.Snapshot, error) {
	name := keyString(k)
	snap, err := s.snapshotAt(ctx, k, v)
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot %s at v%d: %w", name, v, err)
	}
	return snap, nil
}

func (s *Store) snapshotAt(ctx context.Context, k store.StreamKey, v uint64) (store.Snapshot, error) {
	keys, ok := s.keysOf(k)
	if !ok {
		return store.Snapshot{}, store.ErrNotFound
	}
	pipe := s.c.TxPipeline()
	exists := pipe.Exists(ctx, keys.head)
	found := pipe.ZRevRangeByScore(ctx, keys.snaps, &goredis.ZRangeBy{
		Max: formatVersion(v), Min: "-inf", Count: 1,
	})
	if _, err := pipe.Exec(ctx); err != nil {
		return store.Snapshot{}, classify(ctx, err)
	}
	if exists.Val() == 0 {
		return store.Snapshot{}, store.ErrNotFound
	}
	if len(found.Val()) == 0 {
		return store.Snapshot{}, fmt.Errorf("%w: no snapshot at or before version %d", store.ErrCorrupt, v)
	}
	snap, err := decode[store.Snapshot]([]byte(found.Val()[0]))
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("%w: snapshot: %w", store.ErrCorrupt, err)
	}
	return snap, nil
}
