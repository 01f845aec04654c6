package ot

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/sergi/go-diff/diffmatchpatch"
)

func TestFromDiff(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want Op // nil: only the round trip is checked
	}{
		{"contract example", "Seoul 2013", "Seoul Conference 2013", Op{{Retain: 6}, {Insert: "Conference "}, {Retain: 4}}},
		{"identical", "same", "same", Op{{Retain: 4}}},
		{"both empty", "", "", Op{}},
		{"from empty", "", "首尔", Op{{Insert: "首尔"}}},
		{"to empty", "서울", "", Op{{Delete: 2}}},
		{"replace a word", "The cat sat", "The dog sat", Op{{Retain: 4}, {Insert: "dog"}, {Delete: 3}, {Retain: 4}}},
		{"emoji counts one", "a🌐b", "a🌍b", Op{{Retain: 1}, {Insert: "🌍"}, {Delete: 1}, {Retain: 1}}},
		{"ZWJ sequence member", "👨\u200d👩\u200d👧", "👨\u200d👩\u200d👦", Op{{Retain: 4}, {Insert: "👦"}, {Delete: 1}}},
		{"combining mark", "ete", "e\u0301te", Op{{Retain: 1}, {Insert: "\u0301"}, {Retain: 2}}},
		{"CRLF to LF", "a\r\nb\r\n", "a\nb\n", nil},
		{"Hangul", "서울 2013", "서울특별시 2013", Op{{Retain: 2}, {Insert: "특별시"}, {Retain: 5}}},
		{"CJK", "首尔会议", "北京会议", Op{{Insert: "北京"}, {Delete: 2}, {Retain: 2}}},
		{"Arabic", "مرحبا بالعالم", "مرحبا", Op{{Retain: 5}, {Delete: 8}}},
		{"same leading byte, different code point", "é", "è", Op{{Insert: "è"}, {Delete: 1}}},
		{"shared leading bytes", "首", "\u9980", Op{{Insert: "\u9980"}, {Delete: 1}}},
		{"long mixed text", strings.Repeat("서울 🌐 e\u0301 ", 50), strings.Repeat("서울 🌍 e ", 50), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromDiff(tt.a, tt.b)
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("FromDiff(%q, %q) mismatch (-want +got):\n%s", tt.a, tt.b, diff)
				}
			}
			if !isCanonical(got) {
				t.Errorf("FromDiff result %s is not canonical", opString(got))
			}
			if out := mustApply(t, tt.a, got); out != tt.b {
				t.Errorf("Apply(a, FromDiff(a, b)) = %q; want %q", out, tt.b)
			}
		})
	}
}

func TestFromDiffInvalidUTF8(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"a\xffb", "a\xffb", "a\ufffdb"},
		{"a\xffb", "ab", "ab"},
		{"ab", "a\xfe\xffb", "a\ufffd\ufffdb"},
		{"\xe9\xa6", "\xe9", "\ufffd"},
		{"\xc3", "\xc3\xa9", "é"},
	}
	for _, tt := range tests {
		op := FromDiff(tt.a, tt.b)
		if got, want := op.BaseLen(), utf8.RuneCountInString(tt.a); got != want {
			t.Errorf("FromDiff(%q, %q).BaseLen() = %d; want %d", tt.a, tt.b, got, want)
		}
		if got := mustApply(t, tt.a, op); got != tt.want {
			t.Errorf("Apply(%q, FromDiff(%q, %q)) = %q; want %q", tt.a, tt.a, tt.b, got, tt.want)
		}
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want []Hunk
	}{
		{"identical", "same", "same", nil},
		{"contract example", "Seoul 2013", "Seoul Conference 2013", []Hunk{
			{AStart: 6, AEnd: 6, BStart: 6, BEnd: 17, New: "Conference "},
		}},
		{"replaced word is one hunk", "The cat sat", "The dog sat", []Hunk{
			{AStart: 4, AEnd: 7, BStart: 4, BEnd: 7, Old: "cat", New: "dog"},
		}},
		{"two separate changes", "apple pie and cream", "apple tart and custard", []Hunk{
			{AStart: 6, AEnd: 9, BStart: 6, BEnd: 10, Old: "pie", New: "tart"},
			{AStart: 15, AEnd: 19, BStart: 16, BEnd: 22, Old: "ream", New: "ustard"},
		}},
		{"offsets in code points", "🌐 서울 首尔", "🌐 부산 首尔", []Hunk{
			{AStart: 2, AEnd: 4, BStart: 2, BEnd: 4, Old: "서울", New: "부산"},
		}},
		{"deletion", "مرحبا بالعالم", "مرحبا", []Hunk{
			{AStart: 5, AEnd: 13, BStart: 5, BEnd: 5, Old: " بالعالم"},
		}},
		{"from empty", "", "x", []Hunk{{BEnd: 1, New: "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.a, tt.b)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff(%q, %q) mismatch (-want +got):\n%s", tt.a, tt.b, diff)
			}
			if err := checkHunks(tt.a, tt.b, got); err != "" {
				t.Error(err)
			}
		})
	}
}

// checkHunks verifies that hunks are ordered, separated by unchanged text,
// consistent with their offsets, and rebuild b from a.
func checkHunks(a, b string, hunks []Hunk) string {
	ra, rb := []rune(validUTF8(a)), []rune(validUTF8(b))
	var out []rune
	ai, bi := 0, 0
	for i, h := range hunks {
		if h.AStart < ai || h.AEnd < h.AStart || h.AEnd > len(ra) || h.BStart < bi || h.BEnd < h.BStart || h.BEnd > len(rb) {
			return "hunk offsets out of order or range: " + cmp.Diff(nil, h)
		}
		if i > 0 && h.AStart == ai {
			return "two hunks with no unchanged text between them"
		}
		if h.Old == "" && h.New == "" {
			return "empty hunk"
		}
		if string(ra[h.AStart:h.AEnd]) != h.Old || string(rb[h.BStart:h.BEnd]) != h.New {
			return "hunk text does not match its offsets"
		}
		// The unchanged text before the hunk is the same in a and b.
		if h.AStart-ai != h.BStart-bi || string(ra[ai:h.AStart]) != string(rb[bi:h.BStart]) {
			return "text between hunks differs"
		}
		out = append(out, ra[ai:h.AStart]...)
		out = append(out, []rune(h.New)...)
		ai, bi = h.AEnd, h.BEnd
	}
	out = append(out, ra[ai:]...)
	if string(out) != string(rb) {
		return "hunks do not rebuild b"
	}
	return ""
}

// TestAlignedEqualRanges feeds the alignment step diffs whose pieces split
// code points, as go-diff's cleanup passes can produce on multi-byte text:
// the concatenation is right but single diffs are not valid UTF-8.
func TestAlignedEqualRanges(t *testing.T) {
	eq := func(s string) diffmatchpatch.Diff {
		return diffmatchpatch.Diff{Type: diffmatchpatch.DiffEqual, Text: s}
	}
	ins := func(s string) diffmatchpatch.Diff {
		return diffmatchpatch.Diff{Type: diffmatchpatch.DiffInsert, Text: s}
	}
	del := func(s string) diffmatchpatch.Diff {
		return diffmatchpatch.Diff{Type: diffmatchpatch.DiffDelete, Text: s}
	}
	tests := []struct {
		name  string
		a, b  string
		diffs []diffmatchpatch.Diff
		want  []eqRange
		ok    bool
	}{
		{
			name: "edit shifted by a byte into é",
			a:    "aéZ", b: "aéxéZ",
			diffs: []diffmatchpatch.Diff{eq("a\xc3"), ins("\xa9x\xc3"), eq("\xa9Z")},
			want:  []eqRange{{a: 0, b: 0, len: 1}, {a: 3, b: 6, len: 1}},
			ok:    true,
		},
		{
			name: "equal piece ends with a lead byte",
			a:    "xé", b: "xê",
			diffs: []diffmatchpatch.Diff{eq("x\xc3"), del("\xa9"), ins("\xaa")},
			want:  []eqRange{{a: 0, b: 0, len: 1}},
			ok:    true,
		},
		{
			name: "equal piece of continuation bytes only",
			a:    "首", b: "\u9980",
			diffs: []diffmatchpatch.Diff{eq("\xe9"), eq("\xa6"), del("\x96"), ins("\x80")},
			want:  nil,
			ok:    true,
		},
		{
			name: "well-formed diff kept as is",
			a:    "서울 x", b: "서울 y",
			diffs: []diffmatchpatch.Diff{eq("서울 "), del("x"), ins("y")},
			want:  []eqRange{{a: 0, b: 0, len: 7}},
			ok:    true,
		},
		{
			name: "diff that does not tile a is refused",
			a:    "abc", b: "abc",
			diffs: []diffmatchpatch.Diff{eq("ab")},
			ok:    false,
		},
		{
			name: "diff with wrong text is refused",
			a:    "abc", b: "abd",
			diffs: []diffmatchpatch.Diff{eq("ab"), del("x"), ins("d")},
			ok:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := alignedEqualRanges(tt.a, tt.b, tt.diffs)
			if ok != tt.ok {
				t.Fatalf("ok = %v; want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(eqRange{})); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			for _, e := range got {
				for _, s := range []string{tt.a[e.a : e.a+e.len], tt.b[e.b : e.b+e.len]} {
					if !utf8.ValidString(s) {
						t.Errorf("range %+v is not whole code points: %q", e, s)
					}
				}
			}
		})
	}
}

func TestPrefixSuffixFallback(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"", ""}, {"abc", "abc"}, {"首a", "首a"}, {"a首", "a首"}, {"aXb", "aYYb"}, {"🌐🌐", "🌐"}, {"é", "è"},
	} {
		a, b := tt.a, tt.b
		eqs := prefixSuffixRanges(a, b)
		pa, pb := 0, 0
		for _, e := range eqs {
			if e.a < pa || e.b < pb || a[e.a:e.a+e.len] != b[e.b:e.b+e.len] || !utf8.ValidString(a[e.a:e.a+e.len]) {
				t.Errorf("prefixSuffixRanges(%q, %q) = %+v: bad range %+v", a, b, eqs, e)
			}
			if !utf8.ValidString(a[pa:e.a]) || !utf8.ValidString(b[pb:e.b]) {
				t.Errorf("prefixSuffixRanges(%q, %q) = %+v: gap splits a code point", a, b, eqs)
			}
			pa, pb = e.a+e.len, e.b+e.len
		}
	}
}

// TestDiffByParagraph: long texts are diffed line by line, then character
// by character inside the changed lines; the hunks still rebuild b from a,
// are as small as the edits, and an edit far away leaves the others as
// they were.
func TestDiffByParagraph(t *testing.T) {
	var a strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&a, "%d. The participants affirm 서울 🌐 principle number %d of open and secure cyberspace.\n", i, i)
	}
	base := a.String()
	if len(base)*2 < byParagraphBytes {
		t.Fatalf("text of %d bytes: too short to be diffed by paragraph", len(base))
	}
	edit := func(s string, line int, old, new string) string {
		t.Helper()
		ls := strings.SplitAfter(s, "\n")
		if !strings.Contains(ls[line], old) {
			t.Fatalf("line %d %q has no %q", line, ls[line], old)
		}
		ls[line] = strings.Replace(ls[line], old, new, 1)
		return strings.Join(ls, "")
	}
	b := edit(base, 10, "open", "free, open")
	b = edit(b, 1500, "secure", "resilient")
	b = edit(b, 2999, "affirm", "reaffirm")
	b = edit(b, 700, "서울 🌐 ", "")
	hunks := Diff(base, b)
	if len(hunks) != 4 {
		t.Fatalf("%d hunks %+v; want the 4 edits", len(hunks), hunks)
	}
	for _, h := range hunks {
		if len(h.Old)+len(h.New) > 24 {
			t.Errorf("hunk %+v is larger than its edit", h)
		}
	}
	op := FromDiff(base, b)
	if got, err := Apply(base, op); err != nil || got != b {
		t.Fatalf("FromDiff does not rebuild b: %v", err)
	}
	// An edit elsewhere leaves the other hunks' wording as it was.
	c := edit(b, 2000, "principle", "Principle")
	again := Diff(base, c)
	if len(again) != 5 {
		t.Fatalf("%d hunks after a fifth edit; want 5", len(again))
	}
	kept := 0
	for _, h := range again {
		for _, g := range hunks {
			if h.Old == g.Old && h.New == g.New {
				kept++
			}
		}
	}
	if kept != 4 {
		t.Errorf("%d of the 4 earlier hunks kept their wording; want all", kept)
	}
}

// TestPropDiffByParagraph: random long texts and random edits (lines
// joined, split, moved, multi-byte text) diffed by paragraph always rebuild
// the target, through FromDiff and through the hunks.
func TestPropDiffByParagraph(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 13))
	words := []string{"the", "Seoul", "Framework", "서울", "首尔", "مؤتمر", "🌐", "👨\u200d👩\u200d👧", "e\u0301", "\r\n", "\n", "—", " "}
	text := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			if r.IntN(8) == 0 {
				b.WriteString("\n")
			}
		}
		return b.String()
	}
	for i := range 20 {
		a := text(byParagraphBytes/2 + 4000)
		ra := []rune(a)
		b := ra
		for range 1 + r.IntN(40) {
			p := r.IntN(len(b) + 1)
			switch r.IntN(3) {
			case 0:
				b = slices.Insert(slices.Clone(b), p, []rune(text(1+r.IntN(60)))...)
			case 1:
				b = slices.Delete(slices.Clone(b), p, min(len(b), p+1+r.IntN(80)))
			default: // move a block
				q := min(len(b), p+1+r.IntN(400))
				blk := slices.Clone(b[p:q])
				b = slices.Delete(slices.Clone(b), p, q)
				at := r.IntN(len(b) + 1)
				b = slices.Insert(b, at, blk...)
			}
		}
		bs := string(b)
		if got, err := Apply(a, FromDiff(a, bs)); err != nil || got != bs {
			t.Fatalf("case %d: FromDiff does not rebuild b (%v)", i, err)
		}
		rebuilt, at := []rune(a), 0
		var out []rune
		for _, h := range Diff(a, bs) {
			out = append(out, rebuilt[at:h.AStart]...)
			out = append(out, []rune(h.New)...)
			if string(rebuilt[h.AStart:h.AEnd]) != h.Old {
				t.Fatalf("case %d: hunk %+v: Old is not a's text there", i, h)
			}
			at = h.AEnd
		}
		out = append(out, rebuilt[at:]...)
		if string(out) != bs {
			t.Fatalf("case %d: the hunks do not rebuild b", i)
		}
	}
}
