package server

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"communique/server/store"
)

// decisionLog keeps, per document, the decisions found so far and how far
// each of its logs was read, so that GET …/decisions reads only what was
// appended since the last request: rejections are recorded on the draft's
// log, which can hold a million ops, among which decisions are few.
type decisionLog struct {
	mu   sync.Mutex
	docs map[string]*docDecisions // by "summit/doc"
}

type docDecisions struct {
	mu      sync.Mutex // one reader of the logs at a time
	scanned [2]uint64  // versions read of the approved and the draft log
	list    []decisionRecordJSON
}

func (l *decisionLog) of(summit, doc string) *docDecisions {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.docs == nil {
		l.docs = make(map[string]*docDecisions)
	}
	key := summit + "/" + doc
	d := l.docs[key]
	if d == nil {
		d = &docDecisions{}
		l.docs[key] = d
	}
	return d
}

// decisionsUpTo returns the document's decisions up to the heads given (approved,
// draft), reading the logs from where the last call stopped.
func (s *Server) decisionsUpTo(ctx context.Context, summit, doc string, heads [2]uint64) ([]decisionRecordJSON, error) {
	d := s.decisionLog.of(summit, doc)
	d.mu.Lock()
	defer d.mu.Unlock()
	if heads[0] < d.scanned[0] || heads[1] < d.scanned[1] {
		// The store went back (a Redis that lost writes, FAULTS 36): the
		// versions read will be reused by other ops. Read again.
		d.scanned, d.list = [2]uint64{}, nil
	}
	for i, st := range []store.Stream{store.Approved, store.Draft} {
		k := store.StreamKey{Summit: summit, Doc: doc, Stream: st}
		err := s.replay(ctx, k, d.scanned[i], heads[i], func(rec store.OpRecord) error {
			if dec := rec.Decision; dec != nil {
				by := rec.Name
				if by == "" {
					by = rec.Author
				}
				authors := dec.Authors
				if authors == nil {
					authors = []string{}
				}
				d.list = append(d.list, decisionRecordJSON{
					Kind: dec.Kind, Change: dec.Change, Old: dec.Old, New: dec.New, Authors: authors,
					By: by, Time: rec.Time, Stream: st, Version: rec.Version,
				})
			}
			d.scanned[i] = rec.Version // what was read stays read, even if a later page fails
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("decisions on %s: %w", st, err)
		}
	}
	// A copy without what lies past the heads asked for (another request
	// may have read further since).
	out := make([]decisionRecordJSON, 0, len(d.list))
	for _, r := range d.list {
		i := 1
		if r.Stream == store.Approved {
			i = 0
		}
		if r.Version <= heads[i] {
			out = append(out, r)
		}
	}
	return slices.Clip(out), nil
}
