// Package doc keeps open documents in memory and sequences their edits.
//
// Each open document has one Session, and each Session one goroutine (run)
// that owns all of its mutable state: both streams' texts, versions, recent
// ops, the subscribers and their presence. Other goroutines talk to it only
// through its inbox, so there are no locks on the edit path.
//
// The edit path follows raft's rule, persist before you send: an incoming op
// is transformed over everything applied since its base version, given the
// next version and applied in memory; the session then commits every op it
// has in hand in one store append (fsynced), and only after that acks the
// senders and broadcasts to everyone else, in version order. If the append
// fails the in-memory state is rolled back (texts are immutable ropes, so this
// is a pointer swap) and the senders get "unavailable".
package doc

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"communique/ot"
	"communique/server/changes"
	"communique/server/store"
	"communique/server/wire"
)

// Peer is a subscriber: one connection. Send must not block: it enqueues and
// reports false when the peer's queue is full, and the session then drops the
// peer by calling Kick, so one slow reader never stalls a document.
type Peer interface {
	Send(f *wire.Frame) bool
	Kick(reason string)
}

// Flusher is a Peer that may hold what Send queued until Flush. The session
// flushes every peer it sent to before it waits for its next request, so
// the acks and broadcasts of one batch reach a connection together and
// leave in one write instead of one each.
type Flusher interface {
	Flush()
}

// View is a consistent, immutable picture of a document, readable from any
// goroutine without asking the session.
type View struct {
	Title           string
	Adopted         bool
	Draft           ot.Text
	DraftVersion    uint64
	Approved        ot.Text
	ApprovedVersion uint64
	Auth            changes.Authorship // of the draft at DraftVersion
	Meta            store.Doc

	authRev uint64 // Session.authRev: Auth was pruned without a new version
}

// Session is one open document.
type Session struct {
	reg    *Registry
	summit string
	doc    string

	// Guarded by reg.mu.
	refs int

	ready   chan struct{} // closed once load has finished (see loadErr)
	loadErr error         // set before ready is closed, never after
	done    chan struct{} // closed when run returns
	inbox   chan request
	wake    chan struct{} // Release pokes the idle timer

	view  atomic.Pointer[View]
	cache changeCache

	behind   atomic.Bool // other instances may have written what we lack
	unsubBus func()

	// authRev counts the times the draft's authorship was pruned in place
	// (same version, fewer marks), so cached changes are not reused.
	authRev uint64

	// Owned by the run goroutine (and by load, before run starts).
	meta      store.Doc
	streams   [2]*stream // draft, approved
	clients   map[string]store.ClientSeq
	peers     map[Peer]*peerState
	remote    map[string]remotePeer // drafters connected to other instances, by client
	hereAt    time.Time             // when this instance last told the others who drafts here
	batch     []*submission
	pendingC  map[string]store.ClientSeq // client seqs of the uncommitted batch
	unflushed []Flusher                  // peers sent to since the last flushPeers
}

func newSession(r *Registry, summit, doc string) *Session {
	return &Session{
		reg:     r,
		summit:  summit,
		doc:     doc,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		inbox:   make(chan request, r.cfg.InboxSize),
		wake:    make(chan struct{}, 1),
		peers:   make(map[Peer]*peerState),
		remote:  make(map[string]remotePeer),
		clients: make(map[string]store.ClientSeq),
	}
}

// Summit and ID name the document.
func (s *Session) Summit() string { return s.summit }
func (s *Session) ID() string     { return s.doc }

// View returns the latest committed state.
func (s *Session) View() *View { return s.view.Load() }

func (s *Session) load(ctx context.Context) error {
	meta, err := s.reg.store.GetDoc(ctx, s.summit, s.doc)
	if err != nil {
		return fmt.Errorf("open document %s/%s: %w", s.summit, s.doc, err)
	}
	s.meta = meta
	for i, name := range []store.Stream{store.Draft, store.Approved} {
		k := store.StreamKey{Summit: s.summit, Doc: s.doc, Stream: name}
		st, err := s.reg.store.LoadStream(ctx, k)
		if err != nil {
			return fmt.Errorf("open document %s/%s: %w", s.summit, s.doc, err)
		}
		strm, err := replay(k, st, s.reg.cfg.LogWindow)
		if err != nil {
			return fmt.Errorf("open document %s/%s: %w", s.summit, s.doc, err)
		}
		s.streams[i] = strm
		if name == store.Draft {
			for src, c := range st.Clients {
				s.clients[src] = c
			}
		}
	}
	s.publish()
	return nil
}

func (s *Session) publish() {
	d, a := s.streams[0], s.streams[1]
	s.view.Store(&View{
		Title:           s.meta.Title,
		Adopted:         s.meta.Adopted,
		Draft:           d.text,
		DraftVersion:    d.version,
		Approved:        a.text,
		ApprovedVersion: a.version,
		Auth:            d.auth,
		Meta:            s.meta,
		authRev:         s.authRev,
	})
}

func (s *Session) stream(name store.Stream) *stream {
	if name == store.Approved {
		return s.streams[1]
	}
	return s.streams[0]
}

// request is anything sent to the session goroutine.
type request interface{}

// send hands req to the session goroutine, or fails if it stopped or ctx ended.
func (s *Session) send(ctx context.Context, req request) error {
	select {
	case s.inbox <- req:
		return nil
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the session goroutine.
func (s *Session) run() {
	defer close(s.done)
	defer s.shutdown()
	idle := time.NewTimer(s.reg.cfg.IdleTimeout)
	defer idle.Stop()
	s.subscribeBus()
	// With other instances, poll the store's heads now and then: pub/sub
	// may lose a message silently, and a lost message must not leave this
	// instance's followers behind for long.
	var pollC <-chan time.Time
	if s.reg.bus != nil {
		t := time.NewTicker(s.reg.cfg.PollInterval)
		defer t.Stop()
		pollC = t.C
		s.poll() // what happened between load and subscribe
	}
	ctx := s.reg.ctx
	for {
		s.flushPeers()
		select {
		case <-ctx.Done():
			s.drainInbox()
			return
		case now := <-pollC:
			s.poll()
			s.presenceTick(now)
		case <-s.wake:
			idle.Reset(s.reg.cfg.IdleTimeout)
			if s.behind.Swap(false) {
				s.flush()
				s.poll()
			}
		case <-idle.C:
			if s.reg.evictIfIdle(s) {
				s.drainInbox()
				return
			}
			idle.Reset(s.reg.cfg.IdleTimeout)
		case req := <-s.inbox:
			s.handle(req)
			// Take everything else already queued, so that concurrent
			// submissions share one commit.
		more:
			for len(s.batch) < s.reg.cfg.MaxBatch {
				select {
				case req := <-s.inbox:
					s.handle(req)
				default:
					break more
				}
			}
			s.flush()
		}
	}
}

// drainInbox answers whatever is still queued when the session stops, so no
// caller waits forever; submissions already in the inbox are still committed.
func (s *Session) drainInbox() {
	for {
		select {
		case req := <-s.inbox:
			s.handle(req)
		default:
			s.flush()
			s.flushPeers()
			return
		}
	}
}

// deliver sends f to p and remembers p for flushPeers. It reports false
// when p's queue is full (the caller drops p).
func (s *Session) deliver(p Peer, f *wire.Frame) bool {
	if !p.Send(f) {
		return false
	}
	if fl, ok := p.(Flusher); ok {
		s.unflushed = append(s.unflushed, fl)
	}
	return true
}

// flushPeers flushes every peer sent to since the last call.
func (s *Session) flushPeers() {
	for i, fl := range s.unflushed {
		fl.Flush()
		s.unflushed[i] = nil
	}
	if cap(s.unflushed) > 1<<16 {
		s.unflushed = nil // not kept at the size of a past burst
	} else {
		s.unflushed = s.unflushed[:0]
	}
}

func (s *Session) shutdown() {
	if s.unsubBus != nil {
		s.unsubBus()
	}
	for p := range s.peers {
		p.Kick("server shutting down or document closed")
	}
	s.peers = nil
}

// handle processes one request. Submissions join the current batch; every
// other request first flushes it, so it sees committed state only.
func (s *Session) handle(req request) {
	switch r := req.(type) {
	case *submission:
		s.submit(r)
	case *pruneResult:
		// Kept for the next append: no need to commit the batch first.
		s.onPruned(r)
	default:
		s.flush()
		switch r := req.(type) {
		case *subscribeReq:
			r.reply <- s.subscribe(r)
		case *unsubscribeReq:
			s.unsubscribe(r.peer, "")
			close(r.done)
		case *presenceReq:
			s.presence(r)
		case *baseTextReq:
			r.reply <- s.baseText(r)
		case *funcReq:
			r.fn(s)
			close(r.done)
		case *busReq:
			s.onBus(r)
		default:
			panic(fmt.Sprintf("doc: unknown request %T", req))
		}
		// run keeps taking queued requests before it comes back to its
		// own flush, and a stream of joins and leaves could keep it there.
		s.flushPeers()
	}
}

// Do runs fn on the session goroutine with committed state and waits for it.
// It is how features built on sessions (approvals, adoption) get exclusive
// access to a document.
func (s *Session) Do(ctx context.Context, fn func(*Session)) error {
	r := &funcReq{fn: fn, done: make(chan struct{})}
	if err := s.send(ctx, r); err != nil {
		return err
	}
	select {
	case <-r.done:
		return nil
	case <-s.done:
		// It may have run fn while draining; either way we cannot wait more.
		select {
		case <-r.done:
			return nil
		default:
			return ErrClosed
		}
	}
}

type funcReq struct {
	fn   func(*Session)
	done chan struct{}
}

// Errors of a submission. The ws and http layers map them to protocol codes.
var (
	ErrAdopted     = errors.New("document is adopted")
	ErrBadVersion  = errors.New("bad version")
	ErrTooLarge    = errors.New("document would exceed its size limit")
	ErrUnavailable = errors.New("store cannot take writes now")
)

// Code maps an error of this package to a protocol error code.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrAdopted):
		return wire.CodeAdopted
	case errors.Is(err, ErrStaleChange), errors.Is(err, ErrPending), errors.Is(err, ErrStale):
		return wire.CodeConflict
	case errors.Is(err, ErrBadVersion):
		return wire.CodeBadVersion
	case errors.Is(err, ErrTooLarge):
		return wire.CodeTooLarge
	case errors.Is(err, ot.ErrBadOp):
		return wire.CodeBadOp
	case errors.Is(err, store.ErrNotFound):
		return wire.CodeNotFound
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed), errors.Is(err, store.ErrUnavailable):
		return wire.CodeUnavailable
	default:
		return wire.CodeInternal
	}
}
