package doc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"communique/server/store"
)

// Store is what document sessions need from the durable store.
type Store interface {
	GetDoc(ctx context.Context, summit, id string) (store.Doc, error)
	UpdateDoc(ctx context.Context, d store.Doc) error
	AdoptDoc(ctx context.Context, d store.Doc, draft, approved uint64) error
	LoadStream(ctx context.Context, k store.StreamKey) (store.StreamState, error)
	Since(ctx context.Context, k store.StreamKey, v uint64, limit int) ([]store.OpRecord, error)
	Append(ctx context.Context, a store.Append) error
}

// Config tunes sessions. Zero fields take the defaults of DefaultConfig.
type Config struct {
	MaxDocRunes   int           // a document may not grow past this many code points
	SnapshotEvery uint64        // store a snapshot after this many ops
	LogWindow     int           // ops of each stream kept in memory for transforms and catch-up
	IdleTimeout   time.Duration // an unused session is closed after this long
	InboxSize     int           // requests queued to a session before callers block
	MaxBatch      int           // submissions committed together at most
	PollInterval  time.Duration // with other instances: how often to check the store for missed ops
}

// DefaultConfig is used for every zero field of a Config.
var DefaultConfig = Config{
	MaxDocRunes:   1 << 20,
	SnapshotEvery: 1000,
	LogWindow:     4096,
	IdleTimeout:   2 * time.Minute,
	InboxSize:     1024,
	MaxBatch:      256,
	PollInterval:  time.Second,
}

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.MaxDocRunes > 0 {
		d.MaxDocRunes = c.MaxDocRunes
	}
	if c.SnapshotEvery > 0 {
		d.SnapshotEvery = c.SnapshotEvery
	}
	if c.LogWindow > 0 {
		d.LogWindow = c.LogWindow
	}
	if c.IdleTimeout > 0 {
		d.IdleTimeout = c.IdleTimeout
	}
	if c.InboxSize > 0 {
		d.InboxSize = c.InboxSize
	}
	if c.MaxBatch > 0 {
		d.MaxBatch = c.MaxBatch
	}
	if c.PollInterval > 0 {
		d.PollInterval = c.PollInterval
	}
	return d
}

// Hooks let the server observe sessions (metrics) without this package
// knowing how they are exported. Nil hooks are skipped.
type Hooks struct {
	OpApplied func(received time.Time) // an op was committed and acked
	Committed func(took time.Duration) // one store append
	Dropped   func()                   // a peer was dropped for a full queue
}

// ErrClosed is returned for requests to a session or registry that stopped.
var ErrClosed = errors.New("document session closed")

// Registry opens documents on demand, keeps one Session per open document
// and closes sessions that nobody used for Config.IdleTimeout. It owns every
// session goroutine; Close stops them all.
type Registry struct {
	store Store
	cfg   Config
	log   *slog.Logger
	hooks Hooks

	bus      Bus    // nil: a single instance
	instance string // this instance's name on the bus

	ctx    context.Context // cancelled by Close; parent of every session
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[docKey]*Session
	closed   bool
}

type docKey struct{ summit, doc string }

// NewRegistry returns a Registry over st.
func NewRegistry(st Store, cfg Config, log *slog.Logger, hooks Hooks) *Registry {
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{
		store:    st,
		cfg:      cfg.withDefaults(),
		log:      log,
		hooks:    hooks,
		ctx:      ctx,
		cancel:   cancel,
		sessions: make(map[docKey]*Session),
	}
}

// Config returns the effective configuration.
func (r *Registry) Config() Config { return r.cfg }

// Acquire returns the open session of summit/doc, loading it from the store
// if needed. Every successful Acquire must be paired with one Release. A load
// that fails returns its error (wrapping store.ErrNotFound or
// store.ErrCorrupt) and leaves nothing behind, so a later Acquire tries again:
// a document that cannot be read is never served as an empty one.
func (r *Registry) Acquire(ctx context.Context, summit, doc string) (*Session, error) {
	k := docKey{summit, doc}
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		s, ok := r.sessions[k]
		if !ok {
			s = newSession(r, summit, doc)
			r.sessions[k] = s
			s.refs++
			r.mu.Unlock()
			err := s.load(ctx)
			r.mu.Lock()
			if err != nil {
				delete(r.sessions, k)
				s.loadErr = err
				close(s.ready)
				r.mu.Unlock()
				return nil, err
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				s.run()
			}()
			close(s.ready)
			r.mu.Unlock()
			return s, nil
		}
		s.refs++
		r.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			s.Release()
			return nil, ctx.Err()
		}
		if s.loadErr != nil {
			// The loader removed it; this waiter reports the same error.
			return nil, s.loadErr
		}
		select {
		case <-s.done:
			// It was closing (idle or shutdown) as we arrived; try again with
			// a fresh session.
			s.Release()
			continue
		default:
		}
		return s, nil
	}
}

// Release gives back a reference taken by Acquire.
func (s *Session) Release() {
	r := s.reg
	r.mu.Lock()
	s.refs--
	idle := s.refs == 0
	r.mu.Unlock()
	if idle {
		s.poke()
	}
}

// evictIfIdle removes s from the registry if nobody holds it; the session
// goroutine calls it when its idle timer fires and exits if it returns true.
func (r *Registry) evictIfIdle(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.refs > 0 {
		return false
	}
	if r.sessions[docKey{s.summit, s.doc}] == s {
		delete(r.sessions, docKey{s.summit, s.doc})
	}
	return true
}

// Open reports how many sessions are open (for metrics and tests).
func (r *Registry) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Each calls fn for every open session of summit (all summits when empty).
func (r *Registry) Each(summit string, fn func(*Session)) {
	r.mu.Lock()
	list := make([]*Session, 0, len(r.sessions))
	for k, s := range r.sessions {
		if summit == "" || k.summit == summit {
			list = append(list, s)
		}
	}
	r.mu.Unlock()
	for _, s := range list {
		select {
		case <-s.ready:
			if s.loadErr == nil {
				fn(s)
			}
		case <-s.done:
		}
	}
}

// Close stops every session: each commits what it has in hand, answers its
// callers and disconnects its peers. It waits until all have stopped or ctx
// ends.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close document sessions: %w", ctx.Err())
	}
}
