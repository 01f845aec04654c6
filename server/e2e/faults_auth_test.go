package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"communique/server/servertest"
)

// fltFlip is secret with its last byte changed: a token that differs from a
// valid one only there.
func fltFlip(secret string) string {
	last := secret[len(secret)-1]
	c := byte('A')
	if last == 'A' {
		c = 'B'
	}
	return secret[:len(secret)-1] + string(c)
}

// TestRoleHTTPRefusals covers FAULTS.md cases 17 (observer PUT) and 21 over
// HTTP, and every HTTP refusal of PROTOCOL.md's role table: no token,
// an unknown token or one differing from a valid one in its last byte,
// a malformed Authorization header, and a query-string token outside a
// handshake are 401 with one identical body; a valid token outside its
// summit or above its role is 403 forbidden. None of them writes anything
// (the store commits nothing) or changes the document.
func TestRoleHTTPRefusals(t *testing.T) {
	e := newFaultEnv(t, faultOptions())
	korID, korSecret := e.s.TokenWithID(t, e.summit, "delegate", "KOR")
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
	before := e.get(t, e.doc)
	commits := e.s.Store.Stats().Commits

	S := "/api/summits/" + e.summit
	newToken := `{"role":"delegate","delegation":"FRA","name":"x"}`
	newDoc := `{"id":"annex-9","title":"Annex","text":"x"}`
	put := `{"base_version":0,"text":"Seoul 2013!"}`
	tests := []struct {
		name          string
		method, path  string
		token         string // secret sent as Bearer; "" none
		authorization string // raw Authorization header instead, when set
		body          string
		status        int
		code          string
	}{
		// 401: who are you?
		{"no token", "GET", S + "/docs", "", "", "", 401, "unauthorized"},
		{"unknown token", "GET", S + "/docs", "cq_doesnotexist", "", "", 401, "unauthorized"},
		{"token off by its last byte", "GET", S + "/docs", fltFlip(e.kor), "", "", 401, "unauthorized"},
		{"admin token off by its last byte", "POST", "/api/summits", fltFlip(servertest.AdminToken), "", `{"id":"x","title":"x"}`, 401, "unauthorized"},
		{"empty bearer", "GET", S + "/docs", "", "Bearer ", "", 401, "unauthorized"},
		{"basic auth", "GET", S + "/docs", "", "Basic " + e.kor, "", 401, "unauthorized"},
		{"token in the query outside a handshake", "GET", S + "/docs?token=" + url.QueryEscape(e.kor), "", "", "", 401, "unauthorized"},
		{"no token creating a summit", "POST", "/api/summits", "", "", `{"id":"x","title":"x"}`, 401, "unauthorized"},
		{"no token creating a doc", "POST", S + "/docs", "", "", newDoc, 401, "unauthorized"},
		{"no token on PUT", "PUT", S + "/docs/" + e.doc + "/draft", "", "", put, 401, "unauthorized"},
		{"unknown token on PUT", "PUT", S + "/docs/" + e.doc + "/draft", fltFlip(e.chair), "", put, 401, "unauthorized"},
		// 403: another summit.
		{"other summit's delegate lists docs", "GET", S + "/docs", e.otherKor, "", "", 403, "forbidden"},
		{"other summit's delegate reads the doc", "GET", S + "/docs/" + e.doc, e.otherKor, "", "", 403, "forbidden"},
		{"other summit's delegate reads the summit", "GET", S, e.otherKor, "", "", 403, "forbidden"},
		{"other summit's delegate PUTs", "PUT", S + "/docs/" + e.doc + "/draft", e.otherKor, "", put, 403, "forbidden"},
		{"other summit's chair PUTs", "PUT", S + "/docs/" + e.doc + "/draft", e.otherChair, "", put, 403, "forbidden"},
		{"other summit's chair creates a token", "POST", S + "/tokens", e.otherChair, "", newToken, 403, "forbidden"},
		{"other summit's chair lists tokens", "GET", S + "/tokens", e.otherChair, "", "", 403, "forbidden"},
		{"other summit's chair revokes a token", "DELETE", S + "/tokens/" + korID, e.otherChair, "", "", 403, "forbidden"},
		{"other summit's chair creates a doc", "POST", S + "/docs", e.otherChair, "", newDoc, 403, "forbidden"},
		// 403: above the role.
		{"chair creates a summit", "POST", "/api/summits", e.chair, "", `{"id":"x","title":"x"}`, 403, "forbidden"},
		{"delegate creates a summit", "POST", "/api/summits", e.kor, "", `{"id":"x","title":"x"}`, 403, "forbidden"},
		{"observer creates a summit", "POST", "/api/summits", e.obs, "", `{"id":"x","title":"x"}`, 403, "forbidden"},
		{"delegate creates a token", "POST", S + "/tokens", e.kor, "", newToken, 403, "forbidden"},
		{"observer creates a token", "POST", S + "/tokens", e.obs, "", newToken, 403, "forbidden"},
		{"delegate lists tokens", "GET", S + "/tokens", e.kor, "", "", 403, "forbidden"},
		{"observer lists tokens", "GET", S + "/tokens", e.obs, "", "", 403, "forbidden"},
		{"delegate revokes another's token", "DELETE", S + "/tokens/" + korID, e.gbr, "", "", 403, "forbidden"},
		{"delegate revokes its own token", "DELETE", S + "/tokens/" + korID, korSecret, "", "", 403, "forbidden"},
		{"observer revokes a token", "DELETE", S + "/tokens/" + korID, e.obs, "", "", 403, "forbidden"},
		{"delegate creates a doc", "POST", S + "/docs", e.kor, "", newDoc, 403, "forbidden"},
		{"observer creates a doc", "POST", S + "/docs", e.obs, "", newDoc, 403, "forbidden"},
		{"case 17: observer PUTs the draft", "PUT", S + "/docs/" + e.doc + "/draft", e.obs, "", put, 403, "forbidden"},
		{"admin PUTs the draft (chair and delegates only)", "PUT", S + "/docs/" + e.doc + "/draft", servertest.AdminToken, "", put, 403, "forbidden"},
	}
	var unauthorized []byte // every 401 body must be this one
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			status, got := fltDo(t, e.s.URL, tc.method, tc.path, tc.token, tc.authorization, body)
			if status != tc.status {
				t.Errorf("got status %d (%s); want %d", status, bytes.TrimSpace(got), tc.status)
			}
			fltErrorBody(t, got, tc.code)
			if tc.status == 401 {
				if unauthorized == nil {
					unauthorized = got
				} else if !bytes.Equal(got, unauthorized) {
					t.Errorf("401 body %s; want the same body as every other 401: %s", got, unauthorized)
				}
			}
			fltQuiet(t, watch)
		})
	}
	if c := e.s.Store.Stats().Commits; c != commits {
		t.Errorf("store commits went from %d to %d; want no write from refused requests", commits, c)
	}
	fltUnchanged(t, e, e.doc, before)
	fltStillLive(t, e, watch)

	// What the refused callers may do still works, and the tokens they tried
	// to revoke still work.
	obs := e.s.GetDoc(t, e.summit, e.doc, e.obs)
	if obs.Draft != nil {
		t.Errorf("observer got the draft %+v; want the approved stream only", *obs.Draft)
	}
	e.s.MustDo(t, http.StatusOK, "GET", S+"/docs", korSecret, nil)
	e.s.MustDo(t, http.StatusOK, "GET", S+"/docs", e.kor, nil)
	e.s.MustDo(t, http.StatusCreated, "POST", S+"/tokens", e.chair, newToken)
	// A chair cannot revoke another summit's token through its own summit.
	otherID, otherSecret := e.s.TokenWithID(t, e.other, "delegate", "FRA")
	if r := e.s.Do(t, "DELETE", S+"/tokens/"+otherID, e.chair, nil); r.Status != http.StatusNotFound {
		t.Errorf("chair revoking another summit's token: got %d %s; want 404", r.Status, r.Body)
	}
	e.s.MustDo(t, http.StatusOK, "GET", "/api/summits/"+e.other+"/docs", otherSecret, nil)
}

// fltDo is fltHTTP with an optional raw Authorization header.
func fltDo(t *testing.T, base, method, target, token, authorization string, body io.Reader) (int, []byte) {
	t.Helper()
	if authorization == "" {
		return fltHTTP(t, base, method, target, token, body)
	}
	req, err := http.NewRequest(method, base+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// TestRoleSocketHandshakes covers the handshake refusals of PROTOCOL.md
// and FAULTS.md case 21 on sockets: no or unknown token 401 with the same
// body as over HTTP; another summit's token 403; an observer on the draft
// stream (asked for or by default) 403; a bad stream or since 400. None is
// upgraded. The token may come as Bearer, ?token= or the session cookie.
func TestRoleSocketHandshakes(t *testing.T) {
	e := newFaultEnv(t, faultOptions())
	_, unauthorized := fltHTTP(t, e.s.URL, "GET", "/api/summits/"+e.summit+"/docs", "", nil)

	tests := []struct {
		name   string
		token  string // Bearer
		query  url.Values
		cookie string
		status int
		code   string
		role   string // hello's role when upgraded
	}{
		{"no token", "", nil, "", 401, "unauthorized", ""},
		{"unknown token", "cq_nope", nil, "", 401, "unauthorized", ""},
		{"token off by its last byte", fltFlip(e.kor), nil, "", 401, "unauthorized", ""},
		{"unknown token in the query", "", url.Values{"token": {fltFlip(e.kor)}}, "", 401, "unauthorized", ""},
		{"unknown token in the cookie", "", nil, fltFlip(e.kor), 401, "unauthorized", ""},
		{"other summit's delegate", e.otherKor, nil, "", 403, "forbidden", ""},
		{"other summit's chair", e.otherChair, url.Values{"stream": {"approved"}}, "", 403, "forbidden", ""},
		{"observer on the draft stream", e.obs, url.Values{"stream": {"draft"}}, "", 403, "forbidden", ""},
		{"observer on the default stream", e.obs, nil, "", 403, "forbidden", ""},
		{"observer in the query on the draft", "", url.Values{"token": {e.obs}}, "", 403, "forbidden", ""},
		{"unknown stream", e.kor, url.Values{"stream": {"secret"}}, "", 400, "bad_request", ""},
		{"since ahead of the server", e.kor, url.Values{"since": {"1"}}, "", 400, "bad_version", ""},
		{"since negative", e.kor, url.Values{"since": {"-1"}}, "", 400, "bad_version", ""},
		{"since a float", e.kor, url.Values{"since": {"0.5"}}, "", 400, "bad_version", ""},
		// Accepted, for contrast.
		{"observer on the approved stream", e.obs, url.Values{"stream": {"approved"}}, "", 101, "", "observer"},
		{"delegate with a query token", "", url.Values{"token": {e.kor}}, "", 101, "", "delegate"},
		{"delegate with the session cookie", "", nil, e.kor, 101, "", "delegate"},
		{"admin on the draft", servertest.AdminToken, nil, "", 101, "", "admin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.cookie != "" {
				h.Set("Cookie", "communique_session="+tc.cookie)
			}
			c, resp, err := e.s.Dial(e.summit, e.doc, tc.token, tc.query, h)
			if tc.status == 101 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				if hello := c.Expect(t, "hello"); hello.Role != tc.role {
					t.Errorf("hello role %q; want %q", hello.Role, tc.role)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("upgraded; want %d", tc.status)
			}
			if resp == nil {
				t.Fatalf("no HTTP answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("got status %d (%s); want %d", resp.StatusCode, body, tc.status)
			}
			fltErrorBody(t, body, tc.code)
			if tc.status == 401 && !bytes.Equal(body, unauthorized) {
				t.Errorf("401 body %s; want the HTTP API's: %s", body, unauthorized)
			}
		})
	}
}

// TestRoleForbiddenOps covers FAULTS.md case 17 on sockets: an op from an
// observer (approved stream), the admin (draft), or anyone on the approved
// stream is answered with forbidden, with its seq; the socket stays open,
// the drafters receive nothing, and the document is unchanged. An
// observer's cursor is refused the same way.
func TestRoleForbiddenOps(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	e := newFaultEnv(t, opts)
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
	approved := url.Values{"stream": {"approved"}}
	follower, _ := fltDial(t, e, e.doc, e.obs, approved)
	before := e.get(t, e.doc)

	tests := []struct {
		name  string
		token string
		q     url.Values
		msg   string
	}{
		{"observer op on approved", e.obs, approved, `{"type":"op","version":0,"op":[10,"!"],"src":"o","seq":1}`},
		{"observer op claiming the draft stream", e.obs, approved, `{"type":"op","stream":"draft","version":0,"op":[10,"!"],"src":"o","seq":2}`},
		{"admin op on draft", servertest.AdminToken, nil, `{"type":"op","version":0,"op":[10,"!"],"src":"adm","seq":1}`},
		{"chair op on approved", e.chair, approved, `{"type":"op","version":0,"op":[10,"!"],"src":"ch","seq":1}`},
		{"delegate op on approved", e.kor, approved, `{"type":"op","version":0,"op":[10,"!"],"src":"k","seq":1}`},
		{"observer cursor on approved", e.obs, approved, `{"type":"presence","version":0,"cursor":{"anchor":1,"head":1}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := fltDial(t, e, e.doc, tc.token, tc.q)
			if err := c.Send(tc.msg); err != nil {
				t.Fatal(err)
			}
			f := fltExpect(t, c, "error")
			if f.Code != "forbidden" {
				t.Errorf("got %s; want forbidden", f.Raw)
			}
			if strings.Contains(tc.msg, `"seq"`) && f.Seq == 0 {
				t.Errorf("error %s has no seq; want the op's", f.Raw)
			}
			fltQuiet(t, c)
			fltQuiet(t, watch)
			fltQuiet(t, follower)
			fltUnchanged(t, e, e.doc, before)
			c.Close()
		})
	}
	fltStillLive(t, e, watch)
}

// TestFaultOrigin covers FAULTS.md case 20: with example.com allowed, a
// handshake from any other browser Origin — foreign, "null", an allowed
// name with something appended, another scheme or port, a subdomain — is
// refused with 403 and not upgraded. Exact matches, the server's own origin
// and clients that send no Origin are accepted.
func TestFaultOrigin(t *testing.T) {
	opts := faultOptions()
	opts.AllowedOrigins = []string{"https://example.com"}
	e := newFaultEnv(t, opts)
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
	defer fltStillLive(t, e, watch)
	tests := []struct {
		origin string
		status int
	}{
		{"https://evil.com", 403},
		{"null", 403},
		{"https://evil.example.com.attacker.net", 403},
		{"https://example.com.attacker.net", 403},
		{"https://attacker.net/https://example.com", 403},
		{"https://notexample.com", 403},
		{"https://sub.example.com", 403},
		{"http://example.com", 403},
		{"https://example.com:8443", 403},
		{"https://example.com@attacker.net", 403},
		{"file://", 403},
		{"not a url", 403},
		{"https://example.com", 101},
		{"https://EXAMPLE.com", 101},
		{"http://" + e.s.Addr, 101},
		{"", 101},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.origin), func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, err := e.s.Dial(e.summit, e.doc, e.kor, nil, h)
			if tc.status == 101 {
				if err != nil {
					t.Fatalf("dial: %v; want upgraded", err)
				}
				c.Expect(t, "hello")
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("upgraded; want 403")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("got %v (%v); want %d", resp, err, tc.status)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fltErrorBody(t, body, "forbidden")
			if resp.Header.Get("Upgrade") != "" {
				t.Errorf("refused handshake carries Upgrade: %q", resp.Header.Get("Upgrade"))
			}
		})
	}
}

// fltLogBuffer collects a server's log lines.
type fltLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *fltLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *fltLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFaultTokensNotLogged covers the logging part of FAULTS.md case 21:
// with the server logging at debug level, handshakes with ?token= (accepted
// and refused), refused bearer tokens, a revocation and the closes it
// causes leave no secret in the log, and the token list never shows one.
func TestFaultTokensNotLogged(t *testing.T) {
	logs := &fltLogBuffer{}
	opts := faultOptions()
	opts.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newFaultEnv(t, opts)
	id, secret := e.s.TokenWithID(t, e.summit, "delegate", "FRA")
	secrets := []string{servertest.AdminToken, e.chair, e.kor, e.gbr, e.obs, e.otherChair, e.otherKor, secret}

	c, _ := fltDial(t, e, e.doc, "", url.Values{"token": {secret}})
	for _, bad := range []string{fltFlip(secret), fltFlip(e.kor)} {
		if _, resp, err := e.s.Dial(e.summit, e.doc, "", url.Values{"token": {bad}}, nil); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("handshake with a wrong ?token=: %v; want 401", err)
		}
		secrets = append(secrets, bad)
	}
	if _, resp, err := e.s.Dial(e.summit, e.doc, "", url.Values{"token": {e.obs}}, nil); err == nil || resp.StatusCode != 403 {
		t.Errorf("observer handshake on the draft: %v; want 403", err)
	}
	fltHTTP(t, e.s.URL, "GET", "/api/summits/"+e.summit+"/docs/nope", e.kor, nil)
	fltHTTP(t, e.s.URL, "GET", "/api/summits/"+e.summit+"/docs?token="+e.gbr, "", nil)
	r := e.s.MustDo(t, http.StatusOK, "GET", "/api/summits/"+e.summit+"/tokens", e.chair, nil)
	e.s.MustDo(t, http.StatusNoContent, "DELETE", "/api/summits/"+e.summit+"/tokens/"+id, e.chair, nil)
	fltCloseCode(t, c)

	for _, s := range secrets {
		if bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("token list shows a secret: %s", r.Body)
		}
	}
	e.s.Stop() // every log line is written
	out := logs.String()
	if !strings.Contains(out, "/ws") || !strings.Contains(out, "token revoked") {
		t.Fatalf("the log does not show the requests (is debug logging on?):\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log contains a token secret %q…:\n%s", s[:6], out)
		}
		// Also as a URL-escaped query value.
		if q := url.QueryEscape(s); strings.Contains(out, q) {
			t.Errorf("the log contains an escaped token secret")
		}
	}
}

// TestFaultRevokedToken covers FAULTS.md case 22: a token revoked while its
// socket is open gets that socket closed with 1008 (policy), an edit it
// sends once the DELETE has been answered is never applied, and its next
// request and handshake are 401. Another delegate's socket is untouched.
func TestFaultRevokedToken(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	e := newFaultEnv(t, opts)
	for round := 0; round < 20; round++ {
		// Several rounds: the edit races the server closing the socket.
		id, secret := e.s.TokenWithID(t, e.summit, "delegate", "FRA")
		c, h := fltDial(t, e, e.doc, secret, nil)
		watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
		// A drafter is announced on its first act: a cursor, so that its
		// leave below can be waited for.
		if err := c.Send(map[string]any{"type": "presence", "version": h.Version, "cursor": map[string]int{"anchor": 0, "head": 0}}); err != nil {
			t.Fatal(err)
		}
		fltAwaitPresence(t, watch, "join", h.Client)
		before := e.get(t, e.doc)
		e.s.MustDo(t, http.StatusNoContent, "DELETE", "/api/summits/"+e.summit+"/tokens/"+id, e.chair, nil)
		// Sent after the revocation was answered: the write may or may not
		// reach the server before it closes the socket; either way the op
		// must not be applied.
		_ = c.Send(fltOpMsg(h.Version, []any{10 + round, "!"}, "fra", 1))
		if code := fltCloseCode(t, c); code != websocket.ClosePolicyViolation {
			t.Errorf("round %d: closed with %d; want 1008", round, code)
		}
		// The session announces the leave after everything the socket
		// submitted before it went, so an applied edit would come first.
		fltAwaitPresence(t, watch, "leave", h.Client)
		fltUnchanged(t, e, e.doc, before)
		if r := e.s.Do(t, "GET", "/api/summits/"+e.summit+"/docs", secret, nil); r.Status != 401 {
			t.Errorf("round %d: request after revocation: %d; want 401", round, r.Status)
		}
		if _, resp, err := e.s.Dial(e.summit, e.doc, secret, nil, nil); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("round %d: handshake after revocation: %v; want 401", round, err)
		}
		// The other delegate still edits.
		if err := watch.Send(fltOpMsg(before.Draft.Version, []any{10 + round, "."}, "gbr", uint64(round+1))); err != nil {
			t.Fatal(err)
		}
		if a := fltExpect(t, watch, "ack"); a.Version != before.Draft.Version+1 {
			t.Fatalf("round %d: got %s; want ack at %d", round, a.Raw, before.Draft.Version+1)
		}
		watch.Close()
	}
}

// fltAwaitPresence reads c until the presence event ("join", "leave") of
// client, failing on any other frame but presence on the way: whatever a
// departed socket had submitted is broadcast before its leave.
func fltAwaitPresence(t *testing.T, c *servertest.Conn, event, client string) {
	t.Helper()
	deadline := time.Now().Add(fltWait)
	for {
		f, err := c.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s of %s: %v", event, client, err)
		}
		if f.Type != "presence" {
			t.Fatalf("got %s before the %s of %s; want nothing else", f.Raw, event, client)
		}
		var p struct {
			Peer struct{ Client string } `json:"peer"`
		}
		if err := json.Unmarshal(f.Raw, &p); err != nil {
			t.Fatal(err)
		}
		if f.Event == event && p.Peer.Client == client {
			return
		}
	}
}
