package doc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"communique/server/changes"
	"communique/server/store"
	"communique/server/wire"
)

// Errors of the approval workflow.
var (
	ErrStaleChange = errors.New("no such pending change")
	ErrPending     = errors.New("changes are pending")
	ErrStale       = errors.New("the document changed since the versions given")
)

// snapshotOf builds the snapshot of st at its current version, with the
// draft's authorship as it is, so a restart replays from exactly this
// state. (The draft's periodic snapshots are pruned first, off the session
// goroutine: see prune.go.)
func (s *Session) snapshotOf(st *stream) *store.Snapshot {
	snap := &store.Snapshot{Version: st.version, Text: st.textString()}
	if st.tracked {
		snap.Extra = st.auth.Encode()
	}
	return snap
}

// snapshotDraft stores a snapshot of the draft at its head after a
// decision, with the deletion marks that no pending change covers any more
// dropped (a rejected change's marks, typically), and takes that pruned
// authorship once it is stored, so memory and store agree. Decisions are
// rare and the chair waits for this one, so the diff runs here. A failure
// only costs attribution precision, never text, so it is logged, not
// returned.
func (s *Session) snapshotDraft() {
	st := s.streams[0]
	auth := st.auth.Prune(changes.Hunks(s.streams[1].textString(), st.textString()))
	snap := &store.Snapshot{Version: st.version, Text: st.textString(), Extra: auth.Encode()}
	if err := s.reg.store.Append(s.reg.ctx, store.Append{Key: st.key, Snapshot: snap}); err != nil {
		s.reg.log.Warn("draft snapshot after a decision failed", "summit", s.summit, "doc", s.doc, "err", err)
		return
	}
	st.auth, st.snapshot = auth, snap.Version
	// A background prune of an older version would undo this one.
	st.prune.gen++
	st.prune.done = nil
	s.authRev++
	s.publish()
}

// changeCache holds the pending changes of one pair of versions. It is
// shared by HTTP readers (which compute outside the session goroutine) and
// by decisions, so an id listed to the chair is found again as long as
// neither text moved.
type changeCache struct {
	mu        sync.Mutex
	draftV    uint64
	approvedV uint64
	authRev   uint64 // a pruned authorship at the same versions names fewer authors
	list      []changes.Change
	valid     bool
}

// Pending is the list of pending changes with the versions it was computed
// at.
type Pending struct {
	DraftVersion    uint64
	ApprovedVersion uint64
	Changes         []changes.Change
}

// Changes lists the pending changes of the latest committed state. The diff
// runs on the caller's goroutine, from the immutable View, and is cached per
// pair of versions.
func (s *Session) Changes() Pending {
	return s.changesOf(s.View())
}

func (s *Session) changesOf(v *View) Pending {
	c := &s.cache
	c.mu.Lock()
	if c.valid && c.draftV == v.DraftVersion && c.approvedV == v.ApprovedVersion && c.authRev == v.authRev {
		list := c.list
		c.mu.Unlock()
		return Pending{v.DraftVersion, v.ApprovedVersion, list}
	}
	c.mu.Unlock()
	list := changes.Compute(v.Approved.String(), v.Draft.String(), v.Auth)
	c.mu.Lock()
	c.draftV, c.approvedV, c.authRev, c.list, c.valid = v.DraftVersion, v.ApprovedVersion, v.authRev, list, true
	c.mu.Unlock()
	return Pending{v.DraftVersion, v.ApprovedVersion, list}
}

// Decision is a chair's decision request.
type Decision struct {
	Approve bool
	IDs     []string // the changes decided; all pending ones when All
	All     bool
	// Expect, when set, makes the decision fail with ErrStale unless the
	// document is still at these versions (the ones the chair looked at).
	ExpectDraft, ExpectApproved *uint64
	Name                        string // who decided, from the token
}

// Outcome is the state after a decision.
type Outcome struct {
	DraftVersion    uint64
	ApprovedVersion uint64
	Decided         []changes.Change
}

// Decide carries out the chair's decision on pending changes, atomically
// with respect to edits: it runs on the session goroutine between batches.
// An approval becomes ops on the approved stream, broadcast to its
// followers; a rejection becomes ops by the chair on the draft putting the
// approved wording back. Each op records the decision. An id that is not
// pending now fails with ErrStaleChange and nothing changes.
func (s *Session) Decide(ctx context.Context, d Decision) (Outcome, error) {
	var out Outcome
	var err error
	derr := s.Do(ctx, func(s *Session) { out, err = s.decide(d) })
	if derr != nil {
		return Outcome{}, derr
	}
	return out, err
}

func (s *Session) decide(d Decision) (Outcome, error) {
	if s.meta.Adopted {
		return Outcome{}, fmt.Errorf("%s/%s: %w", s.summit, s.doc, ErrAdopted)
	}
	draft, approved := s.streams[0], s.streams[1]
	if (d.ExpectDraft != nil && *d.ExpectDraft != draft.version) || (d.ExpectApproved != nil && *d.ExpectApproved != approved.version) {
		return Outcome{}, fmt.Errorf("now at draft %d, approved %d: %w", draft.version, approved.version, ErrStale)
	}
	pending := s.changesOf(s.View())
	var chosen []changes.Change
	if d.All {
		chosen = pending.Changes
	} else {
		for _, id := range d.IDs {
			i := slices.IndexFunc(pending.Changes, func(c changes.Change) bool { return c.ID == id })
			if i < 0 {
				return Outcome{}, fmt.Errorf("change %s: %w", id, ErrStaleChange)
			}
			if !slices.ContainsFunc(chosen, func(c changes.Change) bool { return c.ID == id }) {
				chosen = append(chosen, pending.Changes[i])
			}
		}
	}
	out := Outcome{Decided: chosen}
	if len(chosen) > 0 {
		// Apply from the last hunk to the first, so that each op's offsets
		// are still those of the listed text.
		order := slices.Clone(chosen)
		slices.SortFunc(order, func(a, b changes.Change) int { return b.DraftStart - a.DraftStart })
		st, kind := approved, "approve"
		if !d.Approve {
			st, kind = draft, "reject"
		}
		subs := make([]*submission, 0, len(order))
		for _, c := range order {
			op := c.ApproveOp(st.text.Len())
			if !d.Approve {
				op = c.RejectOp(st.text.Len())
			}
			sub := &submission{
				Edit: Edit{
					Stream: st.key.Stream, Base: st.version, Op: op, Author: "chair", Name: d.Name,
					Decision: &store.Decision{Kind: kind, Change: c.ID, Old: c.Old, New: c.New, Authors: c.Authors},
				},
				received: time.Now(),
				reply:    make(chan Result, 1),
			}
			s.submit(sub)
			subs = append(subs, sub)
		}
		s.flush()
		for _, sub := range subs {
			if res := <-sub.reply; res.Err != nil {
				// The whole batch shares one commit, so either all or none
				// of it was stored.
				return Outcome{}, res.Err
			}
		}
		s.snapshotDraft()
	}
	out.DraftVersion, out.ApprovedVersion = draft.version, approved.version
	return out, nil
}

// Adopt freezes the document once nothing is pending, keeping a named,
// dated version; every later edit is refused with ErrAdopted.
func (s *Session) Adopt(ctx context.Context, name, by string) (store.Adoption, error) {
	var out store.Adoption
	var err error
	derr := s.Do(ctx, func(s *Session) { out, err = s.adopt(name, by) })
	if derr != nil {
		return store.Adoption{}, derr
	}
	return out, err
}

func (s *Session) adopt(name, by string) (store.Adoption, error) {
	if s.meta.Adopted {
		return store.Adoption{}, fmt.Errorf("%s/%s: %w", s.summit, s.doc, ErrAdopted)
	}
	if p := s.changesOf(s.View()); len(p.Changes) > 0 {
		return store.Adoption{}, fmt.Errorf("%d pending changes must be approved or rejected first: %w", len(p.Changes), ErrPending)
	}
	a := store.Adoption{
		Name: name, By: by, Time: time.Now().UTC(),
		ApprovedVersion: s.streams[1].version, DraftVersion: s.streams[0].version,
	}
	meta := s.meta
	meta.Adopted = true
	meta.Adoptions = append(slices.Clone(meta.Adoptions), a)
	// Only at the versions just checked: another instance may have
	// committed an edit meanwhile, which would then be pending unseen.
	if err := s.reg.store.AdoptDoc(s.reg.ctx, meta, a.DraftVersion, a.ApprovedVersion); err != nil {
		if errors.Is(err, store.ErrConflict) {
			for _, st := range s.streams {
				s.catchUpLogged(st)
			}
			s.publish()
			return store.Adoption{}, fmt.Errorf("the document changed on another instance while it was being adopted; review it and adopt again: %w", ErrStale)
		}
		return store.Adoption{}, fmt.Errorf("adopt: %v: %w", err, ErrUnavailable)
	}
	s.meta = meta
	s.publish()
	s.broadcastAll(wire.NewFrame(wire.AdoptedMsg{Type: "adopted", Version: a.ApprovedVersion}))
	s.sendBus(busMsg{Kind: "meta"})
	return a, nil
}

// UpdateMeta changes the document's metadata (title, order) through the
// session, so that the session's copy and the store's stay one.
func (s *Session) UpdateMeta(ctx context.Context, fn func(*store.Doc)) (store.Doc, error) {
	var out store.Doc
	var err error
	derr := s.Do(ctx, func(s *Session) {
		meta := s.meta
		meta.Adoptions = slices.Clone(meta.Adoptions)
		fn(&meta)
		meta.Summit, meta.ID = s.summit, s.doc // not changeable
		if err = s.reg.store.UpdateDoc(s.reg.ctx, meta); err != nil {
			err = fmt.Errorf("update document: %w", err)
			return
		}
		s.meta = meta
		out = meta
		s.publish()
		s.sendBus(busMsg{Kind: "meta"})
	})
	if derr != nil {
		return store.Doc{}, derr
	}
	return out, err
}

// Meta is the document's metadata as the session holds it.
func (s *Session) Meta(ctx context.Context) (store.Doc, error) {
	var out store.Doc
	err := s.Do(ctx, func(s *Session) { out = s.meta })
	return out, err
}
