package doc_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"communique/ot"
	"communique/server/changes"
	"communique/server/doc"
	"communique/server/loadtest"
	"communique/server/store"
	"communique/server/store/bolt"
	"communique/server/wire"
)

// Run with: go test ./server/doc/ -run '^$' -bench 'SessionSubmit|Reopen' -benchmem

// countingPeer is a subscriber that takes every frame and counts it, like a
// socket whose writer always keeps up. It is a doc.Flusher too, as sockets
// are, so the session's flush round is part of what is measured.
type countingPeer struct {
	frames  atomic.Int64
	flushes atomic.Int64
}

func (p *countingPeer) Send(*wire.Frame) bool { p.frames.Add(1); return true }
func (p *countingPeer) Kick(string)           {}
func (p *countingPeer) Flush()                { p.flushes.Add(1) }

// ackPeer is the submitter: it hands every frame to the benchmark loop.
type ackPeer struct{ frames chan *wire.Frame }

func (p *ackPeer) Send(f *wire.Frame) bool {
	select {
	case p.frames <- f:
		return true
	default:
		return false
	}
}
func (p *ackPeer) Kick(string) {}

func benchStore(b *testing.B, fsync bool, text string) *bolt.Store {
	b.Helper()
	st, err := bolt.Open(b.TempDir(), bolt.Options{FsyncDisabled: !fsync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.CreateSummit(ctx, store.Summit{ID: "s"}); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateDoc(ctx, store.Doc{Summit: "s", ID: "d", Title: "D"}, text); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkSessionSubmit is the document session's whole edit path for one
// op at a time: receipt (SubmitAsync, as a socket's reader hands it over),
// transform (the op is one version behind, as when two delegates type at
// once), apply to the rope, authorship, persist (one store append), the ack
// to the sender and the broadcast of one shared frame to N subscribers. The
// loop waits for each ack, so ns/op is the path's latency on an idle
// machine. fsync=off isolates the CPU cost; fsync=on adds the disk. Every
// 1,000th op or so also stores a snapshot, whose authorship is pruned
// against the pending changes (a diff of the approved text and the draft,
// made beside the session: prune.go).
func BenchmarkSessionSubmit(b *testing.B) {
	for _, bc := range []struct {
		subs  int
		fsync bool
	}{{0, false}, {100, false}, {1000, false}, {5000, false}, {100, true}} {
		name := fmt.Sprintf("subs=%d/fsync=%s", bc.subs, map[bool]string{false: "off", true: "on"}[bc.fsync])
		b.Run(name, func(b *testing.B) {
			text := strings.Repeat("Participants welcomed the 서울 framework 🌐. ", 50)
			st := benchStore(b, bc.fsync, text)
			r := doc.NewRegistry(st, doc.Config{}, slog.New(slog.DiscardHandler), doc.Hooks{})
			b.Cleanup(func() { r.Close(context.Background()) })
			ctx := context.Background()
			s, err := r.Acquire(ctx, "s", "d")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Release()
			subs := make([]*countingPeer, bc.subs)
			for i := range subs {
				subs[i] = &countingPeer{}
				if _, err := s.Subscribe(ctx, subs[i], store.Draft, nil, wire.Peer{Client: fmt.Sprint("f", i)}); err != nil {
					b.Fatal(err)
				}
			}
			// Presence joins of the subscribers are not what is measured.
			var before int64
			for _, p := range subs {
				before += p.frames.Load()
			}
			me := &ackPeer{frames: make(chan *wire.Frame, 16)}
			rng := rand.New(rand.NewPCG(1, 2))
			n := len([]rune(text))
			cursor := n / 2
			var version uint64
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Made one version behind the head (after the first op), so
				// every op is transformed over one concurrent op.
				base := version
				if base > 0 {
					base--
				}
				// Typing: a cursor that moves on, jumping elsewhere now and
				// then, as a delegate editing one paragraph after another.
				if cursor++; rng.IntN(200) == 0 || cursor > n-10 {
					cursor = rng.IntN(n - 10)
				}
				pos := cursor
				op := ot.Op{}.Retain(pos).Insert("ü").Retain(n - 1 - pos)
				if base == version {
					op = ot.Op{}.Retain(pos).Insert("ü").Retain(n - pos)
				}
				err := s.SubmitAsync(ctx, me, doc.Edit{Stream: store.Draft, Base: base, Op: op, Author: "KOR", Name: "Korea", Src: "bench", Seq: uint64(i + 1)})
				if err != nil {
					b.Fatal(err)
				}
				f := <-me.frames
				if !strings.HasPrefix(string(f.Data), `{"type":"ack"`) {
					b.Fatalf("got %s; want an ack", f.Data)
				}
				version++
				n++
			}
			b.StopTimer()
			frames := -before
			for _, p := range subs {
				frames += p.frames.Load()
			}
			b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
			if bc.subs > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames), "ns/frame")
			}
		})
	}
}

// reopenFixture is a store whose draft holds 1,000,999 ops, with a
// snapshot (text and authorship) every 1,000 as sessions write them, so
// reopening costs the last snapshot plus 999 ops. Built once per process:
// it takes several seconds.
var reopenFixture struct {
	dir     string
	text    string
	version uint64
}

const reopenOps = 1_000_999

// TestMain removes the reopen fixture, which outlives single benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	if reopenFixture.dir != "" {
		os.RemoveAll(reopenFixture.dir)
	}
	os.Exit(code)
}

func buildReopenFixture(b *testing.B) {
	b.Helper()
	if reopenFixture.dir != "" {
		return
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "communique-reopen-")
	if err != nil {
		b.Fatal(err)
	}
	st, err := bolt.Open(dir, bolt.Options{FsyncDisabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	initial := strings.Repeat("Recalling the Budapest conference, participants affirmed. ", 200)
	if err := st.CreateSummit(ctx, store.Summit{ID: "s"}); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateDoc(ctx, store.Doc{Summit: "s", ID: "d", Title: "D"}, initial); err != nil {
		b.Fatal(err)
	}
	key := store.StreamKey{Summit: "s", Doc: "d", Stream: store.Draft}
	text := ot.NewText(initial)
	auth := changes.New(text.Len())
	authors := []string{"KOR", "GBR", "USA", "BRA", "chair"}
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	recs := make([]store.OpRecord, 0, 1000)
	rng := rand.New(rand.NewPCG(3, 4))
	cursor := 100
	for v := uint64(1); v <= reopenOps; v++ {
		// Typing: runs of inserts at a cursor that moves with them, a jump
		// elsewhere every 500 ops, and a paragraph deleted whenever the
		// text passes 30,000 code points, so it stays near that size; the
		// author changes every 10,000 ops.
		n := text.Len()
		if v%500 == 0 {
			cursor = rng.IntN(n)
		}
		var op ot.Op
		if n > 30000 {
			at := rng.IntN(n - 200)
			op = ot.Op{}.Retain(at).Delete(200).Retain(n - at - 200)
			if cursor > at {
				cursor = max(at, cursor-200)
			}
		} else {
			op = ot.Op{}.Retain(cursor).Insert("né ").Retain(n - cursor)
			cursor += 3
		}
		next, inv, err := text.ApplyInvert(op)
		if err != nil {
			b.Fatal(err)
		}
		author := authors[int(v/10000)%len(authors)]
		var deleted []string
		for _, c := range inv {
			if c.Insert != "" {
				deleted = append(deleted, c.Insert)
			}
		}
		if auth, err = auth.Apply(op, author, deleted); err != nil {
			b.Fatal(err)
		}
		text = next
		recs = append(recs, store.OpRecord{Version: v, Op: op, Author: author, Name: author, Src: "c" + author, Seq: v, Time: t0.Add(time.Duration(v) * time.Millisecond)})
		if v%1000 == 0 || v == reopenOps {
			a := store.Append{Key: key, Records: recs}
			if v%1000 == 0 {
				// As a session's snapshot would after the chair decided
				// everything pending: no deletion marks are left to keep.
				auth = auth.Prune(nil)
				a.Snapshot = &store.Snapshot{Version: v, Text: text.String(), Extra: auth.Encode()}
			}
			if err := st.Append(ctx, a); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	reopenFixture.dir, reopenFixture.text, reopenFixture.version = dir, text.String(), reopenOps
	b.Logf("fixture: %d ops, %d code points, built in %v", reopenOps, text.Len(), time.Since(start).Round(time.Millisecond))
}

// BenchmarkReopen opens a document whose draft has 1,000,999 ops logged:
// Registry.Acquire reads the metadata, both streams' newest snapshots and
// the ops since (999 on the draft), replays them through the rope and the
// authorship, and starts the session. What it costs is what the first
// visitor of a long-edited document waits for after a restart or an idle
// release.
func BenchmarkReopen(b *testing.B) {
	buildReopenFixture(b)
	st, err := bolt.Open(reopenFixture.dir, bolt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := doc.NewRegistry(st, doc.Config{}, slog.New(slog.DiscardHandler), doc.Hooks{})
		s, err := r.Acquire(ctx, "s", "d")
		if err != nil {
			b.Fatal(err)
		}
		if v := s.View(); v.DraftVersion != reopenFixture.version || v.Draft.Len() != len([]rune(reopenFixture.text)) {
			b.Fatalf("reopened at version %d with %d code points; want %d", v.DraftVersion, v.Draft.Len(), reopenFixture.version)
		}
		s.Release()
		if err := r.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionThroughput is the throughput scenario without sockets:
// ten writers, each with one op in flight (it sends the next when the ack
// of the last arrives), every op fsynced. Batching is what lifts it above
// one op per fsync: the ops that arrive during a commit share the next.
//
// edits=typing has every writer type at the start of the text; edits=mixed
// makes the load generator's edits (loadtest.randomEdit: inserts of one to
// eight pieces of mixed scripts, deletes of one to five code points, at
// random places of a text kept near 2,000 code points) by ten delegations,
// so deletion marks pile up as in `communique bench --scenario throughput`,
// and the draft is snapshotted (and pruned) every 1,000 ops.
func BenchmarkSessionThroughput(b *testing.B) {
	b.Run("edits=typing", func(b *testing.B) {
		text := strings.Repeat("Participants welcomed the 서울 framework 🌐. ", 50)
		benchThroughput(b, text, func(_ *rand.Rand, n int) ot.Op { return ot.Op{}.Insert("x").Retain(n) })
	})
	b.Run("edits=mixed", func(b *testing.B) {
		benchThroughput(b, loadtest.InitialText(2000), func(rng *rand.Rand, n int) ot.Op { return loadtest.RandomEdit(rng, n, 2000) })
	})
}

func benchThroughput(b *testing.B, text string, edit func(rng *rand.Rand, n int) ot.Op) {
	const writers = 10
	st := benchStore(b, true, text)
	r := doc.NewRegistry(st, doc.Config{}, slog.New(slog.DiscardHandler), doc.Hooks{})
	b.Cleanup(func() { r.Close(context.Background()) })
	ctx := context.Background()
	s, err := r.Acquire(ctx, "s", "d")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Release()
	var next atomic.Int64 // ops handed out, shared by the writers
	errc := make(chan error, writers)
	b.ReportAllocs()
	b.ResetTimer()
	for w := range writers {
		go func() {
			me := &ackPeer{frames: make(chan *wire.Frame, 16)}
			src := fmt.Sprint("w", w)
			author := fmt.Sprint("D", w)
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for seq := uint64(1); next.Add(1) <= int64(b.N); seq++ {
				// Each writer edits the newest version it knows of; the
				// session transforms it over what the others committed
				// meanwhile.
				v := s.View()
				op := edit(rng, v.Draft.Len())
				if err := s.SubmitAsync(ctx, me, doc.Edit{Stream: store.Draft, Base: v.DraftVersion, Op: op, Author: author, Src: src, Seq: seq}); err != nil {
					errc <- err
					return
				}
				if f := <-me.frames; !strings.HasPrefix(string(f.Data), `{"type":"ack"`) {
					errc <- fmt.Errorf("got %s; want an ack", f.Data)
					return
				}
			}
			errc <- nil
		}()
	}
	for range writers {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(s.View().Auth.MarkCount()), "marks")
}
