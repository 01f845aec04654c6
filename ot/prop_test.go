package ot

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// Randomized property tests. Seeds are fixed so failures reproduce; texts
// mix ASCII, CRLF, emoji, ZWJ sequences, combining marks, Hangul, CJK and
// Arabic (see pieces), and ops cut them at arbitrary code points.

const propIterations = 2000

func canon(o Op) Op {
	out := Op{}
	for _, c := range o {
		out = out.appendComponent(c)
	}
	return out
}

func TestPropTransformConverges(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 1))
	for i := range propIterations {
		s := randText(r, 12)
		n := utf8.RuneCountInString(s)
		a, b := randOp(r, n), randOp(r, n)
		a2, b2, err := Transform(a, b)
		if err != nil {
			t.Fatalf("#%d Transform(%s, %s): %v", i, opString(a), opString(b), err)
		}
		left := mustApply(t, mustApply(t, s, a), b2)
		right := mustApply(t, mustApply(t, s, b), a2)
		if left != right {
			t.Fatalf("#%d s=%q a=%s b=%s: apply(apply(s,a),b2)=%q != apply(apply(s,b),a2)=%q",
				i, s, opString(a), opString(b), left, right)
		}
		if !isCanonical(a2) || !isCanonical(b2) {
			t.Fatalf("#%d non-canonical result %s %s", i, opString(a2), opString(b2))
		}
		// Transforming against a no-op changes nothing but the form.
		a3, _, err := Transform(a, Op{}.Retain(n))
		if err != nil || !cmp.Equal(a3, canon(a)) {
			t.Fatalf("#%d Transform(a, noop) = %s, %v; want %s", i, opString(a3), err, opString(canon(a)))
		}
	}
}

func TestPropComposeIsSequentialApply(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 2))
	for i := range propIterations {
		s := randText(r, 12)
		a := randOp(r, utf8.RuneCountInString(s))
		b := randOp(r, a.TargetLen())
		ab, err := Compose(a, b)
		if err != nil {
			t.Fatalf("#%d Compose(%s, %s): %v", i, opString(a), opString(b), err)
		}
		want := mustApply(t, mustApply(t, s, a), b)
		if got := mustApply(t, s, ab); got != want {
			t.Fatalf("#%d s=%q a=%s b=%s: apply(s, compose)=%q; want %q", i, s, opString(a), opString(b), got, want)
		}
		if !isCanonical(ab) {
			t.Fatalf("#%d non-canonical %s", i, opString(ab))
		}
		if ab.BaseLen() != a.BaseLen() || ab.TargetLen() != b.TargetLen() {
			t.Fatalf("#%d compose lengths %d->%d; want %d->%d", i, ab.BaseLen(), ab.TargetLen(), a.BaseLen(), b.TargetLen())
		}
	}
}

func TestPropInvertUndoes(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 4))
	for i := range propIterations {
		s := randText(r, 12)
		op := randOp(r, utf8.RuneCountInString(s))
		inv, err := Invert(op, s)
		if err != nil {
			t.Fatalf("#%d Invert: %v", i, err)
		}
		if back := mustApply(t, mustApply(t, s, op), inv); back != s {
			t.Fatalf("#%d s=%q op=%s inverse=%s gives %q", i, s, opString(op), opString(inv), back)
		}
		if !isCanonical(inv) {
			t.Fatalf("#%d non-canonical inverse %s", i, opString(inv))
		}
		_, inv2, err := NewText(s).ApplyInvert(op)
		if err != nil {
			t.Fatalf("#%d ApplyInvert: %v", i, err)
		}
		if !cmp.Equal(inv, inv2) {
			t.Fatalf("#%d ApplyInvert inverse %s != Invert %s", i, opString(inv2), opString(inv))
		}
	}
}

func TestPropTextMatchesString(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 5))
	for i := range propIterations / 10 {
		s := randText(r, 200)
		txt := NewText(s)
		for j := range 10 {
			var op Op
			if j%2 == 0 {
				op = randOp(r, txt.Len())
			} else {
				op = randSparseOp(r, txt.Len(), 3)
			}
			want := mustApply(t, s, op)
			got, err := txt.Apply(op)
			if err != nil {
				t.Fatalf("#%d.%d Text.Apply(%s): %v", i, j, opString(op), err)
			}
			if got.String() != want || got.Len() != utf8.RuneCountInString(want) {
				t.Fatalf("#%d.%d Text.Apply = %q; string Apply = %q", i, j, got.String(), want)
			}
			if msg := checkTree(got); msg != "" {
				t.Fatalf("#%d.%d tree invariant: %s", i, j, msg)
			}
			if txt.String() != s {
				t.Fatalf("#%d.%d Apply modified its receiver", i, j)
			}
			s, txt = want, got
		}
	}
}

func TestPropTransformIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 6))
	for i := range propIterations {
		s := randText(r, 10)
		n := utf8.RuneCountInString(s)
		op := canon(randOp(r, n))
		target := op.TargetLen()
		// Where each retained code point of the base lands in the result.
		landed := map[int]int{}
		b, tt := 0, 0
		for _, c := range op {
			switch {
			case c.Retain > 0:
				for k := range c.Retain {
					landed[b+k] = tt + k
				}
				b += c.Retain
				tt += c.Retain
			case c.Delete > 0:
				b += c.Delete
			default:
				tt += utf8.RuneCountInString(c.Insert)
			}
		}
		prev := [2]int{-1, -1}
		for pos := -1; pos <= n+1; pos++ {
			for k, stick := range []bool{false, true} {
				got := TransformIndex(pos, op, stick)
				if got < 0 || got > target {
					t.Fatalf("#%d TransformIndex(%d, %s, %v) = %d; outside [0, %d]", i, pos, opString(op), stick, got, target)
				}
				if got < prev[k] {
					t.Fatalf("#%d TransformIndex not monotonic at %d (%v): %d after %d", i, pos, stick, got, prev[k])
				}
				prev[k] = got
				if l, ok := landed[pos]; ok {
					// Sticking right, the cursor stays right before its
					// code point; sticking left it may stay before text
					// inserted there, but never after its code point.
					if stick && got != l || !stick && got > l {
						t.Fatalf("#%d TransformIndex(%d, %s, %v) = %d; code point landed at %d", i, pos, opString(op), stick, got, l)
					}
				}
				// A cursor behaves like a one-character insert transformed
				// against op: sticking left it wins the tie-break (it is
				// Transform's first op), sticking right it loses.
				if pos >= 0 && pos <= n {
					marker := Op{}.Retain(pos).Insert("\x00").Retain(n - pos)
					var moved Op
					var err error
					if stick {
						_, moved, err = Transform(op, marker)
					} else {
						moved, _, err = Transform(marker, op)
					}
					if err != nil {
						t.Fatal(err)
					}
					if want := moved[0].Retain; got != want {
						t.Fatalf("#%d TransformIndex(%d, %s, %v) = %d; transformed marker is at %d", i, pos, opString(op), stick, got, want)
					}
				}
			}
		}
	}
}

func TestPropFromDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 7))
	for i := range propIterations {
		a := randText(r, 15)
		var b string
		if i%2 == 0 {
			b = randText(r, 15) // unrelated texts
		} else {
			b = mustApply(t, a, randOp(r, utf8.RuneCountInString(a))) // an edit of a
		}
		op := FromDiff(a, b)
		if got := mustApply(t, a, op); got != b {
			t.Fatalf("#%d Apply(%q, FromDiff(a, %q)) = %q", i, a, b, got)
		}
		if !isCanonical(op) {
			t.Fatalf("#%d non-canonical %s", i, opString(op))
		}
		if msg := checkHunks(a, b, Diff(a, b)); msg != "" {
			t.Fatalf("#%d Diff(%q, %q): %s", i, a, b, msg)
		}
	}
}

func TestPropMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 8))
	for i := range propIterations {
		op := randOp(r, r.IntN(30))
		data, err := op.MarshalJSON()
		if err != nil {
			t.Fatalf("#%d MarshalJSON(%#v): %v", i, op, err)
		}
		got, err := Parse(data)
		if err != nil {
			t.Fatalf("#%d Parse(%s): %v", i, data, err)
		}
		if diff := cmp.Diff(canon(op), got); diff != "" {
			t.Fatalf("#%d round trip of %s mismatch (-want +got):\n%s", i, data, diff)
		}
		again, err := got.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if got2, err := Parse(again); err != nil || !cmp.Equal(got, got2) {
			t.Fatalf("#%d second round trip of %s: %s, %v", i, again, opString(got2), err)
		}
	}
}
