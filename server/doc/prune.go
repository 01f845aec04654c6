package doc

import (
	"time"

	"communique/server/changes"
	"communique/server/store"
)

// The draft's stored snapshots carry its authorship with the deletion
// marks that no pending change covers dropped (changes.Authorship.Prune),
// and the session takes that pruned authorship as its own once the
// snapshot is stored, so a restart replays from exactly the state in
// memory. Which marks a pending change covers takes a diff of the approved
// text and the draft: tens of milliseconds on a long or much-edited draft,
// too long to stall every writer of the document for, once per
// SnapshotEvery ops. So the periodic snapshot of the draft is taken in
// three steps:
//
//  1. When a snapshot is due, a goroutine diffs the committed texts of
//     that version V and prunes the authorship of V (values are immutable:
//     the session goes on editing meanwhile).
//  2. Its result comes back through the inbox and waits in pruneState.
//  3. The next append of the draft replays the ops since V onto it (each
//     costs about what it cost the first time) and carries a snapshot with
//     it; once that append is stored, the session takes it as its
//     authorship.
//
// The result is exactly what pruning at V and then applying the later ops
// gives, that is, what a synchronous prune at V gave. A result is dropped
// when a decision pruned the draft after V (its prune is newer) or when
// the ops since V are no longer in memory; the next due snapshot tries
// again. A prune that takes very long does not hold snapshots back for
// ever: after pruneLag snapshot intervals one is stored with the
// authorship as it is.
//
// The diff still costs CPU, on a machine the session and the sockets
// share: a prune that took d is not followed by another for pruneRest·d.
// Snapshots due meanwhile store the authorship as it is (a snapshot's
// marks are a superset of what a prune would keep, never less: attribution
// only stays as precise as it was a little longer).
//
// A short document is pruned on the spot, as every document once was: its
// diff costs less than the goroutine's round trip, and its snapshots then
// come exactly every SnapshotEvery ops.

// pruneLag is how many snapshot intervals the draft may go without a
// snapshot while its prune runs.
const pruneLag = 4

// pruneRest is how long, in multiples of its own duration, the draft rests
// after a background prune: the prunes take at most 1/(1+pruneRest) of a
// processor.
const pruneRest = 9

// syncPruneRunes is the size (approved text and draft together, in code
// points) up to which the draft is pruned on the session goroutine: a diff
// of texts this short takes well under a millisecond even when they have
// nothing in common.
const syncPruneRunes = 1024

// pruneState is the background prune of one (draft) stream.
type pruneState struct {
	running bool
	// gen counts synchronous prunes (decisions); a background result
	// computed before the latest one is stale.
	gen uint64
	// done is a result waiting for the next append, if any.
	done *pruneResult
	// notBefore is when the next background prune may start.
	notBefore time.Time
}

// pruneResult is a background prune's answer, sent to the session.
type pruneResult struct {
	gen     uint64
	version uint64
	auth    changes.Authorship // pruned, at version
	took    time.Duration
}

// committedText is st's text as the store has it: without the ops of a
// batch not yet committed.
func (st *stream) committedText() string {
	if st.rb.set {
		return st.rb.text.String()
	}
	return st.textString()
}

// snapshotFor returns the snapshot st's next append carries, if any, and
// for the draft the authorship to take once it is stored.
func (s *Session) snapshotFor(st *stream) (*store.Snapshot, changes.Authorship) {
	if !st.tracked {
		if st.version-st.snapshot >= s.reg.cfg.SnapshotEvery {
			return s.snapshotOf(st), changes.Authorship{}
		}
		return nil, changes.Authorship{}
	}
	if r := st.prune.done; r != nil {
		if auth, ok := s.replayOnto(st, r); ok {
			return &store.Snapshot{Version: st.version, Text: st.textString(), Extra: auth.Encode()}, auth
		}
		st.prune.done = nil
	}
	switch behind := st.version - st.snapshot; {
	case behind < s.reg.cfg.SnapshotEvery:
		return nil, changes.Authorship{}
	case st.prune.running:
		if behind >= pruneLag*s.reg.cfg.SnapshotEvery {
			return s.snapshotOf(st), st.auth // overdue: as it is
		}
		return nil, changes.Authorship{} // the prune's result comes with a later append
	case s.shortDraft():
		auth := st.auth.Prune(changes.Hunks(s.streams[1].committedText(), st.textString()))
		return &store.Snapshot{Version: st.version, Text: st.textString(), Extra: auth.Encode()}, auth
	case time.Now().Before(st.prune.notBefore):
		return s.snapshotOf(st), st.auth // the prune rests: as it is
	default:
		return nil, changes.Authorship{} // startPrune starts one once this append is stored
	}
}

// shortDraft reports whether the draft and the approved text are short
// enough to be diffed on the session goroutine (syncPruneRunes).
func (s *Session) shortDraft() bool {
	return s.streams[0].text.Len()+s.streams[1].text.Len() <= syncPruneRunes
}

// replayOnto applies the ops st holds after r's version to r's pruned
// authorship: the pruned authorship at st's head.
func (s *Session) replayOnto(st *stream, r *pruneResult) (changes.Authorship, bool) {
	if r.gen != st.prune.gen || r.version < st.oldest() || r.version > st.version {
		return changes.Authorship{}, false // a decision pruned since, or the ops since are gone
	}
	auth := r.auth
	for _, e := range st.log[r.version-st.oldest():] {
		var err error
		if auth, err = auth.Apply(e.rec.Op, e.rec.Author, deletedTexts(e.inv)); err != nil {
			s.reg.log.Error("replay onto the pruned authorship failed; it is dropped", "summit", s.summit, "doc", s.doc,
				"version", e.rec.Version, "err", err)
			return changes.Authorship{}, false
		}
	}
	return auth, true
}

// stored takes in that st's append stored snap (nil for none), made by
// snapshotFor with auth.
func (s *Session) stored(st *stream, snap *store.Snapshot, auth changes.Authorship) {
	if snap == nil {
		return
	}
	st.snapshot = snap.Version
	if st.tracked {
		if st.prune.done != nil {
			s.reg.log.Debug("draft authorship pruned", "summit", s.summit, "doc", s.doc, "at", st.prune.done.version,
				"replayed", st.version-st.prune.done.version, "took", st.prune.done.took, "marks", auth.MarkCount())
		}
		st.auth, st.prune.done = auth, nil
	}
}

// startPrune starts the background prune of the draft at its committed
// head, if a snapshot is due and no prune is running or waiting. It runs
// after an append succeeded, so the version it prunes at is durable.
func (s *Session) startPrune(st *stream) {
	if !st.tracked || st.prune.running || st.prune.done != nil || st.version-st.snapshot < s.reg.cfg.SnapshotEvery ||
		s.shortDraft() || time.Now().Before(st.prune.notBefore) {
		return // (a short draft is pruned by its next append)
	}
	st.prune.running = true
	approvedV := s.streams[1].version
	if s.streams[1].rb.set {
		approvedV = s.streams[1].rb.version
	}
	approved, draft := s.streams[1].committedText(), st.textString()
	auth, version, gen := st.auth, st.version, st.prune.gen
	// The pending changes listed for exactly these versions, if a reader
	// asked for them, spare the diff (Prune reads only their places and
	// old wording, not the authors computed with them).
	var list []changes.Change
	c := &s.cache
	c.mu.Lock()
	if c.valid && c.draftV == version && c.approvedV == approvedV {
		list = c.list
	}
	c.mu.Unlock()
	go func() {
		start := time.Now()
		if list == nil {
			list = changes.Hunks(approved, draft)
		}
		r := &pruneResult{gen: gen, version: version, auth: auth.Prune(list)}
		r.took = time.Since(start)
		select {
		case s.inbox <- r:
		case <-s.done:
		}
	}()
}

// onPruned keeps a background prune's result for the next append.
func (s *Session) onPruned(r *pruneResult) {
	st := s.streams[0]
	st.prune.running = false
	st.prune.notBefore = time.Now().Add(pruneRest * r.took)
	if r.gen == st.prune.gen {
		st.prune.done = r
	}
}
