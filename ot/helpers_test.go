package ot

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// pieces are the building blocks of random texts: every script and shape of
// code point sequence the editor must handle. Ops cut them anywhere, so a
// ZWJ sequence or a base letter and its combining mark can be split.
var pieces = []string{
	"a", "b", "Z", " ", ".", "\n", "\r\n", "\t", "\"", "\\",
	"🌐",               // 4-byte code point
	"👨\u200d👩\u200d👧", // ZWJ sequence: 5 code points, one grapheme
	"e\u0301",         // e + combining acute
	"서울",              // Hangul
	"首尔",              // CJK
	"مرحبا",           // Arabic (RTL)
	"\u2028",          // line separator (JSON-escaped on the wire)
	"\x01",            // control character
	"word", "the ",
}

func randText(r *rand.Rand, maxPieces int) string {
	n := r.IntN(maxPieces + 1)
	var b strings.Builder
	for range n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// randOp returns a random valid op for a text of baseLen code points. It
// deliberately builds components one by one without the builders half the
// time, so non-canonical (but valid) ops are exercised too.
func randOp(r *rand.Rand, baseLen int) Op {
	canonical := r.IntN(2) == 0
	op := Op{}
	add := func(c Component) {
		if canonical {
			op = op.appendComponent(c)
		} else {
			op = append(op, c)
		}
	}
	left := baseLen
	for left > 0 || r.IntN(4) == 0 {
		switch k := r.IntN(5); {
		case k <= 1 && left > 0:
			n := 1 + r.IntN(min(left, 6))
			add(Component{Retain: n})
			left -= n
		case k == 2 && left > 0:
			n := 1 + r.IntN(min(left, 4))
			add(Component{Delete: n})
			left -= n
		case k >= 3:
			if s := randText(r, 3); s != "" {
				add(Component{Insert: s})
			}
			if left == 0 {
				return op
			}
		}
	}
	return op
}

// opString is a compact form of o for failure messages.
func opString(o Op) string {
	b, err := o.MarshalJSON()
	if err != nil {
		return fmt.Sprintf("%#v", []Component(o))
	}
	return string(b)
}

// isCanonical reports whether o is in the canonical form the package
// promises for its results.
func isCanonical(o Op) bool {
	for i, c := range o {
		if _, err := c.kind(); err != nil {
			return false
		}
		if i == 0 {
			continue
		}
		p := o[i-1]
		switch {
		case p.Retain > 0 && c.Retain > 0, p.Delete > 0 && c.Delete > 0, p.Insert != "" && c.Insert != "":
			return false
		case p.Delete > 0 && c.Insert != "":
			return false
		}
	}
	return true
}

// checkTree verifies the rope invariants: cached counts, equal leaf depth,
// occupancy bounds, valid UTF-8 leaves. It returns a description of the
// first violation, or "".
func checkTree(t Text) string {
	if t.root == nil {
		return ""
	}
	if !t.root.leaf() && len(t.root.children) < 2 {
		return "inner root with fewer than 2 children"
	}
	depth := -1
	var walk func(n *node, d int, isRoot bool) string
	walk = func(n *node, d int, isRoot bool) string {
		if n.leaf() {
			if depth == -1 {
				depth = d
			} else if depth != d {
				return fmt.Sprintf("leaves at depths %d and %d", depth, d)
			}
			if n.text == "" {
				return "empty leaf"
			}
			if !utf8.ValidString(n.text) {
				return "invalid UTF-8 leaf"
			}
			if n.bytes != len(n.text) || n.runes != utf8.RuneCountInString(n.text) {
				return "bad leaf counts"
			}
			if len(n.text) > maxLeaf {
				return fmt.Sprintf("leaf of %d bytes", len(n.text))
			}
			if !isRoot && len(n.text) < minLeaf {
				return fmt.Sprintf("underfull leaf of %d bytes", len(n.text))
			}
			return ""
		}
		if len(n.children) > maxFan {
			return fmt.Sprintf("node with %d children", len(n.children))
		}
		if !isRoot && len(n.children) < minFan {
			return fmt.Sprintf("underfull node with %d children", len(n.children))
		}
		runes, bytes := 0, 0
		for _, c := range n.children {
			if msg := walk(c, d+1, false); msg != "" {
				return msg
			}
			runes += c.runes
			bytes += c.bytes
		}
		if runes != n.runes || bytes != n.bytes {
			return "bad inner counts"
		}
		return ""
	}
	return walk(t.root, 0, true)
}

// randSparseOp returns a valid op for a text of baseLen code points making
// up to edits small edits (insert, delete or replace) at random places, the
// shape of op a real client sends.
func randSparseOp(r *rand.Rand, baseLen, edits int) Op {
	op := Op{}
	pos := 0
	for range edits {
		skip := r.IntN((baseLen-pos)/2 + 1)
		op = op.Retain(skip)
		pos += skip
		if r.IntN(2) == 0 {
			op = op.Insert(randText(r, 3))
		}
		if r.IntN(2) == 0 {
			d := r.IntN(min(baseLen-pos, 5) + 1)
			op = op.Delete(d)
			pos += d
		}
	}
	return op.Retain(baseLen - pos)
}
