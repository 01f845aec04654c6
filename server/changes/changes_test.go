package changes

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"communique/ot"
)

func TestComputeHunks(t *testing.T) {
	approved := "Participants agreed that an open cyberspace supports growth in every region. Capacity building matters."
	draft, a := run(t, approved, []step{
		{"KOR", "open", "open and secure"},
		{"GBR", "growth", "inclusive growth"},
		{"HUN", " Capacity building matters.", ""},
		{"NLD", "Participants", "All participants"},
	})
	cs := Compute(approved, draft, a)
	type hunk struct {
		old, new string
		authors  []string
	}
	want := []hunk{
		{"P", "All p", []string{"NLD"}},
		{"", "and secure ", []string{"KOR"}},
		{"", "inclusive ", []string{"GBR"}},
		{" Capacity building matters.", "", []string{"HUN"}},
	}
	if len(cs) != len(want) {
		t.Fatalf("Compute = %+v; want %d hunks", cs, len(want))
	}
	for i, w := range want {
		c := cs[i]
		if c.Old != w.old || c.New != w.new || !slices.Equal(c.Authors, w.authors) {
			t.Errorf("hunk %d = %q -> %q by %v; want %q -> %q by %v", i, c.Old, c.New, c.Authors, w.old, w.new, w.authors)
		}
		if got := string([]rune(approved)[c.ApprovedStart:c.ApprovedEnd]); got != c.Old {
			t.Errorf("hunk %d: approved[%d:%d] = %q; want Old %q", i, c.ApprovedStart, c.ApprovedEnd, got, c.Old)
		}
		if got := string([]rune(draft)[c.DraftStart:c.DraftEnd]); got != c.New {
			t.Errorf("hunk %d: draft[%d:%d] = %q; want New %q", i, c.DraftStart, c.DraftEnd, got, c.New)
		}
		if c.Authors == nil {
			t.Errorf("hunk %d: Authors is nil; want a list", i)
		}
	}
}

func TestComputeIDs(t *testing.T) {
	approved := "alpha beta gamma delta epsilon"
	draft1, a1 := run(t, approved, []step{{"KOR", "gamma", "gamma GAMMA"}})
	c1 := Compute(approved, draft1, a1)
	if len(c1) != 1 {
		t.Fatalf("changes = %+v; want 1", c1)
	}
	id := c1[0].ID

	// Another hunk appears before it and moves it: same id.
	// (run tracks authorship from draft1 only; ids never depend on it.)
	draft2, a2 := run(t, draft1, []step{{"GBR", "alpha", "ALPHA alpha"}})
	c2 := Compute(approved, draft2, a2)
	if len(c2) != 2 {
		t.Fatalf("changes = %+v; want 2", c2)
	}
	if c2[1].ID != id || c2[1].DraftStart == c1[0].DraftStart {
		t.Errorf("moved hunk: id %s at %d; want id %s at a new position (was %d)", c2[1].ID, c2[1].DraftStart, id, c1[0].DraftStart)
	}
	if c2[0].ID == id {
		t.Errorf("the new hunk has the old hunk's id %s", id)
	}

	// Its wording changes: a new id.
	draft3, _ := run(t, draft1, []step{{"KOR", "GAMMA", "GAMMA!"}})
	c3 := Compute(approved, draft3, New(len([]rune(draft3))))
	if len(c3) != 1 || c3[0].ID == id {
		t.Errorf("reworded hunk %+v; want one hunk with an id other than %s", c3, id)
	}

	// The id does not depend on who wrote it.
	if c := Compute(approved, draft1, New(len([]rune(draft1)))); c[0].ID != id {
		t.Errorf("id without authorship = %s; want %s", c[0].ID, id)
	}
}

func TestComputeDuplicateHunks(t *testing.T) {
	approved := "We note one. We note two. We note three."
	draft := "We firmly note one. We note two. We firmly note three."
	cs := Compute(approved, draft, New(len([]rune(draft))))
	if len(cs) != 2 || cs[0].Old != cs[1].Old || cs[0].New != cs[1].New {
		t.Fatalf("changes = %+v; want two identical hunks", cs)
	}
	if cs[0].ID == cs[1].ID {
		t.Errorf("identical hunks share id %s; want distinct ids", cs[0].ID)
	}
	if cs[0].ID != ID(cs[0].Old, cs[0].New, 0) || cs[1].ID != ID(cs[1].Old, cs[1].New, 1) {
		t.Errorf("ids %s, %s; want ID(old, new, 0) and ID(old, new, 1)", cs[0].ID, cs[1].ID)
	}
}

func TestApproveRejectOps(t *testing.T) {
	approved := "The parties agree to meet in Seoul. Budget: 🌐 서울."
	draft, a := run(t, approved, []step{
		{"KOR", "agree", "commit"},
		{"GBR", " Budget: 🌐 서울.", ""},
		{"JPN", "The", "首尔: The"},
	})
	cs := Compute(approved, draft, a)
	if len(cs) != 3 {
		t.Fatalf("changes = %+v; want 3", cs)
	}
	wantApproved := []string{
		"首尔: The parties agree to meet in Seoul. Budget: 🌐 서울.",
		"The parties commit to meet in Seoul. Budget: 🌐 서울.",
		"The parties agree to meet in Seoul.",
	}
	wantRejected := []string{
		"The parties commit to meet in Seoul.",
		"首尔: The parties agree to meet in Seoul.",
		"首尔: The parties commit to meet in Seoul. Budget: 🌐 서울.",
	}
	for i, c := range cs {
		got, err := ot.Apply(approved, c.ApproveOp(len([]rune(approved))))
		if err != nil {
			t.Fatalf("approve %d: %v", i, err)
		}
		if got != wantApproved[i] {
			t.Errorf("approving %q -> %q gives %q; want %q", c.Old, c.New, got, wantApproved[i])
		}
		got, err = ot.Apply(draft, c.RejectOp(len([]rune(draft))))
		if err != nil {
			t.Fatalf("reject %d: %v", i, err)
		}
		if got != wantRejected[i] {
			t.Errorf("rejecting %q -> %q gives %q; want %q", c.Old, c.New, got, wantRejected[i])
		}
	}
}

// pieces are what random edits insert: multi-byte text of every width.
var pieces = []string{"a", "bc", " ", "서울", "首尔", "مر", "🌐", "👨\u200d👩\u200d👧", "e\u0301", "\r\n", "—", "the ", "agreed"}

func randomOp(r *rand.Rand, n int) ot.Op {
	pos := r.IntN(n + 1)
	del := 0
	if pos < n && r.IntN(2) == 0 {
		del = 1 + r.IntN(min(8, n-pos))
	}
	var ins strings.Builder
	if del == 0 || r.IntN(2) == 0 {
		for k := 1 + r.IntN(3); k > 0; k-- {
			ins.WriteString(pieces[r.IntN(len(pieces))])
		}
	}
	return ot.Op{}.Retain(pos).Insert(ins.String()).Delete(del).Retain(n - pos - del)
}

// TestComputeProperties: after random ops by random authors the authorship
// covers the text exactly, agrees code point by code point with a naive
// model, and the changes of Compute carry approved to draft (approving all)
// and draft back to approved (rejecting all), each applied last to first.
func TestComputeProperties(t *testing.T) {
	authors := []string{"KOR", "GBR", "HUN", "chair"}
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		approved := "Participants agreed that 서울 🌐 is open.\r\nCapacity matters."
		draft := approved
		a := New(len([]rune(draft)))
		model := make([]string, len([]rune(draft))) // author of each code point
		for i := 0; i < 1+r.IntN(30); i++ {
			n := len([]rune(draft))
			op := randomOp(r, n)
			who := authors[r.IntN(len(authors))]
			next, inv, err := ot.NewText(draft).ApplyInvert(op)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if a, err = a.Apply(op, who, deleted(inv)); err != nil {
				t.Fatalf("seed %d: authorship: %v", seed, err)
			}
			model = applyModel(model, op, who)
			draft = next.String()
			if got, want := a.Len(), len([]rune(draft)); got != want {
				t.Fatalf("seed %d step %d: Len() = %d; want %d", seed, i, got, want)
			}
		}
		if got := expand(a); !slices.Equal(got, model) {
			t.Fatalf("seed %d: authorship %v; want %v", seed, got, model)
		}
		cs := Compute(approved, draft, a)
		text := approved
		for i := len(cs) - 1; i >= 0; i-- {
			var err error
			if text, err = ot.Apply(text, cs[i].ApproveOp(len([]rune(text)))); err != nil {
				t.Fatalf("seed %d: approve %d: %v", seed, i, err)
			}
		}
		if text != draft {
			t.Errorf("seed %d: approving every change gives %q; want the draft %q", seed, text, draft)
		}
		text = draft
		for i := len(cs) - 1; i >= 0; i-- {
			var err error
			if text, err = ot.Apply(text, cs[i].RejectOp(len([]rune(text)))); err != nil {
				t.Fatalf("seed %d: reject %d: %v", seed, i, err)
			}
		}
		if text != approved {
			t.Errorf("seed %d: rejecting every change gives %q; want the approved text %q", seed, text, approved)
		}
		for _, c := range cs {
			for _, who := range c.Authors {
				if !slices.Contains(authors, who) {
					t.Errorf("seed %d: change %s names %q, who never edited", seed, c.ID, who)
				}
			}
		}
		// Encode/Decode round trip at every seed's end state.
		if b, err := Decode(a.Encode(), len([]rune(draft))); err != nil || !slices.Equal(expand(b), model) {
			t.Errorf("seed %d: Decode(Encode()) = %v, %v", seed, expand(b), err)
		}
	}
}

// applyModel is the obvious per-code-point authorship update.
func applyModel(m []string, op ot.Op, who string) []string {
	var out []string
	i := 0
	for _, c := range op {
		switch {
		case c.Retain > 0:
			out = append(out, m[i:i+c.Retain]...)
			i += c.Retain
		case c.Delete > 0:
			i += c.Delete
		default:
			for range []rune(c.Insert) {
				out = append(out, who)
			}
		}
	}
	return out
}

func expand(a Authorship) []string {
	out := []string{}
	for _, s := range a.Spans() {
		for range s.Len {
			out = append(out, s.Author)
		}
	}
	return out
}

func ExampleCompute() {
	approved := "open cyberspace"
	a, _ := New(15).Apply(ot.Op{}.Retain(5).Insert("and secure ").Retain(10), "KOR", nil)
	for _, c := range Compute(approved, "open and secure cyberspace", a) {
		fmt.Printf("%q -> %q by %v\n", c.Old, c.New, c.Authors)
	}
	// Output:
	// "" -> "and secure " by [KOR]
}
