package ot

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// Run with: go test ./ot/ -run '^$' -bench . -benchmem

func BenchmarkParse(b *testing.B) {
	typing := []byte(`[52311, "x", 48210]`)
	big, err := randSparseOp(rand.New(rand.NewPCG(1, 1)), 100000, 200).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	escaped := []byte(`[10, "line\nbreak \"quoted\" \ud83c\udf10 \u00e9", -3, 5]`)
	for _, bc := range []struct {
		name string
		data []byte
	}{{"typing", typing}, {"escapes", escaped}, {"200edits", big}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	op := randSparseOp(rand.New(rand.NewPCG(1, 1)), 100000, 200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := op.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTransform(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	const n = 100000
	typingA := Op{}.Retain(5000).Insert("x").Retain(n - 5000)
	typingB := Op{}.Retain(70000).Delete(1).Retain(n - 70001)
	manyA, manyB := randSparseOp(r, n, 50), randSparseOp(r, n, 50)
	for _, bc := range []struct {
		name string
		a, b Op
	}{{"typing", typingA, typingB}, {"50edits", manyA, manyB}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Transform(bc.a, bc.b); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompose(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	a := randSparseOp(r, 100000, 50)
	c := randSparseOp(r, a.TargetLen(), 50)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compose(a, c); err != nil {
			b.Fatal(err)
		}
	}
}

// largeDoc is about 1 MB of UTF-8 mixing ASCII and multi-byte text.
func largeDoc() string {
	return strings.Repeat("The quick brown fox 서울 首尔 🌐 e\u0301 مرحبا.\r\n", 1<<20/64)
}

// singleEdits returns ops a server typically receives: one character typed
// or deleted at a random place of a doc of n code points.
func singleEdits(n, count int) []Op {
	r := rand.New(rand.NewPCG(4, 4))
	ops := make([]Op, count)
	for i := range ops {
		pos := r.IntN(n)
		if i%3 == 2 {
			ops[i] = Op{}.Retain(pos).Delete(1).Retain(n - pos - 1)
		} else {
			ops[i] = Op{}.Retain(pos).Insert("x").Retain(n - pos)
		}
	}
	return ops
}

// BenchmarkTextApplyLargeDoc applies single-character edits to a ~1 MB
// document. Every iteration edits the same base Text (it is persistent), so
// the document size stays fixed. The size sub-benchmarks show that the cost
// per edit grows with log(n), not n.
func BenchmarkTextApplyLargeDoc(b *testing.B) {
	s := largeDoc()
	doc := NewText(s)
	ops := singleEdits(doc.Len(), 1024)
	b.Run("Text.Apply", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := doc.Apply(ops[i%len(ops)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Text.ApplyInvert", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, _, err := doc.ApplyInvert(ops[i%len(ops)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	// The string version copies the whole document per edit: the reason Text
	// exists.
	b.Run("string Apply", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := Apply(s, ops[i%len(ops)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	for _, size := range []struct {
		name   string
		copies int
	}{{"64KB", 1}, {"1MB", 16}, {"16MB", 256}} {
		b.Run("Text.Apply/"+size.name, func(b *testing.B) {
			chunk := s[:1<<16]
			for !utf8.RuneStart(s[len(chunk)]) {
				chunk = chunk[:len(chunk)-1]
			}
			doc := NewText(strings.Repeat(chunk, size.copies))
			ops := singleEdits(doc.Len(), 1024)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := doc.Apply(ops[i%len(ops)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkNewText(b *testing.B) {
	s := largeDoc()
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		NewText(s)
	}
}

func BenchmarkTextString(b *testing.B) {
	doc := NewText(largeDoc())
	b.SetBytes(int64(len(doc.String())))
	b.ReportAllocs()
	for b.Loop() {
		_ = doc.String()
	}
}

func BenchmarkFromDiff(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	a := strings.Repeat("서울 Seoul 首尔 🌐 The quick brown fox. ", 300) // ~10k code points
	edited := mustApply(b, a, randSparseOp(r, utf8.RuneCountInString(a), 20))
	b.ReportAllocs()
	for b.Loop() {
		FromDiff(a, edited)
	}
}
