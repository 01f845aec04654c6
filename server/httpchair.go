package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"communique/server/auth"
	"communique/server/changes"
	"communique/server/doc"
	"communique/server/store"
)

// The chair's office: pending changes, decisions and adoption.

type changesJSON struct {
	DraftVersion    uint64           `json:"draft_version"`
	ApprovedVersion uint64           `json:"approved_version"`
	Changes         []changes.Change `json:"changes"`
}

type decisionJSON struct {
	DraftVersion    uint64           `json:"draft_version"`
	ApprovedVersion uint64           `json:"approved_version"`
	Decided         []changes.Change `json:"decided,omitempty"`
}

func (s *Server) listChanges(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanReadDraft() {
		return forbidden("observers see the approved text only")
	}
	return s.session(r, func(sess *doc.Session) error {
		p := sess.Changes()
		writeJSON(w, http.StatusOK, changesJSON{DraftVersion: p.DraftVersion, ApprovedVersion: p.ApprovedVersion, Changes: p.Changes})
		return nil
	})
}

// decideOne answers POST …/changes/{id}/approve and …/reject.
func (s *Server) decideOne(approve bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
		if who.Role != store.RoleChair {
			return forbidden("only the chair's office decides on changes")
		}
		return s.decide(w, r, who, doc.Decision{Approve: approve, IDs: []string{r.PathValue("id")}})
	}
}

// decideAll answers POST …/changes/approve-all and …/reject-all. The body
// may name the versions the chair looked at ({"draft_version",
// "approved_version"}); the call then fails with 409 if either moved, so
// nothing the chair has not seen is decided.
func (s *Server) decideAll(approve bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
		if who.Role != store.RoleChair {
			return forbidden("only the chair's office decides on changes")
		}
		d := doc.Decision{Approve: approve, All: true}
		if r.ContentLength != 0 {
			var in struct {
				DraftVersion    *uint64 `json:"draft_version"`
				ApprovedVersion *uint64 `json:"approved_version"`
			}
			if err := decodeBody(r, &in); err != nil {
				return err
			}
			d.ExpectDraft, d.ExpectApproved = in.DraftVersion, in.ApprovedVersion
		}
		return s.decide(w, r, who, d)
	}
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request, who auth.Principal, d doc.Decision) error {
	d.Name = who.Name
	return s.session(r, func(sess *doc.Session) error {
		out, err := sess.Decide(r.Context(), d)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, decisionJSON{DraftVersion: out.DraftVersion, ApprovedVersion: out.ApprovedVersion, Decided: out.Decided})
		return nil
	})
}

func (s *Server) adopt(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if who.Role != store.RoleChair {
		return forbidden("only the chair's office adopts documents")
	}
	var in struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(r, &in); err != nil {
			return err
		}
	}
	if utf8.RuneCountInString(in.Name) > 200 {
		return badRequest("name must be at most 200 characters")
	}
	return s.session(r, func(sess *doc.Session) error {
		if in.Name == "" {
			in.Name = sess.View().Meta.Title + " — adopted " + time.Now().UTC().Format("2 January 2006 15:04 UTC")
		}
		a, err := sess.Adopt(r.Context(), in.Name, who.Name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"adopted": true, "name": a.Name, "time": a.Time,
			"approved_version": a.ApprovedVersion, "draft_version": a.DraftVersion,
		})
		return nil
	})
}

// updateDoc answers PATCH …/docs/{d}: {"title"} renames, {"order"} moves.
func (s *Server) updateDoc(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanManage() {
		return forbidden("only the admin and the chair's office rename or reorder documents")
	}
	var in struct {
		Title *string         `json:"title"`
		Order json.RawMessage `json:"order"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	var order *int
	if in.Order != nil {
		n, err := strconv.Atoi(string(in.Order))
		if err != nil || n < 0 || n > 1<<20 {
			return badRequest("order must be a non-negative integer")
		}
		order = &n
	}
	if in.Title != nil {
		if err := checkTitle(*in.Title); err != nil {
			return err
		}
	}
	return s.session(r, func(sess *doc.Session) error {
		d, err := sess.UpdateMeta(r.Context(), func(d *store.Doc) {
			if in.Title != nil {
				d.Title = *in.Title
			}
			if order != nil {
				d.Order = *order
			}
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "title": d.Title, "order": d.Order, "adopted": d.Adopted})
		return nil
	})
}

// reorder answers PUT /api/summits/{s}/order {"ids":[…]}: the documents in
// the order given (the chair's summary first, then the annexes).
func (s *Server) reorder(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanManage() {
		return forbidden("only the admin and the chair's office reorder documents")
	}
	sid := r.PathValue("s")
	var in struct {
		IDs []string `json:"ids"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	list, err := s.store.ListDocs(r.Context(), sid)
	if err != nil {
		return err
	}
	if len(in.IDs) != len(list) {
		return badRequest(fmt.Sprintf("ids must list each of the summit's %d documents once", len(list)))
	}
	known := map[string]bool{}
	for _, d := range list {
		known[d.ID] = true
	}
	for _, id := range in.IDs {
		if !known[id] {
			return badRequest(fmt.Sprintf("ids must list each of the summit's %d documents once (%q is not one)", len(list), id))
		}
		delete(known, id)
	}
	for i, id := range in.IDs {
		sess, err := s.docs.Acquire(r.Context(), sid, id)
		if err != nil {
			return err
		}
		_, err = sess.UpdateMeta(r.Context(), func(d *store.Doc) { d.Order = i })
		sess.Release()
		if err != nil {
			return err
		}
	}
	return s.listDocs(w, r, who)
}
