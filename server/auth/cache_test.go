package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"communique/server/store"
)

// tokenTable is a TokenStore in memory that counts lookups and can be made
// unavailable. (The cache's behaviour through a real Redis outage is
// tested end to end in server/e2e TestRedisFault33DownLater.)
type tokenTable struct {
	mu      sync.Mutex
	tokens  map[string]store.Token // by string(hash)
	lookups int
	down    bool
}

func (tt *tokenTable) TokenByHash(_ context.Context, h []byte) (store.Token, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.lookups++
	if tt.down {
		return store.Token{}, fmt.Errorf("token by hash: %w: connection refused", store.ErrUnavailable)
	}
	t, ok := tt.tokens[string(h)]
	if !ok {
		return store.Token{}, store.ErrNotFound
	}
	return t, nil
}

func TestTokenCache(t *testing.T) {
	ctx := context.Background()
	tt := &tokenTable{tokens: map[string]store.Token{
		string(Hash("kor")): {ID: "t1", Summit: "s", Role: store.RoleDelegate, Delegation: "KOR", Name: "kor"},
		string(Hash("gbr")): {ID: "t2", Summit: "s", Role: store.RoleDelegate, Delegation: "GBR", Name: "gbr"},
	}}
	a := New(tt, Hash("admin"), Options{CacheTTL: time.Hour, StaleIfUnavailable: time.Hour})

	for range 3 {
		if p, err := a.Resolve(ctx, "kor"); err != nil || p.TokenID != "t1" || p.Delegation != "KOR" {
			t.Fatalf("Resolve(kor) = %+v, %v", p, err)
		}
	}
	if tt.lookups != 1 {
		t.Errorf("%d store lookups for three resolutions; want 1", tt.lookups)
	}
	// Unknown tokens are not cached: a token created on another instance
	// works at once.
	for range 2 {
		if _, err := a.Resolve(ctx, "nld"); !errors.Is(err, ErrUnknownToken) {
			t.Fatalf("Resolve(nld) = %v; want ErrUnknownToken", err)
		}
	}
	if tt.lookups != 3 {
		t.Errorf("%d store lookups; want 3 (unknown tokens are looked up each time)", tt.lookups)
	}

	// Forget (a revocation) drops the token; a lookup that raced the
	// revocation cannot put it back.
	a.Forget("t1")
	a.remember(Hash("kor"), Principal{TokenID: "t1"}, time.Now())
	delete(tt.tokens, string(Hash("kor")))
	if _, err := a.Resolve(ctx, "kor"); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("Resolve(kor) after Forget = %v; want ErrUnknownToken", err)
	}

	// The store down: a token seen before still resolves, a new one gets
	// the store's error, the admin token never needs the store.
	if _, err := a.Resolve(ctx, "gbr"); err != nil {
		t.Fatal(err)
	}
	tt.down = true
	a.opts.CacheTTL = 0 // every entry is stale now, within StaleIfUnavailable
	if p, err := a.Resolve(ctx, "gbr"); err != nil || p.TokenID != "t2" {
		t.Errorf("Resolve(gbr) with the store down = %+v, %v; want the cached principal", p, err)
	}
	if _, err := a.Resolve(ctx, "hun"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Resolve(hun) with the store down = %v; want ErrUnavailable", err)
	}
	if p, err := a.Resolve(ctx, "admin"); err != nil || p.Role != store.RoleAdmin {
		t.Errorf("Resolve(admin) = %+v, %v", p, err)
	}
	// Past the stale window the store's error stands.
	a.opts.StaleIfUnavailable = 0
	if _, err := a.Resolve(ctx, "gbr"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Resolve(gbr) past the stale window = %v; want ErrUnavailable", err)
	}
}

// TestTokenCacheBounded: the cache never holds more than MaxEntries.
func TestTokenCacheBounded(t *testing.T) {
	tt := &tokenTable{tokens: map[string]store.Token{}}
	for i := range 50 {
		tt.tokens[string(Hash(fmt.Sprint(i)))] = store.Token{ID: fmt.Sprint("t", i), Summit: "s", Role: store.RoleObserver}
	}
	a := New(tt, Hash("admin"), Options{CacheTTL: time.Hour, MaxEntries: 10})
	for i := range 50 {
		if _, err := a.Resolve(context.Background(), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if n := len(a.cache); n > 10 {
			t.Fatalf("%d entries; want at most 10", n)
		}
	}
}

// TestNoCacheByDefault: without CacheTTL every resolution asks the store
// (the embedded store is local), so a revocation needs no Forget.
func TestNoCacheByDefault(t *testing.T) {
	tt := &tokenTable{tokens: map[string]store.Token{string(Hash("kor")): {ID: "t1", Summit: "s", Role: store.RoleDelegate}}}
	a := New(tt, Hash("admin"), Options{})
	for range 3 {
		if _, err := a.Resolve(context.Background(), "kor"); err != nil {
			t.Fatal(err)
		}
	}
	if tt.lookups != 3 {
		t.Errorf("%d lookups; want 3", tt.lookups)
	}
}
