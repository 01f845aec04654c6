package changes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"communique/ot"
)

// flat is the authorship as it was first kept: a slice of spans and a
// sorted slice of marks, copied by every op.
type flat struct {
	Spans []Span
	Marks []Mark
}

// applyReference is Apply as it was first written (one TransformIndex walk
// per mark, a sort of all marks, span-by-span copying) on the flat form:
// the tree's Apply must give exactly the same spans and marks for every
// input.
func applyReference(a flat, op ot.Op, author string, deleted []string) flat {
	out := flat{Spans: make([]Span, 0, len(a.Spans)+2)}
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
	for _, m := range a.Marks {
		out.Marks = append(out.Marks, Mark{Pos: ot.TransformIndex(m.Pos, op, false), Author: m.Author, Text: m.Text})
	}
	i, off, pos := 0, 0, 0
	take := func(n int, keep bool) {
		for n > 0 {
			s := a.Spans[i]
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
			n := ot.NewText(c.Insert).Len()
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
	if len(out.Marks) == 0 {
		out.Marks = nil
	} else {
		slices.SortFunc(out.Marks, compareMarks)
		out.Marks = slices.Compact(out.Marks)
	}
	return out
}

// explainsReference is explains as first written: a code point by code
// point longest-common-substring table for the overlap.
func explainsReference(m Mark, start, end int, old string) bool {
	slack := utf8.RuneCountInString(old)
	if m.Pos < start-slack || m.Pos > end+slack {
		return false
	}
	if m.Text == "" || strings.Contains(old, m.Text) || strings.Contains(m.Text, old) {
		return true
	}
	return overlapsRunes(m.Text, old)
}

// authorsReference and pruneReference are Authors and Prune as first
// written, over every span and every mark.
func authorsReference(a flat, start, end int, old string) []string {
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
			if explainsReference(m, start, end, old) {
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

func pruneReference(a flat, cs []Change) flat {
	var keep []Mark
	for _, m := range a.Marks {
		for _, c := range cs {
			if c.Old != "" && explainsReference(m, c.DraftStart, c.DraftEnd, c.Old) {
				keep = append(keep, m)
				break
			}
		}
	}
	return flat{Spans: a.Spans, Marks: keep}
}

// checkSame fails unless a lists exactly want's spans and marks (an empty
// list and none are the same) and a's trees are sound.
func checkSame(t *testing.T, where string, a Authorship, want flat) {
	t.Helper()
	gs, gm := a.Spans(), a.Marks()
	if len(gs) != len(want.Spans) || len(gs) > 0 && !reflect.DeepEqual(gs, want.Spans) {
		t.Fatalf("%s: spans\n got %+v\nwant %+v", where, gs, want.Spans)
	}
	if len(gm) != len(want.Marks) || len(gm) > 0 && !reflect.DeepEqual(gm, want.Marks) {
		t.Fatalf("%s: marks\n got %+v\nwant %+v", where, gm, want.Marks)
	}
	checkTree(t, where+": spans", a.spans)
	checkTree(t, where+": marks", a.marks)
}

// checkTree fails unless x is a sound tree: every leaf at one depth, the
// cached weights and counts right, no node over its size, none empty,
// weights never negative, and the depth logarithmic in the items.
func checkTree[T item](t *testing.T, where string, x *node[T]) {
	t.Helper()
	if x == nil {
		return
	}
	leafDepth := -1
	var walk func(x *node[T], depth int) (w, n int)
	walk = func(x *node[T], depth int) (w, n int) {
		if x.leaf() {
			if leafDepth < 0 {
				leafDepth = depth
			} else if depth != leafDepth {
				t.Fatalf("%s: leaves at depths %d and %d", where, leafDepth, depth)
			}
			if len(x.items) == 0 || len(x.items) > maxItems {
				t.Fatalf("%s: leaf of %d items", where, len(x.items))
			}
			for _, it := range x.items {
				if it.weight() < 0 {
					t.Fatalf("%s: negative weight %+v", where, it)
				}
				w += it.weight()
			}
			n = len(x.items)
		} else {
			if len(x.kids) == 0 || len(x.kids) > maxKids {
				t.Fatalf("%s: inner node of %d children", where, len(x.kids))
			}
			for _, k := range x.kids {
				kw, kn := walk(k, depth+1)
				w, n = w+kw, n+kn
			}
		}
		if w != x.w || n != x.n {
			t.Fatalf("%s: node caches weight %d, %d items; holds %d, %d", where, x.w, x.n, w, n)
		}
		return w, n
	}
	_, n := walk(x, 0)
	// A tree whose non-root nodes were all a quarter full would be
	// shallower; allow twice that for nodes merged lazily.
	bound := 2
	for c := minItems; c < n; c *= minKids {
		bound += 2
	}
	if leafDepth > bound {
		t.Fatalf("%s: depth %d for %d items", where, leafDepth, n)
	}
}

// randomComponents builds an op over n code points with several
// components; now and then it appends them raw, not merged and with a
// delete before an insert (valid, though not canonical).
func randomComponents(rng *rand.Rand, n int, words []string) ot.Op {
	raw := rng.IntN(4) == 0
	var op ot.Op
	add := func(c ot.Component) {
		switch {
		case raw:
			op = append(op, c)
		case c.Retain > 0:
			op = op.Retain(c.Retain)
		case c.Delete > 0:
			op = op.Delete(c.Delete)
		default:
			op = op.Insert(c.Insert)
		}
	}
	for left := n; ; {
		switch k := rng.IntN(4); {
		case k == 0 && left > 0:
			r := 1 + rng.IntN(left)
			add(ot.Component{Retain: r})
			left -= r
		case k == 1 && left > 0:
			d := 1 + rng.IntN(min(left, 4))
			add(ot.Component{Delete: d})
			left -= d
		case k == 2:
			add(ot.Component{Insert: words[rng.IntN(len(words))]})
		}
		if left == 0 && rng.IntN(3) == 0 {
			return op
		}
	}
}

// TestAuthorshipApplyMatchesReference drives Apply and applyReference
// through random sessions — several components per op, inserts at marks,
// deletes across marks and spans, repeated marks, ops not in canonical
// form — and, now and then, an authorship whose spans are not merged and
// whose marks are out of order (a hand-made value): the results must be
// equal at every step.
func TestAuthorshipApplyMatchesReference(t *testing.T) {
	authors := []string{"", "KOR", "GBR", "chair"}
	words := []string{"a", "서울", "🌐", "e\u0301", "\xff", "ab cd"}
	texts := []string{"z", "zz", "y", "zzz"}
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		n := 1 + rng.IntN(40)
		ref := flat{Spans: []Span{{Len: n}}}
		if seed%5 == 0 {
			// Hand-made: split spans with equal neighbours, unsorted marks.
			ref = flat{Spans: []Span{{Len: n / 2, Author: "KOR"}, {Len: n - n/2, Author: "KOR"}},
				Marks: []Mark{{Pos: n, Author: "GBR", Text: "x"}, {Pos: 0, Author: "KOR"}, {Pos: n / 2, Author: "GBR", Text: "x"}}}
			if n/2 == 0 {
				ref.Spans = ref.Spans[1:]
			}
		}
		a := Build(ref.Spans, ref.Marks)
		for step := 0; step < 60; step++ {
			op := randomComponents(rng, n, words)
			var del []string
			for _, c := range op {
				if c.Delete > 0 {
					del = append(del, texts[rng.IntN(len(texts))])
				}
			}
			who := authors[rng.IntN(len(authors))]
			if rng.IntN(4) == 0 {
				del = nil
			}
			got, err := a.Apply(op, who, del)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			ref = applyReference(ref, op, who, del)
			checkSame(t, fmt.Sprintf("seed %d step %d: op %v", seed, step, op), got, ref)
			a, n = got, op.TargetLen()
		}
	}
}

// TestAuthorshipTreeMatchesReference runs long sessions on a real text, so
// that both trees grow several levels deep and deletes reach across leaves
// and subtrees: spans, marks, Authors of random ranges, Prune against the
// pending changes, Encode (the bytes encoding/json makes) and Decode must
// all agree with the flat reference. Now and then both sides are pruned,
// as a session's snapshot does, and the session goes on from there.
// (Not t.Parallel: the race detector makes it slow enough.)
func TestAuthorshipTreeMatchesReference(t *testing.T) {
	authors := []string{"KOR", "GBR", "USA", "BRA", "HUN", "JPN", "CHN", "IND", "FRA", "DEU", "ITA", "chair"}
	pieces := []string{"a", "e", " ", "서", "🌐", "e\u0301", "\r\n", "<&>", "\u2028", "\x01", "\"q\""}
	steps := 1200
	if testing.Short() {
		steps = 300
	}
	for seed := uint64(0); seed < 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		// The last seeds edit a longer text with long deletes, so the
		// spans' tree is three levels deep and deletes cut across whole
		// subtrees.
		size, maxDel := 600, 6
		if seed >= 8 {
			size, maxDel = 6000, 400
		}
		approved := strings.Repeat("Participants agreed that 서울 🌐 is open. ", size/60)
		text := ot.NewText(approved)
		ref := flat{Spans: []Span{{Len: text.Len()}}}
		if seed >= 8 {
			// Start from a draft written by many hands, with many marks.
			ref.Spans = nil
			for i := 0; i < text.Len(); i += 5 {
				ref.Spans = append(ref.Spans, Span{Len: min(5, text.Len()-i), Author: authors[i/5%len(authors)]})
			}
			for i := range 1500 {
				ref.Marks = append(ref.Marks, Mark{Pos: rng.IntN(text.Len() + 1), Author: authors[i%len(authors)], Text: pieces[i%len(pieces)]})
			}
			slices.SortFunc(ref.Marks, compareMarks)
			ref.Marks = slices.Compact(ref.Marks)
		}
		a := Build(ref.Spans, ref.Marks)
		for step := range steps {
			n := text.Len()
			var op ot.Op
			if rng.IntN(5) == 0 {
				op = randomComponents(rng, n, pieces)
			} else {
				// One place: a typing run, a deletion, a replacement; more
				// deletes as the text grows, so it stays near 600.
				pos := rng.IntN(n + 1)
				del := 0
				if pos < n && rng.IntN(1000) < 300+n*500/size {
					del = 1 + rng.IntN(min(6, n-pos))
					if rng.IntN(30) == 0 {
						del = 1 + rng.IntN(min(maxDel, n-pos))
					}
				}
				var ins strings.Builder
				if del == 0 || rng.IntN(3) == 0 {
					for range 1 + rng.IntN(4) {
						ins.WriteString(pieces[rng.IntN(len(pieces))])
					}
				}
				op = ot.Op{}.Retain(pos).Insert(ins.String()).Delete(del).Retain(n - pos - del)
			}
			next, inv, err := text.ApplyInvert(op)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			del := deleted(inv)
			who := authors[rng.IntN(len(authors))]
			if a, err = a.Apply(op, who, del); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			ref = applyReference(ref, op, who, del)
			text = next
			where := fmt.Sprintf("seed %d step %d", seed, step)
			if step%100 != 99 {
				continue
			}
			checkSame(t, where, a, ref)
			for range 10 {
				start := rng.IntN(text.Len() + 1)
				end := start + rng.IntN(text.Len()-start+1)
				old := ""
				if rng.IntN(3) > 0 {
					old = del0(del, pieces[rng.IntN(len(pieces))])
				}
				if got, want := a.Authors(start, end, old), authorsReference(ref, start, end, old); !slices.Equal(got, want) {
					t.Fatalf("%s: Authors(%d, %d, %q) = %v; want %v", where, start, end, old, got, want)
				}
			}
			if step%300 != 299 {
				continue // the rest diffs the whole text: less often
			}
			cs := Compute(approved, text.String(), a)
			for _, c := range cs {
				if want := authorsReference(ref, c.DraftStart, c.DraftEnd, c.Old); !slices.Equal(c.Authors, want) {
					t.Fatalf("%s: change %+v; want authors %v", where, c, want)
				}
			}
			pa, pref := a.Prune(cs), pruneReference(ref, cs)
			checkSame(t, where+": pruned", pa, pref)
			// Rebuilt from its lists, the bytes are encoding/json's; as it
			// is, it reads back the same.
			if enc, want := Build(a.Spans(), a.Marks()).Encode(), must(json.Marshal(stored(ref))); !bytes.Equal(enc, want) {
				t.Fatalf("%s: Encode\n got %s\nwant %s", where, enc, want)
			}
			back, err := Decode(a.Encode(), text.Len())
			if err != nil {
				t.Fatalf("%s: Decode: %v", where, err)
			}
			checkSame(t, where+": decoded", back, ref)
			checkSame(t, where+": rebuilt", Build(a.Spans(), a.Marks()), ref)
			if step%600 == 599 {
				a, ref = pa, pref
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// del0 is the first deleted text of an op, or alt.
func del0(del []string, alt string) string {
	if len(del) > 0 {
		return del[0]
	}
	return alt
}

// TestOverlapsMatchesRunes: overlaps (substring search on valid UTF-8)
// answers as the code point table does, for texts of every length around
// the half-length threshold and the overlapLimit cut, in several scripts,
// and with invalid bytes (which take the table).
func TestOverlapsMatchesRunes(t *testing.T) {
	pieces := []string{"a", "b", "ab", " ", "서", "울", "🌐", "e\u0301", "\ufffd", "\xff", "\xfe", "é"}
	rng := rand.New(rand.NewPCG(5, 5))
	text := func(n int, valid bool) string {
		var b strings.Builder
		for range n {
			p := pieces[rng.IntN(len(pieces))]
			if valid && !utf8.ValidString(p) {
				p = "x"
			}
			b.WriteString(p)
		}
		return b.String()
	}
	lengths := []int{1, 2, 3, 7, 40, 255, 256, 257, 511, 512, 513, 700}
	for i := range 1500 {
		valid := i%5 != 0
		a := text(lengths[rng.IntN(len(lengths))], valid)
		b := text(lengths[rng.IntN(len(lengths))], valid)
		if rng.IntN(3) == 0 {
			// Plant a common run, often just around half the shorter one.
			ra := []rune(a)
			k := rng.IntN(len(ra))
			b = text(rng.IntN(5), valid) + string(ra[k:min(len(ra), k+1+rng.IntN(len(ra)/2+2))]) + b
		}
		if got, want := overlaps(a, b), overlapsRunes(a, b); got != want {
			t.Fatalf("overlaps(%q, %q) = %v; want %v", a, b, got, want)
		}
		m := Mark{Pos: 3, Author: "KOR", Text: a}
		o := newOldText(b)
		if got, want := o.explains(m, 0, 5), explainsReference(m, 0, 5, b); got != want {
			t.Fatalf("explains(%q in %q) = %v; want %v", a, b, got, want)
		}
	}
}
