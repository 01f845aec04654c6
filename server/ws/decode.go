package ws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"communique/ot"
	"communique/server/wire"
)

type msgKind int

const (
	msgOp msgKind = iota + 1
	msgPresence
	msgPing
)

// maxSafeInt is 2^53: the largest integer every JSON client (JavaScript
// included) represents exactly. Versions and seqs above it are refused.
const maxSafeInt = 1 << 53

// maxSrcLen bounds a client id so it cannot bloat the idempotency table.
const maxSrcLen = 128

// message is a decoded, validated client message.
type message struct {
	kind    msgKind
	version uint64
	op      ot.Op
	src     string
	seq     uint64
	cursor  *wire.Cursor
}

type decodeError struct {
	code string
	msg  string
	seq  *uint64
}

// envelope captures the fields of every client message. Fields a client may
// send that the server derives itself (author, role, delegation) are not
// here, so a forged one is ignored.
type envelope struct {
	Type    *string         `json:"type"`
	Version json.RawMessage `json:"version"`
	Op      json.RawMessage `json:"op"`
	Src     *string         `json:"src"`
	Seq     json.RawMessage `json:"seq"`
	Cursor  json.RawMessage `json:"cursor"`
}

// decode parses one text frame. Every failure names the protocol error code.
func decode(data []byte) (message, *decodeError) {
	var env envelope
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return message{}, &decodeError{code: wire.CodeBadMessage, msg: "a message must be one JSON object"}
	}
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return message{}, &decodeError{code: wire.CodeBadMessage, msg: "not valid JSON: " + err.Error()}
	}
	if env.Type == nil {
		return message{}, &decodeError{code: wire.CodeBadMessage, msg: `missing field "type"`}
	}
	switch *env.Type {
	case "op":
		return decodeOp(env)
	case "presence":
		return decodePresence(env)
	case "ping":
		return message{kind: msgPing}, nil
	default:
		return message{}, &decodeError{code: wire.CodeBadMessage, msg: fmt.Sprintf("unknown message type %q", *env.Type)}
	}
}

func decodeOp(env envelope) (message, *decodeError) {
	m := message{kind: msgOp}
	// seq first, so later errors can name it.
	if env.Seq == nil {
		return m, &decodeError{code: wire.CodeBadMessage, msg: `missing field "seq"`}
	}
	seq, ok := parseCount(env.Seq)
	if !ok || seq == 0 {
		return m, &decodeError{code: wire.CodeBadMessage, msg: "seq must be an integer from 1 to 2^53"}
	}
	m.seq = seq
	fail := func(code, msg string) (message, *decodeError) {
		return m, &decodeError{code: code, msg: msg, seq: &seq}
	}
	if env.Src == nil {
		return fail(wire.CodeBadMessage, `missing field "src"`)
	}
	if *env.Src == "" || len(*env.Src) > maxSrcLen {
		return fail(wire.CodeBadMessage, fmt.Sprintf("src must be a string of 1 to %d bytes", maxSrcLen))
	}
	m.src = *env.Src
	if env.Version == nil {
		return fail(wire.CodeBadMessage, `missing field "version"`)
	}
	v, ok := parseCount(env.Version)
	if !ok {
		return fail(wire.CodeBadVersion, "version must be an integer from 0 to 2^53")
	}
	m.version = v
	if env.Op == nil {
		return fail(wire.CodeBadMessage, `missing field "op"`)
	}
	op, err := ot.Parse(env.Op)
	if err != nil {
		return fail(wire.CodeBadOp, err.Error())
	}
	m.op = op
	return m, nil
}

func decodePresence(env envelope) (message, *decodeError) {
	m := message{kind: msgPresence}
	if env.Version == nil {
		return m, &decodeError{code: wire.CodeBadMessage, msg: `missing field "version"`}
	}
	v, ok := parseCount(env.Version)
	if !ok {
		return m, &decodeError{code: wire.CodeBadVersion, msg: "version must be an integer from 0 to 2^53"}
	}
	m.version = v
	if env.Cursor == nil || string(env.Cursor) == "null" {
		return m, nil // clears the cursor
	}
	var c struct {
		Anchor json.RawMessage `json:"anchor"`
		Head   json.RawMessage `json:"head"`
	}
	if err := json.Unmarshal(env.Cursor, &c); err != nil || c.Anchor == nil || c.Head == nil {
		return m, &decodeError{code: wire.CodeBadMessage, msg: `cursor must be {"anchor":n,"head":n} or null`}
	}
	a, ok1 := parseCount(c.Anchor)
	h, ok2 := parseCount(c.Head)
	if !ok1 || !ok2 {
		return m, &decodeError{code: wire.CodeBadMessage, msg: "cursor positions must be integers from 0"}
	}
	m.cursor = &wire.Cursor{Anchor: int(a), Head: int(h)}
	return m, nil
}

// parseCount accepts a JSON integer in [0, 2^53], written without fraction
// or exponent.
func parseCount(raw json.RawMessage) (uint64, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxSafeInt {
		return 0, false
	}
	return n, true
}
