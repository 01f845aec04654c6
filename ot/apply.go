package ot

import (
	"strings"
	"unicode/utf8"
)

// Apply returns the result of applying op to text.
//
// Law: op must walk the whole text, so op.BaseLen() must equal the code point
// count of text, and then the result has op.TargetLen() code points. Anything
// else means client and server disagree about the document and is an error
// wrapping ErrBadOp rather than a best-effort guess.
//
// If text is not valid UTF-8 each invalid byte counts as one code point and
// comes out as U+FFFD (see the package documentation); the result is always
// valid UTF-8. The cost is O(len(text) + len(inserts)); for large documents
// edited many times use Text, whose Apply does not copy the whole document.
func Apply(text string, op Op) (string, error) {
	base, _, err := op.validate()
	if err != nil {
		return "", err
	}
	text = validUTF8(text)
	if n := utf8.RuneCountInString(text); n != base {
		return "", badOp("op base length %d != text length %d", base, n)
	}
	var b strings.Builder
	size := len(text)
	for _, c := range op {
		size += len(c.Insert)
	}
	b.Grow(size)
	i := 0 // byte offset in text
	for _, c := range op {
		switch {
		case c.Retain > 0:
			j := runeOffset(text[i:], c.Retain)
			b.WriteString(text[i : i+j])
			i += j
		case c.Delete > 0:
			i += runeOffset(text[i:], c.Delete)
		default:
			b.WriteString(c.Insert)
		}
	}
	return b.String(), nil
}

// validUTF8 returns s unchanged when it is valid UTF-8 and otherwise replaces
// each invalid byte with U+FFFD, which keeps the code point count unchanged.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s))
}

// runeOffset returns the byte offset of the n-th code point of s (len(s) if s
// has no more than n). s must be valid UTF-8.
func runeOffset(s string, n int) int {
	// ASCII fast path: as long as every byte so far is ASCII, bytes == runes.
	i := 0
	for i < len(s) && i < n && s[i] < utf8.RuneSelf {
		i++
	}
	if i == n || i == len(s) {
		return i
	}
	n -= i
	for j := i; j < len(s); j++ {
		if s[j]&0xC0 != 0x80 { // a rune starts here
			if n == 0 {
				return j
			}
			n--
		}
	}
	return len(s)
}

// splitRunes splits s after its first n code points.
func splitRunes(s string, n int) (string, string) {
	i := runeOffset(s, n)
	return s[:i], s[i:]
}
