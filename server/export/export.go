// Package export turns a summit's documents into one package for reading
// and printing: Markdown, or a standalone HTML page, optionally with the
// pending changes shown inline (a redline). Everything here is a pure
// function of its input, so the HTTP handler only gathers the documents.
package export

import (
	"bytes"
	"fmt"
	"html"
	"regexp"
	"strings"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"

	"communique/server/changes"
)

// Doc is one document of a package.
type Doc struct {
	ID              string
	Title           string
	Text            string // the approved text
	ApprovedVersion uint64
	Adopted         bool
	// Changes are the pending changes of the draft against Text
	// (changes.Compute(Text, draft, …)); only a redline shows them.
	Changes []changes.Change
}

// Package is a summit's documents in their order: the chair's summary
// first, then its annexes.
type Package struct {
	Summit    string // id, used for file names
	Title     string
	Lang      string    // BCP 47 language of the texts; "en" when empty
	Generated time.Time // shown on the HTML page
	Docs      []Doc
}

// Filename is the download name of a package of summit in format ext
// ("md", "html"). Summit ids are already restricted to letters, digits,
// '-' and '_', so the name needs no quoting beyond the header's quotes.
func Filename(summit, ext string) string { return summit + "." + ext }

// Markdown is the package as one Markdown file: each document's approved
// text under its title, separated by horizontal rules. A document whose
// text already opens with a level-one heading starting with its title
// (as the chair's texts usually do) is not given a second one.
func Markdown(p Package) []byte {
	var b bytes.Buffer
	for i, d := range p.Docs {
		if i > 0 {
			b.WriteString("\n---\n\n")
		}
		if !carriesTitle(d.Text, d.Title) {
			b.WriteString("# " + escapeMarkdown(d.Title) + "\n\n")
		}
		if body := strings.TrimRight(d.Text, " \t\r\n"); body != "" {
			// Leading blank lines would only widen the gap under the title.
			b.WriteString(strings.TrimLeft(body, "\r\n"))
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// atxH1 matches a level-one ATX heading line (CommonMark: up to three
// spaces of indentation, optional closing #s).
var atxH1 = regexp.MustCompile(`^ {0,3}# +(.*?)(?: +#+)? *$`)

// carriesTitle reports whether text's first non-blank line is a level-one
// heading that starts with title.
func carriesTitle(text, title string) bool {
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := atxH1.FindStringSubmatch(line)
		return m != nil && strings.HasPrefix(m[1], strings.TrimSpace(title))
	}
	return false
}

// escapeMarkdown backslash-escapes the characters that would make a plain
// title into markup (CommonMark allows a backslash before any ASCII
// punctuation).
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>#|~&!", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// md renders document texts. Raw HTML in a text is dropped and dangerous
// link schemes (javascript:) are not linked: goldmark's renderer is safe
// unless html.WithUnsafe is given, and it is not. Headings move one level
// down, so that a text's own "# Title" sits under the page's summit title,
// at the level of the documents' titles.
var md = goldmark.New(
	goldmark.WithExtensions(extension.Table, extension.Strikethrough),
	goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(shiftHeadings{by: 1}, 100))),
)

type shiftHeadings struct{ by int }

func (t shiftHeadings) Transform(doc *ast.Document, _ text.Reader, _ parser.Context) {
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if h, ok := n.(*ast.Heading); ok && entering {
			h.Level = min(6, h.Level+t.by)
		}
		return ast.WalkContinue, nil
	})
}

// HTML is the package as one standalone page: inline CSS, no scripts, no
// external resources, readable on screen and printable (each document
// starts a new page). Document texts are rendered from Markdown in safe
// mode; every other string is escaped.
//
// With redline, each document shows its approved text with the pending
// changes inline: deletions as <del>, insertions as <ins>, each followed by
// the delegations whose edits made it. The redline is rendered on the plain
// text (white-space preserved), not through Markdown: markup split by a
// change could not be rendered faithfully, and a reviewer must see exactly
// which characters change.
func HTML(p Package, redline bool) ([]byte, error) {
	lang := p.Lang
	if lang == "" {
		lang = "en"
	}
	esc := html.EscapeString
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n", esc(lang))
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n<style>\n%s</style>\n</head>\n<body>\n", esc(p.Title), css)
	b.WriteString("<header class=\"package\">\n")
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(p.Title))
	what := "Approved texts"
	if redline {
		what = "Approved texts with pending changes"
	}
	gen := ""
	if !p.Generated.IsZero() {
		g := p.Generated.UTC()
		gen = fmt.Sprintf(" · <time datetime=\"%s\">%s</time>", g.Format(time.RFC3339), esc(g.Format("2 January 2006, 15:04 UTC")))
	}
	fmt.Fprintf(&b, "<p class=\"meta\">%s%s</p>\n", what, gen)
	if redline {
		b.WriteString("<p class=\"legend\"><del>deleted</del> <ins>inserted</ins> <span class=\"by\">delegations</span></p>\n")
	}
	if len(p.Docs) > 1 {
		b.WriteString("<nav class=\"toc\" aria-label=\"Contents\">\n<ol>\n")
		for _, d := range p.Docs {
			fmt.Fprintf(&b, "<li><a href=\"#doc-%s\">%s</a></li>\n", esc(d.ID), esc(d.Title))
		}
		b.WriteString("</ol>\n</nav>\n")
	}
	b.WriteString("</header>\n<main>\n")
	for _, d := range p.Docs {
		fmt.Fprintf(&b, "<article class=\"doc\" id=\"doc-%s\">\n", esc(d.ID))
		if redline || !carriesTitle(d.Text, d.Title) {
			fmt.Fprintf(&b, "<h2 class=\"doc-title\">%s</h2>\n", esc(d.Title))
		}
		if redline {
			b.WriteString("<div class=\"doc-body redline\">")
			writeRedline(&b, d.Text, d.Changes)
			b.WriteString("</div>\n")
		} else {
			b.WriteString("<div class=\"doc-body\">\n")
			if err := md.Convert([]byte(d.Text), &b); err != nil {
				return nil, fmt.Errorf("render %s: %w", d.ID, err)
			}
			b.WriteString("</div>\n")
		}
		// After the body: a text that carries its own title opens with it.
		fmt.Fprintf(&b, "<footer class=\"meta\">%s</footer>\n", esc(docMeta(d, redline)))
		b.WriteString("</article>\n")
	}
	b.WriteString("</main>\n</body>\n</html>\n")
	return b.Bytes(), nil
}

func docMeta(d Doc, redline bool) string {
	parts := []string{fmt.Sprintf("Approved version %d", d.ApprovedVersion)}
	if d.Adopted {
		parts = append(parts, "adopted")
	}
	if redline {
		switch n := len(d.Changes); n {
		case 0:
			parts = append(parts, "no pending changes")
		case 1:
			parts = append(parts, "1 pending change")
		default:
			parts = append(parts, fmt.Sprintf("%d pending changes", n))
		}
	}
	return strings.Join(parts, " · ")
}

// writeRedline writes approved with each change shown in place. Changes
// are in approved-text order and do not overlap (they are the hunks of one
// diff); positions count code points.
func writeRedline(b *bytes.Buffer, approved string, cs []changes.Change) {
	runes := []rune(approved)
	pos := 0
	for _, c := range cs {
		// Clamped so that a malformed list cannot make the page panic.
		start := clamp(c.ApprovedStart, pos, len(runes))
		end := clamp(c.ApprovedEnd, start, len(runes))
		b.WriteString(html.EscapeString(string(runes[pos:start])))
		by := strings.Join(c.Authors, ", ")
		title := ""
		if by != "" {
			title = fmt.Sprintf(" title=\"%s\"", html.EscapeString(by))
		}
		if c.Old != "" {
			fmt.Fprintf(b, "<del%s>%s</del>", title, html.EscapeString(c.Old))
		}
		if c.New != "" {
			fmt.Fprintf(b, "<ins%s>%s</ins>", title, html.EscapeString(c.New))
		}
		if by != "" {
			fmt.Fprintf(b, "<span class=\"by\">%s</span>", html.EscapeString(by))
		}
		pos = end
	}
	b.WriteString(html.EscapeString(string(runes[pos:])))
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// css keeps long texts comfortable on screen (a measure of about 70
// characters, generous leading) and on paper (serif body, no colours that
// need a colour printer to mean anything: deletions are struck through and
// insertions underlined as well).
const css = `:root { color-scheme: light; }
html { font-size: 112.5%; }
body { margin: 0 auto; max-width: 40rem; padding: 2.5rem 1.25rem 4rem;
  font-family: "Iowan Old Style", "Palatino Linotype", Palatino, "Noto Serif", Georgia, serif;
  line-height: 1.6; color: #1b1b1b; background: #fff;
  text-rendering: optimizeLegibility; font-kerning: normal; hyphens: auto; overflow-wrap: break-word; }
h1, h2, h3, h4, h5, h6 { font-family: "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  line-height: 1.25; margin: 2em 0 0.6em; hyphens: manual; break-after: avoid; }
h1 { font-size: 1.9rem; margin-top: 0; }
h2 { font-size: 1.45rem; }
h3 { font-size: 1.2rem; }
h4, h5, h6 { font-size: 1rem; }
p, li { orphans: 3; widows: 3; }
a { color: #1d4f91; }
.meta { color: #555; font-size: 0.85rem; margin: 1rem 0; }
.toc ol { padding-left: 1.4rem; }
.doc { margin-top: 3.5rem; padding-top: 1.5rem; border-top: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.6rem; text-align: left; }
blockquote { margin: 1rem 0; padding-left: 1rem; border-left: 3px solid #ccc; color: #444; }
code, pre { font-family: "SFMono-Regular", Consolas, "Liberation Mono", monospace; font-size: 0.9em; }
pre { white-space: pre-wrap; }
.redline { white-space: pre-wrap; }
del { color: #8a1c1c; background: #fbe9e9; text-decoration: line-through; }
ins { color: #1c5e2a; background: #e6f4e8; text-decoration: underline; }
.by { font-family: "Helvetica Neue", Arial, sans-serif; font-size: 0.7em; color: #555;
  vertical-align: super; margin: 0 0.2em; letter-spacing: 0.03em; }
@media print {
  html { font-size: 11pt; }
  body { max-width: none; padding: 0; }
  @page { margin: 2cm 2.2cm; }
  .toc { break-after: page; }
  .doc { border-top: none; margin-top: 0; padding-top: 0; }
  .doc + .doc { break-before: page; }
  a { color: inherit; text-decoration: none; }
  del, ins { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
`
