package doc_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"communique/ot"
	"communique/server/changes"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/store/bolt"
)

// words make the generated document read like a communiqué, so the diff
// meets the word and sentence boundaries semantic cleanup looks for.
var benchWords = strings.Fields(`participants states cyberspace security open
	reliable interoperable economic growth development capacity building
	cooperation international law human rights privacy data protection
	confidence measures norms responsible behaviour critical infrastructure
	incident response cybercrime innovation trust access digital divide
	stakeholders private sector civil society technical community academia
	governance framework commitment principles agreed recalled noted welcomed
	encouraged recognised affirmed underlined stressed invited the of and to
	in for with on by that their a an all every each further its`)

// benchDocument is about pages pages of numbered paragraphs under section
// headings, ~2,500 bytes a page.
func benchDocument(r *rand.Rand, pages int) string {
	var b strings.Builder
	b.WriteString("# Chair's Summary — Generated Conference\n\n")
	for sec := 1; b.Len() < pages*2500; sec++ {
		fmt.Fprintf(&b, "## %d. Section %d\n\n", sec, sec)
		for p := 1; p <= 8; p++ {
			fmt.Fprintf(&b, "%d.%d ", sec, p)
			for s := 0; s < 3+r.IntN(3); s++ {
				n := 12 + r.IntN(14)
				for w := 0; w < n; w++ {
					word := benchWords[r.IntN(len(benchWords))]
					if w == 0 {
						word = strings.ToUpper(word[:1]) + word[1:]
					}
					b.WriteString(word)
					if w < n-1 {
						b.WriteByte(' ')
					}
				}
				b.WriteString(". ")
			}
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

// benchSession opens a document of about pages pages with edits pending
// hunks made by five delegations, spread evenly through the text.
func benchSession(b *testing.B, pages, edits int) *doc.Session {
	b.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	text := benchDocument(r, pages)
	st, err := bolt.Open(b.TempDir(), bolt.Options{FsyncDisabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.CreateSummit(ctx, store.Summit{ID: "s"}); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateDoc(ctx, store.Doc{Summit: "s", ID: "d", Title: "D"}, text); err != nil {
		b.Fatal(err)
	}
	reg := doc.NewRegistry(st, doc.Config{}, slog.New(slog.DiscardHandler), doc.Hooks{})
	b.Cleanup(func() { reg.Close(context.Background()) })
	s, err := reg.Acquire(ctx, "s", "d")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Release)
	authors := []string{"KOR", "GBR", "HUN", "NLD", "BRA"}
	runes := []rune(text)
	n := len(runes)
	step := n / (edits + 1)
	// Edit from the end backwards, so the positions computed on the
	// original text stay right.
	for i := edits; i >= 1; i-- {
		pos := i * step
		for pos < n && runes[pos] != ' ' { // start at a word boundary
			pos++
		}
		v := s.View()
		cur := v.Draft.Len()
		var op ot.Op
		switch i % 3 {
		case 0: // insert a phrase
			op = ot.Op{}.Retain(pos).Insert(" in particular").Retain(cur - pos)
		case 1: // delete a word or two
			op = ot.Op{}.Retain(pos).Delete(min(9, cur-pos)).Retain(cur - pos - min(9, cur-pos))
		default: // replace
			op = ot.Op{}.Retain(pos).Insert(" notably").Delete(min(5, cur-pos)).Retain(cur - pos - min(5, cur-pos))
		}
		res := s.Submit(ctx, doc.Edit{Stream: store.Draft, Base: v.DraftVersion, Op: op, Author: authors[i%len(authors)]})
		if res.Err != nil {
			b.Fatalf("edit %d: %v", i, res.Err)
		}
	}
	return s
}

// BenchmarkListChanges lists the pending changes of a ~200-page document
// (~500 KB) with ~300 pending hunks by five delegations: the diff and
// attribution from scratch (what the first GET …/changes after an edit
// pays), and the cached list at unchanged versions (every later GET, and
// every decision's lookup).
func BenchmarkListChanges(b *testing.B) {
	s := benchSession(b, 200, 300)
	v := s.View()
	approved, draft := v.Approved.String(), v.Draft.String()
	list := changes.Compute(approved, draft, v.Auth)
	hunks, longest := len(list), 0
	for _, c := range list {
		longest = max(longest, len(c.Old)+len(c.New))
	}
	// A diff that ran out of time would show few, huge hunks.
	if hunks < 250 || longest > 64 {
		b.Fatalf("%d hunks, the longest %d bytes; want ~300 small ones", hunks, longest)
	}
	b.Logf("document: %d bytes, %d code points; %d pending hunks", len(draft), v.Draft.Len(), hunks)
	b.Run("Compute-cold", func(b *testing.B) {
		for b.Loop() {
			changes.Compute(approved, draft, v.Auth)
		}
		b.ReportMetric(float64(hunks), "hunks")
	})
	b.Run("Session.Changes-cached", func(b *testing.B) {
		s.Changes() // fill the cache
		for b.Loop() {
			if p := s.Changes(); len(p.Changes) != hunks {
				b.Fatalf("%d changes; want %d", len(p.Changes), hunks)
			}
		}
		b.ReportMetric(float64(hunks), "hunks")
	})
}
