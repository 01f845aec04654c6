package redis

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"communique/server/store"

	goredis "github.com/redis/go-redis/v9"
)

// errInvalidID is returned when a write names an id outside the allowlist.
var errInvalidID = errors.New("id must be 1 to 128 letters, digits, '-' or '_'")

// CreateSummit stores sm; ErrExists if its ID is taken.
func (s *Store) CreateSummit(ctx context.Context, sm store.Summit) error {
	if !validID(sm.ID) {
		return fmt.Errorf("create summit %q: %w", sm.ID, errInvalidID)
	}
	val, err := encode(&sm)
	if err != nil {
		return fmt.Errorf("create summit %s: encode: %w", sm.ID, err)
	}
	ok, err := s.c.SetNX(ctx, s.summitKey(sm.ID), val, 0).Result()
	if err != nil {
		return fmt.Errorf("create summit %s: %w", sm.ID, classify(ctx, err))
	}
	if !ok {
		return fmt.Errorf("create summit %s: %w", sm.ID, store.ErrExists)
	}
	return nil
}

// GetSummit returns the summit id; ErrNotFound if there is none.
func (s *Store) GetSummit(ctx context.Context, id string) (store.Summit, error) {
	sm, err := s.getSummit(ctx, id)
	if err != nil {
		return store.Summit{}, fmt.Errorf("get summit %s: %w", id, err)
	}
	return sm, nil
}

func (s *Store) getSummit(ctx context.Context, id string) (store.Summit, error) {
	if !validID(id) {
		return store.Summit{}, store.ErrNotFound
	}
	b, err := s.c.Get(ctx, s.summitKey(id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return store.Summit{}, store.ErrNotFound
	}
	if err != nil {
		return store.Summit{}, classify(ctx, err)
	}
	sm, err := decode[store.Summit](b)
	if err != nil {
		return store.Summit{}, fmt.Errorf("%w: %w", store.ErrCorrupt, err)
	}
	return sm, nil
}

// tokenRef is the value of a token pointer: the token's summit and ID.
// Summit ids cannot contain '/', so the first '/' splits it.
func tokenRef(summit, id string) string { return summit + "/" + id }

// PutToken stores t, replacing the token with the same summit and ID if
// there is one. The summit must exist (ErrNotFound); a hash that belongs to
// a different token is refused with ErrExists.
//
// The steps are ordered so that a failure between any two of them never
// lets a secret authenticate a token it no longer belongs to: the summit's
// hash is written first, then the new pointer, and the old pointer is
// removed last (TokenByHash ignores a pointer to a token whose hash
// differs).
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	name := t.Summit + "/" + t.ID
	switch {
	case t.ID == "" || !validID(t.Summit):
		return fmt.Errorf("put token %s: %w", name, errInvalidID)
	case len(t.Hash) == 0:
		return fmt.Errorf("put token %s: empty hash", name)
	}
	val, err := encode(&t)
	if err != nil {
		return fmt.Errorf("put token %s: encode: %w", name, err)
	}
	if _, err := s.getSummit(ctx, t.Summit); err != nil {
		return fmt.Errorf("put token %s: summit: %w", name, err)
	}
	ref := tokenRef(t.Summit, t.ID)
	holder, err := s.tokenByHash(ctx, t.Hash)
	switch {
	case err == nil && tokenRef(holder.Summit, holder.ID) != ref:
		return fmt.Errorf("put token %s: hash belongs to token %s/%s: %w", name, holder.Summit, holder.ID, store.ErrExists)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("put token %s: %w", name, err)
	}
	old, err := s.swapTokenScript.Run(ctx, s.c, []string{s.tokensKey(t.Summit)}, t.ID, val).Text()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("put token %s: %w", name, classify(ctx, err))
	}
	if err := s.c.Set(ctx, s.tokenPtrKey(t.Hash), ref, 0).Err(); err != nil {
		return fmt.Errorf("put token %s: pointer: %w", name, classify(ctx, err))
	}
	if old == "" {
		return nil
	}
	prev, err := decode[store.Token]([]byte(old))
	if err != nil {
		// The new token is in place; the old pointer, if any, now leads
		// to a token with another hash and is ignored.
		s.log.Error("replaced a corrupt token", "token", name, "err", err)
		return nil
	}
	if !bytes.Equal(prev.Hash, t.Hash) {
		if err := s.dropPtrScript.Run(ctx, s.c, []string{s.tokenPtrKey(prev.Hash)}, ref).Err(); err != nil {
			return fmt.Errorf("put token %s: drop old pointer: %w", name, classify(ctx, err))
		}
	}
	return nil
}

// TokenByHash returns the token whose secret hashes to hash; ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := s.tokenByHash(ctx, hash)
	if err != nil {
		// Never put the hash itself in an error: it is a credential's digest.
		return store.Token{}, fmt.Errorf("token by hash: %w", err)
	}
	return t, nil
}

func (s *Store) tokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	if len(hash) == 0 {
		return store.Token{}, store.ErrNotFound
	}
	ref, err := s.c.Get(ctx, s.tokenPtrKey(hash)).Result()
	if errors.Is(err, goredis.Nil) {
		return store.Token{}, store.ErrNotFound
	}
	if err != nil {
		return store.Token{}, classify(ctx, err)
	}
	summit, id, ok := strings.Cut(ref, "/")
	if !ok || !validID(summit) {
		return store.Token{}, fmt.Errorf("%w: token pointer %q", store.ErrCorrupt, ref)
	}
	b, err := s.c.HGet(ctx, s.tokensKey(summit), id).Bytes()
	if errors.Is(err, goredis.Nil) {
		return store.Token{}, store.ErrNotFound // a pointer left by a deletion
	}
	if err != nil {
		return store.Token{}, classify(ctx, err)
	}
	t, err := decode[store.Token](b)
	if err != nil {
		return store.Token{}, fmt.Errorf("%w: token %s: %w", store.ErrCorrupt, ref, err)
	}
	if !bytes.Equal(t.Hash, hash) {
		return store.Token{}, store.ErrNotFound // a pointer left by a replacement
	}
	return t, nil
}

// ListTokens returns the summit's tokens by Created, then ID. A summit
// without tokens (or unknown) gives an empty list.
func (s *Store) ListTokens(ctx context.Context, summit string) ([]store.Token, error) {
	if !validID(summit) {
		return nil, nil
	}
	raw, err := s.c.HGetAll(ctx, s.tokensKey(summit)).Result()
	if err != nil {
		return nil, fmt.Errorf("list tokens %s: %w", summit, classify(ctx, err))
	}
	out := make([]store.Token, 0, len(raw))
	for id, v := range raw {
		t, err := decode[store.Token]([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("list tokens %s: %w: token %q: %w", summit, store.ErrCorrupt, id, err)
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b store.Token) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteToken removes a token; ErrNotFound if there is none. The token is
// gone (TokenByHash refuses it) as soon as the first step succeeds; the
// pointer is cleaned up after.
func (s *Store) DeleteToken(ctx context.Context, summit, id string) error {
	name := summit + "/" + id
	if !validID(summit) || id == "" {
		return fmt.Errorf("delete token %s: %w", name, store.ErrNotFound)
	}
	old, err := s.takeTokenScript.Run(ctx, s.c, []string{s.tokensKey(summit)}, id).Text()
	if errors.Is(err, goredis.Nil) {
		return fmt.Errorf("delete token %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete token %s: %w", name, classify(ctx, err))
	}
	t, err := decode[store.Token]([]byte(old))
	if err != nil {
		s.log.Error("deleted a corrupt token", "token", name, "err", err)
		return nil
	}
	if err := s.dropPtrScript.Run(ctx, s.c, []string{s.tokenPtrKey(t.Hash)}, tokenRef(summit, id)).Err(); err != nil {
		// The token is already unusable; only a stale pointer is left.
		s.log.Warn("token deleted; its pointer was not", "token", name, "err", classify(ctx, err))
	}
	return nil
}

// CreateDoc stores d and starts both streams at version 0 with text as
// their version-0 snapshot, in one script. ErrExists if the doc exists,
// ErrNotFound if its summit does not. The summit's doc index is updated
// first (see the package comment).
func (s *Store) CreateDoc(ctx context.Context, d store.Doc, text string) error {
	name := d.Summit + "/" + d.ID
	if !validID(d.Summit) || !validID(d.ID) {
		return fmt.Errorf("create doc %s: %w", name, errInvalidID)
	}
	val, err := encode(&d)
	if err != nil {
		return fmt.Errorf("create doc %s: encode: %w", name, err)
	}
	snap, err := store.EncodeSnapshot(&store.Snapshot{Version: 0, Text: text})
	if err != nil {
		return fmt.Errorf("create doc %s: encode snapshot: %w", name, err)
	}
	if _, err := s.getSummit(ctx, d.Summit); err != nil {
		return fmt.Errorf("create doc %s: summit: %w", name, err)
	}
	if err := s.c.SAdd(ctx, s.docsKey(d.Summit), d.ID).Err(); err != nil {
		return fmt.Errorf("create doc %s: index: %w", name, classify(ctx, err))
	}
	keys := []string{s.docKey(d.Summit, d.ID)}
	for _, st := range []store.Stream{store.Draft, store.Approved} {
		sk, _ := s.keysOf(store.StreamKey{Summit: d.Summit, Doc: d.ID, Stream: st})
		keys = append(keys, sk.head, sk.snap, sk.snaps)
	}
	res, err := s.createDocScript.Run(ctx, s.c, keys, val, snap).Text()
	if err != nil {
		return fmt.Errorf("create doc %s: %w", name, classify(ctx, err))
	}
	switch res {
	case "ok":
		return nil
	case "exists":
		return fmt.Errorf("create doc %s: %w", name, store.ErrExists)
	case "orphan":
		return fmt.Errorf("create doc %s: streams of a doc without metadata: %w", name, store.ErrExists)
	default:
		return fmt.Errorf("create doc %s: unexpected script reply %q", name, res)
	}
}

// GetDoc returns a doc's metadata; ErrNotFound.
func (s *Store) GetDoc(ctx context.Context, summit, id string) (store.Doc, error) {
	d, err := s.getDoc(ctx, summit, id)
	if err != nil {
		return store.Doc{}, fmt.Errorf("get doc %s/%s: %w", summit, id, err)
	}
	return d, nil
}

func (s *Store) getDoc(ctx context.Context, summit, id string) (store.Doc, error) {
	if !validID(summit) || !validID(id) {
		return store.Doc{}, store.ErrNotFound
	}
	b, err := s.c.Get(ctx, s.docKey(summit, id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return store.Doc{}, store.ErrNotFound
	}
	if err != nil {
		return store.Doc{}, classify(ctx, err)
	}
	d, err := decode[store.Doc](b)
	if err != nil {
		return store.Doc{}, fmt.Errorf("%w: %w", store.ErrCorrupt, err)
	}
	return d, nil
}

// ListDocs returns the summit's docs by Order, then ID. A summit without
// docs (or unknown) gives an empty list. Index entries whose doc does not
// exist (a create that failed after indexing) are skipped.
func (s *Store) ListDocs(ctx context.Context, summit string) ([]store.Doc, error) {
	if !validID(summit) {
		return nil, nil
	}
	ids, err := s.c.SMembers(ctx, s.docsKey(summit)).Result()
	if err != nil {
		return nil, fmt.Errorf("list docs %s: %w", summit, classify(ctx, err))
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return !validID(id) })
	if len(ids) == 0 {
		return nil, nil
	}
	// One round trip; on a cluster go-redis splits it by node.
	pipe := s.c.Pipeline()
	cmds := make([]*goredis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.docKey(summit, id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("list docs %s: %w", summit, classify(ctx, err))
	}
	out := make([]store.Doc, 0, len(ids))
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list docs %s: %w", summit, classify(ctx, err))
		}
		d, err := decode[store.Doc](b)
		if err != nil {
			return nil, fmt.Errorf("list docs %s: %w: doc %q: %w", summit, store.ErrCorrupt, ids[i], err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.Doc) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateDoc replaces a doc's metadata; ErrNotFound if it does not exist.
// AdoptDoc implements store.Store with adoptDocLua: the document's
// metadata is replaced only while both heads are where the chair saw them,
// atomically with any append (the same hash slot; appendLua refuses
// records once the document is adopted).
func (s *Store) AdoptDoc(ctx context.Context, d store.Doc, draft, approved uint64) error {
	name := d.Summit + "/" + d.ID
	dk, ok1 := s.keysOf(store.StreamKey{Summit: d.Summit, Doc: d.ID, Stream: store.Draft})
	ak, ok2 := s.keysOf(store.StreamKey{Summit: d.Summit, Doc: d.ID, Stream: store.Approved})
	if !ok1 || !ok2 {
		return fmt.Errorf("adopt doc %s: %w", name, store.ErrNotFound)
	}
	val, err := encode(&d)
	if err != nil {
		return fmt.Errorf("adopt doc %s: encode: %w", name, err)
	}
	res, err := s.adoptDocScript.Run(ctx, s.c, []string{s.docKey(d.Summit, d.ID), dk.head, ak.head},
		val, formatVersion(draft), formatVersion(approved)).Text()
	if err != nil {
		return fmt.Errorf("adopt doc %s: %w", name, classify(ctx, err))
	}
	switch res {
	case "ok":
		return nil
	case "notfound":
		return fmt.Errorf("adopt doc %s: %w", name, store.ErrNotFound)
	case "conflict":
		return fmt.Errorf("adopt doc %s: a stream moved past draft %d / approved %d: %w", name, draft, approved, store.ErrConflict)
	default:
		return fmt.Errorf("adopt doc %s: unexpected script reply %q", name, res)
	}
}

func (s *Store) UpdateDoc(ctx context.Context, d store.Doc) error {
	name := d.Summit + "/" + d.ID
	if !validID(d.Summit) || !validID(d.ID) {
		return fmt.Errorf("update doc %s: %w", name, store.ErrNotFound)
	}
	val, err := encode(&d)
	if err != nil {
		return fmt.Errorf("update doc %s: encode: %w", name, err)
	}
	n, err := s.updateDocScript.Run(ctx, s.c, []string{s.docKey(d.Summit, d.ID)}, val).Int()
	if err != nil {
		return fmt.Errorf("update doc %s: %w", name, classify(ctx, err))
	}
	if n == 0 {
		return fmt.Errorf("update doc %s: %w", name, store.ErrNotFound)
	}
	return nil
}
