package ot

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTransform(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		a, b      Op
		a2, b2    Op
		converged string
	}{
		{
			name: "same position inserts: a goes left",
			text: "", a: Op{{Insert: "a"}}, b: Op{{Insert: "b"}},
			a2: Op{{Insert: "a"}, {Retain: 1}}, b2: Op{{Retain: 1}, {Insert: "b"}},
			converged: "ab",
		},
		{
			name: "same position inserts, swapped roles",
			text: "", a: Op{{Insert: "b"}}, b: Op{{Insert: "a"}},
			a2: Op{{Insert: "b"}, {Retain: 1}}, b2: Op{{Retain: 1}, {Insert: "a"}},
			converged: "ba",
		},
		{
			name:      "inserts at different places",
			text:      "Seoul 2013",
			a:         Op{{Retain: 6}, {Insert: "Conference "}, {Retain: 4}},
			b:         Op{{Retain: 10}, {Insert: "!"}},
			a2:        Op{{Retain: 6}, {Insert: "Conference "}, {Retain: 5}},
			b2:        Op{{Retain: 21}, {Insert: "!"}},
			converged: "Seoul Conference 2013!",
		},
		{
			name:      "both delete the same text",
			text:      "abcdef",
			a:         Op{{Retain: 1}, {Delete: 3}, {Retain: 2}},
			b:         Op{{Retain: 2}, {Delete: 3}, {Retain: 1}},
			a2:        Op{{Retain: 1}, {Delete: 1}, {Retain: 1}},
			b2:        Op{{Retain: 1}, {Delete: 1}, {Retain: 1}},
			converged: "af",
		},
		{
			name:      "insert inside a concurrently deleted range survives",
			text:      "abcdef",
			a:         Op{{Retain: 3}, {Insert: "X"}, {Retain: 3}},
			b:         Op{{Retain: 1}, {Delete: 4}, {Retain: 1}},
			a2:        Op{{Retain: 1}, {Insert: "X"}, {Retain: 1}},
			b2:        Op{{Retain: 1}, {Delete: 2}, {Retain: 1}, {Delete: 2}, {Retain: 1}},
			converged: "aXf",
		},
		{
			name:      "multibyte: emoji, Hangul, CJK",
			text:      "🌐서울首尔",
			a:         Op{{Retain: 1}, {Insert: "👨\u200d👩\u200d👧"}, {Retain: 4}},
			b:         Op{{Delete: 1}, {Retain: 2}, {Delete: 2}},
			a2:        Op{{Insert: "👨\u200d👩\u200d👧"}, {Retain: 2}},
			b2:        Op{{Delete: 1}, {Retain: 7}, {Delete: 2}},
			converged: "👨\u200d👩\u200d👧서울",
		},
		{
			name:      "combining mark and CRLF",
			text:      "e\r\n",
			a:         Op{{Retain: 1}, {Insert: "\u0301"}, {Retain: 2}},
			b:         Op{{Retain: 1}, {Delete: 1}, {Retain: 1}},
			a2:        Op{{Retain: 1}, {Insert: "\u0301"}, {Retain: 1}},
			b2:        Op{{Retain: 2}, {Delete: 1}, {Retain: 1}},
			converged: "e\u0301\n",
		},
		{
			name:      "noop against edit",
			text:      "مرحبا",
			a:         Op{{Retain: 5}},
			b:         Op{{Insert: "!"}, {Delete: 5}},
			a2:        Op{{Retain: 1}},
			b2:        Op{{Insert: "!"}, {Delete: 5}},
			converged: "!",
		},
		{
			name: "empty ops on empty text",
			text: "", a: nil, b: Op{},
			a2: Op{}, b2: Op{},
			converged: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a2, b2, err := Transform(tt.a, tt.b)
			if err != nil {
				t.Fatalf("Transform: %v", err)
			}
			if diff := cmp.Diff(tt.a2, a2); diff != "" {
				t.Errorf("a2 mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.b2, b2); diff != "" {
				t.Errorf("b2 mismatch (-want +got):\n%s", diff)
			}
			left := mustApply(t, mustApply(t, tt.text, tt.a), b2)
			right := mustApply(t, mustApply(t, tt.text, tt.b), a2)
			if left != tt.converged || right != tt.converged {
				t.Errorf("apply(apply(s,a),b2) = %q, apply(apply(s,b),a2) = %q; want %q", left, right, tt.converged)
			}
		})
	}
}

func mustApply(t testing.TB, s string, op Op) string {
	t.Helper()
	out, err := Apply(s, op)
	if err != nil {
		t.Fatalf("Apply(%q, %s): %v", s, opString(op), err)
	}
	return out
}

func TestTransformErrors(t *testing.T) {
	tests := []struct {
		name string
		a, b Op
	}{
		{"different base lengths", Op{{Retain: 3}}, Op{{Retain: 4}}},
		{"a longer by a delete", Op{{Retain: 3}, {Delete: 1}}, Op{{Retain: 3}}},
		{"invalid a", Op{{}}, Op{}},
		{"invalid b", Op{}, Op{{Delete: -1}}},
		{"invalid UTF-8 insert", Op{{Insert: "\xc3"}}, Op{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Transform(tt.a, tt.b); !errors.Is(err, ErrBadOp) {
				t.Errorf("Transform = %v; want ErrBadOp", err)
			}
		})
	}
}

func TestCompose(t *testing.T) {
	tests := []struct {
		name string
		text string
		a, b Op
		want Op
	}{
		{
			name: "two inserts",
			text: "Seoul",
			a:    Op{{Retain: 5}, {Insert: " 2013"}},
			b:    Op{{Retain: 6}, {Insert: "Conference "}, {Retain: 4}},
			want: Op{{Retain: 5}, {Insert: " Conference 2013"}},
		},
		{
			name: "delete what was just inserted",
			text: "ab",
			a:    Op{{Retain: 1}, {Insert: "首尔"}, {Retain: 1}},
			b:    Op{{Retain: 1}, {Delete: 2}, {Retain: 1}},
			want: Op{{Retain: 2}},
		},
		{
			name: "delete part of an insert, multibyte",
			text: "",
			a:    Op{{Insert: "👨\u200d👩\u200d👧"}},
			b:    Op{{Retain: 1}, {Delete: 3}, {Retain: 1}},
			want: Op{{Insert: "👨👧"}},
		},
		{
			name: "deletes on both sides",
			text: "abcdef",
			a:    Op{{Delete: 2}, {Retain: 4}},
			b:    Op{{Retain: 2}, {Delete: 2}},
			want: Op{{Delete: 2}, {Retain: 2}, {Delete: 2}},
		},
		{
			name: "replace then replace",
			text: "e\u0301",
			a:    Op{{Insert: "\r\n"}, {Delete: 2}},
			b:    Op{{Retain: 1}, {Insert: "서울"}, {Retain: 1}},
			want: Op{{Insert: "\r서울\n"}, {Delete: 2}},
		},
		{
			name: "with empty ops",
			text: "", a: nil, b: Op{},
			want: Op{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compose(tt.a, tt.b)
			if err != nil {
				t.Fatalf("Compose: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			seq := mustApply(t, mustApply(t, tt.text, tt.a), tt.b)
			if one := mustApply(t, tt.text, got); one != seq {
				t.Errorf("apply(s, compose) = %q; apply(apply(s,a),b) = %q", one, seq)
			}
		})
	}
}

func TestComposeErrors(t *testing.T) {
	tests := []struct {
		name string
		a, b Op
	}{
		{"b shorter than a's result", Op{{Insert: "ab"}}, Op{{Retain: 1}}},
		{"b longer than a's result", Op{{Retain: 1}}, Op{{Retain: 2}}},
		{"b counts a's base, not its result", Op{{Retain: 2}, {Delete: 1}}, Op{{Retain: 3}}},
		{"invalid a", Op{{Retain: 0}}, Op{}},
		{"invalid b", Op{}, Op{{Insert: "a", Delete: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Compose(tt.a, tt.b); !errors.Is(err, ErrBadOp) {
				t.Errorf("Compose = %v; want ErrBadOp", err)
			}
		})
	}
}

func TestInvert(t *testing.T) {
	tests := []struct {
		name string
		base string
		op   Op
		want Op
	}{
		{"contract example", "Seoul 2013", Op{{Retain: 6}, {Insert: "Conference 2013"}, {Delete: 4}}, Op{{Retain: 6}, {Insert: "2013"}, {Delete: 15}}},
		{"delete emoji and Hangul", "🌐서울x", Op{{Delete: 3}, {Retain: 1}}, Op{{Insert: "🌐서울"}, {Retain: 1}}},
		{"insert ZWJ sequence", "!", Op{{Insert: "👨\u200d👩\u200d👧"}, {Retain: 1}}, Op{{Delete: 5}, {Retain: 1}}},
		{"delete half a combining pair", "e\u0301", Op{{Retain: 1}, {Delete: 1}}, Op{{Retain: 1}, {Insert: "\u0301"}}},
		{"delete CRLF", "a\r\n", Op{{Retain: 1}, {Delete: 2}}, Op{{Retain: 1}, {Insert: "\r\n"}}},
		{"empty", "", nil, Op{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Invert(tt.op, tt.base)
			if err != nil {
				t.Fatalf("Invert: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			if back := mustApply(t, mustApply(t, tt.base, tt.op), got); back != tt.base {
				t.Errorf("apply(apply(s, op), inverse) = %q; want %q", back, tt.base)
			}
		})
	}
	if _, err := Invert(Op{{Retain: 6}}, "首尔"); !errors.Is(err, ErrBadOp) {
		t.Errorf("Invert with byte length = %v; want ErrBadOp", err)
	}
	if _, err := Invert(Op{{Delete: -1}}, ""); !errors.Is(err, ErrBadOp) {
		t.Errorf("Invert of invalid op = %v; want ErrBadOp", err)
	}
}

func TestTransformIndex(t *testing.T) {
	// Base "abcdef"; op: retain 2, insert "XY", delete 2 ("cd"), retain 2:
	// result "abXYef".
	op := Op{{Retain: 2}, {Insert: "XY"}, {Delete: 2}, {Retain: 2}}
	tests := []struct {
		name       string
		op         Op
		pos        int
		stickRight bool
		want       int
	}{
		{"before the edit", op, 1, false, 1},
		{"at the insert, sticks left", op, 2, false, 2},
		{"at the insert, sticks right", op, 2, true, 4},
		{"inside deleted range", op, 3, false, 4},
		{"inside deleted range, stick right", op, 3, true, 4},
		{"end of deleted range", op, 4, false, 4},
		{"after the edit", op, 5, false, 5},
		{"end of text", op, 6, false, 6},
		{"negative clamps to 0", op, -3, false, 0},
		{"past the end clamps", op, 100, false, 6},
		{"insert at start, left", Op{{Insert: "🌐"}, {Retain: 3}}, 0, false, 0},
		{"insert at start, right", Op{{Insert: "🌐"}, {Retain: 3}}, 0, true, 1},
		{"insert at end, left", Op{{Retain: 3}, {Insert: "서울"}}, 3, false, 3},
		{"insert at end, right", Op{{Retain: 3}, {Insert: "서울"}}, 3, true, 5},
		{"insert before counts code points", Op{{Insert: "👨\u200d👩\u200d👧"}, {Retain: 3}}, 2, false, 7},
		{"delete everything", Op{{Delete: 4}}, 2, true, 0},
		{"delete then insert behind cursor", Op{{Delete: 2}, {Insert: "首尔"}, {Retain: 2}}, 1, false, 0},
		{"delete then insert behind cursor, right", Op{{Delete: 2}, {Insert: "首尔"}, {Retain: 2}}, 1, true, 2},
		{"empty op", Op{}, 0, true, 0},
		{"invalid op clamps", Op{{Retain: 2}}, 5, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TransformIndex(tt.pos, tt.op, tt.stickRight); got != tt.want {
				t.Errorf("TransformIndex(%d, %s, %v) = %d; want %d", tt.pos, opString(tt.op), tt.stickRight, got, tt.want)
			}
		})
	}
}

// TestTransformCanonicalisesInputs: a delete written before an insert is
// the same edit as the canonical insert-then-delete and must transform the
// same way (the tie-break depends on component order).
func TestTransformCanonicalisesInputs(t *testing.T) {
	b := Op{{Insert: "b"}, {Retain: 1}}
	nonCanon := Op{{Delete: 1}, {Insert: "a"}}
	a2, b2, err := Transform(nonCanon, b)
	if err != nil {
		t.Fatal(err)
	}
	ca2, cb2, err := Transform(Op{{Insert: "a"}, {Delete: 1}}, b)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(a2, ca2) || !cmp.Equal(b2, cb2) {
		t.Errorf("Transform(%s, b) = %s, %s; canonical input gives %s, %s",
			opString(nonCanon), opString(a2), opString(b2), opString(ca2), opString(cb2))
	}
	if got := nonCanon; !cmp.Equal(got, Op{{Delete: 1}, {Insert: "a"}}) {
		t.Errorf("Transform modified its input: %s", opString(got))
	}
}
