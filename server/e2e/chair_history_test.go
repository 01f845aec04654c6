package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/doc"
	"communique/server/servertest"
)

// chrInsertBefore inserts s into c's text before the first occurrence of
// before: a pure insert (replace would retype before too).
func chrInsertBefore(t *testing.T, c *servertest.Client, before, s string) {
	t.Helper()
	i := strings.Index(c.Text, before)
	if i < 0 {
		t.Fatalf("%q not in %q", before, c.Text)
	}
	pos, n := len([]rune(c.Text[:i])), len([]rune(c.Text))
	if err := c.Edit(ot.Op{}.Retain(pos).Insert(s).Retain(n - pos)); err != nil {
		t.Fatal(err)
	}
}

// TestChairHistory runs a small scripted session — edits by three
// delegations over sockets and by the chair over HTTP, an approval and a
// rejection — and checks every history endpoint against it: the paged op
// logs, the text at every version (against a replay of those logs, across
// snapshots), redlines between versions, the draft's blame, the decision
// records and the adoptions; what each role may read; and that all of it
// reads the same after a restart.
func TestChairHistory(t *testing.T) {
	start := time.Now()
	// A snapshot every two versions, so texts at older versions are
	// rebuilt from a snapshot plus ops, not from version 0.
	s := servertest.Start(t, servertest.Options{Doc: doc.Config{SnapshotEvery: 2}})
	s.Summit(t, "seoul-2013")
	initial := "Participants agreed that an open cyberspace supports growth. 서울 🌐."
	s.Doc(t, "seoul-2013", "annex-1", initial)
	chair := s.Token(t, "seoul-2013", "chair", "")
	kor := s.Token(t, "seoul-2013", "delegate", "KOR")
	gbr := s.Token(t, "seoul-2013", "delegate", "GBR")
	hun := s.Token(t, "seoul-2013", "delegate", "HUN")
	obs := s.Token(t, "seoul-2013", "observer", "")
	P := chrDocPath("annex-1")

	ck := s.NewClient(t, "seoul-2013", "annex-1", kor, "kor")
	cg := s.NewClient(t, "seoul-2013", "annex-1", gbr, "gbr")
	ch := s.NewClient(t, "seoul-2013", "annex-1", hun, "hun")
	chrInsertBefore(t, ck, " cyberspace", " and secure") // v1
	settleAll(t, ck, cg, ch)
	chrInsertBefore(t, cg, "growth", "inclusive ") // v2
	settleAll(t, ck, cg, ch)
	s.MustDo(t, http.StatusOK, "PUT", P+"/draft", chair, map[string]any{ // v3
		"base_version": 2, "text": strings.Replace(cg.Text, "Participants", "All participants", 1),
	})
	settleAll(t, ck, cg, ch)
	replace(t, ch, " 서울 🌐.", "") // v4
	settleAll(t, ck, cg, ch)

	var before chrChanges
	if err := chrGet(s, P+"/changes", kor, &before); err != nil {
		t.Fatal(err)
	}
	if before.DraftVersion != 4 || len(before.Changes) != 4 {
		t.Fatalf("changes at draft %d: %+v; want 4 at draft 4", before.DraftVersion, before.Changes)
	}
	byAuthor := map[string]chrChange{}
	for _, c := range before.Changes {
		if len(c.Authors) != 1 {
			t.Fatalf("change %+v; want one author each", c)
		}
		byAuthor[c.Authors[0]] = c
	}
	korC, gbrC := byAuthor["KOR"], byAuthor["GBR"]

	// The redline of the draft from version 0 is the list of changes: the
	// approved text is still the initial one.
	var rl struct {
		Stream   string
		From, To uint64
		Changes  []chrChange
	}
	if err := chrGet(s, P+"/redline?stream=draft&from=0&to=4", kor, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Stream != "draft" || rl.From != 0 || rl.To != 4 || !reflect.DeepEqual(rl.Changes, before.Changes) {
		t.Errorf("redline 0→4 = %+v;\nwant the pending changes %+v", rl, before.Changes)
	}

	s.MustDo(t, http.StatusOK, "POST", P+"/changes/"+korC.ID+"/approve", chair, nil) // approved v1
	s.MustDo(t, http.StatusOK, "POST", P+"/changes/"+gbrC.ID+"/reject", chair, nil)  // draft v5
	settleAll(t, ck, cg, ch)
	d := s.GetDoc(t, "seoul-2013", "annex-1", chair)
	if d.Draft.Version != 5 || d.Approved.Version != 1 {
		t.Fatalf("after the decisions: draft %d, approved %d; want 5 and 1", d.Draft.Version, d.Approved.Version)
	}

	// History, a page at a time.
	for _, limit := range []int{1, 2, 1000} {
		ops := chrHistoryAll(t, s, "annex-1", "draft", kor, limit)
		var authors []string
		for _, op := range ops {
			authors = append(authors, op.Author)
			if op.Time < start.UnixMilli() || op.Time > time.Now().UnixMilli() {
				t.Errorf("op %d time %d; want a unix millisecond time of this test", op.Version, op.Time)
			}
		}
		if want := []string{"KOR", "GBR", "chair", "HUN", "chair"}; !slices.Equal(authors, want) {
			t.Fatalf("draft history (limit %d) authors %v; want %v", limit, authors, want)
		}
		for i, op := range ops {
			if (op.Decision != nil) != (i == 4) {
				t.Errorf("draft op %d decision %+v; want one on op 5 only", op.Version, op.Decision)
			}
		}
		if dec := ops[4].Decision; dec != nil && (dec.Kind != "reject" || dec.Change != gbrC.ID || dec.Old != gbrC.Old || dec.New != gbrC.New || !slices.Equal(dec.Authors, []string{"GBR"})) {
			t.Errorf("rejection record %+v; want reject of %+v", dec, gbrC)
		}
		if ops[0].Name != "delegate KOR" || ops[2].Name != "chair " {
			t.Errorf("op names %q, %q; want the tokens' names", ops[0].Name, ops[2].Name)
		}
	}
	var page chrHistory
	if err := chrGet(s, P+"/history?stream=draft&after=1&limit=2", kor, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Ops) != 2 || page.Ops[0].Version != 2 || page.Next == nil || *page.Next != 3 {
		t.Errorf("history after 1 limit 2: %d ops from %v, next %v; want versions 2, 3 and next 3", len(page.Ops), page.Ops, page.Next)
	}
	for _, q := range []string{"stream=draft&after=5", "stream=draft&after=4&limit=1000", "after=5"} {
		var h chrHistory
		if err := chrGet(s, P+"/history?"+q, kor, &h); err != nil {
			t.Fatal(err)
		}
		if last := len(h.Ops); h.Next != nil || (last > 0 && h.Ops[last-1].Version != 5) {
			t.Errorf("history?%s: ops %+v next %v; want the tail and next null", q, h.Ops, h.Next)
		}
	}
	approvedOps := chrHistoryAll(t, s, "annex-1", "approved", obs, 100)
	if len(approvedOps) != 1 || approvedOps[0].Author != "chair" || approvedOps[0].Decision == nil ||
		approvedOps[0].Decision.Kind != "approve" || approvedOps[0].Decision.Change != korC.ID ||
		!slices.Equal(approvedOps[0].Decision.Authors, []string{"KOR"}) {
		t.Errorf("approved history %+v; want the chair's approval of %+v", approvedOps, korC)
	}

	// The text at every version is the replay of the history.
	draftOps := chrHistoryAll(t, s, "annex-1", "draft", chair, 100)
	draftTexts := chrReplay(t, initial, draftOps)
	approvedTexts := chrReplay(t, initial, approvedOps)
	if draftTexts[5] != d.Draft.Text || approvedTexts[1] != d.Approved.Text {
		t.Fatalf("replays end at %q / %q; the server has %q / %q", draftTexts[5], approvedTexts[1], d.Draft.Text, d.Approved.Text)
	}
	for v, want := range draftTexts {
		if got := chrText(t, s, "annex-1", "draft", uint64(v), kor); got != want {
			t.Errorf("draft text at %d = %q; want %q", v, got, want)
		}
	}
	for v, want := range approvedTexts {
		if got := chrText(t, s, "annex-1", "approved", uint64(v), obs); got != want {
			t.Errorf("approved text at %d = %q; want %q", v, got, want)
		}
	}
	var head struct {
		Version uint64
		Text    string
	}
	if err := chrGet(s, P+"/text", kor, &head); err != nil || head.Version != 5 || head.Text != d.Draft.Text {
		t.Errorf("text without a version: %+v, %v; want the draft at 5", head, err)
	}

	// Redlines between other versions.
	if err := chrGet(s, P+"/redline?stream=approved", obs, &rl); err != nil {
		t.Fatal(err)
	}
	if len(rl.Changes) != 1 || rl.Changes[0].Old != korC.Old || rl.Changes[0].New != korC.New ||
		!slices.Equal(rl.Changes[0].Authors, []string{"KOR"}) || rl.From != 0 || rl.To != 1 {
		t.Errorf("approved redline %+v; want KOR's approved change", rl)
	}
	if err := chrGet(s, P+"/redline?stream=draft&from=4&to=5", kor, &rl); err != nil {
		t.Fatal(err)
	}
	if len(rl.Changes) != 1 || rl.Changes[0].Old != gbrC.New || rl.Changes[0].New != "" || !slices.Equal(rl.Changes[0].Authors, []string{"chair"}) {
		t.Errorf("redline 4→5 %+v; want the chair's removal of %q", rl.Changes, gbrC.New)
	}
	if err := chrGet(s, P+"/redline?stream=draft&from=3&to=3", kor, &rl); err != nil || len(rl.Changes) != 0 {
		t.Errorf("redline 3→3 = %+v, %v; want no changes", rl.Changes, err)
	}

	// Blame: the draft's runs with their authors.
	var bl struct {
		Version uint64
		Spans   []struct {
			Start, End int
			Author     string
			Text       string
		}
	}
	if err := chrGet(s, P+"/blame", gbr, &bl); err != nil {
		t.Fatal(err)
	}
	var joined strings.Builder
	who := map[string]string{}
	pos := 0
	for _, sp := range bl.Spans {
		if sp.Start != pos || sp.End-sp.Start != len([]rune(sp.Text)) {
			t.Errorf("blame span %+v after position %d", sp, pos)
		}
		pos = sp.End
		joined.WriteString(sp.Text)
		who[sp.Author] += sp.Text
	}
	if bl.Version != 5 || joined.String() != d.Draft.Text {
		t.Errorf("blame at %d spells %q; want the draft at 5 %q", bl.Version, joined.String(), d.Draft.Text)
	}
	if who["KOR"] != " and secure" || !strings.Contains(who["chair"], "All") || who["GBR"] != "" || who["HUN"] != "" {
		t.Errorf("blame by author %q; want KOR's insert, the chair's words, nothing left of GBR's or HUN's", who)
	}

	// Decisions, oldest first.
	var decs []chrDecision
	if err := chrGet(s, P+"/decisions", kor, &decs); err != nil {
		t.Fatal(err)
	}
	if len(decs) != 2 {
		t.Fatalf("decisions %+v; want 2", decs)
	}
	for i, w := range []struct {
		kind, stream string
		version      uint64
		c            chrChange
	}{{"approve", "approved", 1, korC}, {"reject", "draft", 5, gbrC}} {
		got := decs[i]
		if got.Kind != w.kind || got.Stream != w.stream || got.Version != w.version || got.Change != w.c.ID ||
			got.Old != w.c.Old || got.New != w.c.New || !slices.Equal(got.Authors, w.c.Authors) || got.By != "chair " ||
			got.Time.Before(start.Add(-time.Second)) {
			t.Errorf("decision %d = %+v; want %s of %+v on %s %d by the chair", i, got, w.kind, w.c, w.stream, w.version)
		}
	}

	// Who may read what.
	for _, tc := range []struct {
		path   string
		token  string
		status int
	}{
		{"/history?stream=draft", obs, 403},
		{"/history", obs, 403},
		{"/history?stream=approved", obs, 200},
		{"/text?stream=draft&version=1", obs, 403},
		{"/text?stream=approved&version=1", obs, 200},
		{"/redline?stream=draft", obs, 403},
		{"/redline?stream=approved", obs, 200},
		{"/blame", obs, 403},
		{"/decisions", obs, 403},
		{"/history?stream=draft", kor, 200},
		{"/blame", kor, 200},
		{"/decisions", gbr, 200},
		{"/decisions", servertest.AdminToken, 200},
		{"/history?stream=draft", "", 401},
		// Bad input.
		{"/history?stream=draft&after=6", kor, 400},
		{"/history?stream=draft&after=-1", kor, 400},
		{"/history?stream=draft&limit=0", kor, 400},
		{"/history?stream=draft&limit=x", kor, 400},
		{"/history?stream=both", kor, 400},
		{"/text?stream=draft&version=6", kor, 400},
		{"/text?stream=approved&version=2", kor, 400},
		{"/text?stream=draft&version=1.5", kor, 400},
		{"/redline?stream=draft&from=3&to=2", kor, 400},
		{"/redline?stream=draft&to=9", kor, 400},
	} {
		r := s.Do(t, "GET", P+tc.path, tc.token, nil)
		if r.Status != tc.status {
			t.Errorf("GET %s as %.6s…: %d %s; want %d", tc.path, tc.token, r.Status, r.Body, tc.status)
		}
		if tc.status == 400 && strings.Contains(tc.path, "version=6") && r.ErrorCode() != "bad_version" {
			t.Errorf("GET %s: code %q; want bad_version", tc.path, r.ErrorCode())
		}
	}
	if r := s.Do(t, "GET", chrDocPath("annex-9")+"/history", kor, nil); r.Status != 404 {
		t.Errorf("history of a missing document: %d; want 404", r.Status)
	}

	// Adoption keeps a named, dated version, listed with the document.
	raw := s.MustDo(t, http.StatusOK, "GET", P, obs, nil)
	var fields map[string]json.RawMessage
	raw.JSON(t, &fields)
	if string(fields["adoptions"]) != "[]" {
		t.Errorf("adoptions before adopting: %s; want []", fields["adoptions"])
	}
	s.MustDo(t, http.StatusOK, "POST", P+"/changes/approve-all", chair, nil)
	s.MustDo(t, http.StatusOK, "POST", P+"/adopt", chair, map[string]string{"name": "Seoul Framework, as adopted"})
	raw = s.MustDo(t, http.StatusOK, "GET", P, chair, nil)
	fields = nil
	raw.JSON(t, &fields)
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"adopted", "adoptions", "approved", "draft", "id", "title"}; !slices.Equal(keys, want) {
		t.Errorf("GET document fields %v; want %v", keys, want)
	}
	var adoptions []struct {
		Name            string
		By              string
		Time            time.Time
		ApprovedVersion uint64 `json:"approved_version"`
		DraftVersion    uint64 `json:"draft_version"`
	}
	if err := json.Unmarshal(fields["adoptions"], &adoptions); err != nil {
		t.Fatal(err)
	}
	d = s.GetDoc(t, "seoul-2013", "annex-1", chair)
	if len(adoptions) != 1 || adoptions[0].Name != "Seoul Framework, as adopted" || adoptions[0].By != "chair " ||
		adoptions[0].ApprovedVersion != d.Approved.Version || adoptions[0].DraftVersion != d.Draft.Version || adoptions[0].Time.IsZero() {
		t.Errorf("adoptions %+v; want the one adoption at approved %d, draft %d", adoptions, d.Approved.Version, d.Draft.Version)
	}

	// Everything reads the same after a restart.
	paths := []string{P, P + "/history?stream=draft", P + "/history?stream=approved", P + "/blame", P + "/decisions",
		P + "/redline?stream=draft", P + "/redline?stream=approved&from=1", P + "/changes"}
	for v := 0; v <= int(d.Draft.Version); v++ {
		paths = append(paths, fmt.Sprintf("%s/text?stream=draft&version=%d", P, v))
	}
	got := map[string]string{}
	for _, p := range paths {
		got[p] = string(s.MustDo(t, http.StatusOK, "GET", p, chair, nil).Body)
	}
	s.Restart(t)
	for _, p := range paths {
		if after := string(s.MustDo(t, http.StatusOK, "GET", p, chair, nil).Body); after != got[p] {
			t.Errorf("GET %s after a restart:\n%s\nwant as before:\n%s", p, after, got[p])
		}
	}
}
