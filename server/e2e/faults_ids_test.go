package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"communique/server/servertest"
)

// TestFaultIDAllowlist covers FAULTS.md case 11. Ids pass an allowlist — 1
// to 64 letters, digits, '-' or '_', starting with a letter or digit —
// before they reach a store key or a channel name. What the server
// guarantees for a bad id, wherever it appears: never a 2xx, never a write
// (the store's commit count does not move), nothing created, and 400
// bad_request whenever the request reaches a handler. The exact answers:
//
//   - percent-escaped in the path ({s}, {d}, {id}) of a route that exists: 400;
//   - as the id of a new summit or document in a JSON body: 400;
//   - raw ".." segments or an empty segment ("//"): Go's ServeMux cleans
//     the path and answers 307 to the clean one before any handler runs;
//     following it leads to a route that does not exist: 404;
//   - an empty last segment: no route matches: 404;
//   - a raw NUL byte in the request line: net/http refuses it, 400.
//
// The admin token is used throughout, so no refusal is the role's doing.
func TestFaultIDAllowlist(t *testing.T) {
	e := newFaultEnv(t, faultOptions())
	tokID, _ := e.s.TokenWithID(t, e.summit, "delegate", "FRA")
	admin := servertest.AdminToken
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
	before := e.get(t, e.doc)
	commits := e.s.Store.Stats().Commits

	bad := []struct{ name, id string }{
		{"dot dot slash", "../x"},
		{"__proto__", "__proto__"},
		{"constructor after underscore", "_constructor"},
		{"colon", "a:b"},
		{"star", "*"},
		{"10 KB", strings.Repeat("a", 10<<10)},
		{"65 characters", strings.Repeat("a", 65)},
		{"NUL", "a\x00b"},
		{"only NUL", "\x00"},
		{"space", "a b"},
		{"leading dash", "-rf"},
		{"slash", "a/b"},
		{"backslash", `a\b`},
		{"percent", "100%"},
		{"Hangul", "서울"},
		{"newline", "a\nb"},
	}
	type row struct {
		name         string
		method, path string
		body         string
		status       int
		code         string
	}
	var tests []row
	S := "/api/summits/" + e.summit
	for _, b := range bad {
		p := url.PathEscape(b.id)
		j, _ := json.Marshal(b.id)
		tests = append(tests,
			row{"summit in path GET docs/" + b.name, "GET", "/api/summits/" + p + "/docs", "", 400, "bad_request"},
			row{"summit in path POST docs/" + b.name, "POST", "/api/summits/" + p + "/docs", `{"id":"x","title":"x","text":""}`, 400, "bad_request"},
			row{"summit in path POST tokens/" + b.name, "POST", "/api/summits/" + p + "/tokens", `{"role":"observer"}`, 400, "bad_request"},
			row{"doc in path GET/" + b.name, "GET", S + "/docs/" + p, "", 400, "bad_request"},
			row{"doc in path PUT draft/" + b.name, "PUT", S + "/docs/" + p + "/draft", `{"base_version":0,"text":"x"}`, 400, "bad_request"},
			row{"doc in path socket/" + b.name, "GET", S + "/docs/" + p + "/ws", "", 400, "bad_request"},
			row{"token in path DELETE/" + b.name, "DELETE", S + "/tokens/" + p, "", 400, "bad_request"},
			row{"summit in body/" + b.name, "POST", "/api/summits", `{"id":` + string(j) + `,"title":"x"}`, 400, "bad_request"},
			row{"doc in body/" + b.name, "POST", S + "/docs", `{"id":` + string(j) + `,"title":"x","text":""}`, 400, "bad_request"},
		)
	}
	tests = append(tests,
		row{"empty summit in body", "POST", "/api/summits", `{"id":"","title":"x"}`, 400, "bad_request"},
		row{"empty doc in body", "POST", S + "/docs", `{"id":"","title":"x","text":""}`, 400, "bad_request"},
		row{"no summit id in body", "POST", "/api/summits", `{"title":"x"}`, 400, "bad_request"},
		row{"raw .. in the summit", "GET", "/api/summits/../x/docs", "", 307, ""},
		row{"raw .. in the doc", "GET", S + "/docs/../x", "", 307, ""},
		row{"raw .. before the socket", "GET", S + "/docs/../../x/docs/y/ws", "", 307, ""},
		row{"raw .. on PUT", "PUT", S + "/docs/../../x/docs/y/draft", `{"base_version":0,"text":"x"}`, 307, ""},
		row{"empty summit", "GET", "/api/summits//docs", "", 307, ""},
		row{"empty doc before the socket", "GET", S + "/docs//ws", "", 307, ""},
		row{"empty doc", "GET", S + "/docs/", "", 404, "not_found"},
		row{"empty token", "DELETE", S + "/tokens/", "", 404, "not_found"},
		row{"redirect target of raw ..", "GET", "/api/x/docs", "", 404, "not_found"},
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			status, got := fltHTTP(t, e.s.URL, tc.method, tc.path, admin, body)
			if status != tc.status {
				t.Errorf("got %d (%.200s); want %d", status, got, tc.status)
			}
			if tc.code != "" {
				fltErrorBody(t, got, tc.code)
			}
			fltQuiet(t, watch)
		})
	}

	t.Run("raw NUL in the request line", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := "GET /api/summits/a\x00b/docs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin + "\r\n\r\n"
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(fltWait))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("got %d; want 400", resp.StatusCode)
		}
	})

	t.Run("socket handshake", func(t *testing.T) {
		for _, d := range []string{"a:b", "__proto__", "*", "..%2Fx"} {
			_, resp, err := e.s.Dial(e.summit, d, e.kor, nil, nil)
			if err == nil || resp == nil || resp.StatusCode != 400 {
				t.Errorf("handshake on doc %q: %v; want 400", d, err)
			}
		}
	})

	t.Run("nothing stored", func(t *testing.T) {
		if c := e.s.Store.Stats().Commits; c != commits {
			t.Errorf("store commits went from %d to %d; want no write", commits, c)
		}
		fltUnchanged(t, e, e.doc, before)
		r := e.s.MustDo(t, http.StatusOK, "GET", S+"/docs", admin, nil)
		var list []struct{ ID string }
		r.JSON(t, &list)
		if len(list) != 1 || list[0].ID != e.doc {
			t.Errorf("documents = %s; want only %s", r.Body, e.doc)
		}
		// The token the DELETE rows named by bad ids is still there.
		r = e.s.MustDo(t, http.StatusOK, "GET", S+"/tokens", admin, nil)
		if !strings.Contains(string(r.Body), tokID) {
			t.Errorf("token %s gone: %s", tokID, r.Body)
		}
		for _, id := range []string{"x", "__proto__", "a:b"} {
			if r := e.s.Do(t, "GET", "/api/summits/"+url.PathEscape(id), admin, nil); r.Status/100 == 2 {
				t.Errorf("summit %q exists: %d %s", id, r.Status, r.Body)
			}
		}
		fltStillLive(t, e, watch)
	})
}
