package loadtest

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"communique/ot"
)

// OTClient is the client half of the protocol's operational transformation,
// without any I/O: ot.js's three states (synchronized, awaiting an ack,
// awaiting an ack with a buffer of composed edits) over a plain-string text.
// The caller owns the socket: it sends what the methods return and feeds in
// what the server sends. The load generator and the test harness
// (server/servertest) both drive it, so the two cannot drift apart.
//
// An OTClient is not safe for concurrent use.
type OTClient struct {
	Src     string // the client id, kept across reconnects
	Text    string // the text with every local edit applied
	Version uint64 // the server version the text is based on

	runes        int // code points of Text
	seq          uint64
	inflight     ot.Op
	inflightSeq  uint64
	inflightBase uint64
	buffer       ot.Op
}

// Outgoing is an op the caller must send: {"type":"op","version":Base,
// "op":Op,"src":…,"seq":Seq}.
type Outgoing struct {
	Op   ot.Op
	Seq  uint64
	Base uint64
}

// NewOTClient returns a client identified by src.
func NewOTClient(src string) *OTClient { return &OTClient{Src: src} }

// Reset takes the text and version of a fresh hello (one without since).
// Unacknowledged edits, if any, are dropped: a client that reconnects
// without since starts over.
func (c *OTClient) Reset(text string, version uint64) {
	c.Text, c.Version, c.runes = text, version, utf8.RuneCountInString(text)
	c.inflight, c.buffer = nil, nil
}

// Len is the length of Text in code points.
func (c *OTClient) Len() int { return c.runes }

// LastSeq is the seq of the newest op sent or put in flight.
func (c *OTClient) LastSeq() uint64 { return c.seq }

// Pending reports whether the client has unacknowledged edits.
func (c *OTClient) Pending() bool { return c.inflight != nil || c.buffer != nil }

// InFlight is the op awaiting its ack, for a resend after rate_limited or
// unavailable or after a reconnect (same seq and base: the server
// recognises a resend), or nil.
func (c *OTClient) InFlight() *Outgoing {
	if c.inflight == nil {
		return nil
	}
	return &Outgoing{Op: c.inflight, Seq: c.inflightSeq, Base: c.inflightBase}
}

// Edit applies op (made on Text) locally. It returns the op to send now when
// nothing was in flight; otherwise the op joins the buffer and nil is
// returned.
func (c *OTClient) Edit(op ot.Op) (*Outgoing, error) {
	text, err := ot.Apply(c.Text, op)
	if err != nil {
		return nil, fmt.Errorf("client %s: local edit: %w", c.Src, err)
	}
	c.Text = text
	c.runes += op.TargetLen() - op.BaseLen()
	switch {
	case c.inflight == nil:
		c.seq++
		c.inflight, c.inflightSeq, c.inflightBase = op, c.seq, c.Version
		return c.InFlight(), nil
	case c.buffer == nil:
		c.buffer = op
	default:
		if c.buffer, err = ot.Compose(c.buffer, op); err != nil {
			return nil, fmt.Errorf("client %s: compose buffer: %w", c.Src, err)
		}
	}
	return nil, nil
}

// Receive handles an op frame of the stream: version is the version after
// it, src and seq name its sender, raw is the op as JSON. An op carrying the
// client's own src and in-flight seq (seen in a catch-up, or committed by
// another instance) counts as the ack: own is true and next is the buffered
// op to send now, if any.
func (c *OTClient) Receive(version uint64, src string, seq uint64, raw json.RawMessage) (own bool, next *Outgoing, err error) {
	if version != c.Version+1 {
		return false, nil, fmt.Errorf("client %s: op version %d after %d: gap or repeat", c.Src, version, c.Version)
	}
	if c.inflight != nil && src == c.Src && seq == c.inflightSeq {
		next, err = c.settle(version)
		return true, next, err
	}
	op, err := ot.Parse(raw)
	if err != nil {
		return false, nil, fmt.Errorf("client %s: server op: %w", c.Src, err)
	}
	if c.inflight != nil {
		if c.inflight, op, err = ot.Transform(c.inflight, op); err != nil {
			return false, nil, fmt.Errorf("client %s: transform in-flight op over %d: %w", c.Src, version, err)
		}
		c.inflightBase = version
	}
	if c.buffer != nil {
		if c.buffer, op, err = ot.Transform(c.buffer, op); err != nil {
			return false, nil, fmt.Errorf("client %s: transform buffer over %d: %w", c.Src, version, err)
		}
	}
	if c.Text, err = ot.Apply(c.Text, op); err != nil {
		return false, nil, fmt.Errorf("client %s: apply server op %d: %w", c.Src, version, err)
	}
	c.runes += op.TargetLen() - op.BaseLen()
	c.Version = version
	return false, nil, nil
}

// Ack handles an ack frame. A repeated ack of an op already settled is
// ignored (settled false). Otherwise the in-flight op is done and next is
// the buffered op to send now, if any.
func (c *OTClient) Ack(seq, version uint64) (settled bool, next *Outgoing, err error) {
	if c.inflight == nil || seq != c.inflightSeq {
		return false, nil, nil
	}
	if version != c.Version+1 {
		return false, nil, fmt.Errorf("client %s: ack version %d after %d", c.Src, version, c.Version)
	}
	next, err = c.settle(version)
	return true, next, err
}

func (c *OTClient) settle(version uint64) (*Outgoing, error) {
	c.Version = version
	c.inflight = nil
	if c.buffer == nil {
		return nil, nil
	}
	op := c.buffer
	c.buffer = nil
	c.seq++
	c.inflight, c.inflightSeq, c.inflightBase = op, c.seq, c.Version
	return c.InFlight(), nil
}

// Message encodes out as the client's op message.
func (c *OTClient) Message(out *Outgoing) ([]byte, error) {
	opJSON, err := out.Op.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("client %s: encode op: %w", c.Src, err)
	}
	src, err := json.Marshal(c.Src)
	if err != nil {
		return nil, fmt.Errorf("client %s: encode src: %w", c.Src, err)
	}
	b := make([]byte, 0, len(opJSON)+len(src)+64)
	b = append(b, `{"type":"op","version":`...)
	b = appendUint(b, out.Base)
	b = append(b, `,"op":`...)
	b = append(b, opJSON...)
	b = append(b, `,"src":`...)
	b = append(b, src...)
	b = append(b, `,"seq":`...)
	b = appendUint(b, out.Seq)
	return append(b, '}'), nil
}

func appendUint(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
