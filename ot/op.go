// Package ot implements plain-text operations for a real-time collaborative
// editor: operational transformation with the semantics of ot.js
// (text-operation.js), a persistent rope for documents, and semantic diffs.
//
// Everything here is pure: no goroutines, no I/O, no global mutable state.
// Values of Op are plain slices and Text values are immutable, so both may be
// read from several goroutines at once. The one place that reads the clock
// is the diff library behind FromDiff and Diff, whose one-second deadline
// bounds the time spent on pathological inputs (it can make a diff coarser,
// never wrong).
//
// # Units
//
// Every position and length counts Unicode code points (Go runes), never
// UTF-8 bytes or UTF-16 units. A ZWJ emoji sequence such as 👨‍👩‍👧 is five
// code points, "e\u0301" is two, "\r\n" is two.
//
// Texts are expected to be valid UTF-8. A string that is not is read the way
// Go's range loop and []rune conversion read it: each invalid byte is one code
// point, U+FFFD. Results produced by this package (Apply, Text) are therefore
// always valid UTF-8, and the code point count of a text never depends on
// whether it was valid (utf8.RuneCountInString agrees with it).
//
// # Wire form
//
// An Op travels as a JSON array that walks the whole base text:
//
//	[6, -4, "Conference 2013"]
//
// a positive integer n retains n code points, a negative integer -n deletes
// n code points and a non-empty string inserts it. Retains plus deletes must
// add up to exactly the length of the text the op applies to.
package ot

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// ErrBadOp is wrapped by every error this package returns: malformed JSON,
// invalid components, lengths that do not match the text, and so on. Test for
// it with errors.Is.
var ErrBadOp = errors.New("bad operation")

// MaxLen bounds every count and every total length an Op may describe:
// 2^53-1, the largest integer a JavaScript client can represent exactly
// (clamped to math.MaxInt on 32-bit platforms). Parse rejects anything larger,
// which also guarantees that summing the counts of a valid op never
// overflows an int.
const MaxLen = min(1<<53-1, math.MaxInt)

// Component is one step of an Op. Exactly one field is set: Retain > 0,
// Delete > 0 or Insert != "".
type Component struct {
	Retain int
	Delete int
	Insert string
}

// Op is a text operation: a sequence of components that walks the whole base
// text. Ops produced by this package (Parse, the builders, Transform, Compose,
// Invert, FromDiff) are canonical: no empty components, adjacent components of
// the same kind merged, and an insert always placed before a delete it is
// adjacent to (so equal edits have one representation, as in ot.js).
type Op []Component

func badOp(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadOp, fmt.Sprintf(format, args...))
}

// kind reports which field of c is set, or an error when not exactly one is.
func (c Component) kind() (byte, error) {
	n := 0
	var k byte
	if c.Retain != 0 {
		n++
		k = 'r'
		if c.Retain < 0 {
			return 0, badOp("negative retain %d", c.Retain)
		}
	}
	if c.Delete != 0 {
		n++
		k = 'd'
		if c.Delete < 0 {
			return 0, badOp("negative delete %d", c.Delete)
		}
	}
	if c.Insert != "" {
		n++
		k = 'i'
	}
	if n != 1 {
		return 0, badOp("component must set exactly one of retain, delete, insert: %+v", c)
	}
	return k, nil
}

// validate checks every component and that the base and target lengths stay
// within MaxLen (so later sums cannot overflow). It returns the base and target
// lengths. It does not require canonical form: every function here accepts any
// valid op, canonical or not.
func (o Op) validate() (base, target int, err error) {
	for _, c := range o {
		k, err := c.kind()
		if err != nil {
			return 0, 0, err
		}
		switch k {
		case 'r':
			if c.Retain > MaxLen-base || c.Retain > MaxLen-target {
				return 0, 0, badOp("length exceeds %d", MaxLen)
			}
			base += c.Retain
			target += c.Retain
		case 'd':
			if c.Delete > MaxLen-base {
				return 0, 0, badOp("length exceeds %d", MaxLen)
			}
			base += c.Delete
		case 'i':
			if !utf8.ValidString(c.Insert) {
				return 0, 0, badOp("insert is not valid UTF-8")
			}
			n := utf8.RuneCountInString(c.Insert)
			if n > MaxLen-target {
				return 0, 0, badOp("length exceeds %d", MaxLen)
			}
			target += n
		}
	}
	return base, target, nil
}

// BaseLen is the length in code points of the text the op applies to:
// the sum of retains and deletes.
func (o Op) BaseLen() int {
	n := 0
	for _, c := range o {
		n += c.Retain + c.Delete
	}
	return n
}

// TargetLen is the length in code points of the text the op produces:
// the sum of retains and inserted code points.
func (o Op) TargetLen() int {
	n := 0
	for _, c := range o {
		n += c.Retain
		if c.Insert != "" {
			n += utf8.RuneCountInString(c.Insert)
		}
	}
	return n
}

// IsNoop reports whether the op changes nothing: it is empty or only retains.
func (o Op) IsNoop() bool {
	for _, c := range o {
		if c.Delete != 0 || c.Insert != "" {
			return false
		}
	}
	return true
}

// InsertedRunes is the number of code points the op inserts.
func (o Op) InsertedRunes() int {
	n := 0
	for _, c := range o {
		if c.Insert != "" {
			n += utf8.RuneCountInString(c.Insert)
		}
	}
	return n
}

// Retain appends a retain of n code points, merging it into a preceding
// retain. n <= 0 adds nothing.
//
// The builders work like append: the result may share o's backing array and
// the builder may change o's last components in place, so always continue with
// the returned Op and stop using o. They keep an op canonical.
func (o Op) Retain(n int) Op {
	if n <= 0 {
		return o
	}
	if l := len(o); l > 0 && o[l-1].Retain > 0 {
		o[l-1].Retain += n
		return o
	}
	return append(o, Component{Retain: n})
}

// Insert appends an insert of s, merging it into an adjacent insert. When the
// op ends in a delete, the insert is placed before that delete: inserting then
// deleting and deleting then inserting at the same place are the same edit,
// and ot.js picks insert-first as the one canonical order. s == "" adds
// nothing. See Retain for the aliasing rule.
func (o Op) Insert(s string) Op {
	if s == "" {
		return o
	}
	l := len(o)
	if l > 0 && o[l-1].Insert != "" {
		o[l-1].Insert += s
		return o
	}
	if l > 0 && o[l-1].Delete > 0 {
		if l > 1 && o[l-2].Insert != "" {
			o[l-2].Insert += s
			return o
		}
		// Swap: [..., delete] -> [..., insert, delete].
		o = append(o, o[l-1])
		o[l-1] = Component{Insert: s}
		return o
	}
	return append(o, Component{Insert: s})
}

// Delete appends a delete of n code points, merging it into a preceding
// delete. n <= 0 adds nothing. See Retain for the aliasing rule.
func (o Op) Delete(n int) Op {
	if n <= 0 {
		return o
	}
	if l := len(o); l > 0 && o[l-1].Delete > 0 {
		o[l-1].Delete += n
		return o
	}
	return append(o, Component{Delete: n})
}

// appendComponent appends c through the builders (so the result stays
// canonical).
func (o Op) appendComponent(c Component) Op {
	switch {
	case c.Retain > 0:
		return o.Retain(c.Retain)
	case c.Delete > 0:
		return o.Delete(c.Delete)
	default:
		return o.Insert(c.Insert)
	}
}

// canonical returns o if it is already canonical and otherwise a canonical
// copy (o itself is not modified). o must be valid.
func (o Op) canonical() Op {
	ok := true
	for i := 1; i < len(o) && ok; i++ {
		p, c := o[i-1], o[i]
		ok = !(p.Retain > 0 && c.Retain > 0 || p.Delete > 0 && c.Delete > 0 ||
			p.Insert != "" && c.Insert != "" || p.Delete > 0 && c.Insert != "")
	}
	if ok {
		return o
	}
	out := make(Op, 0, len(o))
	for _, c := range o {
		out = out.appendComponent(c)
	}
	return out
}

// MarshalJSON encodes the op in the ot.js wire form: retains as positive
// integers, deletes as negative integers, inserts as strings. A nil or empty
// op encodes as []. Invalid components are an error wrapping ErrBadOp.
func (o Op) MarshalJSON() ([]byte, error) {
	size := 2
	for _, c := range o {
		size += len(c.Insert) + 8
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, c := range o {
		k, err := c.kind()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		switch k {
		case 'r':
			buf = strconv.AppendInt(buf, int64(c.Retain), 10)
		case 'd':
			buf = strconv.AppendInt(buf, -int64(c.Delete), 10)
		case 'i':
			if !utf8.ValidString(c.Insert) {
				return nil, badOp("insert is not valid UTF-8")
			}
			buf = appendJSONString(buf, c.Insert)
		}
	}
	return append(buf, ']'), nil
}

// UnmarshalJSON decodes the wire form with the same strict rules as Parse.
// Unlike most Unmarshalers it rejects JSON null as well: an op on the wire is
// never optional, so a null is a client bug worth reporting. (A field that
// may be absent can be declared as *Op.)
func (o *Op) UnmarshalJSON(data []byte) error {
	op, err := Parse(data)
	if err != nil {
		return err
	}
	*o = op
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s (valid UTF-8) as a JSON string. Control
// characters are escaped as JSON requires; U+2028 and U+2029 are escaped too
// because they end lines in older JavaScript parsers.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '"', '\\':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// Parse decodes and validates an op in the wire form. It is deliberately
// stricter than encoding/json, because ops come from untrusted clients:
//
//   - the top level must be an array (it may be empty);
//   - each element is a non-zero integer or a non-empty string; null, booleans,
//     objects, nested arrays, fractions and exponents (1.5, 1e3), -0 and
//     leading zeros are rejected;
//   - every count and the running base and target lengths must stay within
//     MaxLen, so huge numbers or sums that would overflow are rejected without
//     allocating anything for them;
//   - strings must be valid UTF-8 with well-formed escapes; a \u escape that
//     yields a lone UTF-16 surrogate is rejected, since it is not a code point
//     and silently replacing it would desynchronise client and server;
//   - nothing but whitespace may follow the array.
//
// The decoder is hand-written and never recurses, so deeply nested input is
// rejected at its second '[' in constant stack. The result is canonical
// (adjacent components merged, inserts before deletes), so the same edit
// always parses to the same Op. Every error wraps ErrBadOp.
func Parse(data []byte) (Op, error) {
	p := parser{data: data}
	p.skipSpace()
	if !p.eat('[') {
		return nil, p.fail("expected '['")
	}
	// Most ops are [retain, edit, retain]: room for four components saves
	// the early regrowths.
	op := make(Op, 0, 4)
	var base, target int
	p.skipSpace()
	if p.eat(']') {
		return p.finish(op)
	}
	for {
		p.skipSpace()
		if p.i >= len(p.data) {
			return nil, p.fail("unexpected end of input")
		}
		switch c := p.data[p.i]; {
		case c == '"':
			s, err := p.parseString()
			if err != nil {
				return nil, err
			}
			if s == "" {
				return nil, p.fail("empty insert")
			}
			n := utf8.RuneCountInString(s)
			if n > MaxLen-target {
				return nil, p.fail("length exceeds %d", MaxLen)
			}
			target += n
			op = op.Insert(s)
		case c == '-' || ('0' <= c && c <= '9'):
			n, err := p.parseInt()
			if err != nil {
				return nil, err
			}
			if n > 0 {
				if n > MaxLen-base || n > MaxLen-target {
					return nil, p.fail("length exceeds %d", MaxLen)
				}
				base += n
				target += n
				op = op.Retain(n)
			} else {
				n = -n
				if n > MaxLen-base {
					return nil, p.fail("length exceeds %d", MaxLen)
				}
				base += n
				op = op.Delete(n)
			}
		default:
			return nil, p.fail("unexpected %q: components are non-zero integers or non-empty strings", c)
		}
		p.skipSpace()
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return p.finish(op)
		}
		return nil, p.fail("expected ',' or ']'")
	}
}

type parser struct {
	data []byte
	i    int
}

func (p *parser) fail(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrBadOp, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) finish(op Op) (Op, error) {
	p.skipSpace()
	if p.i != len(p.data) {
		return nil, p.fail("trailing data after the op")
	}
	return op, nil
}

// parseInt reads a JSON integer: -?(0|[1-9][0-9]*) with no fraction or
// exponent. Zero (and -0) is rejected, magnitudes above MaxLen are rejected
// as soon as they pass it, so arbitrarily long digit strings cost O(1).
func (p *parser) parseInt() (int, error) {
	neg := p.eat('-')
	start := p.i
	n := 0
	for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
		if p.i > start && p.data[start] == '0' {
			return 0, p.fail("leading zero")
		}
		n = n*10 + int(p.data[p.i]-'0')
		if n > MaxLen {
			return 0, p.fail("count exceeds %d", MaxLen)
		}
		p.i++
	}
	if p.i == start {
		return 0, p.fail("expected digits")
	}
	if p.i < len(p.data) {
		switch p.data[p.i] {
		case '.', 'e', 'E':
			return 0, p.fail("counts must be integers")
		}
	}
	if n == 0 {
		return 0, p.fail("zero count")
	}
	if neg {
		return -n, nil
	}
	return n, nil
}

// parseString reads a JSON string starting at the opening quote.
func (p *parser) parseString() (string, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.data) {
		c := p.data[p.i]
		if c == '"' {
			raw := p.data[start:p.i]
			if !utf8.Valid(raw) {
				return "", p.fail("string is not valid UTF-8")
			}
			p.i++
			return string(raw), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.fail("control character in string")
		}
		p.i++
	}
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, p.data[start:p.i]...)
	for {
		if p.i >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", p.fail("string is not valid UTF-8")
			}
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		// Escape sequence.
		p.i++
		if p.i >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		e := p.data[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail("bad \\u escape")
			}
			if 0xD800 <= r && r < 0xDC00 {
				// High surrogate: must be followed by \u low surrogate.
				if p.i+1 < len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u' {
					p.i += 2
					r2, ok := p.hex4()
					if !ok {
						return "", p.fail("bad \\u escape")
					}
					if 0xDC00 <= r2 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						buf = utf8.AppendRune(buf, r)
						continue
					}
				}
				return "", p.fail("lone surrogate in string")
			}
			if 0xDC00 <= r && r < 0xE000 {
				return "", p.fail("lone surrogate in string")
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("bad escape \\%c", e)
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.i : p.i+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, true
}
