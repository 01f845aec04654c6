package doc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"communique/server/store"
	"communique/server/wire"
)

// Bus carries notices between server instances that share one store
// (Redis). Delivery is at most once: a lost notice is noticed by version and
// made good from the store, so the bus only makes other instances fast,
// never correct.
type Bus interface {
	Publish(ctx context.Context, topic string, msg []byte) error
	// Subscribe calls fn for each message on topic until unsubscribe is
	// called. fn must not block.
	Subscribe(topic string, fn func(msg []byte)) (unsubscribe func())
}

// UseBus makes the registry's sessions share their ops, metadata and
// presence with other instances through b. instance names this one (its
// own messages are ignored when they come back). Call it before any
// Acquire.
func (r *Registry) UseBus(b Bus, instance string) {
	r.bus, r.instance = b, instance
}

// CatchUpAll asks every open session to read what other instances wrote,
// e.g. after the bus reconnected and may have lost messages.
func (r *Registry) CatchUpAll() {
	r.Each("", func(s *Session) { s.markBehind() })
}

// busMsg is what sessions publish. Ops carry their records, so a follower
// instance needs no store read for them; a gap in versions means messages
// were lost, and the session reads the store instead.
type busMsg struct {
	From     string            `json:"i"`
	Kind     string            `json:"k"` // "ops", "meta", "presence", "here"
	Stream   store.Stream      `json:"s,omitempty"`
	Recs     []store.OpRecord  `json:"r,omitempty"`
	Presence *wire.PresenceMsg `json:"p,omitempty"`
	Here     []wire.Peer       `json:"h,omitempty"` // "here": every drafter announced on the sender
}

// remotePeer is a drafter on another instance, as last heard of.
type remotePeer struct {
	peer wire.Peer
	from string    // its instance
	seen time.Time // the last message that said it is there
}

// Presence across instances travels as events (join, cursor, leave), which
// pub/sub may lose, and an instance that dies sends no leaves. So every
// instance also says, every hereEvery poll intervals, which drafters it has
// ("here"; nothing when it has none): the others add any they missed, drop
// those of that instance it no longer lists, and expire the drafters of an
// instance not heard of for expireAfter intervals.
const (
	hereEvery   = 10 // poll intervals (10 s by default)
	expireAfter = 35 // poll intervals: three missed heartbeats and some
)

func (s *Session) topic() string { return s.summit + "/" + s.doc }

// subscribeBus starts listening for the session's topic. A message is
// handed to the session goroutine without blocking; if the inbox is full the
// session is marked behind and reads the store instead.
func (s *Session) subscribeBus() {
	if s.reg.bus == nil {
		return
	}
	s.unsubBus = s.reg.bus.Subscribe(s.topic(), func(msg []byte) {
		select {
		case s.inbox <- &busReq{data: msg}:
		default:
			s.markBehind()
		}
	})
}

func (s *Session) markBehind() {
	s.behind.Store(true)
	s.poke()
}

type busReq struct{ data []byte }

// announce tells other instances about committed ops. A failure is only
// logged: they will find the ops in the store.
func (s *Session) announce(stream store.Stream, recs []store.OpRecord) {
	if s.reg.bus == nil || len(recs) == 0 {
		return
	}
	s.sendBus(busMsg{Kind: "ops", Stream: stream, Recs: recs})
}

func (s *Session) sendBus(m busMsg) {
	if s.reg.bus == nil {
		return
	}
	m.From = s.reg.instance
	data, err := json.Marshal(m)
	if err != nil {
		s.reg.log.Error("encode bus message", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(s.reg.ctx, 2*time.Second)
	defer cancel()
	if err := s.reg.bus.Publish(ctx, s.topic(), data); err != nil {
		s.reg.log.Warn("publish to other instances failed; they will read the store", "summit", s.summit, "doc", s.doc, "err", err)
	}
}

// onBus handles a message from another instance.
func (s *Session) onBus(r *busReq) {
	var m busMsg
	if err := json.Unmarshal(r.data, &m); err != nil {
		s.reg.log.Warn("undecodable bus message ignored", "err", err)
		return
	}
	if m.From == s.reg.instance {
		return
	}
	switch m.Kind {
	case "ops":
		st := s.stream(m.Stream)
		for _, rec := range m.Recs {
			if rec.Version <= st.version {
				continue
			}
			if rec.Version != st.version+1 {
				s.catchUpLogged(st) // a message was lost: read the log
				break
			}
			if err := s.ingest(st, rec); err != nil {
				s.reg.log.Error("ingest op from another instance", "summit", s.summit, "doc", s.doc, "err", err)
				s.catchUpLogged(st)
				break
			}
		}
		s.publish()
	case "meta":
		s.reloadMeta()
	case "presence":
		if m.Presence != nil {
			s.relayPresence(*m.Presence, m.From)
		}
	case "here":
		s.relayHere(m.From, m.Here)
	}
}

// presenceTick runs at every poll: it sends this instance's heartbeat when
// due and expires the drafters of instances gone quiet.
func (s *Session) presenceTick(now time.Time) {
	every := s.reg.cfg.PollInterval * hereEvery
	if now.Sub(s.hereAt) >= every {
		s.hereAt = now
		var here []wire.Peer
		for _, ps := range s.peers {
			if ps.announced {
				here = append(here, ps.info)
			}
		}
		if len(here) > 0 {
			s.sendBus(busMsg{Kind: "here", Here: here})
		}
	}
	limit := s.reg.cfg.PollInterval * expireAfter
	for client, rp := range s.remote {
		if now.Sub(rp.seen) > limit {
			s.reg.log.Info("drafter of a silent instance expired", "summit", s.summit, "doc", s.doc, "instance", rp.from, "client", client)
			s.remoteLeft(client, rp)
		}
	}
}

// relayHere takes in another instance's heartbeat.
func (s *Session) relayHere(from string, here []wire.Peer) {
	now := time.Now()
	listed := make(map[string]bool, len(here))
	for _, p := range here {
		listed[p.Client] = true
		rp, known := s.remote[p.Client]
		if known {
			rp.seen, rp.from = now, from
			s.remote[p.Client] = rp
			continue
		}
		// Its join was lost: announce it now.
		s.relayPresence(wire.PresenceMsg{Type: "presence", Event: "join", Version: s.streams[0].version, Peer: p}, from)
	}
	for client, rp := range s.remote {
		if rp.from == from && !listed[client] {
			s.remoteLeft(client, rp) // its leave was lost
		}
	}
}

// remoteLeft forgets a remote drafter and tells this instance's subscribers.
func (s *Session) remoteLeft(client string, rp remotePeer) {
	s.relayPresence(wire.PresenceMsg{Type: "presence", Event: "leave", Version: s.streams[0].version, Peer: rp.peer}, rp.from)
}

// catchUpLogged is catchUp that logs a failure; it returns the failure
// (wrapping ErrUnavailable) for callers that must answer a client.
func (s *Session) catchUpLogged(st *stream) error {
	if err := s.catchUp(st); err != nil {
		s.reg.log.Error("catch up with the store failed", "summit", s.summit, "doc", s.doc, "stream", st.key.Stream, "err", err)
		return fmt.Errorf("read ops of other instances: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// poll checks the store's heads when the session may have missed messages
// (marked behind) or periodically as a safety net for silent losses.
func (s *Session) poll() {
	hr, ok := s.reg.store.(headReader)
	for _, st := range s.streams {
		if ok {
			head, err := hr.Head(s.reg.ctx, st.key)
			if err != nil || head == st.version {
				continue
			}
		}
		s.catchUpLogged(st)
	}
}

// reloadMeta takes in metadata another instance changed (title, order,
// adoption).
func (s *Session) reloadMeta() {
	meta, err := s.reg.store.GetDoc(s.reg.ctx, s.summit, s.doc)
	if err != nil {
		s.reg.log.Error("reload document metadata", "summit", s.summit, "doc", s.doc, "err", err)
		return
	}
	wasAdopted := s.meta.Adopted
	s.meta = meta
	s.publish()
	if meta.Adopted && !wasAdopted {
		s.broadcastAll(wire.NewFrame(wire.AdoptedMsg{Type: "adopted", Version: s.streams[1].version}))
	}
}

// relayPresence forwards another instance's presence event to this one's
// subscribers and remembers remote drafters for newcomers' hellos.
func (s *Session) relayPresence(p wire.PresenceMsg, from string) {
	switch p.Event {
	case "leave":
		delete(s.remote, p.Peer.Client)
	default:
		s.remote[p.Peer.Client] = remotePeer{peer: p.Peer, from: from, seen: time.Now()}
	}
	f := wire.NewFrame(p)
	for peer, ps := range s.peers {
		if p.Event == "cursor" && ps.stream != store.Draft {
			continue
		}
		if !s.deliver(peer, f) {
			s.drop(peer)
		}
	}
}

func (s *Session) broadcastAll(f *wire.Frame) {
	for p := range s.peers {
		if !s.deliver(p, f) {
			s.drop(p)
		}
	}
}
