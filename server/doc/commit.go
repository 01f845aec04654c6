package doc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"communique/server/changes"
	"communique/server/store"
)

// maxConflictRetries bounds how often a batch is redone after another
// instance won the race for the same versions (FAULTS 35): each retry first
// takes in what the winner wrote, so a retry only fails again under constant
// contention.
const maxConflictRetries = 8

// flush commits the batch, then answers and broadcasts in version order.
func (s *Session) flush() {
	if len(s.batch) == 0 {
		return
	}
	batch := s.batch
	s.batch = nil
	errs := [2]error{}
	for i, st := range s.streams {
		if st.rb.set {
			errs[i] = s.commitStream(st, batch)
		}
	}
	s.pendingC = nil
	if errs[0] == nil || errs[1] == nil {
		s.publish()
	}
	for _, sub := range batch {
		if err := errs[s.streamIndex(sub.Stream)]; err != nil {
			// Refused: the batch's ops, and resends of them answered from
			// the batch (a dup of a version the failed commit left out);
			// a resend of an op committed earlier keeps its ack.
			if sub.applied || (sub.res.Dup && sub.res.Version > s.stream(sub.Stream).version) {
				sub.res = Result{Err: err}
			}
		}
		s.answer(sub)
	}
	for _, st := range s.streams {
		st.rb = rollback{}
		st.trim()
	}
	// Every answer and broadcast of the batch is queued: now the writers
	// may go, each with all of its frames at once.
	s.flushPeers()
}

func (s *Session) streamIndex(name store.Stream) int {
	if name == store.Approved {
		return 1
	}
	return 0
}

// commitStream stores the uncommitted ops of st. If another instance
// appended first, it takes in what was written, redoes this batch's ops of
// st on top (transforming them like any late op), and tries again. On
// failure st is as it was before the batch.
func (s *Session) commitStream(st *stream, batch []*submission) error {
	for attempt := 0; ; attempt++ {
		// A retry carries no snapshot, even if one is due: building it can
		// take tens of ms (the authorship prune), time enough for another
		// instance to commit again, so with a snapshot every retry lost
		// its race (8 in a row, then the edits were refused). A later
		// batch stores it.
		err := s.appendStream(st, attempt == 0)
		if err == nil {
			if st.key.Stream == store.Draft {
				for _, sub := range batch {
					if sub.applied && sub.Src != "" && sub.Stream == store.Draft {
						s.clients[sub.Src] = store.ClientSeq{Seq: sub.Seq, Version: sub.res.Version}
					}
				}
			}
			return nil
		}
		st.undo()
		if errors.Is(err, store.ErrAdopted) {
			// Another instance adopted the document: take in its
			// metadata (which tells this instance's clients) and refuse
			// the batch as adopted.
			s.reloadMeta()
			return fmt.Errorf("commit: %w", ErrAdopted)
		}
		if !errors.Is(err, store.ErrConflict) || attempt == maxConflictRetries {
			if errors.Is(err, store.ErrConflict) {
				err = fmt.Errorf("still losing the race after %d retries: %w", attempt, err)
			}
			s.reg.log.Error("commit failed; edits refused", "summit", s.summit, "doc", s.doc,
				"stream", st.key.Stream, "err", err)
			return fmt.Errorf("commit: %w: %w", ErrUnavailable, err)
		}
		if cerr := s.catchUp(st); cerr != nil {
			return fmt.Errorf("commit: %w: %w", ErrUnavailable, cerr)
		}
		s.pendingC = nil
		for _, sub := range batch {
			if sub.Stream != st.key.Stream {
				continue
			}
			// Every submission is redone, resends too: one answered from
			// this batch carries a version the redo may change.
			sub.applied, sub.res = false, Result{}
			if err := s.apply(sub); err != nil {
				sub.res.Err = err
			}
		}
		if !st.rb.set {
			return nil // every op of the batch turned out to be a resend or refused
		}
	}
}

// appendStream writes st's ops since its rollback point in one append,
// with a snapshot if one is due and withSnapshot allows it.
func (s *Session) appendStream(st *stream, withSnapshot bool) error {
	recs := make([]store.OpRecord, 0, len(st.log)-st.rb.logLen)
	for _, e := range st.log[st.rb.logLen:] {
		recs = append(recs, e.rec)
	}
	a := store.Append{Key: st.key, Records: recs}
	var auth changes.Authorship // the draft's, to take if the snapshot is stored
	if withSnapshot {
		a.Snapshot, auth = s.snapshotFor(st)
	}
	start := time.Now()
	err := s.reg.store.Append(s.reg.ctx, a)
	if h := s.reg.hooks.Committed; h != nil {
		h(time.Since(start))
	}
	if err != nil {
		return err
	}
	s.stored(st, a.Snapshot, auth)
	st.rb = rollback{}
	s.announce(st.key.Stream, recs)
	s.startPrune(st)
	return nil
}

// undo puts st back to its state before the batch.
func (st *stream) undo() {
	if st.rb.set {
		st.text, st.auth, st.version, st.log = st.rb.text, st.rb.auth, st.rb.version, st.log[:st.rb.logLen]
		st.rb = rollback{}
		// The caches are keyed by version, and the undone versions will
		// be reused by other text (the snapshot of a failed append has
		// filled them already).
		st.strValid, st.jsonCache = false, nil
	}
}

// catchUp takes in every op of st that the store has and the session does
// not: ops committed by other instances sharing the store. Each is applied,
// remembered for idempotency and broadcast to this instance's subscribers.
// If the store is behind what this session served (a Redis that lost its
// last second of writes, FAULTS 36), the session writes back the ops it
// still holds instead of letting history fork.
func (s *Session) catchUp(st *stream) error {
	ctx := s.reg.ctx
	recs, err := s.reg.store.Since(ctx, st.key, st.version, 0)
	if err != nil {
		return fmt.Errorf("catch up %s: %w", st.key.Stream, err)
	}
	if len(recs) == 0 {
		return s.repairStore(ctx, st)
	}
	for _, rec := range recs {
		if err := s.ingest(st, rec); err != nil {
			return err
		}
	}
	s.publish()
	return nil
}

// ingest applies one op another instance committed.
func (s *Session) ingest(st *stream, rec store.OpRecord) error {
	if rec.Version <= st.version {
		return nil // already here
	}
	if rec.Version != st.version+1 {
		return fmt.Errorf("ingest %s op %d at %d: %w", st.key.Stream, rec.Version, st.version, store.ErrCorrupt)
	}
	text, inv, err := st.text.ApplyInvert(rec.Op)
	if err != nil {
		return fmt.Errorf("ingest %s op %d: %v: %w", st.key.Stream, rec.Version, err, store.ErrCorrupt)
	}
	if st.tracked {
		if st.auth, err = st.auth.Apply(rec.Op, rec.Author, deletedTexts(inv)); err != nil {
			return fmt.Errorf("ingest %s op %d: %v: %w", st.key.Stream, rec.Version, err, store.ErrCorrupt)
		}
	}
	st.text, st.version = text, rec.Version
	st.log = append(st.log, entry{rec: rec})
	e := &st.log[len(st.log)-1]
	e.inv = inv
	if rec.Src != "" && st.key.Stream == store.Draft {
		s.clients[rec.Src] = store.ClientSeq{Seq: rec.Seq, Version: rec.Version}
	}
	f := e.opFrame(st.key.Stream)
	for p := range st.subs {
		if !s.deliver(p, f) {
			s.drop(p)
		}
	}
	s.moveCursors(rec.Op, st.key.Stream)
	return nil
}

// headReader is implemented by stores that can tell a stream's head
// cheaply (both engines do).
type headReader interface {
	Head(ctx context.Context, k store.StreamKey) (uint64, error)
}

// repairStore handles a store whose head is behind this session: it writes
// back the ops the session still holds. Without a head reader, or with the
// ops no longer in memory, it reports the stream unavailable rather than
// guess.
func (s *Session) repairStore(ctx context.Context, st *stream) error {
	hr, ok := s.reg.store.(headReader)
	if !ok {
		return nil
	}
	head, err := hr.Head(ctx, st.key)
	if err != nil {
		return fmt.Errorf("read head of %s: %w", st.key.Stream, err)
	}
	if head >= st.version {
		return nil
	}
	if head < st.oldest() {
		s.reg.log.Error("store lost ops this server no longer holds; refusing edits", "summit", s.summit, "doc", s.doc,
			"stream", st.key.Stream, "store_head", head, "served", st.version)
		return fmt.Errorf("store head %d is behind the %d versions served, beyond what memory holds: %w", head, st.version, store.ErrUnavailable)
	}
	var recs []store.OpRecord
	for _, e := range st.log[head-st.oldest():] {
		recs = append(recs, e.rec)
	}
	s.reg.log.Warn("store is behind what this server served; writing back the missing ops", "summit", s.summit, "doc", s.doc,
		"stream", st.key.Stream, "store_head", head, "served", st.version)
	if err := s.reg.store.Append(ctx, store.Append{Key: st.key, Records: recs}); err != nil {
		return fmt.Errorf("write back ops %d..%d of %s: %w", head+1, st.version, st.key.Stream, err)
	}
	return nil
}
