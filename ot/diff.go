package ot

import (
	"strings"
	"unicode/utf8"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// Hunk is one changed region of a semantic diff between texts a and b.
// Offsets count code points: Old is a[AStart:AEnd] and New is b[BStart:BEnd]
// in code points. A hunk with Old == "" is a pure insertion, New == "" a pure
// deletion. Deleted and inserted runs that touch (no unchanged text between
// them) form one hunk, so a replaced word is one hunk, which is what a
// redline shows.
type Hunk struct {
	AStart, AEnd int
	BStart, BEnd int
	Old, New     string
}

// FromDiff returns an op that turns a into b, computed with diff-match-patch
// (github.com/sergi/go-diff) and its semantic cleanup, so the op edits whole
// words where a human would rather than a minimal set of scattered
// characters.
//
// Law: Apply(a, FromDiff(a, b)) == b for all valid UTF-8 a and b.
//
// Invalid UTF-8 is not rejected (FromDiff has no error to report it with):
// like everywhere in this package each invalid byte reads as one U+FFFD code
// point, so the op's base length is utf8.RuneCountInString(a), and applying it
// yields b with each invalid byte replaced by U+FFFD.
//
// Cost: diff-match-patch is O((N+M)·D) for texts of N and M code points that
// differ in D. It keeps its default one-second deadline, after which it
// settles for a coarser diff; the deadline can change how small the diff is,
// never whether it is correct.
func FromDiff(a, b string) Op {
	op := Op{}
	d := diffRunes(a, b)
	for _, s := range d.segs {
		if s.equal {
			op = op.Retain(s.n)
			continue
		}
		// Insert before delete: the canonical order.
		op = op.Insert(s.ins).Delete(s.del)
	}
	return op
}

// Diff returns the hunks of the same semantic diff FromDiff uses, in order.
// Applying every hunk to a (replacing Old with New at its offsets) gives b;
// texts are read as in FromDiff, so Old and New are always valid UTF-8.
func Diff(a, b string) []Hunk {
	d := diffRunes(a, b)
	var hunks []Hunk
	ai, bi := 0, 0
	for _, s := range d.segs {
		if s.equal {
			ai += s.n
			bi += s.n
			continue
		}
		nd := utf8.RuneCountInString(s.delText)
		ni := utf8.RuneCountInString(s.ins)
		hunks = append(hunks, Hunk{
			AStart: ai, AEnd: ai + nd,
			BStart: bi, BEnd: bi + ni,
			Old: s.delText, New: s.ins,
		})
		ai += nd
		bi += ni
	}
	return hunks
}

// seg is a run of a rune-aligned diff: either n equal code points, or one
// change replacing delText (del code points of a) with ins.
type seg struct {
	equal   bool
	n       int
	del     int
	delText string
	ins     string
}

type runeDiff struct{ segs []seg }

// diffRunes runs diff-match-patch over the code points of a and b and turns
// its output into alternating equal runs and changes whose boundaries fall on
// code point boundaries of both texts.
//
// go-diff diffs []rune (DiffMainRunes) correctly, but some of its cleanup
// passes mix byte and rune offsets on multi-byte text (sergi/go-diff #107,
// #132, #157; DiffCleanupSemanticLossless shifts edits by a rune count used
// as a byte count). Their output still concatenates to the right bytes, but a
// single diff may begin or end inside a UTF-8 sequence. So this function does
// not trust the rune lengths of individual diffs: it walks the diffs as byte
// ranges of a and b, checks that they really tile both texts, and keeps an
// equal range only for the part that starts and ends on a rune boundary in
// both texts; the slivers become part of the neighbouring change. If the
// output does not tile the texts (or go-diff panics), it falls back to one
// change between the common prefix and suffix, which is still correct.
func diffRunes(a, b string) runeDiff {
	a, b = validUTF8(a), validUTF8(b)
	eqs, ok := dmpEqualRanges(a, b)
	if !ok {
		eqs = prefixSuffixRanges(a, b)
	}
	var d runeDiff
	pa, pb := 0, 0 // byte offsets in a and b after the last equal range
	for _, e := range eqs {
		if e.a > pa || e.b > pb {
			del := a[pa:e.a]
			d.segs = append(d.segs, seg{del: utf8.RuneCountInString(del), delText: del, ins: b[pb:e.b]})
		}
		d.segs = append(d.segs, seg{equal: true, n: utf8.RuneCountInString(a[e.a : e.a+e.len])})
		pa, pb = e.a+e.len, e.b+e.len
	}
	if pa < len(a) || pb < len(b) {
		del := a[pa:]
		d.segs = append(d.segs, seg{del: utf8.RuneCountInString(del), delText: del, ins: b[pb:]})
	}
	return d
}

// eqRange is a run of len bytes equal in a (from byte a) and b (from byte b).
type eqRange struct{ a, b, len int }

// dmpEqualRanges returns the rune-aligned, non-empty equal ranges of the
// diff-match-patch diff of a and b (both valid UTF-8), in order. ok is false
// if go-diff's output does not tile a and b exactly or if go-diff panicked.
func dmpEqualRanges(a, b string) (eqs []eqRange, ok bool) {
	defer func() {
		// A third-party panic must not take the server down: fall back to
		// the simple diff instead.
		if recover() != nil {
			eqs, ok = nil, false
		}
	}()
	if len(a)+len(b) >= byParagraphBytes {
		return paragraphEqualRanges(a, b)
	}
	return charEqualRanges(a, b)
}

// charEqualRanges is the character-level semantic diff of a and b.
func charEqualRanges(a, b string) ([]eqRange, bool) {
	dmp := diffmatchpatch.New()
	diffs := dmp.DiffMainRunes([]rune(a), []rune(b), false)
	diffs = dmp.DiffCleanupSemantic(diffs)
	return alignedEqualRanges(a, b, diffs)
}

// byParagraphBytes is the size (a and b together) from which texts are
// diffed paragraph by paragraph. A character-level diff of a 200-page
// draft with hundreds of scattered edits takes about 200 ms (go-diff's
// bisection over the whole text), paid again for every new version.
const byParagraphBytes = 64 << 10

// paragraphEqualRanges diffs long texts in two levels: lines first (a line
// is a paragraph of the Markdown text), then characters inside each run of
// changed lines. Unchanged lines anchor the diff, so an edit is compared
// only with the paragraphs around it — which is also what keeps a pending
// change the same when others are made elsewhere.
func paragraphEqualRanges(a, b string) ([]eqRange, bool) {
	ids := make(map[string]rune)
	var lines []string // by id
	ra, ok1 := lineRunes(a, ids, &lines)
	rb, ok2 := lineRunes(b, ids, &lines)
	if !ok1 || !ok2 {
		return charEqualRanges(a, b) // more distinct lines than runes to name them
	}
	dmp := diffmatchpatch.New()
	var eqs []eqRange
	ia, ib := 0, 0   // byte offsets in a and b
	sa, sb := -1, -1 // start of the pending run of changed lines (-1: none)
	flush := func() bool {
		if sa < 0 {
			return true
		}
		sub, ok := charEqualRanges(a[sa:ia], b[sb:ib])
		if !ok {
			return false
		}
		for _, e := range sub {
			eqs = append(eqs, eqRange{a: sa + e.a, b: sb + e.b, len: e.len})
		}
		sa, sb = -1, -1
		return true
	}
	for _, df := range dmp.DiffMainRunes(ra, rb, false) {
		n := 0
		for _, r := range df.Text {
			n += len(lines[lineID(r)])
		}
		switch df.Type {
		case diffmatchpatch.DiffEqual:
			if !flush() {
				return nil, false
			}
			if n > 0 {
				eqs = append(eqs, eqRange{a: ia, b: ib, len: n})
			}
			ia, ib = ia+n, ib+n
		case diffmatchpatch.DiffDelete:
			if sa < 0 {
				sa, sb = ia, ib
			}
			ia += n
		case diffmatchpatch.DiffInsert:
			if sa < 0 {
				sa, sb = ia, ib
			}
			ib += n
		}
	}
	if !flush() || ia != len(a) || ib != len(b) {
		return nil, false
	}
	return mergeAdjacent(eqs), true
}

// lineRunes names each line of s (with its newline) by a rune, the same
// rune for the same line in both texts, so that the line diff is a diff of
// runes. The runes are valid code points (the surrogates are skipped),
// because go-diff hands its results back as strings. ok is false past the
// last code point.
func lineRunes(s string, ids map[string]rune, lines *[]string) (out []rune, ok bool) {
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n') + 1
		if i == 0 {
			i = len(s)
		}
		line := s[:i]
		s = s[i:]
		r, seen := ids[line]
		if !seen {
			k := len(*lines)
			if k >= 0x10FFFF-0x800 {
				return nil, false
			}
			r = rune(k)
			if r >= 0xD800 {
				r += 0x800
			}
			ids[line] = r
			*lines = append(*lines, line)
		}
		out = append(out, r)
	}
	return out, true
}

// lineID is the index in lines of a rune made by lineRunes.
func lineID(r rune) int {
	if r >= 0xE000 {
		return int(r - 0x800)
	}
	return int(r)
}

// mergeAdjacent joins equal ranges that touch in both texts.
func mergeAdjacent(eqs []eqRange) []eqRange {
	out := eqs[:0]
	for _, e := range eqs {
		if k := len(out) - 1; k >= 0 && out[k].a+out[k].len == e.a && out[k].b+out[k].len == e.b {
			out[k].len += e.len
			continue
		}
		out = append(out, e)
	}
	return out
}

// alignedEqualRanges checks that diffs tile a and b byte for byte and
// returns their equal ranges shrunk to code point boundaries of both texts.
func alignedEqualRanges(a, b string, diffs []diffmatchpatch.Diff) (eqs []eqRange, ok bool) {
	ia, ib := 0, 0
	for _, df := range diffs {
		t := df.Text
		switch df.Type {
		case diffmatchpatch.DiffEqual:
			if len(a)-ia < len(t) || len(b)-ib < len(t) || a[ia:ia+len(t)] != t || b[ib:ib+len(t)] != t {
				return nil, false
			}
			// Shrink to the largest part starting and ending on a rune
			// boundary of both texts. Inside the range both texts hold the
			// same bytes, so one check serves both; the end must be checked
			// in each text separately.
			s, e := 0, len(t)
			for s < e && !utf8.RuneStart(t[s]) {
				s++
			}
			for e > s && !(isBoundary(a, ia+e) && isBoundary(b, ib+e)) {
				e--
			}
			if e > s {
				eqs = append(eqs, eqRange{a: ia + s, b: ib + s, len: e - s})
			}
			ia += len(t)
			ib += len(t)
		case diffmatchpatch.DiffDelete:
			if len(a)-ia < len(t) || a[ia:ia+len(t)] != t {
				return nil, false
			}
			ia += len(t)
		case diffmatchpatch.DiffInsert:
			if len(b)-ib < len(t) || b[ib:ib+len(t)] != t {
				return nil, false
			}
			ib += len(t)
		}
	}
	if ia != len(a) || ib != len(b) {
		return nil, false
	}
	return eqs, true
}

// isBoundary reports whether byte offset i of valid UTF-8 s is the start of
// a code point or the end of s.
func isBoundary(s string, i int) bool {
	return i == len(s) || utf8.RuneStart(s[i])
}

// prefixSuffixRanges is the fallback diff: the common prefix and suffix (in
// whole code points) are equal, everything between them changed.
func prefixSuffixRanges(a, b string) []eqRange {
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	for p > 0 && !(isBoundary(a, p) && isBoundary(b, p)) {
		p--
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	for s > 0 && !utf8.RuneStart(a[len(a)-s]) {
		s--
	}
	var eqs []eqRange
	if p > 0 {
		eqs = append(eqs, eqRange{a: 0, b: 0, len: p})
	}
	if s > 0 {
		eqs = append(eqs, eqRange{a: len(a) - s, b: len(b) - s, len: s})
	}
	return eqs
}
