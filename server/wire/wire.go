// Package wire holds the shapes of the WebSocket messages of the Communiqué
// protocol (docs/protocol.md) and Frame, one encoded server message shared by
// every connection it is sent to.
package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"communique/ot"
)

// Error codes, shared by WebSocket error frames and HTTP error bodies.
const (
	CodeBadMessage   = "bad_message"
	CodeBadOp        = "bad_op"
	CodeBadVersion   = "bad_version"
	CodeBadRequest   = "bad_request"
	CodeForbidden    = "forbidden"
	CodeUnauthorized = "unauthorized"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeAdopted      = "adopted"
	CodeTooLarge     = "too_large"
	CodeRateLimited  = "rate_limited"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// Cursor is a selection in code points at some version of the draft. Anchor
// equals Head for a plain caret.
type Cursor struct {
	Anchor int `json:"anchor"`
	Head   int `json:"head"`
}

// Peer describes one connected participant, as presence reports it.
type Peer struct {
	Client     string  `json:"client"`
	Name       string  `json:"name"`
	Role       string  `json:"role"`
	Delegation string  `json:"delegation,omitempty"`
	Stream     string  `json:"stream"`
	Cursor     *Cursor `json:"cursor,omitempty"`
}

// Hello is the first frame on every socket.
type Hello struct {
	Type    string  `json:"type"` // "hello"
	Stream  string  `json:"stream"`
	Version uint64  `json:"version"`
	Head    uint64  `json:"head"`           // the stream's version now; catch-up ends there
	Text    *string `json:"text,omitempty"` // absent when the client asked for since
	// TextJSON, when set, is the text already encoded as a JSON string,
	// spliced into the frame by Frame instead of Text: the document's
	// session encodes its text once per version, not once per connection
	// (a 200-page draft is half a megabyte; after a deploy everyone
	// reconnects at once).
	TextJSON   []byte `json:"-"`
	Role       string `json:"role"`
	Delegation string `json:"delegation,omitempty"`
	Client     string `json:"client"`
	Name       string `json:"name,omitempty"`
	Adopted    bool   `json:"adopted"`
	Limits     Limits `json:"limits"`
	Presence   []Peer `json:"presence"`
}

// Frame encodes the hello once for its connection.
func (h Hello) Frame() *Frame {
	if h.TextJSON == nil {
		return NewFrame(h)
	}
	h.Text = nil
	b, err := json.Marshal(h)
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		panic(fmt.Sprintf("wire: encode hello: %v", err))
	}
	out := make([]byte, 0, len(b)+len(h.TextJSON)+8)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"text":`...)
	out = append(out, h.TextJSON...)
	out = append(out, '}')
	return FrameOf(out)
}

// Limits tells a client what the server will refuse, so it can stay inside.
type Limits struct {
	MaxFrameBytes int64   `json:"max_frame_bytes"`
	MaxDocRunes   int     `json:"max_doc_runes"`
	OpsPerSecond  float64 `json:"ops_per_second"`
}

// OpMsg is an applied operation as it is broadcast.
type OpMsg struct {
	Type    string `json:"type"` // "op"
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Op      ot.Op  `json:"op"`
	Author  string `json:"author"`
	Name    string `json:"name,omitempty"`
	Src     string `json:"src,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Time    int64  `json:"time"` // unix milliseconds
}

// Ack tells a sender its op was stored under Version.
type Ack struct {
	Type    string `json:"type"` // "ack"
	Seq     uint64 `json:"seq"`
	Version uint64 `json:"version"`
}

// ErrorMsg reports a refused message; the connection stays open.
type ErrorMsg struct {
	Type    string  `json:"type"` // "error"
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Seq     *uint64 `json:"seq,omitempty"`
}

// PresenceMsg reports a participant joining, moving or leaving.
type PresenceMsg struct {
	Type    string `json:"type"`  // "presence"
	Event   string `json:"event"` // "join", "cursor", "leave"
	Version uint64 `json:"version"`
	Peer    Peer   `json:"peer"`
}

// AdoptedMsg tells every socket that the document is frozen.
type AdoptedMsg struct {
	Type    string `json:"type"` // "adopted"
	Version uint64 `json:"version"`
}

// Frame is one encoded server→client message. A broadcast Frame is encoded
// once and framed for WebSocket once, however many connections it goes to:
// a server's frames are never masked, so the bytes on the wire are the same
// for every recipient and a connection writes them as they are.
type Frame struct {
	Data []byte // the JSON message
	wire []byte // one WebSocket text frame carrying Data (Data is its tail)
}

// NewFrame encodes v. Encoding our own message types cannot fail; a failure is
// a programming error and panics.
func NewFrame(v any) *Frame {
	b, err := json.Marshal(v)
	if err != nil {
		panic("wire: encode frame: " + err.Error())
	}
	return FrameOf(b)
}

// FrameOf frames an encoded message.
func FrameOf(data []byte) *Frame {
	n := len(data)
	var hdr [10]byte
	hdr[0] = 0x81 // FIN, text
	h := 2
	switch {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xFFFF:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = 10
	}
	w := make([]byte, h+n)
	copy(w, hdr[:h])
	copy(w[h:], data)
	return &Frame{Data: w[h:], wire: w}
}

// Wire is the frame as it goes on a server's WebSocket: header and payload.
func (f *Frame) Wire() []byte { return f.wire }

// Error builds an error frame.
func Error(code, msg string, seq *uint64) *Frame {
	return NewFrame(ErrorMsg{Type: "error", Code: code, Message: msg, Seq: seq})
}
