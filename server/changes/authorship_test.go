package changes

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"communique/ot"
)

// step is one edit of a scripted session: replace the first occurrence of
// old with new, by author ("" old inserts at the start).
type step struct {
	author   string
	old, new string
}

// at builds the op replacing the first occurrence of old in text with new.
func at(t *testing.T, text, old, new string) ot.Op {
	t.Helper()
	i := strings.Index(text, old)
	if i < 0 {
		t.Fatalf("%q not in %q", old, text)
	}
	pos := len([]rune(text[:i]))
	n := len([]rune(old))
	total := len([]rune(text))
	return ot.Op{}.Retain(pos).Insert(new).Delete(n).Retain(total - pos - n)
}

// run applies steps to text and its authorship, as a session does.
func run(t *testing.T, text string, steps []step) (string, Authorship) {
	t.Helper()
	a := New(len([]rune(text)))
	for i, s := range steps {
		op := at(t, text, s.old, s.new)
		next, inv, err := ot.NewText(text).ApplyInvert(op)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if a, err = a.Apply(op, s.author, deleted(inv)); err != nil {
			t.Fatalf("step %d: authorship: %v", i, err)
		}
		text = next.String()
	}
	return text, a
}

func deleted(inv ot.Op) []string {
	var out []string
	for _, c := range inv {
		if c.Insert != "" {
			out = append(out, c.Insert)
		}
	}
	return out
}

// spansOf renders the spans of a over text as "author:text|…" for readable
// comparisons.
func spansOf(text string, a Authorship) string {
	runes := []rune(text)
	var parts []string
	pos := 0
	for _, s := range a.Spans() {
		parts = append(parts, s.Author+":"+string(runes[pos:pos+s.Len]))
		pos += s.Len
	}
	return strings.Join(parts, "|")
}

func TestAuthorshipApply(t *testing.T) {
	for _, tc := range []struct {
		name      string
		initial   string
		steps     []step
		wantText  string
		wantSpans string
		wantMarks []Mark
	}{
		{
			name:      "insert",
			initial:   "open cyberspace",
			steps:     []step{{"KOR", "cyberspace", "and secure cyberspace"}},
			wantText:  "open and secure cyberspace",
			wantSpans: ":open |KOR:and secure cyberspace",
			wantMarks: []Mark{{Pos: 26, Author: "KOR", Text: "cyberspace"}},
		},
		{
			name:      "pure insert",
			initial:   "growth in every region",
			steps:     []step{{"GBR", "", "Inclusive "}},
			wantText:  "Inclusive growth in every region",
			wantSpans: "GBR:Inclusive |:growth in every region",
		},
		{
			name:      "delete",
			initial:   "growth. Capacity matters.",
			steps:     []step{{"HUN", " Capacity matters.", ""}},
			wantText:  "growth.",
			wantSpans: ":growth.",
			wantMarks: []Mark{{Pos: 7, Author: "HUN", Text: " Capacity matters."}},
		},
		{
			name:    "replacements by different authors",
			initial: "the parties agree",
			steps: []step{
				{"KOR", "parties", "states"},
				{"GBR", "agree", "commit"},
				{"chair", "the", "All"},
			},
			wantText:  "All states commit",
			wantSpans: "chair:All|: |KOR:states|: |GBR:commit",
			wantMarks: []Mark{
				{Pos: 3, Author: "chair", Text: "the"},
				{Pos: 10, Author: "KOR", Text: "parties"},
				{Pos: 17, Author: "GBR", Text: "agree"},
			},
		},
		{
			name:      "an author rewrites another's insert",
			initial:   "ab",
			steps:     []step{{"KOR", "b", "XYZb"}, {"GBR", "Y", "y"}},
			wantText:  "aXyZb",
			wantSpans: ":a|KOR:X|GBR:y|KOR:Zb",
			wantMarks: []Mark{{Pos: 3, Author: "GBR", Text: "Y"}, {Pos: 5, Author: "KOR", Text: "b"}},
		},
		{
			name:    "multi-byte text",
			initial: "서울 🌐 summit",
			steps: []step{
				{"KOR", "🌐", "👨\u200d👩\u200d👧"}, // 1 code point out, 5 in
				{"JPN", "summit", "首尔 summit"},
			},
			wantText:  "서울 👨\u200d👩\u200d👧 首尔 summit",
			wantSpans: ":서울 |KOR:👨\u200d👩\u200d👧|: |JPN:首尔 summit",
			wantMarks: []Mark{{Pos: 8, Author: "KOR", Text: "🌐"}, {Pos: 18, Author: "JPN", Text: "summit"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, a := run(t, tc.initial, tc.steps)
			if text != tc.wantText {
				t.Fatalf("text = %q; want %q", text, tc.wantText)
			}
			if got := spansOf(text, a); got != tc.wantSpans {
				t.Errorf("spans = %q; want %q", got, tc.wantSpans)
			}
			if got, want := a.Len(), len([]rune(text)); got != want {
				t.Errorf("Len() = %d; want %d", got, want)
			}
			if !reflect.DeepEqual(a.Marks(), tc.wantMarks) {
				t.Errorf("marks = %+v; want %+v", a.Marks(), tc.wantMarks)
			}
		})
	}
}

func TestAuthorshipApplyRefusesMisfit(t *testing.T) {
	a := New(5)
	got, err := a.Apply(ot.Op{}.Retain(6), "KOR", nil)
	if !errors.Is(err, ot.ErrBadOp) {
		t.Fatalf("Apply of an op over 6 to 5 code points: err = %v; want ErrBadOp", err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("after a refused op: %+v; want unchanged %+v", got, a)
	}
}

func TestAuthorshipMarksMoveWithOps(t *testing.T) {
	text, a := run(t, "one two three four", []step{{"HUN", " three", ""}}) // mark at 7
	if want := []Mark{{Pos: 7, Author: "HUN", Text: " three"}}; !reflect.DeepEqual(a.Marks(), want) {
		t.Fatalf("marks = %+v; want %+v", a.Marks(), want)
	}
	for _, tc := range []struct {
		name    string
		s       step
		wantPos int
	}{
		{"insert before moves it right", step{"KOR", "one", "number one"}, 14},
		{"insert after leaves it", step{"KOR", "four", "four and five"}, 7},
		{"delete before moves it left", step{"GBR", "one ", ""}, 3},
		{"delete around puts it where the text was", step{"GBR", "two four", ""}, 4},
		{"insert exactly there stays left of the insert", step{"KOR", " four", " and a half four"}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b := run(t, text, []step{tc.s})
			// b starts from a fresh authorship; carry a's mark through the
			// same op instead.
			op := at(t, text, tc.s.old, tc.s.new)
			_, inv, err := ot.NewText(text).ApplyInvert(op)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Apply(op, tc.s.author, deleted(inv))
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(got.Marks(), func(m Mark) bool { return m.Author == "HUN" })
			if i < 0 {
				t.Fatalf("HUN's mark is gone: %+v", got.Marks())
			}
			if got.Marks()[i].Pos != tc.wantPos {
				t.Errorf("HUN's mark at %d; want %d", got.Marks()[i].Pos, tc.wantPos)
			}
			if len(got.Marks()) != 1+len(b.Marks()) {
				t.Errorf("marks = %+v; want HUN's and the new op's %+v", got.Marks(), b.Marks())
			}
		})
	}
}

func TestAuthorshipPrune(t *testing.T) {
	approved := "alpha beta gamma delta"
	// HUN deletes "beta " and KOR deletes "delta"; then GBR types "beta "
	// back, so only KOR's deletion is still a pending change.
	draft, a := run(t, approved, []step{
		{"HUN", "beta ", ""},
		{"KOR", " delta", ""},
		{"GBR", "gamma", "beta gamma"},
	})
	if draft != approved[:len("alpha beta gamma")] {
		t.Fatalf("draft = %q", draft)
	}
	cs := Compute(approved, draft, a)
	if len(cs) != 1 || cs[0].Old != " delta" {
		t.Fatalf("changes = %+v; want one deleting %q", cs, " delta")
	}
	p := a.Prune(cs)
	if want := []Mark{{Pos: 16, Author: "KOR", Text: " delta"}}; !reflect.DeepEqual(p.Marks(), want) {
		t.Errorf("pruned marks = %+v; want %+v", p.Marks(), want)
	}
	if !reflect.DeepEqual(p.Spans(), a.Spans()) {
		t.Errorf("Prune changed the spans: %+v; want %+v", p.Spans(), a.Spans())
	}
	if got := a.Prune(nil); got.Marks() != nil {
		t.Errorf("Prune(nil) kept %+v; want no marks", got.Marks())
	}
}

func TestAuthorshipEncodeDecode(t *testing.T) {
	text, a := run(t, "서울 🌐 summit", []step{{"KOR", "🌐", "👨\u200d👩\u200d👧"}, {"HUN", " summit", ""}})
	n := len([]rune(text))
	got, err := Decode(a.Encode(), n)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spans(), a.Spans()) || !reflect.DeepEqual(got.Marks(), a.Marks()) {
		t.Errorf("Decode(Encode(a)) = %+v, %+v; want %+v, %+v", got.Spans(), got.Marks(), a.Spans(), a.Marks())
	}
	if _, err := Decode(a.Encode(), n+1); err == nil {
		t.Errorf("Decode with the wrong length: no error; want one")
	}
	if _, err := Decode([]byte(`{"spans":[`), n); err == nil {
		t.Errorf("Decode of truncated JSON: no error; want one")
	}
	if got, err := Decode(nil, 7); err != nil || !reflect.DeepEqual(got.Spans(), []Span{{Len: 7}}) || got.Marks() != nil {
		t.Errorf("Decode(nil, 7) = %+v, %v; want New(7)", got, err)
	}
	// Stored by the first version (a flat slice each, copied per op): the
	// same JSON, read as it always was.
	old := []byte(`{"spans":[{"n":3},{"n":2,"a":"KOR"},{"n":1}],"marks":[{"p":1,"a":"HUN","t":"x"},{"p":5,"a":"GBR","t":"\u003cb\u003e"}]}`)
	got, err = Decode(old, 6)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Span{{Len: 3}, {Len: 2, Author: "KOR"}, {Len: 1}}; !reflect.DeepEqual(got.Spans(), want) {
		t.Errorf("old spans = %+v; want %+v", got.Spans(), want)
	}
	if want := []Mark{{Pos: 1, Author: "HUN", Text: "x"}, {Pos: 5, Author: "GBR", Text: "<b>"}}; !reflect.DeepEqual(got.Marks(), want) {
		t.Errorf("old marks = %+v; want %+v", got.Marks(), want)
	}
	if !bytes.Equal(got.Encode(), old) {
		t.Errorf("re-encoded %s; want %s", got.Encode(), old)
	}
	if got := New(0); got.Len() != 0 || got.Spans() != nil {
		t.Errorf("New(0) = %+v; want empty", got)
	}
}

func TestAuthorshipBlame(t *testing.T) {
	_, a := run(t, "open cyberspace", []step{{"KOR", "cyberspace", "and secure cyberspace"}})
	want := []Blame{{Start: 0, End: 5, Author: ""}, {Start: 5, End: 26, Author: "KOR"}}
	if got := a.Blame(); !reflect.DeepEqual(got, want) {
		t.Errorf("Blame() = %+v; want %+v", got, want)
	}
}

func TestAuthors(t *testing.T) {
	// Who typed [start,end) and who deleted text there.
	approved := "Participants agreed. Capacity building matters."
	draft, a := run(t, approved, []step{
		{"KOR", "agreed", "fully agreed"},
		{"HUN", " Capacity building matters.", ""},
	})
	if draft != "Participants fully agreed." {
		t.Fatalf("draft = %q", draft)
	}
	for _, tc := range []struct {
		start, end int
		old        string
		want       []string
	}{
		{13, 19, "", []string{"KOR"}},
		{0, 12, "", []string{}},
		{26, 26, " Capacity building matters.", []string{"HUN"}},
		{26, 26, "unrelated words", []string{}},
		{0, 26, " Capacity building matters.", []string{"HUN", "KOR"}},
	} {
		if got := a.Authors(tc.start, tc.end, tc.old); !slices.Equal(got, tc.want) {
			t.Errorf("Authors(%d, %d, %q) = %v; want %v", tc.start, tc.end, tc.old, got, tc.want)
		}
	}
}

func ExampleAuthorship_Apply() {
	text := "open cyberspace"
	a := New(15)
	op := ot.Op{}.Retain(5).Insert("and secure ").Retain(10)
	a, _ = a.Apply(op, "KOR", nil)
	for _, b := range a.Blame() {
		fmt.Printf("%d-%d %q\n", b.Start, b.End, b.Author)
	}
	_ = text
	// Output:
	// 0-5 ""
	// 5-16 "KOR"
	// 16-26 ""
}
