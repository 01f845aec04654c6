// Package changes computes a document's pending changes — the hunks between
// its approved text and its draft — with stable ids and the delegations
// whose edits made each hunk, and keeps the draft's authorship as ops
// arrive.
package changes

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"communique/ot"
)

// Span is a run of Len code points of the draft written by Author. Author ""
// is text that was there when the document was created.
type Span struct {
	Len    int    `json:"n"`
	Author string `json:"a,omitempty"`
}

// Mark records that Author deleted text at gap Pos of the draft (the gap
// before code point Pos). Deleted text leaves no code points to carry its
// author, so marks remember who made each hunk's old wording disappear.
type Mark struct {
	Pos    int    `json:"p"`
	Author string `json:"a"`
	Text   string `json:"t"` // what was deleted
}

// Authorship is who wrote each code point of the draft and who deleted text
// where. A value is immutable: Apply returns a new one, so a session can keep
// the old value to roll back a failed commit, and readers on other
// goroutines may use a value while the session moves on. The zero value is
// the authorship of an empty text.
//
// Spans and marks live in two persistent B-trees (tree.go), so an op with k
// components costs O(k log n), plus what it deletes, however many spans
// and marks the draft has gathered: every draft op passes here, on drafts
// that may carry tens of thousands of marks while nothing is decided.
//
// Its observable value is Spans and Marks: the spans merged (no two
// neighbours with one author, none empty) and the marks sorted by position,
// author and text, without repeats. Inside, a span may be split where the
// tree's leaves meet, and a mark may be held twice (two equal marks stay
// equal under every op, so a repeat is dropped when the marks are listed;
// Prune, which sessions run at their snapshots, drops it from the tree).
type Authorship struct {
	spans *node[Span]
	marks *node[markItem]
}

// markItem is a mark in the tree: gap is its distance from the previous
// mark's position (from 0 for the first), so an edit moves every later mark
// by changing one gap, and marks at one position have gap 0.
type markItem struct {
	gap    int
	author string
	text   string
}

func (s Span) weight() int     { return s.Len }
func (m markItem) weight() int { return m.gap }

// New is the authorship of a freshly created text of n code points.
func New(n int) Authorship {
	if n == 0 {
		return Authorship{}
	}
	return Authorship{spans: build([]Span{{Len: n}})}
}

// Build is the authorship with these spans and marks, in any order and
// possibly with repeats, as Decode reads them; marks are clamped into the
// text, as the first op would move them (ot.TransformIndex clamps).
func Build(spans []Span, marks []Mark) Authorship {
	var a Authorship
	ss := make([]Span, 0, len(spans))
	for _, s := range spans {
		ss = addSpan(ss, s.Len, s.Author)
	}
	a.spans = build(ss)
	n := a.Len()
	ms := make([]Mark, len(marks))
	for i, m := range marks {
		ms[i] = Mark{Pos: min(max(m.Pos, 0), n), Author: m.Author, Text: m.Text}
	}
	a.marks = buildMarks(ms)
	return a
}

// buildMarks is the tree of ms, which it sorts and compacts in place.
func buildMarks(ms []Mark) *node[markItem] {
	if !slices.IsSortedFunc(ms, compareMarks) {
		slices.SortFunc(ms, compareMarks)
	}
	ms = slices.Compact(ms)
	items := make([]markItem, len(ms))
	prev := 0
	for i, m := range ms {
		items[i] = markItem{gap: m.Pos - prev, author: m.Author, text: m.Text}
		prev = m.Pos
	}
	return build(items)
}

// Len is the number of code points covered.
func (a Authorship) Len() int { return a.spans.weight() }

// Spans lists who wrote the draft, run by run from its start: the same
// list whichever way the tree is cut.
func (a Authorship) Spans() []Span {
	if a.spans == nil {
		return nil
	}
	out := make([]Span, 0, a.spans.count())
	a.spans.each(func(s Span) bool {
		out = addSpan(out, s.Len, s.Author)
		return true
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// Marks lists the deletion marks sorted by position, author and text,
// without repeats; nil when there are none.
func (a Authorship) Marks() []Mark {
	if a.marks == nil {
		return nil
	}
	out := make([]Mark, 0, a.marks.count())
	pos := 0
	a.marks.each(func(m markItem) bool {
		pos += m.gap
		out = append(out, Mark{Pos: pos, Author: m.author, Text: m.text})
		return true
	})
	// Positions are in order already: only marks at one position may
	// need sorting, which the check finds cheaply when there are none.
	return dedupeMarks(out)
}

// MarkCount is the number of marks held, repeats included: what a mark
// costs in memory, for benchmarks and metrics.
func (a Authorship) MarkCount() int { return a.marks.count() }

// addSpan appends a run of n code points by who to ss, merged into the last
// run when it has the same author; empty runs add nothing.
func addSpan(ss []Span, n int, who string) []Span {
	if n == 0 {
		return ss
	}
	if k := len(ss); k > 0 && ss[k-1].Author == who {
		ss[k-1].Len += n
		return ss
	}
	return append(ss, Span{Len: n, Author: who})
}

// Apply returns the authorship after op, made by author, was applied. The op
// must fit (op.BaseLen() == a.Len()); ops reaching here were already applied
// to the text.
//
// deleted returns the text op deletes (the caller has it: ApplyInvert's
// inverse inserts exactly that), in op order; it may be nil, and marks then
// carry no text.
//
// The components are applied one after the other, each at its place in the
// partly edited text: for the marks that is exactly what
// ot.TransformIndex(pos, op, false) does to each position (a mark stays
// before text inserted at its gap; a mark inside deleted text moves to
// where the text was), and a delete's new mark sits where it deleted, as
// TestAuthorshipApplyMatchesReference checks against the original
// algorithm.
func (a Authorship) Apply(op ot.Op, author string, deleted []string) (Authorship, error) {
	if op.BaseLen() != a.Len() {
		return a, fmt.Errorf("authorship of %d code points, op over %d: %w", a.Len(), op.BaseLen(), ot.ErrBadOp)
	}
	spans, marks := a.spans, a.marks
	var buf [2]*node[Span]
	var one [1]Span
	var mark [1]markItem
	pos := 0 // in the partly edited text
	for i := 0; i < len(op); {
		c := op[i]
		if c.Retain > 0 {
			pos += c.Retain
			i++
			continue
		}
		// A run of inserts and deletes at one place is one splice of the
		// spans (the inserts' author is one author); the marks take each
		// component in turn.
		del, ins := 0, 0
		for ; i < len(op) && op[i].Retain == 0; i++ {
			switch c := op[i]; {
			case c.Delete > 0:
				marks = shrink(marks, pos+ins, c.Delete)
				mark[0] = markItem{author: author}
				if len(deleted) > 0 {
					mark[0].text, deleted = deleted[0], deleted[1:]
				}
				marks = buildRoot(splice(nil, marks, pos+ins, 0, mark[:], insertMark))
				del += c.Delete
			case c.Insert != "":
				n := utf8.RuneCountInString(c.Insert) // as ot counts: an invalid byte is one
				marks = grow(marks, pos+ins, n)
				ins += n
			}
		}
		var in []Span
		if ins > 0 {
			one[0] = Span{Len: ins, Author: author}
			in = one[:]
		}
		spans = buildRoot(splice(buf[:0], spans, pos, del, in, editSpans))
		pos += ins
	}
	return Authorship{spans: spans, marks: marks}, nil
}

// editSpans is splice's leaf edit for spans: code points [pos, pos+del)
// cut out, ins put in their place, runs of one author merged.
func editSpans(items []Span, pos, del int, ins []Span) []Span {
	out := make([]Span, 0, len(items)+2)
	done := len(ins) == 0
	at := 0
	for _, s := range items {
		end := at + s.Len
		if !done && end > pos {
			out = addSpan(out, pos-at, s.Author) // the part before pos
			for _, in := range ins {
				out = addSpan(out, in.Len, in.Author)
			}
			done = true
			out = addSpan(out, max(0, end-max(at, pos+del)), s.Author) // after the cut
		} else {
			// Before pos, or after it once ins is in: keep what lies
			// outside [pos, pos+del).
			keep := s.Len - max(0, min(end, pos+del)-max(at, pos))
			out = addSpan(out, keep, s.Author)
		}
		at = end
	}
	if !done {
		for _, in := range ins {
			out = addSpan(out, in.Len, in.Author)
		}
	}
	return out
}

// insertMark is splice's leaf edit for marks (del is always 0): the mark
// goes after every mark at or before pos, and the mark after it keeps its
// position.
func insertMark(items []markItem, pos, _ int, ins []markItem) []markItem {
	out := make([]markItem, 0, len(items)+len(ins))
	at := 0
	for i, m := range items {
		if at+m.gap > pos {
			in := ins[0]
			in.gap = pos - at
			m.gap -= in.gap
			out = append(append(append(out, items[:i]...), in, m), items[i+1:]...)
			return out
		}
		at += m.gap
	}
	in := ins[0]
	in.gap = pos - at
	return append(append(out, items...), in)
}

// shrink removes [pos, pos+del) from the marks' positions: a mark inside
// the range moves to pos, later marks move back by del. Only the path to
// marks whose gap overlaps the range is copied; marks already collapsed
// onto one position (gap 0) are never visited again, so the cost is
// O(del·log n) however many marks the range holds.
func shrink(x *node[markItem], pos, del int) *node[markItem] {
	if x == nil || max(0, pos) >= min(x.w, pos+del) {
		return x // no gap overlaps the range (a subtree of gaps 0 never does)
	}
	if x.leaf() {
		items := slices.Clone(x.items)
		at := 0
		for i := range items {
			end := at + items[i].gap
			items[i].gap -= max(0, min(end, pos+del)-max(at, pos))
			at = end
		}
		return newLeaf(items)
	}
	kids := slices.Clone(x.kids)
	acc := 0
	for i, k := range x.kids {
		if acc >= pos+del {
			break
		}
		if max(acc, pos) < min(acc+k.w, pos+del) {
			kids[i] = shrink(k, pos-acc, del)
		}
		acc += k.w
	}
	return newInner(kids)
}

// grow moves every mark after pos (not one at pos) right by n: one gap
// changes.
func grow(x *node[markItem], pos, n int) *node[markItem] {
	if x == nil || pos >= x.w {
		return x
	}
	if x.leaf() {
		items := slices.Clone(x.items)
		at := 0
		for i := range items {
			if at+items[i].gap > pos {
				items[i].gap += n
				break
			}
			at += items[i].gap
		}
		return newLeaf(items)
	}
	kids := slices.Clone(x.kids)
	acc := 0
	for i, k := range x.kids {
		if acc+k.w > pos {
			kids[i] = grow(k, pos-acc, n)
			break
		}
		acc += k.w
	}
	return newInner(kids)
}

// marksIn calls fn with every mark at a position in [lo, hi], in order,
// with its position and its index among all marks.
func marksIn(x *node[markItem], lo, hi int, fn func(pos, idx int, m markItem)) {
	var walk func(x *node[markItem], base, idx int)
	walk = func(x *node[markItem], base, idx int) {
		if x.leaf() {
			pos := base
			for i, m := range x.items {
				pos += m.gap
				if pos > hi {
					return
				}
				if pos >= lo {
					fn(pos, idx+i, m)
				}
			}
			return
		}
		for _, k := range x.kids {
			if base > hi {
				return
			}
			// k's marks lie at positions base..base+k.w.
			if base+k.w >= lo {
				walk(k, base, idx)
			}
			base += k.w
			idx += k.n
		}
	}
	if x != nil {
		walk(x, 0, 0)
	}
}

// spansIn calls fn with the author of every span that overlaps [start,
// end): it starts before end and ends after start.
func spansIn(x *node[Span], start, end int, fn func(author string)) {
	var walk func(x *node[Span], at int)
	walk = func(x *node[Span], at int) {
		if x.leaf() {
			for _, s := range x.items {
				if at >= end {
					return
				}
				if at+s.Len > start {
					fn(s.Author)
				}
				at += s.Len
			}
			return
		}
		for _, k := range x.kids {
			if at >= end {
				return
			}
			if at+k.w > start {
				walk(k, at)
			}
			at += k.w
		}
	}
	if x != nil {
		walk(x, 0)
	}
}

// compareMarks orders marks by position, author and text.
func compareMarks(x, y Mark) int {
	if x.Pos != y.Pos {
		return x.Pos - y.Pos
	}
	if c := strings.Compare(x.Author, y.Author); c != 0 {
		return c
	}
	return strings.Compare(x.Text, y.Text)
}

// dedupeMarks sorts ms by position, author and text and drops repeats. The
// marks come in position order already (the tree keeps them so); only marks
// sharing a position may need the sort, so it is skipped when the linear
// check passes.
func dedupeMarks(ms []Mark) []Mark {
	if len(ms) == 0 {
		return nil
	}
	if !slices.IsSortedFunc(ms, compareMarks) {
		if slices.IsSortedFunc(ms, func(x, y Mark) int { return x.Pos - y.Pos }) {
			// Only marks at one position are out of order: sort each
			// such run on its own, far cheaper than sorting them all.
			for i := 0; i < len(ms); {
				j := i + 1
				for j < len(ms) && ms[j].Pos == ms[i].Pos {
					j++
				}
				if j-i > 1 {
					slices.SortFunc(ms[i:j], compareMarks)
				}
				i = j
			}
		} else {
			slices.SortFunc(ms, compareMarks)
		}
	}
	return slices.Compact(ms)
}

// Authors returns the authors of the code points in [start, end) and, when
// old is not empty, of the deletions that explain old: marks at gaps
// start-slack..end+slack (slack = len(old)) whose deleted text overlaps old.
// The slack is there because a semantic diff may slide a hunk along equal
// text (showing "growth. X" deleted where ". X" was), so the gap where text
// was deleted can lie a little outside the hunk that shows it; the overlap
// test keeps a nearby but unrelated deletion out.
func (a Authorship) Authors(start, end int, old string) []string {
	set := map[string]bool{}
	spansIn(a.spans, start, end, func(who string) {
		if who != "" {
			set[who] = true
		}
	})
	if old != "" {
		o := newOldText(old)
		marksIn(a.marks, start-o.slack, end+o.slack, func(pos, _ int, m markItem) {
			if !set[m.author] && o.explains(Mark{Pos: pos, Author: m.author, Text: m.text}, start, end) {
				set[m.author] = true
			}
		})
	}
	out := make([]string, 0, len(set))
	for who := range set {
		out = append(out, who)
	}
	slices.Sort(out)
	return out
}

// Prune drops the marks that no pending change covers: where the draft
// agrees with the approved text again, old deletions no longer explain
// anything and must not be blamed on a later hunk at the same place. Only
// the marks near a change are looked at (explains needs them within its
// slack), so the cost follows the changes, not the marks far from them.
func (a Authorship) Prune(cs []Change) Authorship {
	keep := make([]uint64, (a.marks.count()+63)/64) // by index among the marks
	var kept []Mark
	for _, c := range cs {
		if c.Old == "" {
			continue
		}
		o := newOldText(c.Old)
		marksIn(a.marks, c.DraftStart-o.slack, c.DraftEnd+o.slack, func(pos, i int, m markItem) {
			if keep[i/64]&(1<<(i%64)) != 0 {
				return
			}
			if mk := (Mark{Pos: pos, Author: m.author, Text: m.text}); o.explains(mk, c.DraftStart, c.DraftEnd) {
				keep[i/64] |= 1 << (i % 64)
				kept = append(kept, mk)
			}
		})
	}
	return Authorship{spans: a.spans, marks: buildMarks(kept)}
}

// stored is the stored form of an Authorship, as it has always been: the
// merged spans and the sorted marks.
type stored struct {
	Spans []Span `json:"spans"`
	Marks []Mark `json:"marks,omitempty"`
}

// Encode is the stored form (kept in the draft's snapshots): the JSON of
// stored, written by hand in one walk of the trees, because a draft's
// snapshot may hold tens of thousands of marks and reflection, or sorting
// them, would make each snapshot several times slower. The marks come in
// the tree's order: by position, but those at one position in no
// particular order, and a repeat written twice; Decode sorts and compacts
// them. For a value built from lists (Build, Decode, Prune) the bytes are
// exactly what encoding/json makes of its Spans and Marks.
func (a Authorship) Encode() []byte {
	spans := a.Spans()
	b := make([]byte, 0, 16+16*len(spans)+32*a.marks.count())
	b = append(b, `{"spans":`...)
	if spans == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range spans {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"n":`...)
			b = strconv.AppendInt(b, int64(s.Len), 10)
			if s.Author != "" {
				b = append(b, `,"a":`...)
				b = appendJSONString(b, s.Author)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if a.marks.count() > 0 {
		b = append(b, `,"marks":[`...)
		pos := 0
		a.marks.each(func(m markItem) bool {
			if pos += m.gap; b[len(b)-1] != '[' {
				b = append(b, ',')
			}
			b = append(b, `{"p":`...)
			b = strconv.AppendInt(b, int64(pos), 10)
			b = append(b, `,"a":`...)
			b = appendJSONString(b, m.author)
			b = append(b, `,"t":`...)
			b = appendJSONString(b, m.text)
			b = append(b, '}')
			return true
		})
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONString appends s as encoding/json writes a string by default:
// control characters, the quote and the backslash escaped, <, > and &
// escaped for HTML, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Decode reads Encode's output; empty input is New(n).
func Decode(b []byte, n int) (Authorship, error) {
	if len(b) == 0 {
		return New(n), nil
	}
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		return Authorship{}, fmt.Errorf("decode authorship: %w", err)
	}
	covered := 0
	for _, s := range st.Spans {
		if s.Len < 0 {
			return Authorship{}, fmt.Errorf("decode authorship: span of %d code points", s.Len)
		}
		covered += s.Len
	}
	if covered != n {
		return Authorship{}, fmt.Errorf("authorship covers %d code points; the text has %d", covered, n)
	}
	return Build(st.Spans, st.Marks), nil
}

// Blame is one run of the draft with its author, in code points.
type Blame struct {
	Start  int    `json:"start"`
	End    int    `json:"end"`
	Author string `json:"author"`
}

// Blame lists the spans with their positions.
func (a Authorship) Blame() []Blame {
	spans := a.Spans()
	out := make([]Blame, 0, len(spans))
	pos := 0
	for _, s := range spans {
		out = append(out, Blame{Start: pos, End: pos + s.Len, Author: s.Author})
		pos += s.Len
	}
	return out
}

// explains reports whether deletion mark m accounts for (part of) the old
// wording of a hunk at draft range [start, end].
func explains(m Mark, start, end int, old string) bool {
	o := newOldText(old)
	return o.explains(m, start, end)
}

// oldText is a hunk's old wording with what explains needs of it worked
// out once: Authors and Prune ask about every mark near the hunk.
type oldText struct {
	s       string
	slack   int  // code points
	valid   bool // UTF-8
	prefix  string
	prefixN int // code points of prefix: the first overlapLimit of s
}

func newOldText(s string) oldText {
	o := oldText{s: s, slack: utf8.RuneCountInString(s), valid: utf8.ValidString(s)}
	o.prefix, o.prefixN = runePrefix(s, overlapLimit)
	return o
}

func (o *oldText) explains(m Mark, start, end int) bool {
	if m.Pos < start-o.slack || m.Pos > end+o.slack {
		return false
	}
	if m.Text == "" || strings.Contains(o.s, m.Text) || strings.Contains(m.Text, o.s) {
		return true
	}
	if !o.valid || !utf8.ValidString(m.Text) {
		return overlapsRunes(m.Text, o.s)
	}
	a, na := runePrefix(m.Text, overlapLimit)
	return overlapsValid(a, na, o.prefix, o.prefixN)
}

// overlapLimit bounds the code points of each text overlaps compares.
const overlapLimit = 512

// overlaps reports whether a and b share a common substring of at least
// half the shorter one: a deletion seen through a diff that slid it along
// equal text keeps most of its text. Long texts are compared by their
// first overlapLimit code points only, to bound the cost.
//
// A common substring that long exists exactly when one of the shorter
// text's runs of that many code points occurs in the longer one; in valid
// UTF-8 a byte match of whole code points is a match of code points, so
// strings.Contains finds it without allocating. Prune asks this of every
// mark near a long hunk, so it is worth it. Invalid UTF-8 (which the
// rope never produces) takes the code point by code point comparison,
// where two different invalid bytes are both U+FFFD and so equal.
func overlaps(a, b string) bool {
	if !utf8.ValidString(a) || !utf8.ValidString(b) {
		return overlapsRunes(a, b)
	}
	a, na := runePrefix(a, overlapLimit)
	b, nb := runePrefix(b, overlapLimit)
	return overlapsValid(a, na, b, nb)
}

// overlapsValid is overlaps of valid UTF-8 texts already cut to
// overlapLimit code points (na and nb of them).
func overlapsValid(a string, na int, b string, nb int) bool {
	short, long := a, b
	if nb < na {
		short, long = b, a
	}
	need := max(1, min(na, nb)/2)
	i, j := 0, 0 // short[i:j] is a run of need code points
	for range need {
		_, size := utf8.DecodeRuneInString(short[j:])
		j += size
	}
	for {
		if strings.Contains(long, short[i:j]) {
			return true
		}
		if j >= len(short) {
			return false
		}
		_, size := utf8.DecodeRuneInString(short[i:])
		i += size
		_, size = utf8.DecodeRuneInString(short[j:])
		j += size
	}
}

// runePrefix is s cut after n code points, and its length in code points.
func runePrefix(s string, n int) (string, int) {
	k := 0
	for i := range s {
		if k == n {
			return s[:i], k
		}
		k++
	}
	return s, k
}

// overlapsRunes is overlaps for any strings, code point by code point (a
// longest-common-substring table).
func overlapsRunes(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > overlapLimit {
		ra = ra[:overlapLimit]
	}
	if len(rb) > overlapLimit {
		rb = rb[:overlapLimit]
	}
	need := max(1, min(len(ra), len(rb))/2)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			if ra[i-1] == rb[j-1] {
				cur[j] = prev[j-1] + 1
				if cur[j] >= need {
					return true
				}
			} else {
				cur[j] = 0
			}
		}
		prev, cur = cur, prev
	}
	return false
}
