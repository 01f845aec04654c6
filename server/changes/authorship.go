// Package changes computes a document's pending changes — the hunks between
// its approved text and its draft — with stable ids and the delegations
// whose edits made each hunk, and keeps the draft's authorship as ops
// arrive.
package changes

import (
	"encoding/json"
	"fmt"
	"slices"
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
// the old value to roll back a failed commit.
type Authorship struct {
	Spans []Span `json:"spans"`
	Marks []Mark `json:"marks,omitempty"`
}

// New is the authorship of a freshly created text of n code points.
func New(n int) Authorship {
	if n == 0 {
		return Authorship{}
	}
	return Authorship{Spans: []Span{{Len: n}}}
}

// Len is the number of code points covered.
func (a Authorship) Len() int {
	n := 0
	for _, s := range a.Spans {
		n += s.Len
	}
	return n
}

// Apply returns the authorship after op, made by author, was applied. The op
// must fit (op.BaseLen() == a.Len()); ops reaching here were already applied
// to the text.
//
// deleted returns the text op deletes (the caller has it: ApplyInvert's
// inverse inserts exactly that), in op order; it may be nil, and marks then
// carry no text.
func (a Authorship) Apply(op ot.Op, author string, deleted []string) (Authorship, error) {
	if op.BaseLen() != a.Len() {
		return a, fmt.Errorf("authorship of %d code points, op over %d: %w", a.Len(), op.BaseLen(), ot.ErrBadOp)
	}
	// Every draft op passes here, on drafts that may carry thousands of
	// spans and marks while nothing is decided, so the work is linear with
	// small constants: both slices are allocated once at their final size,
	// runs of whole spans are copied in bulk, and the marks move in one walk
	// of the op (see moveMarks).
	out := Authorship{Spans: make([]Span, 0, len(a.Spans)+2)}
	add := func(n int, who string) {
		if n == 0 {
			return
		}
		if k := len(out.Spans); k > 0 && out.Spans[k-1].Author == who {
			out.Spans[k-1].Len += n
			return
		}
		out.Spans = append(out.Spans, Span{Len: n, Author: who})
	}
	deletes := 0
	for _, c := range op {
		if c.Delete > 0 {
			deletes++
		}
	}
	if len(a.Marks)+deletes > 0 {
		out.Marks = make([]Mark, 0, len(a.Marks)+deletes)
	}
	// Existing marks move with the text; marks inside deleted text move to
	// where it was.
	out.Marks = moveMarks(out.Marks, a.Marks, op)
	moved := len(out.Marks)
	i, off := 0, 0 // current span and offset in it
	pos := 0       // position in the output
	take := func(n int, keep bool) {
		for n > 0 {
			s := a.Spans[i]
			if keep && off == 0 && n >= s.Len {
				// Whole spans: add the first (it may continue the last
				// one out), then copy those after it that fit, as long
				// as neighbours differ in author (they always do in
				// spans Apply made; add would merge any that do not).
				add(s.Len, s.Author)
				n -= s.Len
				j := i + 1
				for j < len(a.Spans) && a.Spans[j].Len <= n && a.Spans[j].Author != a.Spans[j-1].Author {
					n -= a.Spans[j].Len
					j++
				}
				out.Spans = append(out.Spans, a.Spans[i+1:j]...)
				i = j
				continue
			}
			k := min(n, s.Len-off)
			if keep {
				add(k, s.Author)
			}
			n -= k
			off += k
			if off == s.Len {
				i, off = i+1, 0
			}
		}
	}
	for _, c := range op {
		switch {
		case c.Retain > 0:
			take(c.Retain, true)
			pos += c.Retain
		case c.Insert != "":
			n := utf8.RuneCountInString(c.Insert) // as ot counts: an invalid byte is one
			add(n, author)
			pos += n
		case c.Delete > 0:
			take(c.Delete, false)
			m := Mark{Pos: pos, Author: author}
			if len(deleted) > 0 {
				m.Text, deleted = deleted[0], deleted[1:]
			}
			out.Marks = append(out.Marks, m)
		}
	}
	if len(out.Marks) > moved {
		mergeMarks(out.Marks, moved)
	}
	out.Marks = dedupeMarks(out.Marks)
	return out, nil
}

// moveMarks appends ms moved through op to out: exactly what
// ot.TransformIndex(m.Pos, op, false) gives each, but, when ms is in
// position order (Apply keeps it so), in one walk of the op for all of
// them instead of one walk each.
func moveMarks(out, ms []Mark, op ot.Op) []Mark {
	if !slices.IsSortedFunc(ms, func(x, y Mark) int { return x.Pos - y.Pos }) {
		for _, m := range ms {
			out = append(out, Mark{Pos: ot.TransformIndex(m.Pos, op, false), Author: m.Author, Text: m.Text})
		}
		return out
	}
	baseLen := op.BaseLen()
	ci, b, t := 0, 0, 0 // next component, consumed base, produced target
	for _, m := range ms {
		// The walk only passes components that lie wholly before the
		// position, or deletes, which move a position inside them to
		// their end; a later, larger position can go on from there
		// (max: it too was inside a delete already passed).
		pos := max(min(max(m.Pos, 0), baseLen), b)
		res := -1
		for ci < len(op) && res < 0 {
			switch c := op[ci]; {
			case c.Retain > 0:
				if pos < b+c.Retain {
					res = t + pos - b
					continue
				}
				b += c.Retain
				t += c.Retain
			case c.Delete > 0:
				if pos < b+c.Delete {
					pos = b + c.Delete
				}
				b += c.Delete
			case c.Insert != "":
				if b == pos {
					res = t // a mark stays before text inserted at its gap
					continue
				}
				t += utf8.RuneCountInString(c.Insert)
			}
			ci++
		}
		if res < 0 {
			res = t
		}
		out = append(out, Mark{Pos: res, Author: m.Author, Text: m.Text})
	}
	return out
}

// mergeMarks sorts ms in place by compareMarks, where ms[:k] and ms[k:]
// are each sorted by position: the op's new marks (few) go in among the
// moved ones by insertion from the back.
func mergeMarks(ms []Mark, k int) {
	for n := k; n < len(ms); n++ {
		m := ms[n]
		j := n
		for j > 0 && compareMarks(ms[j-1], m) > 0 {
			ms[j] = ms[j-1]
			j--
		}
		ms[j] = m
	}
}

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
// marks an op carries over are in order already (positions only move
// forward together); only new ones or marks brought together by a
// deletion need the sort, so it is skipped when the linear check passes.
func dedupeMarks(ms []Mark) []Mark {
	if len(ms) == 0 {
		return nil
	}
	if !slices.IsSortedFunc(ms, compareMarks) {
		slices.SortFunc(ms, compareMarks)
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
	pos := 0
	for _, s := range a.Spans {
		if pos >= end {
			break
		}
		if pos+s.Len > start && s.Author != "" {
			set[s.Author] = true
		}
		pos += s.Len
	}
	if old != "" {
		for _, m := range a.Marks {
			if explains(m, start, end, old) {
				set[m.Author] = true
			}
		}
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
// anything and must not be blamed on a later hunk at the same place.
func (a Authorship) Prune(cs []Change) Authorship {
	var keep []Mark
	for _, m := range a.Marks {
		for _, c := range cs {
			if c.Old != "" && explains(m, c.DraftStart, c.DraftEnd, c.Old) {
				keep = append(keep, m)
				break
			}
		}
	}
	return Authorship{Spans: a.Spans, Marks: keep}
}

// Encode is the stored form (kept in the draft's snapshots).
func (a Authorship) Encode() []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic("changes: encode authorship: " + err.Error()) // plain data cannot fail
	}
	return b
}

// Decode reads Encode's output; empty input is New(n).
func Decode(b []byte, n int) (Authorship, error) {
	if len(b) == 0 {
		return New(n), nil
	}
	var a Authorship
	if err := json.Unmarshal(b, &a); err != nil {
		return Authorship{}, fmt.Errorf("decode authorship: %w", err)
	}
	if a.Len() != n {
		return Authorship{}, fmt.Errorf("authorship covers %d code points; the text has %d", a.Len(), n)
	}
	return a, nil
}

// Blame is one run of the draft with its author, in code points.
type Blame struct {
	Start  int    `json:"start"`
	End    int    `json:"end"`
	Author string `json:"author"`
}

// Blame lists the spans with their positions.
func (a Authorship) Blame() []Blame {
	out := make([]Blame, 0, len(a.Spans))
	pos := 0
	for _, s := range a.Spans {
		out = append(out, Blame{Start: pos, End: pos + s.Len, Author: s.Author})
		pos += s.Len
	}
	return out
}

// explains reports whether deletion mark m accounts for (part of) the old
// wording of a hunk at draft range [start, end].
func explains(m Mark, start, end int, old string) bool {
	slack := utf8.RuneCountInString(old)
	if m.Pos < start-slack || m.Pos > end+slack {
		return false
	}
	if m.Text == "" || strings.Contains(old, m.Text) || strings.Contains(m.Text, old) {
		return true
	}
	return overlaps(m.Text, old)
}

// overlaps reports whether a and b share a common substring of at least
// half the shorter one: a deletion seen through a diff that slid it along
// equal text keeps most of its text. Long texts are compared by their ends
// only, to bound the cost.
func overlaps(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	const limit = 512
	if len(ra) > limit {
		ra = ra[:limit]
	}
	if len(rb) > limit {
		rb = rb[:limit]
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
