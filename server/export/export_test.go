package export

import (
	"strings"
	"testing"
	"time"

	"communique/server/changes"
)

func TestMarkdown(t *testing.T) {
	p := Package{Summit: "seoul-2013", Title: "Seoul 2013", Docs: []Doc{
		{ID: "chair-summary", Title: "Chair's Summary", Text: "# Chair's Summary — Seoul 2013\n\nParticipants agreed.\n"},
		{ID: "annex-1", Title: "Annex *I* <Framework>", Text: "\n\n1. Promote openness.\n2. Build capacity.\n\n\n"},
		{ID: "annex-2", Title: "Annex II", Text: ""},
		{ID: "annex-3", Title: "Annex III", Text: "Closing words.\r\n"},
	}}
	want := "# Chair's Summary — Seoul 2013\n\nParticipants agreed.\n" +
		"\n---\n\n" +
		"# Annex \\*I\\* \\<Framework\\>\n\n1. Promote openness.\n2. Build capacity.\n" +
		"\n---\n\n" +
		"# Annex II\n\n" +
		"\n---\n\n" +
		"# Annex III\n\nClosing words.\n"
	if got := string(Markdown(p)); got != want {
		t.Errorf("Markdown =\n%q\nwant\n%q", got, want)
	}
	if got := string(Markdown(Package{})); got != "" {
		t.Errorf("Markdown of no documents = %q; want empty", got)
	}
}

func TestCarriesTitle(t *testing.T) {
	for _, tc := range []struct {
		text, title string
		want        bool
	}{
		{"# Chair's Summary — Seoul\n\nx", "Chair's Summary", true},
		{"\n\n  # Annex I #\n", "Annex I", true},
		{"# Annex I", "Annex I", true},
		{"## Chair's Summary\n", "Chair's Summary", false},
		{"Chair's Summary\n===\n", "Chair's Summary", false},
		{"Intro\n# Chair's Summary", "Chair's Summary", false},
		{"# Preamble\n", "Chair's Summary", false},
		{"    # Chair's Summary", "Chair's Summary", false}, // indented code
		{"", "Chair's Summary", false},
	} {
		if got := carriesTitle(tc.text, tc.title); got != tc.want {
			t.Errorf("carriesTitle(%q, %q) = %v; want %v", tc.text, tc.title, got, tc.want)
		}
	}
}

func testPackage() Package {
	return Package{
		Summit: "seoul-2013", Title: `Seoul <Conference> & "Cyberspace"`,
		Generated: time.Date(2013, 10, 18, 17, 30, 0, 0, time.UTC),
		Docs: []Doc{
			{ID: "chair-summary", Title: "Chair's Summary", ApprovedVersion: 3, Adopted: true,
				Text: "# Chair's Summary — Seoul\n\n## 1. Introduction\n\nParticipants **agreed**.\n\n<script>alert(1)</script>\n\n[click](javascript:alert(2))\n"},
			{ID: "annex-1", Title: "Annex <I>", ApprovedVersion: 7,
				Text: "1. Open *and* secure.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"},
		},
	}
}

func TestHTML(t *testing.T) {
	out, err := HTML(testPackage(), false)
	if err != nil {
		t.Fatal(err)
	}
	page := string(out)
	for _, want := range []string{
		"<!DOCTYPE html>\n<html lang=\"en\">",
		"<meta charset=\"utf-8\">",
		"<title>Seoul &lt;Conference&gt; &amp; &#34;Cyberspace&#34;</title>",
		"<h1>Seoul &lt;Conference&gt; &amp; &#34;Cyberspace&#34;</h1>",
		`<time datetime="2013-10-18T17:30:00Z">18 October 2013, 17:30 UTC</time>`,
		`<li><a href="#doc-annex-1">Annex &lt;I&gt;</a></li>`,
		`<article class="doc" id="doc-chair-summary">`,
		// The text's own title heading moves down a level; no second title.
		"<h2>Chair's Summary — Seoul</h2>",
		"<h3>1. Introduction</h3>",
		"Participants <strong>agreed</strong>.",
		"<footer class=\"meta\">Approved version 3 · adopted</footer>",
		`<h2 class="doc-title">Annex &lt;I&gt;</h2>`,
		"<em>and</em>",
		"<table>",
		"@media print",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "javascript:", "alert(", `<h2 class="doc-title">Chair`, "<del", "<ins"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if i, j := strings.Index(page, `id="doc-chair-summary"`), strings.Index(page, `id="doc-annex-1"`); i < 0 || j < i {
		t.Errorf("documents out of order: chair-summary at %d, annex-1 at %d", i, j)
	}

	p := testPackage()
	p.Lang = "ko"
	p.Docs = p.Docs[:1]
	out, err = HTML(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if page := string(out); !strings.Contains(page, `<html lang="ko">`) || strings.Contains(page, `<nav`) {
		t.Errorf("one Korean document: want lang=ko and no contents list; got\n%s", page[:200])
	}
}

func TestHTMLRedline(t *testing.T) {
	approved := "서울 <open> cyberspace 🌐.\nCapacity matters."
	draft := "서울 <open> & secure cyberspace 🌐.\nCapacity building matters!"
	// Authors are set by hand: two delegations, one, and none (a change
	// whose authorship is unknown names no one and gets no label).
	cs := changes.Compute(approved, draft, changes.Authorship{})
	if len(cs) != 3 {
		t.Fatalf("changes %+v; want 3", cs)
	}
	cs[0].Authors = []string{"GBR", "KOR"}
	cs[1].Authors = []string{"GBR"}
	cs[2].Authors = []string{}
	p := Package{Summit: "s", Title: "S", Docs: []Doc{{ID: "annex-1", Title: "Annex I", Text: approved, Changes: cs}}}
	out, err := HTML(p, true)
	if err != nil {
		t.Fatal(err)
	}
	page := string(out)
	want := `<div class="doc-body redline">서울 &lt;open&gt;<ins title="GBR, KOR"> &amp; secure</ins><span class="by">GBR, KOR</span>` +
		` cyberspace 🌐.` + "\n" + `Capacity <ins title="GBR">building </ins><span class="by">GBR</span>matters<del>.</del><ins>!</ins></div>`
	if !strings.Contains(page, want) {
		t.Errorf("redline lacks\n%s\npage:\n%s", want, page)
	}
	for _, w := range []string{"3 pending changes", `<h2 class="doc-title">Annex I</h2>`, "Approved texts with pending changes", `<p class="legend">`} {
		if !strings.Contains(page, w) {
			t.Errorf("redline page lacks %q", w)
		}
	}

	// Out-of-range positions are clamped, never a panic.
	bad := []changes.Change{{Old: "x", New: "y", ApprovedStart: 40, ApprovedEnd: 99}, {New: "z", ApprovedStart: 2, ApprovedEnd: 1}}
	if _, err := HTML(Package{Docs: []Doc{{ID: "d", Title: "D", Text: "short", Changes: bad}}}, true); err != nil {
		t.Fatal(err)
	}
}

func TestFilename(t *testing.T) {
	if got := Filename("seoul-2013", "html"); got != "seoul-2013.html" {
		t.Errorf("Filename = %q; want seoul-2013.html", got)
	}
}
