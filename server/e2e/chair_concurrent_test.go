package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

// TestChairConcurrentDecisions has three delegations typing random edits
// over sockets (each insert carries a unique marker) while the chair lists
// the pending changes and approves or rejects them — one id at a time, or
// all at the versions it listed — over HTTP, as fast as it can. Then:
//
//   - no edit is lost and none applied twice: every marker is in the draft
//     exactly once, unless a rejection removed text of it (the range each
//     rejection op deleted is read from the history) or put approved
//     wording holding it back;
//   - no decision lands on the wrong text: each answer's decided wording is
//     what the chair listed under that id; every approval op on the
//     approved stream replaced exactly its recorded Old with its recorded
//     New, every rejection op on the draft its New with its Old; the
//     approved and draft texts are the replays of their logs; an observer's
//     approved socket followed every approval to the same text;
//   - a decided id is 409 afterwards, and ids listed before a concurrent
//     edit changed their hunk are 409 rather than applied elsewhere;
//   - the decision records (GET …/decisions) are exactly what the chair did.
func TestChairConcurrentDecisions(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { chrConcurrent(t, seed) })
	}
}

func chrConcurrent(t *testing.T, seed uint64) {
	s := servertest.Start(t, servertest.Options{})
	s.Summit(t, "seoul-2013")
	initial := "Seoul Framework 🌐 서울 — 首尔. Participants agreed that capacity matters.\r\n"
	s.Doc(t, "seoul-2013", "annex-1", initial)
	chair := s.Token(t, "seoul-2013", "chair", "")
	obs := s.Token(t, "seoul-2013", "observer", "")
	P := chrDocPath("annex-1")
	var clients []*servertest.Client
	for _, del := range []string{"KOR", "GBR", "HUN"} {
		tok := s.Token(t, "seoul-2013", "delegate", del)
		clients = append(clients, s.NewClient(t, "seoul-2013", "annex-1", tok, strings.ToLower(del)))
	}
	follower, _, err := s.Dial("seoul-2013", "annex-1", obs, url.Values{"stream": {"approved"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := follower.Expect(t, "hello")
	followed := *hello.Text

	// The delegations type in their own goroutine; it owns the clients
	// and the markers until it closes done.
	var markers []string
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(seed, 1))
		for step := 0; step < 360; step++ {
			c := clients[r.IntN(len(clients))]
			if r.IntN(10) < 6 {
				m := fmt.Sprintf("«%s:%d»", c.Src, len(markers))
				op, inserted := randomEdit(r, c.Text, m)
				if inserted {
					markers = append(markers, m)
				}
				if err := c.Edit(op); err != nil {
					done <- fmt.Errorf("step %d: edit: %w", step, err)
					return
				}
			} else if err := c.Pump(time.Millisecond); err != nil {
				done <- fmt.Errorf("step %d: %w", step, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		for _, c := range clients {
			if err := c.Settle(10 * time.Second); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	// The chair decides meanwhile.
	type act struct {
		kind    string // approve or reject
		decided []chrChange
	}
	var acts []act
	r := rand.New(rand.NewPCG(seed, 2))
	conflicts, rounds, lastDecisions := 0, 0, 0
	var editErr error
chair:
	for {
		select {
		case editErr = <-done:
			break chair
		default:
		}
		rounds++
		if rounds%8 == 0 {
			// The decisions list is read from where the last request
			// stopped: read it while decisions and edits go on, so the
			// final check below covers that too.
			var decs []chrDecision
			if err := chrGet(s, P+"/decisions", chair, &decs); err != nil {
				t.Fatal(err)
			}
			if n := len(decs); n < lastDecisions {
				t.Fatalf("GET decisions listed %d, fewer than the %d before", n, lastDecisions)
			} else {
				lastDecisions = n
			}
		}
		var cl chrChanges
		if err := chrGet(s, P+"/changes", chair, &cl); err != nil {
			t.Fatal(err)
		}
		if len(cl.Changes) == 0 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		c := cl.Changes[r.IntN(len(cl.Changes))]
		kind := "approve"
		if r.IntN(5) < 2 {
			kind = "reject"
		}
		all := r.IntN(12) == 0
		path := P + "/changes/" + c.ID + "/" + kind
		var body any
		if all {
			path = P + "/changes/" + kind + "-all"
			body = map[string]uint64{"draft_version": cl.DraftVersion, "approved_version": cl.ApprovedVersion}
		}
		status, data, err := chrPost(s, path, chair, body)
		if err != nil {
			t.Fatal(err)
		}
		switch status {
		case http.StatusOK:
			var out chrDecided
			if err := json.Unmarshal(data, &out); err != nil {
				t.Fatalf("decision answer %s: %v", data, err)
			}
			want := []chrChange{c}
			if all {
				want = cl.Changes
			}
			if len(out.Decided) != len(want) {
				t.Fatalf("%s decided %+v; want %+v", path, out.Decided, want)
			}
			for i, w := range want {
				if got := out.Decided[i]; got.ID != w.ID || got.Old != w.Old || got.New != w.New {
					t.Fatalf("%s decided %q -> %q (%s); the chair listed %q -> %q (%s)", path, got.Old, got.New, got.ID, w.Old, w.New, w.ID)
				}
			}
			acts = append(acts, act{kind, out.Decided})
		case http.StatusConflict:
			// The hunk changed (or the versions moved) since the listing:
			// refused, not applied to whatever is there now.
			conflicts++
		default:
			t.Fatalf("%s: %d %s; want 200 or 409", path, status, data)
		}
	}
	if editErr != nil {
		t.Fatal(editErr)
	}
	for _, c := range clients {
		if err := c.Pump(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d chair rounds, %d decisions, %d conflicts, %d markers", rounds, len(acts), conflicts, len(markers))
	if len(acts) == 0 {
		t.Fatalf("the chair decided nothing in %d rounds", rounds)
	}

	// Quiet now: a decided id is refused the second time.
	var cl chrChanges
	if err := chrGet(s, P+"/changes", chair, &cl); err != nil {
		t.Fatal(err)
	}
	for i, kind := range []string{"approve", "reject"} {
		if i >= len(cl.Changes) {
			break
		}
		c := cl.Changes[i]
		status, data, err := chrPost(s, P+"/changes/"+c.ID+"/"+kind, chair, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s %s: %d %s %v", kind, c.ID, status, data, err)
		}
		var out chrDecided
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatal(err)
		}
		acts = append(acts, act{kind, out.Decided})
		if status, data, _ := chrPost(s, P+"/changes/"+c.ID+"/"+kind, chair, nil); status != http.StatusConflict {
			t.Errorf("%s %s a second time: %d %s; want 409", kind, c.ID, status, data)
		}
	}
	for _, c := range clients {
		if err := c.Settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.Pump(50 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}

	d := s.GetDoc(t, "seoul-2013", "annex-1", chair)
	for _, c := range clients {
		if c.Text != d.Draft.Text || c.Version != d.Draft.Version {
			t.Fatalf("client %s at %d has %q;\nthe server at %d has %q", c.Src, c.Version, c.Text, d.Draft.Version, d.Draft.Text)
		}
	}
	// The observer followed every approval.
	for v := hello.Version; v < d.Approved.Version; {
		// Drafters' joins and leaves reach observers too; skip them.
		f, err := fltNext(follower, fltWait)
		if err != nil || f.Type != "op" {
			t.Fatalf("follower got %s (%v); want an op", f.Raw, err)
		}
		op, err := ot.Parse(f.Op)
		if err != nil {
			t.Fatal(err)
		}
		if followed, err = ot.Apply(followed, op); err != nil {
			t.Fatal(err)
		}
		v = f.Version
	}
	if followed != d.Approved.Text {
		t.Errorf("the observer followed the approved stream to %q; the server has %q", followed, d.Approved.Text)
	}

	// Both texts are the replays of their logs, and each decision op did
	// exactly what its record says.
	draftOps := chrHistoryAll(t, s, "annex-1", "draft", chair, 1000)
	approvedOps := chrHistoryAll(t, s, "annex-1", "approved", chair, 1000)
	draftTexts := chrReplay(t, initial, draftOps)
	approvedTexts := chrReplay(t, initial, approvedOps)
	if got := draftTexts[len(draftTexts)-1]; got != d.Draft.Text {
		t.Fatalf("draft replay %q; the server has %q", got, d.Draft.Text)
	}
	if got := approvedTexts[len(approvedTexts)-1]; got != d.Approved.Text {
		t.Fatalf("approved replay %q; the server has %q", got, d.Approved.Text)
	}
	var recorded []string
	for _, h := range approvedOps {
		if h.Decision == nil || h.Decision.Kind != "approve" || h.Author != "chair" {
			t.Fatalf("approved op %d by %s with decision %+v; want the chair's approvals only", h.Version, h.Author, h.Decision)
		}
		start, end, ins := chrOpRange(t, h.Op)
		if old := chrRunes(approvedTexts[h.Version-1], start, end); old != h.Decision.Old || ins != h.Decision.New {
			t.Errorf("approval op %d replaced %q with %q; its record says %q -> %q", h.Version, old, ins, h.Decision.Old, h.Decision.New)
		}
		recorded = append(recorded, chrKey("approve", h.Decision.Change, h.Decision.Old, h.Decision.New, h.Decision.Authors))
	}
	atRisk, restored := map[string]bool{}, map[string]bool{}
	for _, h := range draftOps {
		if h.Decision == nil {
			continue
		}
		if h.Decision.Kind != "reject" || h.Author != "chair" {
			t.Fatalf("draft op %d by %s with decision %+v; want the chair's rejections only", h.Version, h.Author, h.Decision)
		}
		before := draftTexts[h.Version-1]
		start, end, ins := chrOpRange(t, h.Op)
		if cur := chrRunes(before, start, end); cur != h.Decision.New || ins != h.Decision.Old {
			t.Errorf("rejection op %d replaced %q with %q; its record says %q -> %q", h.Version, cur, ins, h.Decision.New, h.Decision.Old)
		}
		// Markers the rejection deleted text of, and markers it put back:
		// the approved wording it restores may hold a marker, or part of
		// one that joins text around it (the diff is by character and may
		// align parts of different markers), while the draft holds that
		// marker elsewhere too.
		for _, m := range markerRE.FindAllStringIndex(before, -1) {
			ms, me := len([]rune(before[:m[0]])), len([]rune(before[:m[1]]))
			if ms < end && me > start {
				atRisk[before[m[0]:m[1]]] = true
			}
		}
		after := draftTexts[h.Version]
		insEnd := start + len([]rune(ins))
		for _, m := range markerRE.FindAllStringIndex(after, -1) {
			ms, me := len([]rune(after[:m[0]])), len([]rune(after[:m[1]]))
			if ms < insEnd && me > start {
				restored[after[m[0]:m[1]]] = true
			}
		}
		recorded = append(recorded, chrKey("reject", h.Decision.Change, h.Decision.Old, h.Decision.New, h.Decision.Authors))
	}

	// No edit lost, none doubled.
	lost := 0
	for _, m := range markers {
		switch n := strings.Count(d.Draft.Text, m); {
		case n > 1 && !restored[m]:
			t.Errorf("marker %s is in the draft %d times; want once (no rejection put it back)", m, n)
			for _, h := range draftOps {
				if strings.Contains(string(h.Op), m) {
					t.Logf("draft op %d by %s inserts it: %s (decision %+v)", h.Version, h.Author, h.Op, h.Decision)
				}
			}
			for _, h := range approvedOps {
				if strings.Contains(string(h.Op), m) {
					t.Logf("approved op %d inserts it: %s (decision %+v)", h.Version, h.Op, h.Decision)
				}
			}
		case n == 0 && !atRisk[m]:
			t.Errorf("marker %s is lost, and no rejection removed it", m)
		case n == 0:
			lost++
		}
	}
	t.Logf("%d markers removed by rejections", lost)

	// The records are what the chair did: from the ops and from GET
	// …/decisions alike.
	var did []string
	for _, a := range acts {
		for _, c := range a.decided {
			did = append(did, chrKey(a.kind, c.ID, c.Old, c.New, c.Authors))
		}
	}
	var decs []chrDecision
	if err := chrGet(s, P+"/decisions", chair, &decs); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for i, dc := range decs {
		listed = append(listed, chrKey(dc.Kind, dc.Change, dc.Old, dc.New, dc.Authors))
		if dc.By != "chair " {
			t.Errorf("decision %d by %q; want the chair's token name", i, dc.By)
		}
		if i > 0 && dc.Time.Before(decs[i-1].Time) {
			t.Errorf("decision %d at %v is before decision %d at %v", i, dc.Time, i-1, decs[i-1].Time)
		}
	}
	if extra, missing := chrDiff(recorded, did); len(extra)+len(missing) > 0 {
		t.Errorf("decision ops record what the chair did not: %q\nand not what it did: %q", extra, missing)
	}
	if extra, missing := chrDiff(listed, did); len(extra)+len(missing) > 0 {
		t.Errorf("GET decisions lists what the chair did not: %q\nand not what it did: %q", extra, missing)
		for _, dc := range decs {
			if slices.Contains(extra, chrKey(dc.Kind, dc.Change, dc.Old, dc.New, dc.Authors)) {
				t.Logf("extra record: %s %d at %v", dc.Stream, dc.Version, dc.Time)
			}
		}
	}
}

// chrDiff returns what is in got and not in want, and the other way round,
// counting repeats.
func chrDiff(got, want []string) (extra, missing []string) {
	n := map[string]int{}
	for _, g := range got {
		n[g]++
	}
	for _, w := range want {
		n[w]--
	}
	for k, c := range n {
		for ; c > 0; c-- {
			extra = append(extra, k)
		}
		for ; c < 0; c++ {
			missing = append(missing, k)
		}
	}
	return extra, missing
}

func chrKey(kind, id, old, new string, authors []string) string {
	return fmt.Sprintf("%s %s %q->%q by %v", kind, id, old, new, authors)
}
