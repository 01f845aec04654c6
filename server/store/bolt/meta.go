package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"communique/server/store"

	"go.etcd.io/bbolt"
)

var errEmptyID = errors.New("empty id")

// CreateSummit stores s; ErrExists if its ID is taken.
func (s *Store) CreateSummit(ctx context.Context, sm store.Summit) error {
	if sm.ID == "" {
		return fmt.Errorf("create summit: %w", errEmptyID)
	}
	val, err := encode(&sm)
	if err != nil {
		return fmt.Errorf("create summit %s: encode: %w", sm.ID, err)
	}
	id := []byte(sm.ID)
	err = s.submit(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktSummits)
		if b.Get(id) != nil {
			return reject(store.ErrExists)
		}
		if err := b.Put(id, val); err != nil {
			return err
		}
		if _, err := tx.Bucket(bktDocs).CreateBucketIfNotExists(id); err != nil {
			return err
		}
		_, err := tx.Bucket(bktTokIdx).CreateBucketIfNotExists(id)
		return err
	})
	if err != nil {
		return fmt.Errorf("create summit %s: %w", sm.ID, err)
	}
	return nil
}

// GetSummit returns the summit id; ErrNotFound if there is none.
func (s *Store) GetSummit(ctx context.Context, id string) (store.Summit, error) {
	var sm store.Summit
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bktSummits).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if sm, err = decode[store.Summit](v); err != nil {
			return fmt.Errorf("%w: %w", store.ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return store.Summit{}, fmt.Errorf("get summit %s: %w", id, err)
	}
	return sm, nil
}

// PutToken stores t, replacing the token with the same summit and ID if
// there is one. The summit must exist (ErrNotFound); a hash that belongs to
// a different token is refused with ErrExists.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	switch {
	case t.ID == "" || t.Summit == "":
		return fmt.Errorf("put token %s/%s: %w", t.Summit, t.ID, errEmptyID)
	case len(t.Hash) == 0:
		return fmt.Errorf("put token %s/%s: empty hash", t.Summit, t.ID)
	}
	val, err := encode(&t)
	if err != nil {
		return fmt.Errorf("put token %s/%s: encode: %w", t.Summit, t.ID, err)
	}
	hash := bytes.Clone(t.Hash)
	idxKey := append(timeKey(t.Created), t.ID...)
	err = s.submit(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bktSummits).Get([]byte(t.Summit)) == nil {
			return reject(fmt.Errorf("summit: %w", store.ErrNotFound))
		}
		tokens := tx.Bucket(bktTokens)
		if v := tokens.Get(hash); v != nil {
			old, err := decode[store.Token](v)
			if err != nil {
				return reject(fmt.Errorf("token with this hash: %w: %w", store.ErrCorrupt, err))
			}
			if old.Summit != t.Summit || old.ID != t.ID {
				return reject(fmt.Errorf("hash belongs to token %s/%s: %w", old.Summit, old.ID, store.ErrExists))
			}
		}
		idx, err := tx.Bucket(bktTokIdx).CreateBucketIfNotExists([]byte(t.Summit))
		if err != nil {
			return err
		}
		// Replace an earlier version of this token (its Created or hash may
		// differ, so its index key and hash key may too).
		oldKey, oldHash := findToken(idx, t.ID)
		if oldKey != nil {
			if err := idx.Delete(oldKey); err != nil {
				return err
			}
			if err := tokens.Delete(oldHash); err != nil {
				return err
			}
		}
		if err := tokens.Put(hash, val); err != nil {
			return err
		}
		return idx.Put(idxKey, hash)
	})
	if err != nil {
		return fmt.Errorf("put token %s/%s: %w", t.Summit, t.ID, err)
	}
	return nil
}

// findToken scans a summit's token index for id and returns copies of its
// index key and hash (nil if absent). A summit has few tokens, so a scan is
// cheaper than keeping a second index in step.
func findToken(idx *bbolt.Bucket, id string) (key, hash []byte) {
	c := idx.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) > 8 && string(k[8:]) == id {
			return bytes.Clone(k), bytes.Clone(v)
		}
	}
	return nil, nil
}

// TokenByHash returns the token whose secret hashes to hash; ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	var t store.Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if len(hash) == 0 {
			return store.ErrNotFound
		}
		v := tx.Bucket(bktTokens).Get(hash)
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if t, err = decode[store.Token](v); err != nil {
			return fmt.Errorf("%w: %w", store.ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		// Never put the hash itself in an error: it is a credential's digest.
		return store.Token{}, fmt.Errorf("token by hash: %w", err)
	}
	return t, nil
}

// ListTokens returns the summit's tokens by Created, then ID. A summit
// without tokens (or unknown) gives an empty list.
func (s *Store) ListTokens(ctx context.Context, summit string) ([]store.Token, error) {
	var out []store.Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bktTokIdx).Bucket([]byte(summit))
		if idx == nil {
			return nil
		}
		tokens := tx.Bucket(bktTokens)
		return idx.ForEach(func(k, hash []byte) error {
			v := tokens.Get(hash)
			if v == nil {
				return fmt.Errorf("%w: index entry %q has no token", store.ErrCorrupt, k[8:])
			}
			t, err := decode[store.Token](v)
			if err != nil {
				return fmt.Errorf("%w: token %q: %w", store.ErrCorrupt, k[8:], err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens %s: %w", summit, err)
	}
	return out, nil
}

// DeleteToken removes a token; ErrNotFound if there is none.
func (s *Store) DeleteToken(ctx context.Context, summit, id string) error {
	err := s.submit(ctx, func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bktTokIdx).Bucket([]byte(summit))
		if idx == nil {
			return reject(store.ErrNotFound)
		}
		key, hash := findToken(idx, id)
		if key == nil {
			return reject(store.ErrNotFound)
		}
		if err := idx.Delete(key); err != nil {
			return err
		}
		return tx.Bucket(bktTokens).Delete(hash)
	})
	if err != nil {
		return fmt.Errorf("delete token %s/%s: %w", summit, id, err)
	}
	return nil
}

var streams = []store.Stream{store.Draft, store.Approved}

// CreateDoc stores d and starts both streams at version 0 with text as
// their version-0 snapshot, in one transaction. ErrExists if the doc
// exists, ErrNotFound if its summit does not.
func (s *Store) CreateDoc(ctx context.Context, d store.Doc, text string) error {
	if d.ID == "" || d.Summit == "" {
		return fmt.Errorf("create doc %s/%s: %w", d.Summit, d.ID, errEmptyID)
	}
	val, err := encode(&d)
	if err != nil {
		return fmt.Errorf("create doc %s/%s: encode: %w", d.Summit, d.ID, err)
	}
	snap, err := store.EncodeSnapshot(&store.Snapshot{Version: 0, Text: text})
	if err != nil {
		return fmt.Errorf("create doc %s/%s: encode snapshot: %w", d.Summit, d.ID, err)
	}
	summit, id := []byte(d.Summit), []byte(d.ID)
	err = s.submit(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bktSummits).Get(summit) == nil {
			return reject(fmt.Errorf("summit: %w", store.ErrNotFound))
		}
		docs := tx.Bucket(bktDocs).Bucket(summit)
		if docs == nil {
			return reject(fmt.Errorf("%w: summit has no docs bucket", store.ErrCorrupt))
		}
		if docs.Get(id) != nil {
			return reject(store.ErrExists)
		}
		names := tx.Bucket(bktStreams)
		for _, st := range streams {
			if names.Get(streamName(store.StreamKey{Summit: d.Summit, Doc: d.ID, Stream: st})) != nil {
				return reject(fmt.Errorf("stream %s of a doc without metadata: %w", st, store.ErrExists))
			}
		}
		if err := docs.Put(id, val); err != nil {
			return err
		}
		for _, st := range streams {
			n, err := names.NextSequence()
			if err != nil {
				return err
			}
			sid := encodeU64(n)
			if err := names.Put(streamName(store.StreamKey{Summit: d.Summit, Doc: d.ID, Stream: st}), sid); err != nil {
				return err
			}
			if err := tx.Bucket(bktHeads).Put(sid, encodeU64(0)); err != nil {
				return err
			}
			if err := tx.Bucket(bktSnaps).Put(sid, snap); err != nil {
				return err
			}
			if err := putSnapHist(tx, sid, 0, snap); err != nil {
				return err
			}
			if _, err := tx.Bucket(bktOps).CreateBucket(sid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create doc %s/%s: %w", d.Summit, d.ID, err)
	}
	return nil
}

// GetDoc returns a doc's metadata; ErrNotFound.
func (s *Store) GetDoc(ctx context.Context, summit, id string) (store.Doc, error) {
	var d store.Doc
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		docs := tx.Bucket(bktDocs).Bucket([]byte(summit))
		if docs == nil {
			return store.ErrNotFound
		}
		v := docs.Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if d, err = decode[store.Doc](v); err != nil {
			return fmt.Errorf("%w: %w", store.ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return store.Doc{}, fmt.Errorf("get doc %s/%s: %w", summit, id, err)
	}
	return d, nil
}

// ListDocs returns the summit's docs by Order, then ID. A summit without
// docs (or unknown) gives an empty list.
func (s *Store) ListDocs(ctx context.Context, summit string) ([]store.Doc, error) {
	var out []store.Doc
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		docs := tx.Bucket(bktDocs).Bucket([]byte(summit))
		if docs == nil {
			return nil
		}
		return docs.ForEach(func(k, v []byte) error {
			d, err := decode[store.Doc](v)
			if err != nil {
				return fmt.Errorf("%w: doc %q: %w", store.ErrCorrupt, k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list docs %s: %w", summit, err)
	}
	slices.SortFunc(out, func(a, b store.Doc) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateDoc replaces a doc's metadata; ErrNotFound if it does not exist.
// AdoptDoc implements store.Store: d is stored only while both streams are
// at the versions the chair adopted.
func (s *Store) AdoptDoc(ctx context.Context, d store.Doc, draft, approved uint64) error {
	val, err := encode(&d)
	if err != nil {
		return fmt.Errorf("adopt doc %s/%s: encode: %w", d.Summit, d.ID, err)
	}
	summit, id := []byte(d.Summit), []byte(d.ID)
	err = s.submit(ctx, func(tx *bbolt.Tx) error {
		docs := tx.Bucket(bktDocs).Bucket(summit)
		if docs == nil || len(id) == 0 || docs.Get(id) == nil {
			return reject(store.ErrNotFound)
		}
		for _, h := range []struct {
			stream store.Stream
			want   uint64
		}{{store.Draft, draft}, {store.Approved, approved}} {
			sid := streamID(tx, store.StreamKey{Summit: d.Summit, Doc: d.ID, Stream: h.stream})
			if sid == nil {
				return reject(fmt.Errorf("%s stream: %w", h.stream, store.ErrNotFound))
			}
			head, _, err := streamParts(tx, sid)
			if err != nil {
				return reject(err)
			}
			if head != h.want {
				return reject(fmt.Errorf("%s stream at version %d, not %d: %w", h.stream, head, h.want, store.ErrConflict))
			}
		}
		return docs.Put(id, val)
	})
	if err != nil {
		return fmt.Errorf("adopt doc %s/%s: %w", d.Summit, d.ID, err)
	}
	return nil
}

// docAdopted reports whether the document of stream k is adopted.
func docAdopted(tx *bbolt.Tx, k store.StreamKey) (bool, error) {
	docs := tx.Bucket(bktDocs).Bucket([]byte(k.Summit))
	if docs == nil {
		return false, fmt.Errorf("doc: %w", store.ErrNotFound)
	}
	b := docs.Get([]byte(k.Doc))
	if b == nil {
		return false, fmt.Errorf("doc: %w", store.ErrNotFound)
	}
	var d struct {
		Adopted bool `json:"adopted"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return false, fmt.Errorf("%w: doc: %w", store.ErrCorrupt, err)
	}
	return d.Adopted, nil
}

func (s *Store) UpdateDoc(ctx context.Context, d store.Doc) error {
	val, err := encode(&d)
	if err != nil {
		return fmt.Errorf("update doc %s/%s: encode: %w", d.Summit, d.ID, err)
	}
	summit, id := []byte(d.Summit), []byte(d.ID)
	err = s.submit(ctx, func(tx *bbolt.Tx) error {
		docs := tx.Bucket(bktDocs).Bucket(summit)
		if docs == nil || len(id) == 0 || docs.Get(id) == nil {
			return reject(store.ErrNotFound)
		}
		return docs.Put(id, val)
	})
	if err != nil {
		return fmt.Errorf("update doc %s/%s: %w", d.Summit, d.ID, err)
	}
	return nil
}
