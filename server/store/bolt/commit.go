package bolt

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"communique/server/store"

	"go.etcd.io/bbolt"
)

// request is one write waiting for the committer.
type request struct {
	ctx context.Context
	// apply performs the write inside the shared transaction. It must
	// validate before it writes: when it refuses, it returns a *rejection
	// and has written nothing. Any other error means it may have written
	// part of its work, so the transaction is discarded and redone without
	// this request (see commit).
	apply func(tx *bbolt.Tx) error
	done  chan error // buffered(1): the committer never blocks on a reply
}

// rejection is a request's own refusal (conflict, not found, bad input),
// returned by apply before it wrote anything.
type rejection struct{ err error }

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(err error) error { return &rejection{err: err} }

// commitFailure marks an error that is the transaction's, not a request's.
type commitFailure struct{ err error }

func (c *commitFailure) Error() string { return c.err.Error() }
func (c *commitFailure) Unwrap() error { return c.err }

// submit hands apply to the committer and waits for its answer.
//
// The request channel is unbuffered on purpose: a send succeeds only while
// the committer is receiving, so after the committer has exited a sender
// can only see closing, and no request is ever left unanswered. Senders
// that pile up during a commit are all picked up by the next one, which is
// the group commit.
func (s *Store) submit(ctx context.Context, apply func(tx *bbolt.Tx) error) error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	select {
	case <-s.closing:
		return errClosed
	default:
	}
	r := &request{ctx: ctx, apply: apply, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-s.closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued we wait for the answer even if ctx ends meanwhile: the
	// committer either drops the request before its commit starts or
	// writes it, and the caller must know which.
	return <-r.done
}

// run is the committer goroutine, owned by the Store: started by Open,
// stopped by Close.
func (s *Store) run() {
	defer close(s.done)
	for {
		select {
		case r := <-s.reqs:
			s.commit(s.collect(r))
		case <-s.closing:
			// Answer whatever senders are still handing over, then stop.
			for {
				batch := s.collect(nil)
				if len(batch) == 0 {
					return
				}
				s.commit(batch)
			}
		}
	}
}

// collect returns first (if any) plus every request that is ready to be
// handed over right now, up to MaxBatch.
func (s *Store) collect(first *request) []*request {
	var batch []*request
	if first != nil {
		batch = append(batch, first)
	}
	for len(batch) < s.opts.MaxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit applies batch in one transaction and answers every request.
func (s *Store) commit(batch []*request) {
	if p := s.broken.Load(); p != nil {
		for _, r := range batch {
			r.done <- *p
		}
		return
	}
	pending := slices.Clone(batch) // trimmed below; the caller's slice stays intact
	for len(pending) > 0 {
		// A request whose caller gave up before its commit starts is not
		// written.
		pending = slices.DeleteFunc(pending, func(r *request) bool {
			if err := r.ctx.Err(); err != nil {
				r.done <- err
				return true
			}
			return false
		})
		if len(pending) == 0 {
			return
		}

		results := make([]error, len(pending))
		bad := -1 // index of a request that failed after it began writing
		var txid int
		err := s.db.Update(func(tx *bbolt.Tx) error {
			txid = tx.ID()
			for i, r := range pending {
				err := r.apply(tx)
				var rej *rejection
				switch {
				case errors.As(err, &rej):
					results[i] = rej.err
				case err != nil:
					bad = i
					return err
				}
			}
			if s.opts.FailCommit != nil {
				if err := s.opts.FailCommit(); err != nil {
					return &commitFailure{err: err}
				}
			}
			return nil
		})
		if bad >= 0 {
			// The transaction was rolled back, so redo it without the
			// request that broke it; the others must not pay for it.
			s.log.Error("write request failed mid-transaction; retrying batch without it", "err", err)
			pending[bad].done <- err
			pending = slices.Delete(pending, bad, bad+1)
			continue
		}
		if err != nil {
			s.failures.Add(1)
			s.log.Error("commit failed", "requests", len(pending), "err", err)
			s.checkAfterFailure(txid, err)
			var cf *commitFailure
			if errors.As(err, &cf) {
				err = cf.err
			}
			werr := fmt.Errorf("%w: commit: %w", store.ErrUnavailable, err)
			for _, r := range pending {
				r.done <- werr
			}
			return
		}
		s.commits.Add(1)
		for i, r := range pending {
			if results[i] == nil {
				s.requests.Add(1)
			}
			r.done <- results[i]
		}
		return
	}
}

// checkAfterFailure makes sure a failed commit really left nothing behind.
// bbolt writes the meta page last; if writing it succeeded but its fsync
// failed, the page cache may hold the new meta, readers would see the
// "failed" transaction and bbolt's in-memory freelist would no longer match
// the file. Writing on from there risks corrupting the file, so the Store
// refuses further writes until it is reopened.
func (s *Store) checkAfterFailure(failedTxID int, cause error) {
	var seen int
	if err := s.db.View(func(tx *bbolt.Tx) error {
		seen = tx.ID()
		return nil
	}); err != nil {
		return
	}
	if failedTxID > 0 && seen >= failedTxID {
		err := fmt.Errorf("%w: a failed commit may have reached the disk (%v); reopen the store", store.ErrUnavailable, cause)
		s.broken.Store(&err)
		s.log.Error("store refuses writes until reopened", "err", err)
	}
}
