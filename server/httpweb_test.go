package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"communique/server/servertest"
	"communique/web"
)

// The browser client's pages and files, and the session endpoints that turn
// an invitation into a cookie.

func get(t *testing.T, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultTransport.RoundTrip(req) // no automatic gzip
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestWebPages(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	var asset string
	for _, p := range []string{"/", "/join", "/s/seoul-2013", "/s/seoul-2013/d/chair-summary/review"} {
		res := get(t, srv.URL+p, nil)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		csp := res.Header.Get("Content-Security-Policy")
		m := regexp.MustCompile(`'nonce-([A-Za-z0-9+/=]+)'`).FindStringSubmatch(csp)
		if m == nil || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("GET %s: CSP %q", p, csp)
		}
		if !bytes.Contains(body, []byte(`content="`+m[1]+`"`)) || bytes.Contains(body, []byte(web.NoncePlaceholder)) {
			t.Errorf("GET %s: the page does not carry the response's nonce", p)
		}
		if got := res.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q", p, got)
		}
		if a := regexp.MustCompile(`/assets/app-[A-Z0-9]+\.js`).Find(body); a != nil {
			asset = string(a)
		}
	}
	if asset == "" {
		t.Fatal("index.html names no app bundle")
	}

	res := get(t, srv.URL+asset, map[string]string{"Accept-Encoding": "gzip"})
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET %s: status %d, Content-Encoding %q", asset, res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("GET %s: Cache-Control %q", asset, cc)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	if len(js) < 1000 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("GET %s: %d bytes of %q", asset, len(js), res.Header.Get("Content-Type"))
	}
	plain := get(t, srv.URL+asset, nil)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip sent to a client that did not ask for it")
	}

	for _, p := range []string{"/assets/", "/assets/nope.js", "/index.html", "/nope"} {
		if res := get(t, srv.URL+p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d; want 404", p, res.StatusCode)
		}
	}
}

// TestSecureCookies: behind a proxy that terminates TLS the server sees
// plain HTTP; with --secure-cookies both session cookies are Secure
// anyway (without it they are not: TestSession).
func TestSecureCookies(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{SecureCookies: true})
	srv.Summit(t, "s1")
	tok := srv.Token(t, "s1", "delegate", "KOR")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/session", strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || len(res.Cookies()) != 2 {
		t.Fatalf("POST /api/session: status %d, cookies %v", res.StatusCode, res.Cookies())
	}
	for _, c := range res.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure", c.Name)
		}
	}
}

func TestSession(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.Summit(t, "s1")
	tok := srv.Token(t, "s1", "delegate", "KOR")

	post := func(body, contentType, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/session", strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	res := post(`{"token":"`+tok+`"}`, "application/json", srv.URL)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/session: status %d", res.StatusCode)
	}
	var who map[string]string
	if err := json.NewDecoder(res.Body).Decode(&who); err != nil {
		t.Fatal(err)
	}
	if who["role"] != "delegate" || who["summit"] != "s1" || who["delegation"] != "KOR" || who["name"] == "" {
		t.Errorf("session answer %v", who)
	}
	var cookie, hint *http.Cookie
	for _, c := range res.Cookies() {
		switch c.Name {
		case "communique_session":
			cookie = c
		case "communique_signed_in":
			hint = c
		}
	}
	if hint == nil || hint.HttpOnly || hint.Value != "1" || strings.Contains(hint.Value, tok) {
		t.Errorf("signed-in hint cookie %+v", hint)
	}
	if cookie == nil || cookie.Value != tok || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure {
		t.Fatalf("cookie %+v", cookie)
	}

	// The cookie authenticates the API.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/me", nil)
	req.AddCookie(cookie)
	me, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer me.Body.Close()
	var got map[string]string
	_ = json.NewDecoder(me.Body).Decode(&got)
	if me.StatusCode != http.StatusOK || got["role"] != "delegate" || got["summit"] != "s1" {
		t.Errorf("GET /api/me with the cookie: %d %v", me.StatusCode, got)
	}
	if r := srv.Do(t, http.MethodGet, "/api/me", "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("GET /api/me without a token: %d", r.Status)
	}

	for _, c := range []struct {
		name, body, ct, origin string
		want                   int
	}{
		{"unknown token", `{"token":"cq_nope"}`, "application/json", "", http.StatusUnauthorized},
		{"no token", `{}`, "application/json", "", http.StatusUnauthorized},
		{"a form's content type", `{"token":"` + tok + `"}`, "text/plain", "", http.StatusBadRequest},
		{"another site's page", `{"token":"` + tok + `"}`, "application/json", "https://evil.example", http.StatusForbidden},
		{"not JSON", `token=` + tok, "application/json", "", http.StatusBadRequest},
	} {
		if res := post(c.body, c.ct, c.origin); res.StatusCode != c.want {
			t.Errorf("%s: status %d; want %d", c.name, res.StatusCode, c.want)
		}
	}

	req, _ = http.NewRequest(http.MethodDelete, srv.URL+"/api/session", nil)
	del, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	del.Body.Close()
	cleared := false
	for _, c := range del.Cookies() {
		cleared = cleared || (c.Name == "communique_session" && c.MaxAge < 0)
	}
	if del.StatusCode != http.StatusNoContent || !cleared {
		t.Errorf("DELETE /api/session: status %d, cookie cleared %v", del.StatusCode, cleared)
	}
}
