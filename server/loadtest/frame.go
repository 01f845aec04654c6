package loadtest

import (
	"bytes"
	"encoding/json"
)

// frame is what the load generator needs of a server message. The server
// encodes its messages from Go structs, so the fields come in a fixed
// order; scanFrame reads them without a JSON decoder, because a follower
// reads every op of its document and thousands of followers share the
// machine with the server under test. Anything it does not recognise is
// decoded with encoding/json instead.
type frame struct {
	typ     string // "op", "ack", "error", "hello", "presence", …
	version uint64
	src     []byte // op: the sender's client id (nil when absent)
	seq     uint64
	op      []byte // op: the operation as JSON
	code    []byte // error: the error code
}

var (
	keyType    = []byte(`{"type":"`)
	keyVersion = []byte(`"version":`)
	keyOp      = []byte(`,"op":`)
	keyAuthor  = []byte(`,"author":`)
	keySrc     = []byte(`,"src":"`)
	keySeq     = []byte(`"seq":`)
	keyCode    = []byte(`"code":"`)
)

// A JSON key pattern such as `,"src":"` cannot occur inside a JSON string:
// a quote inside a string is always escaped, so a quote preceded by a comma
// is structure. That makes a plain byte search for these keys exact.

// scanFrame extracts the fields of data; ok is false for a message it
// cannot read this way (then decodeFrame is the slow path).
func scanFrame(data []byte) (f frame, ok bool) {
	if !bytes.HasPrefix(data, keyType) {
		return f, false
	}
	rest := data[len(keyType):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return f, false
	}
	switch string(rest[:end]) { // no allocation: the compiler sees the comparison
	case "op":
		f.typ = "op"
		if f.version, ok = uintAfter(data, keyVersion); !ok {
			return f, false
		}
		i := bytes.Index(data, keyOp)
		j := bytes.Index(data, keyAuthor)
		if i < 0 || j < i {
			return f, false
		}
		f.op = data[i+len(keyOp) : j]
		if k := bytes.Index(data[j:], keySrc); k >= 0 {
			s := data[j+k+len(keySrc):]
			e := bytes.IndexByte(s, '"')
			if e < 0 || bytes.IndexByte(s[:e], '\\') >= 0 {
				return f, false // an escaped src: let encoding/json read it
			}
			f.src = s[:e]
			f.seq, _ = uintAfter(s[e:], keySeq)
		}
		return f, true
	case "ack":
		f.typ = "ack"
		var ok1, ok2 bool
		f.seq, ok1 = uintAfter(data, keySeq)
		f.version, ok2 = uintAfter(data, keyVersion)
		return f, ok1 && ok2
	case "error":
		f.typ = "error"
		if i := bytes.Index(data, keyCode); i >= 0 {
			s := data[i+len(keyCode):]
			if e := bytes.IndexByte(s, '"'); e >= 0 {
				f.code = s[:e]
			}
		}
		f.seq, _ = uintAfter(data, keySeq)
		return f, true
	case "presence", "pong", "adopted":
		f.typ = string(rest[:end])
		return f, true
	}
	return f, false
}

// uintAfter parses the unsigned integer that follows the first key in data.
func uintAfter(data, key []byte) (uint64, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return 0, false
	}
	var v uint64
	n := 0
	for _, c := range data[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
		n++
	}
	return v, n > 0
}

// fullFrame is a server message decoded with encoding/json: the slow path,
// and the hello.
type fullFrame struct {
	Type    string          `json:"type"`
	Version uint64          `json:"version"`
	Head    uint64          `json:"head"`
	Text    *string         `json:"text"`
	Op      json.RawMessage `json:"op"`
	Src     string          `json:"src"`
	Seq     uint64          `json:"seq"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// decodeFrame reads any server message.
func decodeFrame(data []byte) (frame, fullFrame, error) {
	if f, ok := scanFrame(data); ok {
		return f, fullFrame{}, nil
	}
	var ff fullFrame
	if err := json.Unmarshal(data, &ff); err != nil {
		return frame{}, ff, err
	}
	f := frame{typ: ff.Type, version: ff.Version, seq: ff.Seq, op: ff.Op}
	if ff.Src != "" {
		f.src = []byte(ff.Src)
	}
	if ff.Code != "" {
		f.code = []byte(ff.Code)
	}
	return f, ff, nil
}
