package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"communique/server/auth"
	"communique/web"
)

// The browser client: its pages and files (embedded from web/dist), and the
// session endpoints that turn an invitation link into a cookie.

// sessionMaxAge is how long a browser keeps its session cookie. The cookie
// holds the token itself, so revoking the token ends the session at once
// whatever this says.
const sessionMaxAge = 30 * 24 * time.Hour

// webPage serves index.html for the client's addresses (/, /join, /s/…),
// with a Content-Security-Policy that allows only the app's own scripts and
// styles (plus the editor's style elements, which carry this response's
// nonce), connections to this origin, and no framing.
func (s *Server) webPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		nonce := base64.StdEncoding.EncodeToString(b)
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		// connect-src names the socket's origins as well as 'self': older
		// Safari releases do not count ws: and wss: as 'self'. The Host header
		// was validated by net/http, so it cannot break out of the policy.
		connect := "'self'"
		if r.Host != "" && !strings.ContainsAny(r.Host, " ;,'\"") {
			connect += " ws://" + r.Host + " wss://" + r.Host
		}
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-"+nonce+"'; "+
			"img-src 'self' data:; font-src 'self'; connect-src "+connect+"; manifest-src 'self'; "+
			"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Invitation links carry the token in the fragment, which is never
		// sent; no referrer at all keeps the addresses private too.
		h.Set("Referrer-Policy", "no-referrer")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(web.Index(nonce))
		}
	})
}

// webFiles serves the bundle (/assets/…, content-hashed, cached for a year)
// and /favicon.svg.
func (s *Server) webFiles() http.Handler { return web.Handler() }

type sessionJSON struct {
	Role       string `json:"role"`
	Summit     string `json:"summit"`
	Delegation string `json:"delegation,omitempty"`
	Name       string `json:"name"`
}

func sessionOf(p auth.Principal) sessionJSON {
	return sessionJSON{Role: string(p.Role), Summit: p.Summit, Delegation: p.Delegation, Name: p.Name}
}

// createSession answers POST /api/session {"token"}: a valid token becomes
// the session cookie (HttpOnly, SameSite=Strict, Secure as secureCookies
// says) and the answer says who it is. The body must be JSON (a cross-site form cannot
// send that without the browser asking first), and a browser's Origin must
// be this server's, so no other site can log a visitor into its session.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := s.newSession(w, r); err != nil {
		writeError(w, toAPIError(err))
	}
}

func (s *Server) newSession(w http.ResponseWriter, r *http.Request) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return badRequest("the body must be JSON (Content-Type: application/json)")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if (err != nil || u.Host != r.Host) && !slices.Contains(s.cfg.AllowedOrigins, o) {
			return forbidden("sessions are opened from this server's own pages")
		}
	}
	var in struct {
		Token string `json:"token"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	who, err := s.auth.Resolve(r.Context(), in.Token)
	if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrUnknownToken) {
		return errUnauthorized
	}
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     auth.CookieName,
		Value:    in.Token,
		Path:     "/",
		MaxAge:   int(sessionMaxAge / time.Second),
		HttpOnly: true,
		Secure:   s.secureCookies(r),
		SameSite: http.SameSiteStrictMode,
	})
	// A readable companion without the secret tells the page there is a
	// session to ask /api/me about (the session cookie is HttpOnly).
	http.SetCookie(w, &http.Cookie{
		Name: signedInCookie, Value: "1", Path: "/", MaxAge: int(sessionMaxAge / time.Second),
		Secure: s.secureCookies(r), SameSite: http.SameSiteStrictMode,
	})
	writeJSON(w, http.StatusOK, sessionOf(who))
	return nil
}

// secureCookies: cookies are sent back over HTTPS only when the request
// came over TLS, or always with Config.SecureCookies — for a server behind
// a proxy that terminates TLS, which sees plain HTTP itself. (Forwarded
// headers are not trusted for this: any client can send them.)
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || s.cfg.SecureCookies
}

// signedInCookie holds no secret: it only spares a signed-out page a
// request that would be refused.
const signedInCookie = "communique_signed_in"

// deleteSession answers DELETE /api/session: the cookie is cleared (the
// token itself stays valid; the chair's office revokes tokens).
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: auth.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteStrictMode,
	})
	http.SetCookie(w, &http.Cookie{
		Name: signedInCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: s.secureCookies(r), SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// me answers GET /api/me: who the request's token (header or cookie) is.
func (s *Server) me(w http.ResponseWriter, r *http.Request, who auth.Principal) error {
	writeJSON(w, http.StatusOK, sessionOf(who))
	return nil
}
