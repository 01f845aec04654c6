package changes

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"communique/ot"
)

// Run with: go test ./server/changes/ -run '^$' -bench AuthorshipApply -benchmem

// BenchmarkAuthorshipApply is the authorship step of every draft op, on a
// draft many delegations typed into and deleted from while nothing was
// decided: its cost grows with the spans and deletion marks it carries.
func BenchmarkAuthorshipApply(b *testing.B) {
	for _, edits := range []int{100, 1000, 10000} {
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
			b.ReportMetric(float64(len(a.Spans)), "spans")
			b.ReportMetric(float64(len(a.Marks)), "marks")
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
