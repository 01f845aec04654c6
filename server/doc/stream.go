package doc

import (
	"context"
	"encoding/json"
	"fmt"

	"communique/ot"
	"communique/server/changes"
	"communique/server/store"
	"communique/server/wire"
)

// stream is the in-memory state of one of a document's two streams. Only the
// session goroutine touches it.
type stream struct {
	key     store.StreamKey
	text    ot.Text
	version uint64
	// log holds the newest ops, for versions (version-len(log), version],
	// each with its inverse so older texts can be rebuilt for merges.
	log      []entry
	window   int
	snapshot uint64 // version of the newest stored snapshot
	subs     map[Peer]struct{}
	rb       rollback // committed state before the current batch
	// auth is who wrote what, for the draft only (tracked flags it).
	auth    changes.Authorship
	tracked bool
	prune   pruneState

	// strCache is text.String() at strVersion: hellos for many followers of
	// an unchanged document share one string.
	strCache   string
	strVersion uint64
	strValid   bool
	// jsonCache is strCache encoded as a JSON string, for hellos (nil:
	// none). Both caches are dropped by undo.
	jsonCache   []byte
	jsonVersion uint64
}

type entry struct {
	rec   store.OpRecord
	inv   ot.Op
	frame *wire.Frame // the broadcast frame, built once when committed
}

// replay rebuilds a stream from its stored state.
func replay(k store.StreamKey, st store.StreamState, window int) (*stream, error) {
	s := &stream{
		key:      k,
		text:     ot.NewText(st.Snapshot.Text),
		version:  st.Snapshot.Version,
		snapshot: st.Snapshot.Version,
		window:   window,
		subs:     make(map[Peer]struct{}),
		tracked:  k.Stream == store.Draft,
	}
	if s.tracked {
		auth, err := changes.Decode(st.Snapshot.Extra, s.text.Len())
		if err != nil {
			return nil, fmt.Errorf("%s: snapshot %d: %v: %w", k.Stream, st.Snapshot.Version, err, store.ErrCorrupt)
		}
		s.auth = auth
	}
	for _, rec := range st.Ops {
		if rec.Version != s.version+1 {
			return nil, fmt.Errorf("%s: op version %d after %d: %w", k.Stream, rec.Version, s.version, store.ErrCorrupt)
		}
		text, inv, err := s.text.ApplyInvert(rec.Op)
		if err != nil {
			return nil, fmt.Errorf("%s: replay op %d: %v: %w", k.Stream, rec.Version, err, store.ErrCorrupt)
		}
		if s.tracked {
			if s.auth, err = s.auth.Apply(rec.Op, rec.Author, deletedTexts(inv)); err != nil {
				return nil, fmt.Errorf("%s: authorship of op %d: %v: %w", k.Stream, rec.Version, err, store.ErrCorrupt)
			}
		}
		s.text = text
		s.version = rec.Version
		s.log = append(s.log, entry{rec: rec, inv: inv})
	}
	s.trim()
	return s, nil
}

// oldest is the lowest base version the in-memory log can transform from.
func (s *stream) oldest() uint64 { return s.version - uint64(len(s.log)) }

// trim keeps the log near its window; it copies only when the log has grown
// to twice the window, so the cost is amortised.
func (s *stream) trim() {
	if len(s.log) > 2*s.window {
		keep := make([]entry, s.window, 2*s.window)
		copy(keep, s.log[len(s.log)-s.window:])
		s.log = keep
	}
}

// since returns the records with versions in (v, version], from memory, or
// from the store for what memory no longer holds.
func (s *stream) since(ctx context.Context, st Store, v uint64) ([]store.OpRecord, error) {
	if v > s.version {
		return nil, fmt.Errorf("version %d is ahead of %d: %w", v, s.version, ErrBadVersion)
	}
	var out []store.OpRecord
	if v < s.oldest() {
		older, err := st.Since(ctx, s.key, v, int(s.oldest()-v))
		if err != nil {
			return nil, fmt.Errorf("read ops after %d: %w", v, err)
		}
		if uint64(len(older)) != s.oldest()-v {
			return nil, fmt.Errorf("read ops after %d: got %d, want %d: %w", v, len(older), s.oldest()-v, store.ErrCorrupt)
		}
		out = older
		v = s.oldest()
	}
	for _, e := range s.log[v-s.oldest():] {
		out = append(out, e.rec)
	}
	return out, nil
}

// textAt rebuilds the text at version v by undoing newer ops, if memory still
// holds them.
func (s *stream) textAt(v uint64) (ot.Text, error) {
	if v > s.version {
		return ot.Text{}, fmt.Errorf("version %d is ahead of %d: %w", v, s.version, ErrBadVersion)
	}
	if v < s.oldest() {
		return ot.Text{}, fmt.Errorf("version %d is older than the %d newest versions kept for merging: %w", v, len(s.log), ErrBadVersion)
	}
	t := s.text
	for i := len(s.log) - 1; i >= 0 && s.log[i].rec.Version > v; i-- {
		var err error
		if t, err = t.Apply(s.log[i].inv); err != nil {
			return ot.Text{}, fmt.Errorf("undo op %d: %w", s.log[i].rec.Version, err)
		}
	}
	return t, nil
}

// textJSON is the text encoded as a JSON string, for hellos; like
// textString, made once per version.
func (s *stream) textJSON() []byte {
	if s.jsonVersion != s.version || s.jsonCache == nil {
		b, err := json.Marshal(s.textString())
		if err != nil {
			panic("doc: encode text: " + err.Error()) // a Go string always encodes
		}
		s.jsonCache, s.jsonVersion = b, s.version
	}
	return s.jsonCache
}

func (s *stream) textString() string {
	if !s.strValid || s.strVersion != s.version {
		s.strCache, s.strVersion, s.strValid = s.text.String(), s.version, true
	}
	return s.strCache
}

func (e *entry) opFrame(stream store.Stream) *wire.Frame {
	if e.frame == nil {
		e.frame = recordFrame(stream, e.rec)
	}
	return e.frame
}

func recordFrame(stream store.Stream, r store.OpRecord) *wire.Frame {
	return wire.NewFrame(wire.OpMsg{
		Type:    "op",
		Stream:  string(stream),
		Version: r.Version,
		Op:      r.Op,
		Author:  r.Author,
		Name:    r.Name,
		Src:     r.Src,
		Seq:     r.Seq,
		Time:    r.Time.UnixMilli(),
	})
}

// deletedTexts lists the texts an op deleted, in order, from its inverse
// (whose inserts are exactly those texts).
func deletedTexts(inv ot.Op) []string {
	var out []string
	for _, c := range inv {
		if c.Insert != "" {
			out = append(out, c.Insert)
		}
	}
	return out
}
