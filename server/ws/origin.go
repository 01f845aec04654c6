package ws

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which browser origins may open sockets. Browsers send
// Origin on every WebSocket handshake; non-browser clients usually send none,
// and those are allowed (they authenticate with a token like anyone else).
// Matching is exact on scheme://host[:port] — never a substring or suffix, so
// evil.example.com.attacker.net does not pass for example.com — and the
// literal "null" (sandboxed frames, file: pages) is refused.
type originPolicy struct {
	allowed map[string]bool
}

func newOriginPolicy(list []string) originPolicy {
	p := originPolicy{allowed: make(map[string]bool)}
	for _, o := range list {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		p.allowed[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	return p
}

func (p originPolicy) permits(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	norm := strings.ToLower(u.Scheme + "://" + u.Host)
	if p.allowed[norm] {
		return true
	}
	// The server's own origin: same host as the request was sent to.
	return strings.EqualFold(u.Host, r.Host)
}

// writeHTTPError answers a refused handshake with the protocol's JSON error.
func writeHTTPError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
