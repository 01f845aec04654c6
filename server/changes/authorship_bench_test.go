package changes

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"communique/ot"
)

// Run with: go test ./server/changes/ -run '^$' -bench AuthorshipApply -benchmem

// BenchmarkAuthorshipApply is the authorship step of every draft op, on a
// draft many delegations typed into and deleted from while nothing was
// decided. With the flat slices it once was, its cost grew with the spans
// and deletion marks the draft carries; with the trees it stays flat.
func BenchmarkAuthorshipApply(b *testing.B) {
	for _, edits := range []int{100, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("edits=%d", edits), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			authors := []string{"KOR", "GBR", "USA", "BRA", "chair"}
			a := New(20000)
			n := 20000
			for i := range edits {
				pos := rng.IntN(n - 10)
				var op ot.Op
				if i%2 == 0 {
					op = ot.Op{}.Retain(pos).Insert("ab").Retain(n - pos)
					n += 2
				} else {
					op = ot.Op{}.Retain(pos).Delete(2).Retain(n - pos - 2)
					n -= 2
				}
				var err error
				if a, err = a.Apply(op, authors[i%len(authors)], []string{"xy"}); err != nil {
					b.Fatal(err)
				}
			}
			typing := ot.Op{}.Retain(n / 2).Insert("x").Retain(n - n/2)
			backspace := ot.Op{}.Retain(n / 3).Delete(1).Retain(n - n/3 - 1)
			b.ReportMetric(float64(len(a.Spans())), "spans")
			b.ReportMetric(float64(len(a.Marks())), "marks")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				op, del := typing, []string(nil)
				if i%2 == 1 {
					op, del = backspace, []string{"q"}
				}
				if _, err := a.Apply(op, "KOR", del); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshotPrune is what a session's snapshot of the draft costs
// off its goroutine (server/doc/prune.go): the diff of the approved text
// and the draft (Hunks) and Prune, on the state the throughput scenario
// leaves after edits ops of the load generator's mix (random inserts and
// deletes on a text kept near 2,000 code points, ten delegations, nothing
// approved). Its cost grows with the marks near the pending changes, which
// here is all of them: the whole draft differs from the approved text.
func BenchmarkSnapshotPrune(b *testing.B) {
	for _, edits := range []int{2000, 20000} {
		b.Run(fmt.Sprintf("edits=%d", edits), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			pieces := []string{"a", "e", "n", "s", " ", " ", "서", "울", "首", "尔", "م", "ر", "🌐", "👨\u200d👩\u200d👧", "e\u0301", "\r\n", "—", "é"}
			var sb strings.Builder
			for n := 0; n < 2000; {
				p := pieces[rng.IntN(len(pieces))]
				sb.WriteString(p)
				n += len([]rune(p))
			}
			approved := sb.String()
			text := ot.NewText(approved)
			a := New(text.Len())
			for i := range edits {
				n := text.Len()
				var op ot.Op
				if p := 0.3 + 0.4*float64(min(max(n-2000, -1), 0)+1); n > 0 && rng.Float64() < p {
					pos := rng.IntN(n)
					k := min(1+rng.IntN(5), n-pos)
					op = ot.Op{}.Retain(pos).Delete(k).Retain(n - pos - k)
				} else {
					var ins strings.Builder
					for range 1 + rng.IntN(8) {
						ins.WriteString(pieces[rng.IntN(len(pieces))])
					}
					pos := rng.IntN(n + 1)
					op = ot.Op{}.Retain(pos).Insert(ins.String()).Retain(n - pos)
				}
				next, inv, err := text.ApplyInvert(op)
				if err != nil {
					b.Fatal(err)
				}
				if a, err = a.Apply(op, fmt.Sprint("D", i%10), deleted(inv)); err != nil {
					b.Fatal(err)
				}
				text = next
			}
			draft := text.String()
			cs := Hunks(approved, draft)
			oldRunes := 0
			for _, c := range cs {
				oldRunes += len([]rune(c.Old))
			}
			b.Logf("%d marks, %d hunks (%d code points of old text), %d marks kept", a.MarkCount(), len(cs), oldRunes, a.Prune(cs).MarkCount())
			b.Run("diff", func(b *testing.B) {
				for b.Loop() {
					Hunks(approved, draft)
				}
			})
			b.Run("prune", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					a.Prune(cs)
				}
			})
			b.Run("encode", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					a.Encode()
				}
			})
		})
	}
}
