// Package demo seeds a summit modelled on the Seoul Conference on Cyberspace
// 2013: a chair's summary and two annexes with starting text (written for
// this project), and tokens for the chair's office, several delegations and
// an observer.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"communique/server/auth"
	"communique/server/store"
)

//go:embed texts/*.md
var texts embed.FS

// SummitID is the demo summit's id.
const SummitID = "seoul-2013"

// demoMark ends the name of every token the demo issues, so the next start
// can revoke them before issuing fresh ones.
const demoMark = " (demo)"

var docs = []struct{ id, title, file string }{
	{"chair-summary", "Chair's Summary", "texts/chair-summary.md"},
	{"annex-1", "Annex I — Seoul Framework for and Commitment to Open and Secure Cyberspace", "texts/annex-1.md"},
	{"annex-2", "Annex II — Capacity Building and the Protection of Personal Information", "texts/annex-2.md"},
}

var participants = []struct {
	role             store.Role
	delegation, name string
}{
	{store.RoleChair, "", "Chair's office"},
	{store.RoleDelegate, "KOR", "Republic of Korea"},
	{store.RoleDelegate, "GBR", "United Kingdom"},
	{store.RoleDelegate, "HUN", "Hungary"},
	{store.RoleDelegate, "NLD", "Netherlands"},
	{store.RoleDelegate, "BRA", "Brazil"},
	{store.RoleDelegate, "KEN", "Kenya"},
	{store.RoleObserver, "", "Press pool"},
}

// Token is an issued demo token with its secret.
type Token struct {
	Role       store.Role
	Delegation string
	Name       string
	Secret     string
}

// Docs lists the demo document ids in order.
func Docs() []string {
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.id
	}
	return ids
}

// Seed creates the demo summit and its documents if they are missing (an
// existing summit keeps its texts and history), revokes the tokens an earlier
// demo start issued, and issues fresh ones. Secrets are only ever shown at
// creation, so each start prints new ones.
func Seed(ctx context.Context, st store.Store) ([]Token, error) {
	now := time.Now().UTC()
	err := st.CreateSummit(ctx, store.Summit{ID: SummitID, Title: "Seoul Conference on Cyberspace 2013", Created: now})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("demo summit: %w", err)
	}
	for i, d := range docs {
		text, err := texts.ReadFile(d.file)
		if err != nil {
			return nil, fmt.Errorf("demo text %s: %w", d.file, err)
		}
		err = st.CreateDoc(ctx, store.Doc{Summit: SummitID, ID: d.id, Title: d.title, Order: i, Created: now}, string(text))
		if err != nil && !errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("demo document %s: %w", d.id, err)
		}
	}
	old, err := st.ListTokens(ctx, SummitID)
	if err != nil {
		return nil, fmt.Errorf("demo tokens: %w", err)
	}
	for _, t := range old {
		if strings.HasSuffix(t.Name, demoMark) {
			if err := st.DeleteToken(ctx, SummitID, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("revoke old demo token: %w", err)
			}
		}
	}
	out := make([]Token, 0, len(participants))
	for _, p := range participants {
		secret, err := auth.NewSecret()
		if err != nil {
			return nil, err
		}
		t := store.Token{
			ID: auth.NewID(), Summit: SummitID, Role: p.role, Delegation: p.delegation,
			Name: p.name + demoMark, Hash: auth.Hash(secret), Created: time.Now().UTC(),
		}
		if err := st.PutToken(ctx, t); err != nil {
			return nil, fmt.Errorf("demo token: %w", err)
		}
		out = append(out, Token{Role: p.role, Delegation: p.delegation, Name: p.name, Secret: secret})
	}
	return out, nil
}
