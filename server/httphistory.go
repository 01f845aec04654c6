package server

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"communique/ot"
	"communique/server/auth"
	"communique/server/changes"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/wire"
)

// History: each stream's ops, its text at any version, redlines between
// versions, the draft's authorship and the record of decisions. Everything
// here reads what the store already keeps (every op, every snapshot), so it
// costs nothing on the edit path.

const (
	historyDefaultLimit = 100
	historyMaxLimit     = 1000
	// replayPage bounds how many records are held at once while replaying.
	replayPage = 1000
)

type historyOpJSON struct {
	Version  uint64          `json:"version"`
	Op       ot.Op           `json:"op"`
	Author   string          `json:"author"`
	Name     string          `json:"name"`
	Time     int64           `json:"time"` // unix milliseconds, as in op frames
	Decision *store.Decision `json:"decision,omitempty"`
}

type historyJSON struct {
	Stream store.Stream    `json:"stream"`
	Ops    []historyOpJSON `json:"ops"`
	Next   *uint64         `json:"next"`
}

type textJSON struct {
	Stream  store.Stream `json:"stream"`
	Version uint64       `json:"version"`
	Text    string       `json:"text"`
}

type redlineJSON struct {
	Stream  store.Stream     `json:"stream"`
	From    uint64           `json:"from"`
	To      uint64           `json:"to"`
	Changes []changes.Change `json:"changes"`
}

type blameSpanJSON struct {
	Start  int    `json:"start"`
	End    int    `json:"end"`
	Author string `json:"author"`
	Text   string `json:"text"`
}

type blameJSON struct {
	Version uint64          `json:"version"`
	Spans   []blameSpanJSON `json:"spans"`
}

type decisionRecordJSON struct {
	Kind    string       `json:"kind"`
	Change  string       `json:"change"`
	Old     string       `json:"old"`
	New     string       `json:"new"`
	Authors []string     `json:"authors"`
	By      string       `json:"by"`
	Time    time.Time    `json:"time"`
	Stream  store.Stream `json:"stream"`
	Version uint64       `json:"version"`
}

// historyStream reads ?stream= (default draft, like the socket) and checks
// that who may read it: observers see only the approved stream.
func historyStream(q url.Values, who auth.Principal) (store.Stream, error) {
	st := store.Stream(q.Get("stream"))
	switch st {
	case "":
		st = store.Draft
	case store.Draft, store.Approved:
	default:
		return "", badRequest(`stream must be "draft" or "approved"`)
	}
	if st == store.Draft && !who.CanReadDraft() {
		return "", forbidden("observers see the approved stream only")
	}
	return st, nil
}

// queryVersion reads an optional version parameter; absent is def.
func queryVersion(q url.Values, name string, def uint64) (uint64, error) {
	if !q.Has(name) {
		return def, nil
	}
	v, err := strconv.ParseUint(q.Get(name), 10, 64)
	if err != nil || v > 1<<53 {
		return 0, apiErr(http.StatusBadRequest, wire.CodeBadVersion, name+" must be an integer from 0 to 2^53")
	}
	return v, nil
}

// notAhead refuses a version the stream has not reached (400, as for a
// socket's since).
func notAhead(name string, v, head uint64) error {
	if v > head {
		return apiErr(http.StatusBadRequest, wire.CodeBadVersion, fmt.Sprintf("%s %d is ahead of the stream's version %d", name, v, head))
	}
	return nil
}

func headOf(v *doc.View, st store.Stream) (uint64, ot.Text) {
	if st == store.Approved {
		return v.ApprovedVersion, v.Approved
	}
	return v.DraftVersion, v.Draft
}

func streamKey(r *http.Request, st store.Stream) store.StreamKey {
	return store.StreamKey{Summit: r.PathValue("s"), Doc: r.PathValue("d"), Stream: st}
}

// history answers GET …/history?stream=&after=&limit=: a page of the
// stream's ops after version after, oldest first. next is the version to
// pass as after for the following page, null on the last one. The page
// ends at the version the session has published, so it never shows an op
// that text?version= would call ahead of the stream.
func (s *Server) history(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	q := r.URL.Query()
	st, err := historyStream(q, who)
	if err != nil {
		return err
	}
	after, err := queryVersion(q, "after", 0)
	if err != nil {
		return err
	}
	limit := historyDefaultLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 {
			return badRequest(fmt.Sprintf("limit must be an integer from 1 to %d", historyMaxLimit))
		}
		limit = min(n, historyMaxLimit)
	}
	return s.session(r, func(sess *doc.Session) error {
		head, _ := headOf(sess.View(), st)
		if err := notAhead("after", after, head); err != nil {
			return err
		}
		n := min(uint64(limit), head-after)
		out := historyJSON{Stream: st, Ops: []historyOpJSON{}}
		if n > 0 {
			recs, err := s.store.Since(r.Context(), streamKey(r, st), after, int(n))
			if err != nil {
				return fmt.Errorf("history of %s: %w", st, err)
			}
			if uint64(len(recs)) != n {
				return fmt.Errorf("history of %s after %d: read %d ops, want %d: %w", st, after, len(recs), n, store.ErrCorrupt)
			}
			for _, rec := range recs {
				out.Ops = append(out.Ops, historyOp(rec))
			}
			if last := recs[len(recs)-1].Version; last < head {
				out.Next = &last
			}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func historyOp(rec store.OpRecord) historyOpJSON {
	d := rec.Decision
	if d != nil && d.Authors == nil {
		c := *d
		c.Authors = []string{}
		d = &c
	}
	return historyOpJSON{Version: rec.Version, Op: rec.Op, Author: rec.Author, Name: rec.Name, Time: rec.Time.UnixMilli(), Decision: d}
}

// textVersion answers GET …/text?stream=&version=: the stream's text at
// any version (default: the head).
func (s *Server) textVersion(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	q := r.URL.Query()
	st, err := historyStream(q, who)
	if err != nil {
		return err
	}
	return s.session(r, func(sess *doc.Session) error {
		head, text := headOf(sess.View(), st)
		v, err := queryVersion(q, "version", head)
		if err != nil {
			return err
		}
		if err := notAhead("version", v, head); err != nil {
			return err
		}
		if v != head {
			if text, err = s.textAt(r.Context(), streamKey(r, st), v); err != nil {
				return err
			}
		}
		writeJSON(w, http.StatusOK, textJSON{Stream: st, Version: v, Text: text.String()})
		return nil
	})
}

// textAt rebuilds a stream's text at version v from the newest snapshot at
// or before v and the ops after it (at most one snapshot interval).
func (s *Server) textAt(ctx context.Context, k store.StreamKey, v uint64) (ot.Text, error) {
	snap, err := s.store.SnapshotAt(ctx, k, v)
	if err != nil {
		return ot.Text{}, fmt.Errorf("text of %s at %d: %w", k.Stream, v, err)
	}
	t := ot.NewText(snap.Text)
	err = s.replay(ctx, k, snap.Version, v, func(rec store.OpRecord) error {
		var err error
		t, err = t.Apply(rec.Op)
		return err
	})
	if err != nil {
		return ot.Text{}, fmt.Errorf("text of %s at %d: %w", k.Stream, v, err)
	}
	return t, nil
}

// replay calls fn for every record of versions (from, to], in order,
// reading the store a page at a time. A gap or a record that does not fit
// is corruption.
func (s *Server) replay(ctx context.Context, k store.StreamKey, from, to uint64, fn func(store.OpRecord) error) error {
	for cur := from; cur < to; {
		recs, err := s.store.Since(ctx, k, cur, int(min(replayPage, to-cur)))
		if err != nil {
			return fmt.Errorf("read ops after %d: %w", cur, err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("no ops after %d, want up to %d: %w", cur, to, store.ErrCorrupt)
		}
		for _, rec := range recs {
			if rec.Version != cur+1 {
				return fmt.Errorf("op %d after %d: %w", rec.Version, cur, store.ErrCorrupt)
			}
			if err := fn(rec); err != nil {
				return fmt.Errorf("replay op %d: %v: %w", rec.Version, err, store.ErrCorrupt)
			}
			cur = rec.Version
		}
	}
	return nil
}

// authorSep joins the delegations of an approval into one author while
// replaying the approved stream (see redlineAuthor).
const authorSep = "\x1f"

// redlineAuthor is who a redline credits for rec. On the approved stream
// every op is the chair's approval of somebody's wording, so the redline
// names the delegations the approval recorded instead, as one joined author
// that redline splits again.
func redlineAuthor(st store.Stream, rec store.OpRecord) string {
	if st == store.Approved && rec.Decision != nil && len(rec.Decision.Authors) > 0 {
		return strings.Join(rec.Decision.Authors, authorSep)
	}
	return rec.Author
}

// redline answers GET …/redline?stream=&from=&to=: the attributed diff
// from version from (default 0) to version to (default the head). Its
// authors are those of the ops in (from, to] only: text already there at
// from is nobody's change.
func (s *Server) redline(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	q := r.URL.Query()
	st, err := historyStream(q, who)
	if err != nil {
		return err
	}
	return s.session(r, func(sess *doc.Session) error {
		head, _ := headOf(sess.View(), st)
		from, err := queryVersion(q, "from", 0)
		if err != nil {
			return err
		}
		to, err := queryVersion(q, "to", head)
		if err != nil {
			return err
		}
		if err := notAhead("to", to, head); err != nil {
			return err
		}
		if from > to {
			return apiErr(http.StatusBadRequest, wire.CodeBadVersion, fmt.Sprintf("from %d is after to %d", from, to))
		}
		k := streamKey(r, st)
		a, err := s.textAt(r.Context(), k, from)
		if err != nil {
			return err
		}
		b, auth := a, changes.New(a.Len())
		err = s.replay(r.Context(), k, from, to, func(rec store.OpRecord) error {
			next, inv, err := b.ApplyInvert(rec.Op)
			if err != nil {
				return err
			}
			if auth, err = auth.Apply(rec.Op, redlineAuthor(st, rec), deletedTexts(inv)); err != nil {
				return err
			}
			b = next
			return nil
		})
		if err != nil {
			return fmt.Errorf("redline of %s from %d to %d: %w", st, from, to, err)
		}
		list := changes.Compute(a.String(), b.String(), auth)
		for i := range list {
			list[i].Authors = splitAuthors(list[i].Authors)
		}
		writeJSON(w, http.StatusOK, redlineJSON{Stream: st, From: from, To: to, Changes: list})
		return nil
	})
}

// splitAuthors undoes redlineAuthor's joining: a sorted list of distinct
// authors, never nil.
func splitAuthors(in []string) []string {
	out := []string{}
	for _, a := range in {
		out = append(out, strings.Split(a, authorSep)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// deletedTexts lists the texts an op deleted, in order: its inverse inserts
// exactly those (as server/doc does for the live authorship).
func deletedTexts(inv ot.Op) []string {
	var out []string
	for _, c := range inv {
		if c.Insert != "" {
			out = append(out, c.Insert)
		}
	}
	return out
}

// blame answers GET …/blame: who wrote each run of the current draft.
// Author "" is text that was there when the document was created.
func (s *Server) blame(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanReadDraft() {
		return forbidden("observers see the approved text only")
	}
	return s.session(r, func(sess *doc.Session) error {
		v := sess.View()
		runs := v.Auth.Blame()
		out := blameJSON{Version: v.DraftVersion, Spans: make([]blameSpanJSON, 0, len(runs))}
		for _, b := range runs {
			out.Spans = append(out.Spans, blameSpanJSON{Start: b.Start, End: b.End, Author: b.Author, Text: v.Draft.Slice(b.Start, b.End)})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// decisions answers GET …/decisions: every approval (recorded on the
// approved stream) and every rejection (on the draft) ever made on the
// document, oldest first. It reads both logs, a page at a time; only the
// decisions are kept.
func (s *Server) decisions(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanReadDraft() {
		return forbidden("observers see the approved text only")
	}
	return s.session(r, func(sess *doc.Session) error {
		v := sess.View()
		out, err := s.decisionsUpTo(r.Context(), r.PathValue("s"), r.PathValue("d"), [2]uint64{v.ApprovedVersion, v.DraftVersion})
		if err != nil {
			return err
		}
		// Each log is in time order already; merge them. Decisions made
		// together (approve-all) share a time within a millisecond or so,
		// and then keep their stream's order.
		slices.SortStableFunc(out, func(a, b decisionRecordJSON) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			if c := cmp.Compare(a.Stream, b.Stream); c != 0 {
				return c
			}
			return cmp.Compare(a.Version, b.Version)
		})
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}
