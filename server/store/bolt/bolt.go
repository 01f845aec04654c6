// Package bolt is the embedded storage engine of Communiqué: one bbolt file
// in a data folder, written by a single committer goroutine that groups
// concurrent writes into one transaction and one fsync (group commit).
//
// # Files
//
// The data folder (created 0700) holds communique.db. bbolt takes an
// exclusive flock on it, so a second process on the same folder fails within
// Options.LockTimeout with an error wrapping ErrInUse.
//
// # Layout
//
// Values marked (rec) go through codec.go, the only place that knows the
// record encoding (JSON today, so that it can become binary later without
// touching the rest of the engine). Integers in keys and values are 8 bytes
// big-endian, so byte order is numeric order.
//
//	meta/     "schema"             -> "1"
//	summits/  <summit id>          -> Summit (rec)
//	tokens/   <sha-256 hash>       -> Token (rec)
//	tokidx/   <summit id>/         one bucket per summit, for ListTokens:
//	            <created><token id> -> <sha-256 hash>
//	          <created> is UnixNano with the sign bit flipped, so byte
//	          order is creation order, then ID order.
//	docs/     <summit id>/         one bucket per summit:
//	            <doc id>           -> Doc (rec)
//	streams/  <stream name>        -> <sid>, a stream ID from NextSequence;
//	          <stream name> is uvarint(len(summit)) summit
//	          uvarint(len(doc)) doc stream, so no ID needs a reserved byte.
//	heads/    <sid>                -> last version of the stream
//	snaps/    <sid>                -> Snapshot (rec), the newest one
//	snaphist/ <sid>/               one bucket per stream, every snapshot:
//	            <version>          -> Snapshot (rec)
//	clients/  <sid><src>           -> ClientSeq (rec): src's last seq, version
//	ops/      <sid>/               one bucket per stream:
//	            <version>          -> OpRecord (rec)
//
// Why this shape:
//   - Each stream's ops are a bucket of their own, so appends only ever add
//     keys at the end of a B+tree; pages are filled completely
//     (FillPercent 1) and never split in the middle. LoadStream seeks
//     straight to the first version after the snapshot: its cost does not
//     depend on the length of the log.
//   - Heads, snapshots and client seqs live in flat buckets keyed by sid,
//     apart from each other: an Append rewrites the small leaf page that
//     holds its head, not the page holding a 50 KB snapshot, and the heads
//     of many streams committed together share pages.
//   - Ops are never deleted: a snapshot only bounds what LoadStream
//     replays; Since can still serve any version.
//
// # Writes
//
// Every write (Append and the metadata writes alike) is a request handed to
// the committer goroutine, which owns the only bbolt write transaction. It
// takes every queued request (up to Options.MaxBatch), applies each one
// inside one db.Update, and answers each once the transaction is committed
// and fsynced. A request validates everything before it writes anything, so
// a refused request (ErrConflict, ErrExists, ...) leaves the transaction as
// it found it and does not affect the others. If the commit itself fails,
// every request in it gets an error wrapping store.ErrUnavailable and bbolt
// rolls the whole transaction back; the next commit starts afresh, so the
// store works again once the cause (a full disk, say) goes away. A request
// that fails after it began writing (a bbolt error rather than a refusal)
// gets that error, and the transaction is redone without it. A request
// whose context is done before its commit starts is answered with the
// context's error and not written; once a commit has started, the caller
// waits for its outcome. We do not use db.Batch: it may run a function
// twice, and it cannot tell one request's refusal from a failed commit.
//
// Durability: Append returns only after bbolt's fdatasync of the data pages
// and of the meta page. A test kills a writing child process with SIGKILL
// and finds every acknowledged version; surviving power loss additionally
// relies on the disk honouring fsync. If a failed commit turns out to be
// visible anyway (its meta page written but not synced), the store refuses
// all writes until it is reopened rather than risk a mismatched freelist.
//
// Reads use their own read-only transactions (db.View) and copy everything
// out of bbolt's memory map before returning.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"communique/server/store"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the database file inside the data folder.
const FileName = "communique.db"

// schemaVersion is stored in meta/schema; Open refuses any other value so
// that an old binary never misreads a newer layout.
const schemaVersion = "1"

// ErrInUse is wrapped by Open when another process holds the data folder.
var ErrInUse = errors.New("in use by another communique process")

// Options tune a Store. The zero value is the production setting.
type Options struct {
	// FsyncDisabled skips fsync on commit. For benchmarks and fixtures only:
	// an acknowledged Append may then be lost on a crash.
	FsyncDisabled bool
	// MaxBatch caps how many requests share one commit (default 256).
	MaxBatch int
	// LockTimeout is how long Open waits for another process to release
	// the data folder (default 1 s).
	LockTimeout time.Duration
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
	// FailCommit, when set, is called inside every write transaction just
	// before it commits; a non-nil error aborts that commit as if the disk
	// had failed. For tests only.
	FailCommit func() error
}

// Stats counts the committer's work since Open.
type Stats struct {
	Commits  uint64 // write transactions committed
	Requests uint64 // write requests answered with success
	Failures uint64 // write transactions that failed to commit
}

// Store is the bbolt engine. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string // the database file
	log  *slog.Logger
	opts Options

	reqs    chan *request // unbuffered: see submit
	closing chan struct{} // closed by Close: stop accepting
	done    chan struct{} // closed by the committer when it has exited

	closeOnce sync.Once
	closeErr  error

	// broken is set when a failed commit may nevertheless have reached the
	// file (see checkAfterFailure); from then on the Store refuses writes
	// until it is reopened.
	broken atomic.Pointer[error]

	commits, requests, failures atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// Bucket names. Every top-level bucket is created by Open.
var (
	bktMeta     = []byte("meta")
	bktSummits  = []byte("summits")
	bktTokens   = []byte("tokens")
	bktTokIdx   = []byte("tokidx")
	bktDocs     = []byte("docs")
	bktStreams  = []byte("streams")
	bktHeads    = []byte("heads")
	bktSnaps    = []byte("snaps")
	bktSnapHist = []byte("snaphist")
	bktClients  = []byte("clients")
	bktOps      = []byte("ops")

	keySchema = []byte("schema")
)

var topBuckets = [][]byte{bktMeta, bktSummits, bktTokens, bktTokIdx, bktDocs, bktStreams, bktHeads, bktSnaps, bktSnapHist, bktClients, bktOps}

// Open opens (creating if needed) the store in the data folder dir.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open store: empty data folder path")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: create data folder: %w", err)
	}
	file := filepath.Join(dir, FileName)
	_, statErr := os.Stat(file)
	created := errors.Is(statErr, fs.ErrNotExist)

	db, err := bbolt.Open(file, 0o600, &bbolt.Options{
		Timeout: opts.LockTimeout,
		// The hashmap freelist stays fast when a big log leaves many free
		// pages; the array one degrades.
		FreelistType: bbolt.FreelistMapType,
		NoSync:       opts.FsyncDisabled,
		NoGrowSync:   opts.FsyncDisabled,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("data folder %s is %w (waited %s for its lock): %w", dir, ErrInUse, opts.LockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", file, err)
	}
	if err := initBuckets(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", file, err)
	}
	if created && !opts.FsyncDisabled {
		// A new file's directory entry is only durable once the folder
		// itself is fsynced; bbolt syncs the file, not its folder.
		if err := syncDir(dir); err != nil {
			db.Close()
			return nil, fmt.Errorf("open store: %w", err)
		}
	}

	s := &Store{
		db:      db,
		path:    file,
		log:     opts.Logger,
		opts:    opts,
		reqs:    make(chan *request),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	s.log.Info("store opened", "file", file, "created", created, "fsync", !opts.FsyncDisabled)
	return s, nil
}

func initBuckets(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		for _, name := range topBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bktMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q; this binary reads %q", v, schemaVersion)
		}
		return nil
	})
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// Close stops accepting requests, answers everything already queued, waits
// for the committer to exit and closes the file. Calls after Close fail
// with an error wrapping store.ErrUnavailable. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.done
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
		s.log.Info("store closed", "file", s.path)
	})
	return s.closeErr
}

// Stats returns the committer's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Requests: s.requests.Load(), Failures: s.failures.Load()}
}

var errClosed = fmt.Errorf("%w: store is closed", store.ErrUnavailable)

// view runs fn in a read-only transaction, refusing after Close.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return errClosed
	default:
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		// Close won the race after our check; bbolt's Close waits for open
		// read transactions, so nothing was read from unmapped memory.
		return fmt.Errorf("%w: %w", errClosed, err)
	}
	return err
}

// streamName is the key of stream k in the streams bucket.
func streamName(k store.StreamKey) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(k.Summit)+len(k.Doc)+len(k.Stream))
	b = binary.AppendUvarint(b, uint64(len(k.Summit)))
	b = append(b, k.Summit...)
	b = binary.AppendUvarint(b, uint64(len(k.Doc)))
	b = append(b, k.Doc...)
	return append(b, k.Stream...)
}

// streamID returns a copy of stream k's sid, or nil if it does not exist.
func streamID(tx *bbolt.Tx, k store.StreamKey) []byte {
	return bytes.Clone(tx.Bucket(bktStreams).Get(streamName(k)))
}

func keyString(k store.StreamKey) string {
	return k.Summit + "/" + k.Doc + "/" + string(k.Stream)
}
