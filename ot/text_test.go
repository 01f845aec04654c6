package ot

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestTextBasics(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // String() of the text
		len  int
	}{
		{"empty", "", "", 0},
		{"ASCII", "Seoul 2013", "Seoul 2013", 10},
		{"emoji", "🌐", "🌐", 1},
		{"ZWJ sequence", "👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧", 5},
		{"combining mark", "e\u0301", "e\u0301", 2},
		{"CRLF", "a\r\nb", "a\r\nb", 4},
		{"Hangul CJK Arabic", "서울首尔مرحبا", "서울首尔مرحبا", 9},
		{"invalid UTF-8 becomes U+FFFD per byte", "a\xff\xfeb", "a\ufffd\ufffdb", 4},
		{"several leaves", strings.Repeat("首尔🌐 ", 1000), strings.Repeat("首尔🌐 ", 1000), 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txt := NewText(tt.in)
			if got := txt.String(); got != tt.want {
				t.Errorf("String() = %q; want %q", got, tt.want)
			}
			if got := txt.Len(); got != tt.len {
				t.Errorf("Len() = %d; want %d", got, tt.len)
			}
			if msg := checkTree(txt); msg != "" {
				t.Errorf("tree invariant: %s", msg)
			}
		})
	}
	var zero Text
	if zero.Len() != 0 || zero.String() != "" || zero.Slice(0, 5) != "" {
		t.Errorf("zero Text is not empty")
	}
	if got, err := zero.Apply(Op{{Insert: "서울"}}); err != nil || got.String() != "서울" {
		t.Errorf("zero Text Apply = %q, %v; want 서울", got.String(), err)
	}
}

func TestTextSlice(t *testing.T) {
	s := "a🌐b👨\u200d👩\u200d👧e\u0301\r\n서울首尔مرحبا"
	long := NewText(strings.Repeat(s, 200)) // many leaves
	short := NewText(s)
	rs := []rune(s)
	tests := []struct {
		name     string
		from, to int
		want     string
	}{
		{"whole", 0, len(rs), s},
		{"emoji", 1, 2, "🌐"},
		{"inside ZWJ sequence", 4, 6, "\u200d👩"},
		{"combining mark alone", 9, 10, "\u0301"},
		{"CRLF", 10, 12, "\r\n"},
		{"Hangul to Arabic", 12, 17, "서울首尔م"},
		{"empty range", 3, 3, ""},
		{"inverted range", 5, 2, ""},
		{"clamped below", -5, 1, "a"},
		{"clamped above", 17, 1000, "رحبا"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := short.Slice(tt.from, tt.to); got != tt.want {
				t.Errorf("Slice(%d, %d) = %q; want %q", tt.from, tt.to, got, tt.want)
			}
		})
	}
	// Every range of the long text, sampled, agrees with []rune slicing.
	lr := []rune(long.String())
	r := rand.New(rand.NewPCG(7, 7))
	for range 500 {
		from := r.IntN(len(lr) + 1)
		to := from + r.IntN(min(len(lr)-from, 3000)+1)
		if got, want := long.Slice(from, to), string(lr[from:to]); got != want {
			t.Fatalf("long Slice(%d, %d) = %q; want %q", from, to, got, want)
		}
	}
}

func TestTextApply(t *testing.T) {
	for _, tt := range applyCases {
		t.Run(tt.name, func(t *testing.T) {
			txt := NewText(tt.text)
			got, err := txt.Apply(tt.op)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got.String() != tt.want {
				t.Errorf("Apply = %q; want %q", got.String(), tt.want)
			}
			if got.Len() != utf8.RuneCountInString(tt.want) {
				t.Errorf("Len() = %d; want %d", got.Len(), utf8.RuneCountInString(tt.want))
			}
			if txt.String() != validUTF8(tt.text) {
				t.Errorf("receiver changed to %q", txt.String())
			}
			got2, inv, err := txt.ApplyInvert(tt.op)
			if err != nil {
				t.Fatalf("ApplyInvert: %v", err)
			}
			if got2.String() != tt.want {
				t.Errorf("ApplyInvert text = %q; want %q", got2.String(), tt.want)
			}
			back, err := got2.Apply(inv)
			if err != nil {
				t.Fatalf("applying inverse %s: %v", opString(inv), err)
			}
			if back.String() != txt.String() {
				t.Errorf("inverse gives %q; want %q", back.String(), txt.String())
			}
		})
	}
}

func TestTextApplyErrors(t *testing.T) {
	for _, tt := range applyErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			txt := NewText(tt.text)
			got, err := txt.Apply(tt.op)
			if !errors.Is(err, ErrBadOp) {
				t.Fatalf("Apply = %v; want ErrBadOp", err)
			}
			if got.String() != txt.String() {
				t.Errorf("on error Apply returned %q; want the unchanged %q", got.String(), txt.String())
			}
			if _, inv, err := txt.ApplyInvert(tt.op); !errors.Is(err, ErrBadOp) || inv != nil {
				t.Errorf("ApplyInvert = %v, %v; want nil, ErrBadOp", inv, err)
			}
		})
	}
}

// TestTextLargeEdits drives the rope through growth, large inserts, deletes
// spanning many leaves and shrinking back to nothing, checking the tree
// invariants and the content against a plain string after every step.
func TestTextLargeEdits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	model := ""
	txt := Text{}
	apply := func(op Op) {
		t.Helper()
		var err error
		want, err := Apply(model, op)
		if err != nil {
			t.Fatalf("model Apply: %v", err)
		}
		got, err := txt.Apply(op)
		if err != nil {
			t.Fatalf("Text.Apply(%.80s): %v", opString(op), err)
		}
		if msg := checkTree(got); msg != "" {
			t.Fatalf("after %.80s: tree invariant: %s", opString(op), msg)
		}
		if got.Len() != utf8.RuneCountInString(want) || got.String() != want {
			t.Fatalf("after %.80s: text differs from model", opString(op))
		}
		model, txt = want, got
	}
	big := strings.Repeat("서울 🌐 Seoul e\u0301\r\n", 5000) // ~125k code points
	apply(Op{}.Insert(big))
	for i := 0; i < 300; i++ {
		n := txt.Len()
		pos := r.IntN(n + 1)
		switch r.IntN(4) {
		case 0: // large insert
			apply(Op{}.Retain(pos).Insert(strings.Repeat(randText(r, 20), 1+r.IntN(200))).Retain(n - pos))
		case 1: // delete spanning many leaves
			d := r.IntN(min(n-pos, 20000) + 1)
			apply(Op{}.Retain(pos).Delete(d).Retain(n - pos - d))
		default: // several small scattered edits in one op
			apply(randSparseOp(r, n, 1+r.IntN(50)))
		}
	}
	// Shrink in big bites down to nothing.
	for txt.Len() > 0 {
		n := txt.Len()
		d := min(n, 1+r.IntN(30000))
		pos := r.IntN(n - d + 1)
		apply(Op{}.Retain(pos).Delete(d).Retain(n - pos - d))
	}
	if txt.root != nil {
		t.Errorf("empty text still has a root")
	}
}

// TestTextHugeInsert pastes megabytes into the middle of a document: the
// new leaves must be spread over new levels and the tree stay balanced.
func TestTextHugeInsert(t *testing.T) {
	base := strings.Repeat("abc 서울\n", 1000)
	paste := strings.Repeat("首尔 🌐 e\u0301 مرحبا\r\n", 100000) // ~3 MB
	txt := NewText(base)
	n := txt.Len()
	got, err := txt.Apply(Op{}.Retain(n / 2).Insert(paste).Retain(n - n/2))
	if err != nil {
		t.Fatal(err)
	}
	if msg := checkTree(got); msg != "" {
		t.Fatal(msg)
	}
	rb := []rune(base)
	if want := string(rb[:n/2]) + paste + string(rb[n/2:]); got.String() != want {
		t.Fatal("content differs after the paste")
	}
	// And cut most of it out again, across many subtrees.
	m := got.Len()
	cut, err := got.Apply(Op{}.Retain(10).Delete(m - 20).Retain(10))
	if err != nil {
		t.Fatal(err)
	}
	if msg := checkTree(cut); msg != "" {
		t.Fatal(msg)
	}
	if want := got.Slice(0, 10) + got.Slice(m-10, m); cut.String() != want {
		t.Fatalf("after the cut: %q; want %q", cut.String(), want)
	}
}

// TestTextTyping is the common case: many single-character edits near one
// another, checked against a string model.
func TestTextTyping(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	model := []rune(strings.Repeat("首尔 Seoul 🌐\n", 300))
	txt := NewText(string(model))
	cursor := len(model) / 2
	for i := range 20000 {
		n := len(model)
		cursor = max(0, min(n, cursor+r.IntN(7)-3))
		var op Op
		if r.IntN(3) == 0 && cursor > 0 {
			op = Op{}.Retain(cursor - 1).Delete(1).Retain(n - cursor)
			model = append(model[:cursor-1], model[cursor:]...)
			cursor--
		} else {
			p := []rune(pieces[r.IntN(len(pieces))])[:1]
			op = Op{}.Retain(cursor).Insert(string(p)).Retain(n - cursor)
			model = append(model[:cursor], append(p, model[cursor:]...)...)
			cursor++
		}
		var err error
		if txt, err = txt.Apply(op); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		if i%1000 == 0 {
			if msg := checkTree(txt); msg != "" {
				t.Fatalf("edit %d: %s", i, msg)
			}
		}
	}
	if txt.String() != string(model) {
		t.Fatalf("text differs from model")
	}
	if msg := checkTree(txt); msg != "" {
		t.Fatal(msg)
	}
}

// TestTextSnapshotsConcurrent keeps old versions while editing and reads
// them from other goroutines; run with -race to check that Apply never
// writes to shared nodes.
func TestTextSnapshotsConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	txt := NewText(strings.Repeat("서울 Seoul 🌐 ", 2000))
	type snap struct {
		t Text
		s string
	}
	snaps := []snap{{txt, txt.String()}}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 200 {
		var err error
		if txt, err = txt.Apply(randSparseOp(r, txt.Len(), 5)); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			s := snap{txt, txt.String()}
			snaps = append(snaps, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if s.t.String() != s.s || s.t.Slice(10, 50) != string([]rune(s.s)[10:50]) {
						errs <- "snapshot changed while later versions were edited"
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i, s := range snaps {
		if s.t.String() != s.s {
			t.Errorf("snapshot %d changed", i)
		}
	}
}

// TestCheckTree makes sure the invariant checker used above catches broken
// trees, so its silence means something.
func TestCheckTree(t *testing.T) {
	leaf := func(s string) *node { return newLeaf(s, utf8.RuneCountInString(s)) }
	full := strings.Repeat("x", minLeaf)
	tests := []struct {
		name string
		t    Text
		bad  bool
	}{
		{"small root leaf is fine", Text{root: leaf("a")}, false},
		{"two full leaves", Text{root: newInner([]*node{leaf(full), leaf(full)})}, false},
		{"underfull leaf", Text{root: newInner([]*node{leaf("a"), leaf(full)})}, true},
		{"root with one child", Text{root: newInner([]*node{leaf(full)})}, true},
		{"oversized leaf", Text{root: leaf(strings.Repeat("x", maxLeaf+1))}, true},
		{"wrong counts", Text{root: &node{runes: 5, bytes: 1, text: "a"}}, true},
		{"uneven depth", Text{root: newInner([]*node{leaf(full), newInner([]*node{leaf(full), leaf(full)})})}, true},
	}
	for _, tt := range tests {
		if msg := checkTree(tt.t); (msg != "") != tt.bad {
			t.Errorf("%s: checkTree = %q; want bad=%v", tt.name, msg, tt.bad)
		}
	}
}
