package bolt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"communique/ot"
	"communique/server/store"
)

// benchRecord is a typical keystroke-sized op as the server logs it.
func benchRecord(v uint64) store.OpRecord {
	return store.OpRecord{
		Version: v,
		Op:      ot.Op{{Retain: 1 + int(v%5000)}, {Insert: "word "}, {Retain: 5000}},
		Author:  "DEU",
		Name:    "Erika Mustermann",
		Src:     "c7f3a1",
		Seq:     v,
		Time:    t0.Add(time.Duration(v) * time.Millisecond),
	}
}

// BenchmarkAppendSerial: one writer, one record per Append, fsync on. Each
// Append waits for its own commit, so this is the fsync latency bound.
func BenchmarkAppendSerial(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	setup(b, s, "a")
	ctx := context.Background()
	var v uint64
	for b.Loop() {
		v++
		if err := s.Append(ctx, store.Append{Key: key("a"), Records: []store.OpRecord{benchRecord(v)}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(v)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendGroupCommit: N writers on N distinct streams, one record
// per Append, fsync on. Concurrent Appends share commits, so throughput
// should grow with N while fsyncs per second stay about the same.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{})
			docs := make([]string, writers)
			for i := range docs {
				docs[i] = fmt.Sprintf("d%d", i)
			}
			setup(b, s, docs...)
			ctx := context.Background()
			before := s.Stats()
			var done atomic.Int64 // appends started, shared by all writers
			var failed atomic.Pointer[error]
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, d := range docs {
				wg.Go(func() {
					for v := uint64(1); done.Add(1) <= int64(b.N); v++ {
						a := store.Append{Key: key(d), Records: []store.OpRecord{benchRecord(v)}}
						if err := s.Append(ctx, a); err != nil {
							failed.Store(&err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if p := failed.Load(); p != nil {
				b.Fatal(*p)
			}
			st := s.Stats()
			commits := st.Commits - before.Commits
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(commits)/b.Elapsed().Seconds(), "commits/s")
			b.ReportMetric(float64(st.Requests-before.Requests)/float64(max(commits, 1)), "appends/commit")
		})
	}
}

// BenchmarkLoadStreamAfterSnapshot: a stream with 1,000,000 logged ops and
// a snapshot 100 ops before the head. Opening it must cost the snapshot and
// those 100 ops, not the log.
func BenchmarkLoadStreamAfterSnapshot(b *testing.B) {
	const total, batch, afterSnap = 1_000_000, 20_000, 100
	dir := b.TempDir()
	start := time.Now()
	s, err := Open(dir, Options{FsyncDisabled: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	setup(b, s, "a")
	ctx := context.Background()
	snapAt := uint64(total - afterSnap)
	text := make([]byte, 50_000) // a long document's text
	for i := range text {
		text[i] = 'a' + byte(i%26)
	}
	recs := make([]store.OpRecord, 0, batch)
	for from := uint64(1); from <= total; from += batch {
		recs = recs[:0]
		for v := from; v < from+batch && v <= total; v++ {
			recs = append(recs, benchRecord(v))
		}
		a := store.Append{Key: key("a"), Records: recs}
		if last := recs[len(recs)-1].Version; last >= snapAt {
			// Split the batch at the snapshot so that it sits exactly there.
			n := int(snapAt - from + 1)
			snap := store.Append{Key: key("a"), Records: recs[:n], Snapshot: &store.Snapshot{Version: snapAt, Text: string(text)}}
			if err := s.Append(ctx, snap); err != nil {
				b.Fatal(err)
			}
			a.Records = recs[n:]
		}
		if err := s.Append(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d ops, snapshot at %d, file %d MiB, built in %v", total, snapAt, info.Size()>>20, time.Since(start).Round(time.Millisecond))

	s = openT(b, dir, Options{})
	for b.Loop() {
		st, err := s.LoadStream(ctx, key("a"))
		if err != nil {
			b.Fatal(err)
		}
		if st.Snapshot.Version != snapAt || len(st.Ops) != afterSnap {
			b.Fatalf("loaded snapshot v%d + %d ops; want v%d + %d", st.Snapshot.Version, len(st.Ops), snapAt, afterSnap)
		}
	}
}
