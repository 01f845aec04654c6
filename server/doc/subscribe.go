package doc

import (
	"context"
	"fmt"

	"communique/ot"
	"communique/server/store"
	"communique/server/wire"
)

// Subscription is what a new subscriber must send before anything else: the
// hello, then (for a reconnect with since) every op after since, in order.
// Ops committed later arrive through Peer.Send.
type Subscription struct {
	Hello   wire.Hello
	CatchUp []*wire.Frame
}

type subscribeReq struct {
	peer   Peer
	stream store.Stream
	since  *uint64
	info   wire.Peer
	reply  chan subscribeRes
}

type subscribeRes struct {
	sub Subscription
	err error
}

type unsubscribeReq struct {
	peer Peer
	done chan struct{}
}

// peerState is a subscriber's presence.
type peerState struct {
	stream store.Stream
	info   wire.Peer
	// announced: a drafter is announced (presence join) when it first
	// acts — a cursor report or an op — not when it connects, so that
	// connections that only read the draft (a chair's review page, tools,
	// a load generator's followers) cost the others nothing: announcing
	// every connection made F followers cost F²/2 presence frames.
	announced bool
}

// Subscribe registers peer on stream. With since set, the hello carries no
// text and the catch-up holds every op after since; a since ahead of the
// stream fails with ErrBadVersion. info names the peer in presence.
func (s *Session) Subscribe(ctx context.Context, peer Peer, stream store.Stream, since *uint64, info wire.Peer) (Subscription, error) {
	r := &subscribeReq{peer: peer, stream: stream, since: since, info: info, reply: make(chan subscribeRes, 1)}
	if err := s.send(ctx, r); err != nil {
		return Subscription{}, err
	}
	select {
	case res := <-r.reply:
		return res.sub, res.err
	case <-s.done:
		select {
		case res := <-r.reply:
			return res.sub, res.err
		default:
			return Subscription{}, ErrClosed
		}
	}
}

// Unsubscribe removes peer and waits until the session has forgotten it, so
// nothing is sent to it afterwards.
func (s *Session) Unsubscribe(peer Peer) {
	r := &unsubscribeReq{peer: peer, done: make(chan struct{})}
	if err := s.send(context.Background(), r); err != nil {
		return // the session stopped: it has dropped every peer
	}
	select {
	case <-r.done:
	case <-s.done:
	}
}

func (s *Session) subscribe(r *subscribeReq) subscribeRes {
	st := s.stream(r.stream)
	h := wire.Hello{
		Type:       "hello",
		Stream:     string(r.stream),
		Version:    st.version,
		Head:       st.version,
		Role:       r.info.Role,
		Delegation: r.info.Delegation,
		Client:     r.info.Client,
		Name:       r.info.Name,
		Adopted:    s.meta.Adopted,
		Presence:   s.presenceList(),
	}
	var catchUp []*wire.Frame
	if r.since != nil && *r.since > st.version && s.reg.bus != nil {
		// The client saw ops from another instance that this one has not
		// taken in yet (a lost or late bus message): read them first.
		if err := s.catchUpLogged(st); err != nil {
			return subscribeRes{err: err} // 503 unavailable, not a refusal of the client's version
		}
		h.Version, h.Head = st.version, st.version
	}
	if r.since != nil {
		recs, err := st.since(s.reg.ctx, s.reg.store, *r.since)
		if err != nil {
			return subscribeRes{err: err}
		}
		catchUp = make([]*wire.Frame, len(recs))
		for i, rec := range recs {
			if idx := int(rec.Version) - int(st.oldest()) - 1; idx >= 0 {
				catchUp[i] = st.log[idx].opFrame(r.stream)
			} else {
				catchUp[i] = recordFrame(r.stream, rec)
			}
		}
		h.Version = *r.since
	} else {
		h.TextJSON = st.textJSON()
	}
	st.subs[r.peer] = struct{}{}
	r.info.Stream = string(r.stream)
	s.peers[r.peer] = &peerState{stream: r.stream, info: r.info}
	return subscribeRes{sub: Subscription{Hello: h, CatchUp: catchUp}}
}

// presenceList lists the drafters: subscribers of the draft stream that
// have acted (peerState.announced). Followers of the approved stream are
// many and silent, so they are not announced one by one.
func (s *Session) presenceList() []wire.Peer {
	list := []wire.Peer{}
	for _, ps := range s.peers {
		if ps.announced {
			list = append(list, ps.info)
		}
	}
	for _, rp := range s.remote {
		list = append(list, rp.peer)
	}
	return list
}

func (s *Session) unsubscribe(p Peer, _ string) {
	ps, ok := s.peers[p]
	if !ok {
		return
	}
	delete(s.peers, p)
	delete(s.stream(ps.stream).subs, p)
	if ps.announced {
		s.broadcastPresence("leave", p, ps.info)
	}
}

// announcePeer tells the others that a drafter is here, on its first act.
func (s *Session) announcePeer(p Peer) {
	if ps := s.peers[p]; ps != nil && !ps.announced && ps.stream == store.Draft {
		ps.announced = true
		s.broadcastPresence("join", p, ps.info)
	}
}

// drop disconnects a peer whose queue is full; it can reconnect with since.
func (s *Session) drop(p Peer) {
	if _, ok := s.peers[p]; !ok {
		return
	}
	s.unsubscribe(p, "")
	p.Kick("send queue full: reconnect with since")
	if h := s.reg.hooks.Dropped; h != nil {
		h()
	}
}

// broadcastPresence tells every other subscriber (of both streams) that a
// drafter joined, moved or left. Cursor moves go to drafters only: their
// positions mean nothing in the approved text.
func (s *Session) broadcastPresence(event string, from Peer, info wire.Peer) {
	msg := wire.PresenceMsg{Type: "presence", Event: event, Version: s.streams[0].version, Peer: info}
	s.sendBus(busMsg{Kind: "presence", Presence: &msg})
	f := wire.NewFrame(msg)
	for p, ps := range s.peers {
		if p == from || (event == "cursor" && ps.stream != store.Draft) {
			continue
		}
		if !s.deliver(p, f) {
			s.drop(p)
		}
	}
}

type presenceReq struct {
	peer    Peer
	version uint64
	cursor  *wire.Cursor
}

// SetCursor reports peer's cursor or selection, in positions of the draft at
// version (nil clears it). The session moves it through any later ops.
func (s *Session) SetCursor(ctx context.Context, peer Peer, version uint64, c *wire.Cursor) error {
	return s.send(ctx, &presenceReq{peer: peer, version: version, cursor: c})
}

func (s *Session) presence(r *presenceReq) {
	ps, ok := s.peers[r.peer]
	if !ok {
		return
	}
	fail := func(code, msg string) {
		if !s.deliver(r.peer, wire.Error(code, msg, nil)) {
			s.drop(r.peer)
		}
	}
	if ps.stream != store.Draft {
		fail(wire.CodeForbidden, "cursors are shared on the draft stream only")
		return
	}
	st := s.streams[0]
	var c *wire.Cursor
	if r.cursor != nil {
		recs, err := st.since(s.reg.ctx, s.reg.store, r.version)
		if err != nil {
			fail(Code(err), fmt.Sprintf("cursor: %v", err))
			return
		}
		// Positions must fit the text at the version they were made on.
		base := st.text.Len()
		for i := len(recs) - 1; i >= 0; i-- {
			base = base - recs[i].Op.TargetLen() + recs[i].Op.BaseLen()
		}
		if r.cursor.Anchor < 0 || r.cursor.Head < 0 || r.cursor.Anchor > base || r.cursor.Head > base {
			fail(wire.CodeBadMessage, fmt.Sprintf("cursor outside the text at version %d (%d code points)", r.version, base))
			return
		}
		c = &wire.Cursor{Anchor: r.cursor.Anchor, Head: r.cursor.Head}
		for _, rec := range recs {
			c.Anchor = ot.TransformIndex(c.Anchor, rec.Op, false)
			c.Head = ot.TransformIndex(c.Head, rec.Op, false)
		}
	}
	ps.info.Cursor = c
	if !ps.announced {
		s.announcePeer(r.peer) // the join carries the cursor
		return
	}
	s.broadcastPresence("cursor", r.peer, ps.info)
}

// moveCursors keeps every drafter's cursor on the same text as an op is
// applied, so presence given to newcomers is current.
func (s *Session) moveCursors(op ot.Op, stream store.Stream) {
	if stream != store.Draft {
		return
	}
	for _, ps := range s.peers {
		if c := ps.info.Cursor; c != nil {
			ps.info.Cursor = &wire.Cursor{
				Anchor: ot.TransformIndex(c.Anchor, op, false),
				Head:   ot.TransformIndex(c.Head, op, false),
			}
		}
	}
}

type baseTextReq struct {
	stream store.Stream
	base   uint64
	reply  chan baseTextRes
}

type baseTextRes struct {
	text ot.Text
	err  error
}

// TextAt returns the text of stream at version base, as long as the session
// still holds the ops since then (Config.LogWindow); a merge of a full text
// starts from it.
func (s *Session) TextAt(ctx context.Context, stream store.Stream, base uint64) (ot.Text, error) {
	r := &baseTextReq{stream: stream, base: base, reply: make(chan baseTextRes, 1)}
	if err := s.send(ctx, r); err != nil {
		return ot.Text{}, err
	}
	select {
	case res := <-r.reply:
		return res.text, res.err
	case <-s.done:
		return ot.Text{}, ErrClosed
	}
}

func (s *Session) baseText(r *baseTextReq) baseTextRes {
	t, err := s.stream(r.stream).textAt(r.base)
	return baseTextRes{text: t, err: err}
}
