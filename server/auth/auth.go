// Package auth turns a bearer token into a Principal and decides what each
// role may do. Secrets are random, high-entropy strings, so a single SHA-256
// is the right hash to store: it makes a leaked database useless for logging
// in, while a lookup stays one key read.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"communique/server/store"
)

// CookieName is the browser session cookie; it carries the token itself and
// is set HttpOnly and SameSite=Strict.
const CookieName = "communique_session"

// ErrNoToken and ErrUnknownToken both become HTTP 401 with the same body, so a
// caller learns nothing about which tokens exist.
var (
	ErrNoToken      = errors.New("no token")
	ErrUnknownToken = errors.New("unknown token")
)

// Principal is who is making a request.
type Principal struct {
	TokenID    string
	Summit     string // empty for admin
	Role       store.Role
	Delegation string
	Name       string
}

// Author is how edits by p are attributed: the delegation for delegates,
// the role otherwise ("chair").
func (p Principal) Author() string {
	if p.Role == store.RoleDelegate {
		return p.Delegation
	}
	return string(p.Role)
}

// In reports whether p belongs to summit s (admin belongs to every summit).
func (p Principal) In(s string) bool {
	return p.Role == store.RoleAdmin || p.Summit == s
}

// CanEdit reports whether p may change the draft of a document of its summit.
func (p Principal) CanEdit() bool {
	return p.Role == store.RoleChair || p.Role == store.RoleDelegate
}

// CanManage reports whether p may create documents and tokens.
func (p Principal) CanManage() bool {
	return p.Role == store.RoleAdmin || p.Role == store.RoleChair
}

// CanReadDraft reports whether p may see the draft stream.
func (p Principal) CanReadDraft() bool {
	return p.Role != store.RoleObserver
}

// TokenStore is the part of the store auth needs.
type TokenStore interface {
	TokenByHash(ctx context.Context, hash []byte) (store.Token, error)
}

// Authenticator resolves tokens.
type Authenticator struct {
	tokens    TokenStore
	adminHash []byte
	opts      Options

	mu    sync.Mutex
	cache map[string]cached // by hash; nil without Options.CacheTTL
	// forgotten: tokens revoked within the last CacheTTL, so that a lookup
	// that raced the revocation cannot put one back.
	forgotten map[string]time.Time
}

// Options tune an Authenticator.
type Options struct {
	// CacheTTL, when set, keeps resolved tokens in memory for this long,
	// for a store that is remote (Redis): without it every request with a
	// participant's token is a round trip, and while the store is
	// unreachable only the admin can read. A revoked token must then be
	// passed to Forget, on every instance (the server does, over the bus);
	// if that notice is lost, the revocation reaches an instance after at
	// most CacheTTL.
	CacheTTL time.Duration
	// StaleIfUnavailable is how long past CacheTTL an entry still answers
	// while the store is unavailable (store.ErrUnavailable): reads go on
	// through an outage for the participants already seen. A token cannot
	// be revoked while the store is down, so only a revocation whose
	// notice was lost just before the outage can be served late.
	StaleIfUnavailable time.Duration
	// MaxEntries bounds the cache (default 100,000; about 200 bytes each).
	MaxEntries int
}

type cached struct {
	p       Principal
	fetched time.Time
}

// New returns an Authenticator for tokens in ts and the admin token whose
// Hash is adminHash.
func New(ts TokenStore, adminHash []byte, opts Options) *Authenticator {
	a := &Authenticator{tokens: ts, adminHash: adminHash, opts: opts}
	if opts.CacheTTL > 0 {
		a.cache = make(map[string]cached)
		a.forgotten = make(map[string]time.Time)
		if a.opts.MaxEntries <= 0 {
			a.opts.MaxEntries = 100_000
		}
	}
	return a
}

// Forget drops a revoked token from the cache.
func (a *Authenticator) Forget(tokenID string) {
	if a.cache == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for id, at := range a.forgotten {
		if now.Sub(at) > a.opts.CacheTTL {
			delete(a.forgotten, id)
		}
	}
	a.forgotten[tokenID] = now
	for h, c := range a.cache {
		if c.p.TokenID == tokenID {
			delete(a.cache, h)
		}
	}
}

// lookup returns the cached principal for h if it is fresh, or, with stale
// set, if it is within StaleIfUnavailable past its freshness.
func (a *Authenticator) lookup(h []byte, now time.Time, stale bool) (Principal, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.cache[string(h)]
	if !ok {
		return Principal{}, false
	}
	age := now.Sub(c.fetched)
	if age < a.opts.CacheTTL || (stale && age < a.opts.CacheTTL+a.opts.StaleIfUnavailable) {
		return c.p, true
	}
	return Principal{}, false
}

func (a *Authenticator) remember(h []byte, p Principal, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, gone := a.forgotten[p.TokenID]; gone {
		return
	}
	if len(a.cache) >= a.opts.MaxEntries {
		// Full: drop what is past any use, and if that frees nothing,
		// everything (a flood of distinct valid tokens is not a case to
		// be clever about).
		for k, c := range a.cache {
			if now.Sub(c.fetched) >= a.opts.CacheTTL+a.opts.StaleIfUnavailable {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= a.opts.MaxEntries {
			clear(a.cache)
		}
	}
	a.cache[string(h)] = cached{p: p, fetched: now}
}

// Hash is the stored form of a token secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewSecret returns a fresh token secret.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new token secret: %w", err)
	}
	return "cq_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// NewID returns a short random identifier (token ids, connection ids).
func NewID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on supported platforms; if it does,
		// nothing else about the server can be trusted either.
		panic("auth: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// FromRequest finds the token in the Authorization header, then (for
// WebSocket handshakes, which browsers cannot give headers) the token query
// parameter, then the session cookie.
func FromRequest(r *http.Request, allowQuery bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		// The scheme name is case-insensitive (RFC 9110 §11.1).
		if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if allowQuery {
		if tok := r.URL.Query().Get("token"); tok != "" {
			return tok
		}
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// Resolve returns the Principal for secret.
func (a *Authenticator) Resolve(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, ErrNoToken
	}
	h := Hash(secret)
	if subtle.ConstantTimeCompare(h, a.adminHash) == 1 {
		return Principal{TokenID: "admin", Role: store.RoleAdmin, Name: "admin"}, nil
	}
	if a.cache == nil {
		return a.fetch(ctx, h)
	}
	now := time.Now()
	if p, ok := a.lookup(h, now, false); ok {
		return p, nil
	}
	p, err := a.fetch(ctx, h)
	switch {
	case err == nil:
		a.remember(h, p, now)
	case errors.Is(err, store.ErrUnavailable):
		if p, ok := a.lookup(h, now, true); ok {
			return p, nil
		}
	}
	return p, err
}

func (a *Authenticator) fetch(ctx context.Context, h []byte) (Principal, error) {
	t, err := a.tokens.TokenByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnknownToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("resolve token: %w", err)
	}
	return Principal{TokenID: t.ID, Summit: t.Summit, Role: t.Role, Delegation: t.Delegation, Name: t.Name}, nil
}
