package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"communique/ot"
	"communique/server/auth"
	"communique/server/doc"
	"communique/server/store"
	"communique/server/wire"
)

// apiError is an error with its HTTP status and protocol code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func apiErr(status int, code, msg string) error {
	return &apiError{status: status, code: code, msg: msg}
}

// errUnauthorized is one body for every authentication failure, so a caller
// cannot tell a missing token from a wrong one.
var errUnauthorized = apiErr(http.StatusUnauthorized, wire.CodeUnauthorized, "a valid token is required")

func forbidden(msg string) error { return apiErr(http.StatusForbidden, wire.CodeForbidden, msg) }

func badRequest(msg string) error { return apiErr(http.StatusBadRequest, wire.CodeBadRequest, msg) }

// toAPIError maps errors from the store and sessions to statuses.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, wire.CodeTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit)}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{http.StatusNotFound, wire.CodeNotFound, err.Error()}
	case errors.Is(err, store.ErrExists):
		return &apiError{http.StatusConflict, wire.CodeConflict, err.Error()}
	case errors.Is(err, store.ErrCorrupt):
		return &apiError{http.StatusInternalServerError, wire.CodeInternal, err.Error()}
	}
	switch code := doc.Code(err); code {
	case wire.CodeConflict:
		return &apiError{http.StatusConflict, code, err.Error()}
	case wire.CodeAdopted:
		return &apiError{http.StatusConflict, code, err.Error()}
	case wire.CodeBadVersion:
		return &apiError{http.StatusConflict, code, err.Error()}
	case wire.CodeBadOp:
		return &apiError{http.StatusBadRequest, code, err.Error()}
	case wire.CodeTooLarge:
		return &apiError{http.StatusRequestEntityTooLarge, code, err.Error()}
	case wire.CodeUnavailable:
		return &apiError{http.StatusServiceUnavailable, code, err.Error()}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &apiError{http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error()}
	}
	return &apiError{http.StatusInternalServerError, wire.CodeInternal, "internal error"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err *apiError) {
	writeJSON(w, err.status, map[string]any{"error": map[string]string{"code": err.code, "message": err.msg}})
}

type apiHandler func(w http.ResponseWriter, r *http.Request, who auth.Principal) error

// api authenticates the request, checks ids in the path, and turns a
// returned error into the protocol's JSON error.
func (s *Server) api(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		err := s.serveAPI(w, r, h)
		if err == nil {
			return
		}
		ae := toAPIError(err)
		if ae.status >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, ae)
	})
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, h apiHandler) error {
	for _, name := range []string{"s", "d", "id"} {
		if v := r.PathValue(name); v != "" || pathHas(r, name) {
			if !validID(v) {
				return badRequest(fmt.Sprintf("invalid %s id: %s", idName(name), idRule))
			}
		}
	}
	secret := auth.FromRequest(r, isWebSocket(r))
	who, err := s.auth.Resolve(r.Context(), secret)
	if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrUnknownToken) {
		return errUnauthorized
	}
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	if sid := r.PathValue("s"); sid != "" && !who.In(sid) {
		return forbidden("this token belongs to another summit")
	}
	return h(w, r, who)
}

// pathHas reports whether the route has a wildcard name (so that an empty
// value is refused rather than skipped).
func pathHas(r *http.Request, name string) bool {
	return strings.Contains(r.Pattern, "{"+name+"}")
}

func idName(n string) string {
	switch n {
	case "s":
		return "summit"
	case "d":
		return "document"
	}
	return "token"
}

// idPattern starts with a letter or digit so that names with a meaning of
// their own elsewhere — __proto__ in the JavaScript clients that use ids as
// object keys, -x as a command-line flag in scripts — are refused too
// (FAULTS.md case 11).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// idRule is the allowlist in words, for error messages.
const idRule = "use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit"

// validID is the allowlist every id passes before it reaches a store key or
// a channel name.
func validID(id string) bool { return idPattern.MatchString(id) }

// isWebSocket reports whether r is a handshake, where a token may come in
// the query string because browsers cannot set headers on it.
func isWebSocket(r *http.Request) bool {
	return strings.HasSuffix(r.URL.Path, "/ws")
}

// decodeBody reads a JSON object body into v.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest("the body must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return badRequest("invalid JSON body: " + err.Error())
	}
	return nil
}

func (s *Server) adminOnly(h http.Handler) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
		if who.Role != store.RoleAdmin {
			return forbidden("admin only")
		}
		h.ServeHTTP(w, r)
		return nil
	})
}

// --- summits ---

type summitJSON struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

func (s *Server) createSummit(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if who.Role != store.RoleAdmin {
		return forbidden("only the server's admin creates summits")
	}
	var in summitJSON
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if !validID(in.ID) {
		return badRequest("invalid summit id: " + idRule)
	}
	if err := checkTitle(in.Title); err != nil {
		return err
	}
	err := s.store.CreateSummit(r.Context(), store.Summit{ID: in.ID, Title: in.Title, Created: time.Now().UTC()})
	if errors.Is(err, store.ErrExists) {
		return apiErr(http.StatusConflict, wire.CodeConflict, "summit "+in.ID+" already exists")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, in)
	return nil
}

func checkTitle(t string) error {
	if t == "" || utf8.RuneCountInString(t) > 300 {
		return badRequest("title must be 1 to 300 characters")
	}
	return nil
}

func (s *Server) summit(ctx context.Context, id string) (store.Summit, error) {
	sm, err := s.store.GetSummit(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return sm, apiErr(http.StatusNotFound, wire.CodeNotFound, "no summit "+id)
	}
	return sm, err
}

func (s *Server) getSummit(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	sm, err := s.summit(r.Context(), r.PathValue("s"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, summitJSON{ID: sm.ID, Title: sm.Title})
	return nil
}

// --- tokens ---

type tokenJSON struct {
	ID         string    `json:"id"`
	Token      string    `json:"token,omitempty"`
	Role       string    `json:"role"`
	Delegation string    `json:"delegation,omitempty"`
	Name       string    `json:"name"`
	Created    time.Time `json:"created"`
}

var delegationPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanManage() {
		return forbidden("only the admin and the chair's office invite participants")
	}
	sid := r.PathValue("s")
	if _, err := s.summit(r.Context(), sid); err != nil {
		return err
	}
	var in struct {
		Role       string `json:"role"`
		Delegation string `json:"delegation"`
		Name       string `json:"name"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	role := store.Role(in.Role)
	switch role {
	case store.RoleChair, store.RoleObserver:
		in.Delegation = ""
	case store.RoleDelegate:
		if !delegationPattern.MatchString(in.Delegation) {
			return badRequest("a delegate needs a delegation code (1 to 32 letters, digits, '-' or '_'), e.g. KOR")
		}
	default:
		return badRequest(`role must be "chair", "delegate" or "observer"`)
	}
	if in.Name == "" {
		in.Name = in.Delegation
		if in.Name == "" {
			in.Name = string(role)
		}
	}
	if utf8.RuneCountInString(in.Name) > 100 {
		return badRequest("name must be at most 100 characters")
	}
	secret, err := auth.NewSecret()
	if err != nil {
		return err
	}
	t := store.Token{
		ID: auth.NewID(), Summit: sid, Role: role, Delegation: in.Delegation, Name: in.Name,
		Hash: auth.Hash(secret), Created: time.Now().UTC(),
	}
	if err := s.store.PutToken(r.Context(), t); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tokenJSON{ID: t.ID, Token: secret, Role: string(t.Role), Delegation: t.Delegation, Name: t.Name, Created: t.Created})
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanManage() {
		return forbidden("only the admin and the chair's office see the participants' tokens")
	}
	sid := r.PathValue("s")
	if _, err := s.summit(r.Context(), sid); err != nil {
		return err
	}
	list, err := s.store.ListTokens(r.Context(), sid)
	if err != nil {
		return err
	}
	out := make([]tokenJSON, 0, len(list))
	for _, t := range list {
		out = append(out, tokenJSON{ID: t.ID, Role: string(t.Role), Delegation: t.Delegation, Name: t.Name, Created: t.Created})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanManage() {
		return forbidden("only the admin and the chair's office revoke tokens")
	}
	sid, id := r.PathValue("s"), r.PathValue("id")
	err := s.store.DeleteToken(r.Context(), sid, id)
	if errors.Is(err, store.ErrNotFound) {
		return apiErr(http.StatusNotFound, wire.CodeNotFound, "no token "+id+" in summit "+sid)
	}
	if err != nil {
		return err
	}
	s.auth.Forget(id)
	n := s.ws.KickToken(id)
	if s.cfg.Bus != nil {
		if err := s.cfg.Bus.Publish(r.Context(), revokeTopic, []byte(id)); err != nil {
			s.log.Warn("telling other instances of a revoked token failed; its sockets there stay open until they reconnect", "err", err)
		}
	}
	s.log.Info("token revoked", "summit", sid, "token_id", id, "sockets_closed", n)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- documents ---

type docSummary struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Adopted bool   `json:"adopted"`
}

type streamJSON struct {
	Version uint64 `json:"version"`
	Text    string `json:"text"`
}

type docJSON struct {
	ID       string      `json:"id"`
	Title    string      `json:"title"`
	Adopted  bool        `json:"adopted"`
	Draft    *streamJSON `json:"draft,omitempty"`
	Approved streamJSON  `json:"approved"`
	// Adoptions is an addition: every named, dated version kept by adopt.
	Adoptions []adoptionJSON `json:"adoptions"`
}

type adoptionJSON struct {
	Name            string    `json:"name"`
	By              string    `json:"by"`
	Time            time.Time `json:"time"`
	ApprovedVersion uint64    `json:"approved_version"`
	DraftVersion    uint64    `json:"draft_version"`
}

func (s *Server) createDoc(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanManage() {
		return forbidden("only the admin and the chair's office create documents")
	}
	sid := r.PathValue("s")
	if _, err := s.summit(r.Context(), sid); err != nil {
		return err
	}
	var in struct {
		ID    string `json:"id"`
		Title string `json:"title"`
		Text  string `json:"text"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if !validID(in.ID) {
		return badRequest("invalid document id: " + idRule)
	}
	if err := checkTitle(in.Title); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(in.Text); n > s.docs.Config().MaxDocRunes {
		return apiErr(http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
			fmt.Sprintf("text has %d code points, limit %d", n, s.docs.Config().MaxDocRunes))
	}
	existing, err := s.store.ListDocs(r.Context(), sid)
	if err != nil {
		return err
	}
	d := store.Doc{Summit: sid, ID: in.ID, Title: in.Title, Order: len(existing), Created: time.Now().UTC()}
	err = s.store.CreateDoc(r.Context(), d, in.Text)
	if errors.Is(err, store.ErrExists) {
		return apiErr(http.StatusConflict, wire.CodeConflict, "document "+in.ID+" already exists")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, docSummary{ID: d.ID, Title: d.Title})
	return nil
}

func (s *Server) listDocs(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	sid := r.PathValue("s")
	if _, err := s.summit(r.Context(), sid); err != nil {
		return err
	}
	list, err := s.store.ListDocs(r.Context(), sid)
	if err != nil {
		return err
	}
	out := make([]docSummary, 0, len(list))
	for _, d := range list {
		out = append(out, docSummary{ID: d.ID, Title: d.Title, Adopted: d.Adopted})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// session opens the path's document for the duration of fn.
func (s *Server) session(r *http.Request, fn func(*doc.Session) error) error {
	sess, err := s.acquire(r)
	if err != nil {
		return err
	}
	defer sess.Release()
	return fn(sess)
}

// acquire opens the document of r's path; the caller must Release it.
func (s *Server) acquire(r *http.Request) (*doc.Session, error) {
	sid, did := r.PathValue("s"), r.PathValue("d")
	sess, err := s.docs.Acquire(r.Context(), sid, did)
	if errors.Is(err, store.ErrNotFound) {
		if _, serr := s.summit(r.Context(), sid); serr != nil {
			return nil, serr
		}
		return nil, apiErr(http.StatusNotFound, wire.CodeNotFound, "no document "+did+" in summit "+sid)
	}
	return sess, err
}

func (s *Server) getDoc(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	return s.session(r, func(sess *doc.Session) error {
		v := sess.View()
		out := docJSON{
			ID: sess.ID(), Title: v.Title, Adopted: v.Adopted,
			Approved:  streamJSON{Version: v.ApprovedVersion, Text: v.Approved.String()},
			Adoptions: make([]adoptionJSON, 0, len(v.Meta.Adoptions)),
		}
		for _, a := range v.Meta.Adoptions {
			out.Adoptions = append(out.Adoptions, adoptionJSON{Name: a.Name, By: a.By, Time: a.Time, ApprovedVersion: a.ApprovedVersion, DraftVersion: a.DraftVersion})
		}
		if who.CanReadDraft() {
			out.Draft = &streamJSON{Version: v.DraftVersion, Text: v.Draft.String()}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// putDraft merges a full text into the draft: the diff from the text at
// base_version to the given text becomes an op made on base_version, which
// the session transforms over everything since, like any other op. So an
// editor that only knows whole texts cannot overwrite concurrent edits.
func (s *Server) putDraft(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	if !who.CanEdit() {
		return forbidden(fmt.Sprintf("role %s cannot edit the draft", who.Role))
	}
	var in struct {
		BaseVersion json.RawMessage `json:"base_version"`
		Text        *string         `json:"text"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if in.BaseVersion == nil || in.Text == nil {
		return badRequest(`the body needs "base_version" and "text"`)
	}
	base, err := strconv.ParseUint(string(in.BaseVersion), 10, 64)
	if err != nil || base > 1<<53 {
		return apiErr(http.StatusBadRequest, wire.CodeBadVersion, "base_version must be an integer from 0 to 2^53")
	}
	if n := utf8.RuneCountInString(*in.Text); n > s.docs.Config().MaxDocRunes {
		return apiErr(http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
			fmt.Sprintf("text has %d code points, limit %d", n, s.docs.Config().MaxDocRunes))
	}
	return s.session(r, func(sess *doc.Session) error {
		if sess.View().Adopted {
			return apiErr(http.StatusConflict, wire.CodeAdopted, "the document is adopted; it can no longer change")
		}
		baseText, err := sess.TextAt(r.Context(), store.Draft, base)
		if err != nil {
			if doc.Code(err) == wire.CodeBadVersion && base > sess.View().DraftVersion {
				return apiErr(http.StatusBadRequest, wire.CodeBadVersion, err.Error())
			}
			return err
		}
		op := ot.FromDiff(baseText.String(), *in.Text)
		res := sess.Submit(r.Context(), doc.Edit{
			Stream: store.Draft, Base: base, Op: op,
			Author: who.Author(), Name: who.Name,
		})
		if res.Err != nil {
			return res.Err
		}
		writeJSON(w, http.StatusOK, streamJSON{Version: res.Version, Text: res.Text.String()})
		return nil
	})
}

func (s *Server) openSocket(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	q := r.URL.Query()
	stream := store.Stream(q.Get("stream"))
	switch stream {
	case "":
		stream = store.Draft
	case store.Draft, store.Approved:
	default:
		return badRequest(`stream must be "draft" or "approved"`)
	}
	if stream == store.Draft && !who.CanReadDraft() {
		return forbidden("observers follow the approved stream only")
	}
	var since *uint64
	if q.Has("since") {
		v, err := strconv.ParseUint(q.Get("since"), 10, 64)
		if err != nil || v > 1<<53 {
			return apiErr(http.StatusBadRequest, wire.CodeBadVersion, "since must be an integer from 0 to 2^53")
		}
		since = &v
	}
	sess, err := s.acquire(r)
	if err != nil {
		return err
	}
	// The socket keeps the document open after this handler returns: Serve
	// takes over the reference and releases it when the socket ends.
	s.ws.Serve(w, r, who, sess, stream, since)
	return nil
}

// logRequests logs each request at debug level, without its query string:
// WebSocket handshakes may carry ?token=, and tokens never reach the logs.
func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "took", time.Since(start))
	})
}
