package e2e

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"testing"

	"communique/server/servertest"
)

// chrExport fetches the summit's export and returns status, headers and
// body.
func chrExport(t *testing.T, s *servertest.Server, query, token string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+"/api/summits/seoul-2013/export"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// TestChairExport builds a small summit — documents created out of order
// and then ordered and renamed by the chair, pending changes by two
// delegations, one approved — and checks the exported package: Markdown
// and HTML hold each document's approved text (never the pending wording)
// in the chair's order, under escaped titles, with no markup from the
// texts getting through; the redline shows the pending changes inline with
// their delegations; and who may ask for what.
func TestChairExport(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	s.Summit(t, "seoul-2013")
	chair := s.Token(t, "seoul-2013", "chair", "")
	kor := s.Token(t, "seoul-2013", "delegate", "KOR")
	gbr := s.Token(t, "seoul-2013", "delegate", "GBR")
	obs := s.Token(t, "seoul-2013", "observer", "")
	texts := map[string]string{
		"annex-1":       "1. Promote an open cyberspace.\n2. Build capacity <script>alert(1)</script> everywhere.\n",
		"annex-2":       "Personal data deserves protection & care.\n",
		"chair-summary": "# Chair's Summary — Seoul 2013\n\nParticipants agreed that growth matters.\n",
	}
	for _, id := range []string{"annex-1", "annex-2", "chair-summary"} {
		s.Doc(t, "seoul-2013", id, texts[id])
	}
	s.MustDo(t, http.StatusOK, "PUT", "/api/summits/seoul-2013/order", chair, map[string]any{"ids": []string{"chair-summary", "annex-1", "annex-2"}})
	titles := map[string]string{
		"chair-summary": "Chair's Summary",
		"annex-1":       `Annex I <Framework> & "Commitment"`,
		"annex-2":       "Document annex-2",
	}
	for _, id := range []string{"chair-summary", "annex-1"} {
		s.MustDo(t, http.StatusOK, "PATCH", chrDocPath(id), chair, map[string]string{"title": titles[id]})
	}

	// Pending: KOR's and GBR's edits to annex-1; the chair approves KOR's.
	s.MustDo(t, http.StatusOK, "PUT", chrDocPath("annex-1")+"/draft", kor, map[string]any{"base_version": 0,
		"text": strings.Replace(texts["annex-1"], "open cyberspace", "open and secure cyberspace", 1)})
	s.MustDo(t, http.StatusOK, "PUT", chrDocPath("annex-1")+"/draft", gbr, map[string]any{"base_version": 1,
		"text": strings.Replace(strings.Replace(texts["annex-1"], "open cyberspace", "open and secure cyberspace", 1), "everywhere", "in every region", 1)})
	var cl chrChanges
	if err := chrGet(s, chrDocPath("annex-1")+"/changes", chair, &cl); err != nil {
		t.Fatal(err)
	}
	// KOR's is one hunk; GBR's may be more than one (the diff keeps the
	// letters both wordings share).
	if len(cl.Changes) < 2 || strings.Join(cl.Changes[0].Authors, ",") != "KOR" {
		t.Fatalf("changes %+v; want KOR's, then GBR's", cl.Changes)
	}
	korC, gbrCs := cl.Changes[0], cl.Changes[1:]
	for _, c := range gbrCs {
		if strings.Join(c.Authors, ",") != "GBR" {
			t.Fatalf("changes %+v; want KOR's, then GBR's", cl.Changes)
		}
	}
	s.MustDo(t, http.StatusOK, "POST", chrDocPath("annex-1")+"/changes/"+korC.ID+"/approve", chair, nil)
	approved := map[string]string{}
	order := []string{"chair-summary", "annex-1", "annex-2"}
	for _, id := range order {
		approved[id] = s.GetDoc(t, "seoul-2013", id, chair).Approved.Text
	}
	if !strings.Contains(approved["annex-1"], "open and secure") || strings.Contains(approved["annex-1"], "every region") {
		t.Fatalf("annex-1 approved %q; want KOR's change only", approved["annex-1"])
	}

	// Markdown: the approved texts in order, each under its title (the
	// chair's summary carries its own), separated by rules.
	status, hdr, md := chrExport(t, s, "?format=md", obs)
	if status != http.StatusOK {
		t.Fatalf("md export: %d %s", status, md)
	}
	wantMD := approved["chair-summary"] +
		"\n---\n\n# Annex I \\<Framework\\> \\& \"Commitment\"\n\n" + approved["annex-1"] +
		"\n---\n\n# Document annex-2\n\n" + approved["annex-2"]
	if md != wantMD {
		t.Errorf("md export =\n%s\nwant\n%s", md, wantMD)
	}
	if ct, cd := hdr.Get("Content-Type"), hdr.Get("Content-Disposition"); ct != "text/markdown; charset=utf-8" || cd != `attachment; filename="seoul-2013.md"` {
		t.Errorf("md headers: Content-Type %q, Content-Disposition %q", ct, cd)
	}
	if status, _, def := chrExport(t, s, "", kor); status != http.StatusOK || def != md {
		t.Errorf("export without a format: %d; want the Markdown", status)
	}

	// HTML: the same texts, escaped, in order; no script from a text.
	status, hdr, page := chrExport(t, s, "?format=html", obs)
	if status != http.StatusOK {
		t.Fatalf("html export: %d %s", status, page)
	}
	if ct, cd := hdr.Get("Content-Type"), hdr.Get("Content-Disposition"); ct != "text/html; charset=utf-8" || cd != `attachment; filename="seoul-2013.html"` {
		t.Errorf("html headers: Content-Type %q, Content-Disposition %q", ct, cd)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("html Content-Security-Policy %q; want default-src 'none'", csp)
	}
	last := 0
	for _, w := range []string{
		`<title>Summit seoul-2013</title>`,
		`id="doc-chair-summary"`, "Participants agreed that growth matters.",
		`id="doc-annex-1"`, html.EscapeString(titles["annex-1"]), "Promote an open and secure cyberspace.", "everywhere",
		`id="doc-annex-2"`, "Personal data deserves protection &amp; care.",
	} {
		// Each after the one before (titles are also in the contents).
		i := strings.Index(page[last:], w)
		if i < 0 {
			t.Errorf("html export lacks %q after %q", w, page[max(0, last-40):last])
			continue
		}
		last += i + len(w)
	}
	for _, bad := range []string{"<script", "in every region", `<Framework>`} {
		if strings.Contains(page, bad) {
			t.Errorf("html export contains %q", bad)
		}
	}

	// The redline: GBR's pending change inline, with its delegation.
	status, _, red := chrExport(t, s, "?format=html&redline=1", kor)
	if status != http.StatusOK {
		t.Fatalf("redline export: %d %s", status, red)
	}
	want := []string{
		"Build capacity &lt;script&gt;alert(1)&lt;/script&gt;", // the plain text, escaped
		fmt.Sprintf("%d pending change", len(gbrCs)), "no pending changes",
	}
	for _, c := range gbrCs {
		if c.Old != "" {
			want = append(want, `<del title="GBR">`+html.EscapeString(c.Old)+`</del>`)
		}
		if c.New != "" {
			want = append(want, `<ins title="GBR">`+html.EscapeString(c.New)+`</ins><span class="by">GBR</span>`)
		}
	}
	for _, w := range want {
		if !strings.Contains(red, w) {
			t.Errorf("redline lacks %q", w)
		}
	}
	if strings.Contains(red, "<script") || strings.Contains(red, `title="KOR"`) {
		t.Errorf("redline shows a script or KOR's approved change")
	}

	// Who may ask for what.
	for _, tc := range []struct {
		query, token string
		status       int
	}{
		{"?format=html&redline=1", obs, 403},
		{"?format=html&redline=1", chair, 200},
		{"?format=html&redline=1", servertest.AdminToken, 200},
		{"?format=md", gbr, 200},
		{"?format=pdf", chair, 400},
		{"?format=md&redline=1", chair, 400},
		{"?format=html&redline=yes", chair, 400},
		{"?format=md", "", 401},
	} {
		if status, _, body := chrExport(t, s, tc.query, tc.token); status != tc.status {
			t.Errorf("export%s as %.6s…: %d %s; want %d", tc.query, tc.token, status, body, tc.status)
		}
	}
	s.Summit(t, "other")
	other := s.Token(t, "other", "chair", "")
	if status, _, _ := chrExport(t, s, "?format=md", other); status != 403 {
		t.Errorf("export by another summit's chair: %d; want 403", status)
	}
}
