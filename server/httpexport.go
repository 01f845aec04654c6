package server

import (
	"fmt"
	"net/http"
	"time"

	"communique/server/auth"
	"communique/server/changes"
	"communique/server/doc"
	"communique/server/export"
)

// export answers GET /api/summits/{s}/export?format=md|html[&redline=1]:
// the summit's documents in their order (the chair's summary, then its
// annexes), approved texts, as one file. A redline shows pending changes,
// which are draft material, so observers may not ask for one.
func (s *Server) export(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	q := r.URL.Query()
	format := q.Get("format")
	switch format {
	case "":
		format = "md"
	case "md", "html":
	default:
		return badRequest(`format must be "md" or "html"`)
	}
	redline := false
	switch q.Get("redline") {
	case "", "0", "false":
	case "1", "true":
		redline = true
	default:
		return badRequest(`redline must be "1" or "0"`)
	}
	if redline && !who.CanReadDraft() {
		return forbidden("observers see the approved text only; a redline shows pending changes")
	}
	if redline && format != "html" {
		return badRequest("a redline is an HTML page: use format=html")
	}
	sid := r.PathValue("s")
	sm, err := s.summit(r.Context(), sid)
	if err != nil {
		return err
	}
	list, err := s.store.ListDocs(r.Context(), sid)
	if err != nil {
		return fmt.Errorf("export %s: %w", sid, err)
	}
	p := export.Package{Summit: sid, Title: sm.Title, Generated: time.Now().UTC()}
	for _, meta := range list {
		sess, err := s.docs.Acquire(r.Context(), sid, meta.ID)
		if err != nil {
			return fmt.Errorf("export %s/%s: %w", sid, meta.ID, err)
		}
		v := sess.View()
		d := export.Doc{ID: meta.ID, Title: v.Title, Text: v.Approved.String(), ApprovedVersion: v.ApprovedVersion, Adopted: v.Adopted}
		if redline {
			// Both from the same view, so the changes fit the text shown.
			d.Changes = changesAt(sess, v)
		}
		sess.Release()
		p.Docs = append(p.Docs, d)
	}
	var body []byte
	ctype := "text/markdown; charset=utf-8"
	if format == "md" {
		body = export.Markdown(p)
	} else {
		ctype = "text/html; charset=utf-8"
		if body, err = export.HTML(p, redline); err != nil {
			return fmt.Errorf("export %s: %w", sid, err)
		}
		// The page is self-contained: nothing to load but its own styles
		// (and images the texts link to). No script may ever run in it.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:")
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, export.Filename(sid, format)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// changesAt is the pending changes of view v of sess: the session's cached
// list when it is still at v's versions (the usual case), computed from v
// otherwise.
func changesAt(sess *doc.Session, v *doc.View) []changes.Change {
	p := sess.Changes()
	if p.DraftVersion == v.DraftVersion && p.ApprovedVersion == v.ApprovedVersion {
		return p.Changes
	}
	return changes.Compute(v.Approved.String(), v.Draft.String(), v.Auth)
}
