package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
	"communique/server/store"
)

// filler is what random edits are made of: ASCII, Hangul, CJK, Arabic,
// astral emoji, a ZWJ sequence, a combining mark and CRLF, so that every
// position the test computes counts code points.
var filler = []string{"a", "b", " ", "서", "울", "首", "尔", "م", "ر", "🌐", "👨\u200d👩\u200d👧", "e\u0301", "\r\n", "—"}

var markerRE = regexp.MustCompile(`«[a-z0-9]+:[0-9]+»`)

// randomEdit makes an op on text: an insert of a unique marker with filler
// at a position outside every marker, or a delete of a short range that
// touches no marker. Markers are never deleted, so every marker inserted must
// end up in the converged text exactly once.
func randomEdit(r *rand.Rand, text string, marker string) (op ot.Op, inserted bool) {
	runes := []rune(text)
	n := len(runes)
	var spans [][2]int // marker ranges in code points
	for _, m := range markerRE.FindAllStringIndex(text, -1) {
		spans = append(spans, [2]int{len([]rune(text[:m[0]])), len([]rune(text[:m[1]]))})
	}
	inside := func(p int) bool { // p is strictly inside a marker
		for _, s := range spans {
			if p > s[0] && p < s[1] {
				return true
			}
		}
		return false
	}
	covered := func(p int) bool { // code point p belongs to a marker
		for _, s := range spans {
			if p >= s[0] && p < s[1] {
				return true
			}
		}
		return false
	}
	if n > 0 && r.IntN(3) == 0 {
		for try := 0; try < 10; try++ {
			start := r.IntN(n)
			if covered(start) {
				continue
			}
			end := start
			for end < n && end-start < 1+r.IntN(6) && !covered(end) {
				end++
			}
			return ot.Op{}.Retain(start).Delete(end - start).Retain(n - end), false
		}
	}
	pos := r.IntN(n + 1)
	for inside(pos) {
		pos = r.IntN(n + 1)
	}
	var b strings.Builder
	for i := r.IntN(3); i > 0; i-- {
		b.WriteString(filler[r.IntN(len(filler))])
	}
	b.WriteString(marker)
	for i := r.IntN(3); i > 0; i-- {
		b.WriteString(filler[r.IntN(len(filler))])
	}
	return ot.Op{}.Retain(pos).Insert(b.String()).Retain(n - pos), true
}

// TestRandomConcurrentEditing drives clients of several delegations making
// random concurrent edits with random disconnects, reconnects with since,
// resends, and a server restart in the middle. At the end every client, the
// served draft and a replay of the stored log agree, every marker inserted
// is present exactly once, and the log has no gap and no repeated (src, seq).
func TestRandomConcurrentEditing(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			s := servertest.Start(t, servertest.Options{})
			s.Summit(t, "seoul-2013")
			initial := "Seoul Framework 🌐 서울 — 首尔\r\n"
			s.Doc(t, "seoul-2013", "annex-1", initial)
			var clients []*servertest.Client
			for i, del := range []string{"KOR", "GBR", "HUN", "NLD", "BRA"} {
				tok := s.Token(t, "seoul-2013", "delegate", del)
				clients = append(clients, s.NewClient(t, "seoul-2013", "annex-1", tok, fmt.Sprintf("c%d", i)))
			}
			chair := s.Token(t, "seoul-2013", "chair", "")
			clients = append(clients, s.NewClient(t, "seoul-2013", "annex-1", chair, "chair"))

			const steps = 600
			markers := randomSession(t, r, clients, steps, func(step int) {
				if step == steps/2 {
					s.Restart(t)
				}
			}, func(c *servertest.Client) {})
			for _, c := range clients {
				if err := c.Settle(20 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range clients {
				if err := c.Pump(300 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			d := s.GetDoc(t, "seoul-2013", "annex-1", chair)
			for _, c := range clients {
				if c.Text != d.Draft.Text || c.Version != d.Draft.Version {
					t.Fatalf("client %s at %d has %q;\nserver at %d has %q", c.Src, c.Version, c.Text, d.Draft.Version, d.Draft.Text)
				}
			}
			for _, m := range markers {
				if n := strings.Count(d.Draft.Text, m); n != 1 {
					t.Errorf("marker %s appears %d times; want 1", m, n)
				}
			}
			checkLog(t, s, "seoul-2013", "annex-1", initial, d.Draft)
		})
	}
}

// checkLog replays the stored draft log: versions 1..N with no gap, no
// (src, seq) twice, and the replay equals the served draft.
func checkLog(t *testing.T, s *servertest.Server, summit, doc, initial string, draft *servertest.StreamState) {
	t.Helper()
	recs, err := s.Data.Since(context.Background(), store.StreamKey{Summit: summit, Doc: doc, Stream: store.Draft}, 0, 0)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	text := initial
	seen := map[string]bool{}
	for i, rec := range recs {
		if rec.Version != uint64(i+1) {
			t.Fatalf("log record %d has version %d", i, rec.Version)
		}
		if rec.Src != "" {
			k := fmt.Sprintf("%s/%d", rec.Src, rec.Seq)
			if seen[k] {
				t.Fatalf("(src, seq) %s logged twice", k)
			}
			seen[k] = true
		}
		if text, err = ot.Apply(text, rec.Op); err != nil {
			t.Fatalf("replay version %d: %v", rec.Version, err)
		}
	}
	if uint64(len(recs)) != draft.Version || text != draft.Text {
		t.Fatalf("replay of %d ops gives %q; served draft at %d is %q", len(recs), text, draft.Version, draft.Text)
	}
}

// randomSession drives clients through steps random actions — an edit with
// a unique marker (60%), reading what arrived (30%), or dropping or
// restoring the connection (10%) — and returns the markers inserted.
// before runs ahead of each step; moving runs before a reconnect (to change
// the client's instance, say).
func randomSession(t *testing.T, r *rand.Rand, clients []*servertest.Client, steps int, before func(step int), moving func(*servertest.Client)) []string {
	t.Helper()
	var markers []string
	for step := 0; step < steps; step++ {
		before(step)
		c := clients[r.IntN(len(clients))]
		switch k := r.IntN(10); {
		case k < 6:
			m := fmt.Sprintf("«%s:%d»", c.Src, len(markers))
			op, inserted := randomEdit(r, c.Text, m)
			if inserted {
				markers = append(markers, m)
			}
			if err := c.Edit(op); err != nil {
				t.Fatalf("step %d: edit: %v", step, err)
			}
		case k < 9:
			if err := c.Pump(time.Millisecond); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		default:
			if c.Connected() {
				c.Disconnect()
				continue
			}
			moving(c)
			if err := c.Reconnect(); err != nil {
				t.Fatalf("step %d: reconnect: %v", step, err)
			}
		}
	}
	return markers
}
