package ot

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// Fuzz targets. Seed corpora live in testdata/fuzz/<FuzzName>/ in addition
// to the f.Add seeds; run one with e.g.
//
//	go test ./ot/ -run '^$' -fuzz '^FuzzParse$' -fuzztime 30s

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`[6, -4, "Conference 2013"]`, `[]`, `[1,-1,"a"]`, `["\ud83c\udf10"]`, `["\ud800"]`,
		`[0]`, `[-0]`, `[1.5]`, `[1e3]`, `[null]`, `[[1]]`, `{}`, `"abc"`, `[9223372036854775808]`,
		`[4611686018427387904, 4611686018427387904]`, `[9007199254740991]`, "[\"\xff\"]",
		`["a\"b\\c\/\b\f\n\r\t\u0000"]`, `[1,]`, `[01]`, "[[[[[[", `["👨‍👩‍👧", "e\u0301", "서울首尔مرحبا"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrBadOp) || op != nil {
				t.Fatalf("Parse error %v with op %v; want ErrBadOp and nil", err, op)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted invalid JSON %q", data)
		}
		if !isCanonical(op) {
			t.Fatalf("Parse(%q) = %s is not canonical", data, opString(op))
		}
		if _, _, err := op.validate(); err != nil {
			t.Fatalf("Parse(%q) returned an invalid op: %v", data, err)
		}
		// encoding/json must read the same values (it is laxer, never
		// stricter, and decodes numbers up to 2^53 exactly).
		var generic []any
		if err := json.Unmarshal(data, &generic); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", data, err)
		}
		want := Op{}
		for _, v := range generic {
			switch v := v.(type) {
			case string:
				want = want.Insert(v)
			case float64:
				if v > 0 {
					want = want.Retain(int(v))
				} else {
					want = want.Delete(int(-v))
				}
			default:
				t.Fatalf("Parse accepted element %#v", v)
			}
		}
		if diff := cmp.Diff(want, op); diff != "" {
			t.Fatalf("Parse(%q) disagrees with encoding/json (-json +Parse):\n%s", data, diff)
		}
		out, err := op.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON(%s): %v", opString(op), err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(MarshalJSON) = %v for %s", err, out)
		}
		if !cmp.Equal(op, again) {
			t.Fatalf("round trip %s -> %s", opString(op), opString(again))
		}
	})
}

func FuzzApply(f *testing.F) {
	f.Add([]byte(`[6, -4, "Conference 2013"]`), "Seoul 2013")
	f.Add([]byte(`[1, -1, "🌍", 1]`), "a🌐b")
	f.Add([]byte(`[2, -3, 1]`), "👨\u200d👩\u200d👧!")
	f.Add([]byte(`["x", -2]`), "e\u0301")
	f.Add([]byte(`[1, "\n", -2, 1]`), "a\r\nb")
	f.Add([]byte(`[-2, "北京", 2]`), "首尔会议")
	f.Add([]byte(`[5, -8]`), "مرحبا بالعالم")
	f.Add([]byte(`[1, -1, 1]`), "a\xffb")
	f.Add([]byte(`[3]`), "")
	f.Fuzz(func(t *testing.T, opJSON []byte, text string) {
		op, err := Parse(opJSON)
		if err != nil {
			return
		}
		n := utf8.RuneCountInString(text)
		txt := NewText(text)
		for _, o := range []Op{op, Op(append(Op(nil), op...)).Retain(n - op.BaseLen())} {
			s, errS := Apply(text, o)
			got, errT := txt.Apply(o)
			if (errS == nil) != (errT == nil) {
				t.Fatalf("Apply errors disagree: string %v, Text %v", errS, errT)
			}
			if (errS == nil) != (o.BaseLen() == n) {
				t.Fatalf("Apply error %v with base length %d on text of %d", errS, o.BaseLen(), n)
			}
			if errS != nil {
				if !errors.Is(errS, ErrBadOp) || !errors.Is(errT, ErrBadOp) {
					t.Fatalf("errors do not wrap ErrBadOp: %v, %v", errS, errT)
				}
				continue
			}
			if got.String() != s || got.Len() != o.TargetLen() || !utf8.ValidString(s) {
				t.Fatalf("Text.Apply = %q (len %d); Apply = %q; target length %d", got.String(), got.Len(), s, o.TargetLen())
			}
			if msg := checkTree(got); msg != "" {
				t.Fatalf("tree invariant: %s", msg)
			}
			inv, err := Invert(o, text)
			if err != nil {
				t.Fatalf("Invert: %v", err)
			}
			_, inv2, err := txt.ApplyInvert(o)
			if err != nil || !cmp.Equal(inv, inv2) {
				t.Fatalf("ApplyInvert inverse %s, %v; Invert %s", opString(inv2), err, opString(inv))
			}
			if back := mustApply(t, s, inv); back != validUTF8(text) {
				t.Fatalf("inverse gives %q; want %q", back, validUTF8(text))
			}
		}
	})
}

func FuzzFromDiff(f *testing.F) {
	f.Add("Seoul 2013", "Seoul Conference 2013")
	f.Add("The cat sat", "The dog sat")
	f.Add("a🌐b", "a🌍b")
	f.Add("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👦")
	f.Add("ete", "e\u0301te")
	f.Add("a\r\nb\r\n", "a\nb\n")
	f.Add("서울 2013", "서울특별시 2013")
	f.Add("首尔会议", "北京会议")
	f.Add("مرحبا بالعالم", "مرحبا")
	f.Add("é", "è")
	f.Add("a\xffb", "a\xfe\xffb")
	f.Add("\xc3", "\xc3\xa9")
	f.Fuzz(func(t *testing.T, a, b string) {
		// Invalid UTF-8 is read as U+FFFD per byte (see FromDiff), so the
		// law is checked against b with that replacement.
		wantB := validUTF8(b)
		op := FromDiff(a, b)
		if op.BaseLen() != utf8.RuneCountInString(a) {
			t.Fatalf("FromDiff base length %d; a has %d code points", op.BaseLen(), utf8.RuneCountInString(a))
		}
		if !isCanonical(op) {
			t.Fatalf("FromDiff result %s is not canonical", opString(op))
		}
		got, err := Apply(a, op)
		if err != nil {
			t.Fatalf("Apply(a, FromDiff(a, b)): %v", err)
		}
		if got != wantB {
			t.Fatalf("Apply(%q, FromDiff) = %q; want %q", a, got, wantB)
		}
		if msg := checkHunks(a, b, Diff(a, b)); msg != "" {
			t.Fatalf("Diff(%q, %q): %s", a, b, msg)
		}
	})
}

// opFromBytes turns arbitrary bytes into a valid op on a text of baseLen
// code points, so the fuzzer explores op shapes instead of JSON syntax.
func opFromBytes(baseLen int, data []byte) Op {
	op := Op{}
	left := baseLen
	for _, b := range data {
		size := int(b>>2)%8 + 1
		switch b % 4 {
		case 0, 1:
			size = min(size, left)
			op = op.Retain(size)
			left -= size
		case 2:
			size = min(size, left)
			op = op.Delete(size)
			left -= size
		case 3:
			op = op.Insert(pieces[int(b>>2)%len(pieces)])
		}
	}
	return op.Retain(left)
}

func FuzzTransform(f *testing.F) {
	f.Add("Seoul 2013", []byte{3, 1, 2}, []byte{0, 7, 3})
	f.Add("", []byte{3}, []byte{7})
	f.Add("👨\u200d👩\u200d👧e\u0301\r\n서울首尔مرحبا", []byte{1, 2, 6, 255, 3}, []byte{6, 6, 11, 4})
	f.Add("abcdef", []byte{0, 6, 6}, []byte{2, 2})
	f.Fuzz(func(t *testing.T, text string, da, db []byte) {
		text = validUTF8(text)
		n := utf8.RuneCountInString(text)
		a, b := opFromBytes(n, da), opFromBytes(n, db)
		a2, b2, err := Transform(a, b)
		if err != nil {
			t.Fatalf("Transform(%s, %s): %v", opString(a), opString(b), err)
		}
		left := mustApply(t, mustApply(t, text, a), b2)
		right := mustApply(t, mustApply(t, text, b), a2)
		if left != right {
			t.Fatalf("not converged: %q vs %q (a=%s b=%s)", left, right, opString(a), opString(b))
		}
		// The same through Text.
		ta, _ := NewText(text).Apply(a)
		tab, err := ta.Apply(b2)
		if err != nil || tab.String() != left {
			t.Fatalf("Text path gives %q, %v; want %q", tab.String(), err, left)
		}
		// Compose of a and b2 is the converged edit in one op.
		ab2, err := Compose(a, b2)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if got := mustApply(t, text, ab2); got != left {
			t.Fatalf("apply(compose(a, b2)) = %q; want %q", got, left)
		}
		for pos := 0; pos <= n; pos++ {
			for _, stick := range []bool{false, true} {
				if p := TransformIndex(pos, a, stick); p < 0 || p > a.TargetLen() {
					t.Fatalf("TransformIndex(%d) = %d outside [0, %d]", pos, p, a.TargetLen())
				}
			}
		}
	})
}
