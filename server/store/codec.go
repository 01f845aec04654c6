package store

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// EncodeRecord is the stored JSON form of an op record, shared by the
// engines. encoding/json would silently turn invalid UTF-8 into U+FFFD, so
// such text is refused instead of altered (ot.Op's own MarshalJSON already
// refuses invalid inserts).
func EncodeRecord(r *OpRecord) ([]byte, error) {
	if !utf8.ValidString(r.Author) || !utf8.ValidString(r.Name) || !utf8.ValidString(r.Src) {
		return nil, errors.New("author, name or src is not valid UTF-8")
	}
	return json.Marshal(r)
}

// EncodeSnapshot is the stored JSON form of a snapshot; see EncodeRecord for
// the UTF-8 check.
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	if !utf8.ValidString(s.Text) {
		return nil, errors.New("text is not valid UTF-8")
	}
	return json.Marshal(s)
}
