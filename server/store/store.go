// Package store defines what Communiqué keeps durably and the interface a
// storage engine implements. The embedded engine (store/bolt) and the Redis
// engine sit side by side behind Store; one shared test suite
// (store/storetest) runs against each.
//
// Contract for every engine:
//   - Append is all-or-nothing and returns only once the records are durable
//     (fsynced for the embedded engine). Callers ack clients only after it
//     returns nil.
//   - Versions of a stream are dense: the first record appended to a stream
//     at version v must carry Version v+1. An engine refuses anything else
//     with ErrConflict, so two writers can never give one version to two ops.
//   - Byte slices and strings returned are owned by the caller.
package store

import (
	"context"
	"errors"
	"time"

	"communique/ot"
)

// Errors every engine returns (wrapped with context) so callers can branch
// with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrConflict    = errors.New("version conflict")
	ErrUnavailable = errors.New("store unavailable")
	ErrCorrupt     = errors.New("corrupt record")
	// ErrAdopted refuses records appended to a document that is adopted
	// (frozen): with several instances, an edit committed on one must not
	// slip in after another adopted the document.
	ErrAdopted = errors.New("document is adopted")
)

// Role is what a token may do within its summit.
type Role string

const (
	RoleAdmin    Role = "admin"
	RoleChair    Role = "chair"
	RoleDelegate Role = "delegate"
	RoleObserver Role = "observer"
)

// Stream names one of a document's two texts.
type Stream string

const (
	Draft    Stream = "draft"
	Approved Stream = "approved"
)

// Summit is one conference.
type Summit struct {
	ID      string    `json:"id"`
	Title   string    `json:"title"`
	Created time.Time `json:"created"`
}

// Token is a participant's credential. Only the SHA-256 hash of the secret is
// stored; the secret itself is shown once, when the token is created.
type Token struct {
	ID         string    `json:"id"`
	Summit     string    `json:"summit"`
	Role       Role      `json:"role"`
	Delegation string    `json:"delegation,omitempty"`
	Name       string    `json:"name"`
	Hash       []byte    `json:"hash"`
	Created    time.Time `json:"created"`
}

// Doc is a document's metadata. Its texts live in its two streams.
type Doc struct {
	Summit    string     `json:"summit"`
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	Order     int        `json:"order"`
	Adopted   bool       `json:"adopted"`
	Adoptions []Adoption `json:"adoptions,omitempty"`
	Created   time.Time  `json:"created"`
}

// Adoption is a named, dated version of a document's approved text.
type Adoption struct {
	Name            string    `json:"name"`
	By              string    `json:"by"`
	Time            time.Time `json:"time"`
	ApprovedVersion uint64    `json:"approved_version"`
	DraftVersion    uint64    `json:"draft_version"`
}

// StreamKey names one stream of one document.
type StreamKey struct {
	Summit string
	Doc    string
	Stream Stream
}

// OpRecord is one applied operation as it is logged. Version is the stream
// version after applying Op.
type OpRecord struct {
	Version uint64    `json:"v"`
	Op      ot.Op     `json:"op"`
	Author  string    `json:"a"`           // delegation code, or "chair"
	Name    string    `json:"n,omitempty"` // the person, from the token
	Src     string    `json:"src,omitempty"`
	Seq     uint64    `json:"seq,omitempty"`
	Time    time.Time `json:"t"`
	// Decision is set on the op that carried out a chair's decision on a
	// pending change: an approval (on the approved stream) or a rejection
	// (on the draft stream). It is stored with the op, atomically.
	Decision *Decision `json:"d,omitempty"`
}

// Decision records the chair's decision on one pending change.
type Decision struct {
	Kind    string   `json:"kind"` // "approve" or "reject"
	Change  string   `json:"change"`
	Old     string   `json:"old"`
	New     string   `json:"new"`
	Authors []string `json:"authors"`
}

// Snapshot is the full text of a stream at a version, so that opening a
// document replays only the ops after it. Extra is opaque to the store
// (the server keeps derived state there, e.g. authorship spans).
type Snapshot struct {
	Version uint64 `json:"v"`
	Text    string `json:"text"`
	Extra   []byte `json:"extra,omitempty"`
}

// ClientSeq is the last op a client (src) got applied, for idempotent resends.
type ClientSeq struct {
	Seq     uint64 `json:"seq"`
	Version uint64 `json:"v"`
}

// StreamState is what opening a stream needs: the newest snapshot, every op
// after it in version order, and the last applied seq of every src.
type StreamState struct {
	Snapshot Snapshot
	Ops      []OpRecord
	Clients  map[string]ClientSeq
}

// Append is one batch of records for one stream. Records must carry
// consecutive versions starting at the stream's head+1. Snapshot, when set,
// must be at the version of the last record (or of the head when Records is
// empty) and replaces the stream's previous snapshot.
type Append struct {
	Key      StreamKey
	Records  []OpRecord
	Snapshot *Snapshot
}

// Store is the durable state of a Communiqué server.
type Store interface {
	CreateSummit(ctx context.Context, s Summit) error // ErrExists
	GetSummit(ctx context.Context, id string) (Summit, error)

	PutToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	ListTokens(ctx context.Context, summit string) ([]Token, error) // by Created
	DeleteToken(ctx context.Context, summit, id string) error       // ErrNotFound

	// CreateDoc stores d and starts both streams at version 0 with text.
	CreateDoc(ctx context.Context, d Doc, text string) error // ErrExists
	GetDoc(ctx context.Context, summit, id string) (Doc, error)
	ListDocs(ctx context.Context, summit string) ([]Doc, error) // by Order, then ID
	UpdateDoc(ctx context.Context, d Doc) error                 // ErrNotFound
	// AdoptDoc stores d (with Adopted set) only if the document's streams
	// are still at the versions draft and approved, the texts the chair
	// adopted; ErrConflict if either moved, ErrNotFound without the doc.
	// From then on Append refuses records for the document (ErrAdopted).
	AdoptDoc(ctx context.Context, d Doc, draft, approved uint64) error

	// LoadStream reads what is needed to bring a stream into memory.
	LoadStream(ctx context.Context, k StreamKey) (StreamState, error)
	// SnapshotAt returns the newest snapshot at or before version v (every
	// snapshot is kept, version 0 included), so any older text can be
	// rebuilt by replaying at most one snapshot interval of ops.
	SnapshotAt(ctx context.Context, k StreamKey, v uint64) (Snapshot, error)
	// Since returns up to limit records with Version > v, in order
	// (limit <= 0 means all).
	Since(ctx context.Context, k StreamKey, v uint64, limit int) ([]OpRecord, error)
	// Append stores the batch atomically and durably, or not at all.
	// Concurrent calls may share one commit (group commit). Records for a
	// document whose stored metadata says Adopted are refused with
	// ErrAdopted (a snapshot alone is stored).
	Append(ctx context.Context, a Append) error

	Close() error
}
