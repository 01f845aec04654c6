package doc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"communique/ot"
	"communique/server/changes"
	"communique/server/store"
	"communique/server/wire"
)

// Edit is one operation submitted to a stream.
type Edit struct {
	Stream store.Stream
	Base   uint64 // the version the op was made on
	Op     ot.Op
	Author string // delegation or "chair", from the token
	Name   string
	Src    string // client id for idempotent resends; empty for none
	Seq    uint64
	// Decision is set when the edit carries out a chair's decision.
	Decision *store.Decision
}

// Result is the outcome of an Edit.
type Result struct {
	Version uint64  // the version after the op (or, for a resend, of the original)
	Text    ot.Text // the stream's text at Version (not set for resends)
	Dup     bool    // a resend of an op already applied
	Err     error
}

// submission is an Edit on its way through the session. Exactly one of peer
// (a socket: the answer is an ack or error frame in its queue) or reply (a
// caller waiting, e.g. HTTP) is set.
type submission struct {
	Edit
	received time.Time
	peer     Peer
	reply    chan Result

	res     Result
	applied bool // applied in memory, pending commit
}

// SubmitAsync queues e from peer; the session answers with an ack or error
// frame through peer.Send, after every op that precedes it.
func (s *Session) SubmitAsync(ctx context.Context, peer Peer, e Edit) error {
	return s.send(ctx, &submission{Edit: e, received: time.Now(), peer: peer})
}

// Submit applies e and waits until it is committed or refused.
func (s *Session) Submit(ctx context.Context, e Edit) Result {
	sub := &submission{Edit: e, received: time.Now(), reply: make(chan Result, 1)}
	if err := s.send(ctx, sub); err != nil {
		return Result{Err: err}
	}
	select {
	case r := <-sub.reply:
		return r
	case <-s.done:
		select {
		case r := <-sub.reply:
			return r
		default:
			return Result{Err: ErrClosed}
		}
	}
}

// submit applies one submission in memory; flush commits it.
func (s *Session) submit(sub *submission) {
	if sub.peer != nil {
		s.announcePeer(sub.peer) // before its op reaches the others
	}
	if st := s.stream(sub.Stream); sub.Base > st.version && s.reg.bus != nil {
		// Made on ops of another instance that this one has not taken in
		// yet (a lost or late bus message): commit what is in hand, then
		// read the store.
		s.flush()
		if err := s.catchUpLogged(st); err != nil {
			// Not the client's fault: it may resend once the store is back.
			s.batch = append(s.batch, sub)
			sub.res.Err = err
			return
		}
	}
	s.batch = append(s.batch, sub)
	if err := s.apply(sub); err != nil {
		sub.res.Err = err
	}
}

func (s *Session) apply(sub *submission) error {
	if s.meta.Adopted {
		return fmt.Errorf("%s/%s: %w", s.summit, s.doc, ErrAdopted)
	}
	st := s.stream(sub.Stream)
	if sub.Src != "" {
		last, ok := s.pendingC[sub.Src]
		if !ok {
			last, ok = s.clients[sub.Src]
		}
		if ok && sub.Seq <= last.Seq {
			// Already applied: answer with the original version. An older seq
			// than the last is only possible from a client that broke the
			// one-op-in-flight rule; its op is certainly included by the
			// version of that src's latest op, which is what we report.
			sub.res = Result{Version: last.Version, Dup: true}
			return nil
		}
	}
	if sub.Base > st.version {
		return fmt.Errorf("base version %d is ahead of the server's %d: %w", sub.Base, st.version, ErrBadVersion)
	}
	op := sub.Op
	if sub.Base < st.version {
		concurrent, err := st.since(s.reg.ctx, s.reg.store, sub.Base)
		if err != nil {
			if errors.Is(err, ErrBadVersion) {
				return err
			}
			return fmt.Errorf("%v: %w", err, ErrUnavailable)
		}
		for _, c := range concurrent {
			if op, _, err = ot.Transform(op, c.Op); err != nil {
				return fmt.Errorf("op made on version %d does not fit it: %w", sub.Base, err)
			}
		}
	}
	text, inv, err := st.text.ApplyInvert(op)
	if err != nil {
		return fmt.Errorf("op made on version %d does not fit it: %w", sub.Base, err)
	}
	if text.Len() > s.reg.cfg.MaxDocRunes && text.Len() > st.text.Len() {
		return fmt.Errorf("%d code points, limit %d: %w", text.Len(), s.reg.cfg.MaxDocRunes, ErrTooLarge)
	}
	var auth changes.Authorship
	if st.tracked {
		if auth, err = st.auth.Apply(op, sub.Author, deletedTexts(inv)); err != nil {
			return fmt.Errorf("authorship: %w", err)
		}
	}
	if !st.rb.set {
		st.markRollback()
	}
	st.text = text
	st.auth = auth
	st.version++
	rec := store.OpRecord{
		Version:  st.version,
		Op:       op,
		Author:   sub.Author,
		Name:     sub.Name,
		Src:      sub.Src,
		Seq:      sub.Seq,
		Time:     time.Now().UTC(),
		Decision: sub.Decision,
	}
	st.log = append(st.log, entry{rec: rec, inv: inv})
	sub.applied = true
	sub.res = Result{Version: st.version, Text: text}
	if sub.Src != "" {
		if s.pendingC == nil {
			s.pendingC = make(map[string]store.ClientSeq)
		}
		s.pendingC[sub.Src] = store.ClientSeq{Seq: sub.Seq, Version: st.version}
	}
	return nil
}

// markRollback remembers the committed state before a batch changes it.
func (st *stream) markRollback() {
	st.rb = rollback{text: st.text, auth: st.auth, version: st.version, logLen: len(st.log), set: true}
}

type rollback struct {
	text    ot.Text
	auth    changes.Authorship
	version uint64
	logLen  int
	set     bool
}

// answer tells the submitter the outcome and, for an applied op, broadcasts
// it to every other subscriber of its stream.
func (s *Session) answer(sub *submission) {
	if sub.res.Err == nil && sub.applied {
		st := s.stream(sub.Stream)
		// The log is trimmed only after every answer of the batch, so the
		// entry is still there.
		e := &st.log[len(st.log)-int(st.version-sub.res.Version)-1]
		f := e.opFrame(sub.Stream)
		for p := range st.subs {
			if p == sub.peer {
				continue
			}
			if !s.deliver(p, f) {
				s.drop(p)
			}
		}
		s.moveCursors(e.rec.Op, sub.Stream)
		if h := s.reg.hooks.OpApplied; h != nil {
			h(sub.received)
		}
	}
	if sub.reply != nil {
		sub.reply <- sub.res
		return
	}
	if sub.peer == nil {
		return
	}
	var f *wire.Frame
	if sub.res.Err != nil {
		seq := sub.Seq
		f = wire.Error(Code(sub.res.Err), sub.res.Err.Error(), &seq)
	} else {
		f = wire.NewFrame(wire.Ack{Type: "ack", Seq: sub.Seq, Version: sub.res.Version})
	}
	if !s.deliver(sub.peer, f) {
		s.drop(sub.peer)
	}
}
