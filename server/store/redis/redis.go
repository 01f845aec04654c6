// Package redis is the shared storage engine of Communiqué: every instance
// of a multi-instance deployment opens the same Redis (a single server, a
// primary with replicas, or a Redis Cluster), and Redis decides which op gets
// which version.
//
// # Layout
//
// Every key starts with Options.Prefix (P, default "cq"). The keys of one
// document share the hash tag {P:<summit>:<doc>} (written T below), so a
// Lua script can touch all of them even on Redis Cluster:
//
//	T:doc                    string  Doc (json)
//	T:<stream>:head          string  last version of the stream ("0" when new)
//	T:<stream>:ops           hash    version -> OpRecord (json)
//	T:<stream>:snap          string  newest Snapshot (json)
//	T:<stream>:snaps         zset    every Snapshot (json), score = its version
//	T:<stream>:clients       hash    src -> ClientSeq (json)
//	T:<stream>:recent        list    ids of the last 16 appends (see Append)
//	P:summit:<summit>        string  Summit (json)
//	P:docs:<summit>          set     ids of the summit's docs (an index only)
//	P:tokens:<summit>        hash    token id -> Token (json)
//	P:token:<hex of hash>    string  "<summit>/<token id>" (a lookup pointer)
//
// <stream> is "draft" or "approved"; versions are decimal strings. Summit
// and doc ids must be letters, digits, '-' and '_' (the server's allowlist,
// checked again here): they can never add a ':' or a brace to a key. An id
// outside it cannot exist, so reading it is ErrNotFound and writing it is an
// error.
//
// Why this shape:
//   - Appends are one Lua script over T's keys (see Append), atomic per
//     stream and the only writer of a stream's head, so two instances can
//     never give one version to two ops.
//   - Ops are a hash keyed by version: LoadStream and Since read exactly the
//     versions they need with HMGET, never the whole log; the log keeps
//     every op (a snapshot only bounds what LoadStream replays).
//   - A doc's metadata lives with its streams, so CreateDoc creates both in
//     one script. The summit's doc index is written first, in a separate
//     step (it is in another hash slot), so every doc is indexed; an index
//     entry whose doc was never created (the create failed after indexing)
//     is skipped by ListDocs.
//   - A token lives in its summit's hash, the one source of truth;
//     P:token:<hash> only points at it. TokenByHash follows the pointer and
//     checks that the token found still has that hash, so a pointer left
//     behind by a crash between two steps can never authenticate a replaced
//     or deleted token. (The uniqueness check of a hash across tokens is a
//     separate read: two different tokens written with one hash at the same
//     instant could both succeed. Hashes are SHA-256 of random secrets.)
//   - Listings sort in Go (by Order then ID, by Created then ID): sorted-set
//     scores are doubles and cannot order nanosecond times exactly.
//
// # Durability
//
// Append returns once Redis has executed the script and replied, which means:
//   - appendonly yes, appendfsync always: Redis fsyncs the AOF before it
//     replies, so an acknowledged append survives a crash of Redis or of the
//     machine (as far as the disk honours fsync) — the same promise as the
//     embedded engine.
//   - appendfsync everysec (Redis' default once AOF is on): the append is
//     fsynced within about a second. Redis normally hands it to the OS
//     before replying, so a killed Redis process loses nothing (unless a
//     slow disk made Redis postpone that write), but a machine crash or
//     power loss can lose the last second or two of acknowledged appends.
//     Options.WaitAOF (WAITAOF, Redis 7.2 or later) makes Append wait for
//     that fsync, which gives the promise of "always" with everysec's
//     group fsync; Open refuses WaitAOF on an older Redis (the local test
//     Redis, 7.0, has no WAITAOF) or with AOF off.
//   - no AOF (RDB snapshots or nothing): a restart goes back to the last
//     snapshot.
//   - replicas are asynchronous: a failover can lose what the old primary
//     acknowledged unless Options.WaitReplicas asks Redis to WAIT for them
//     (which narrows the window; it does not make Redis consistent).
//
// When Redis does lose acknowledged appends, a stream's head goes backwards.
// The store cannot tell; the server must (compare Head with the version it
// served) and resync rather than hand the lost versions to new ops. Appends
// from an instance that still holds the lost versions are refused with
// ErrConflict, because their first version is no longer head+1.
//
// # Errors
//
// Connection failures, timeouts and Redis refusing work (LOADING, READONLY,
// OOM, CLUSTERDOWN, NOAUTH after a restart, a closed Store, ...) are wrapped
// in store.ErrUnavailable; a value that does not decode, or a key of the wrong
// type, in store.ErrCorrupt. When the caller's context is done, its error is
// returned instead.
//
// Unlike a local engine, an Append that fails with anything but ErrConflict
// or ErrNotFound may nevertheless have been applied (the reply was lost). The
// caller must treat the outcome as unknown and re-read the stream (Head,
// Since) before it continues; it must not ack. Retries of the same Append
// call (go-redis retries a command after some network errors) are safe: each
// Append carries a random id, and the script answers an id it has already
// applied with success instead of a conflict.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"communique/server/store"

	goredis "github.com/redis/go-redis/v9"
)

// Options tune a Store. The zero value is the production setting.
type Options struct {
	// Prefix starts every key (default "cq"): letters, digits, '-', '_' and
	// '.'. Tests give each store its own prefix to share one Redis.
	Prefix string
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step.
	// Zero keeps the URL's value (dial_timeout=…, read_timeout=…) or
	// go-redis' default (5 s, 3 s, 3 s). A short ReadTimeout makes a dead
	// Redis show up quickly as ErrUnavailable.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// MaxRetries is how often go-redis retries a command after a network
	// error (0: the URL's value or go-redis' default, 3; negative: never,
	// and dial only once per command).
	MaxRetries int
	// WaitAOF makes Append wait until the primary has fsynced its AOF
	// (WAITAOF, Redis 7.2 or later, appendonly yes), and, with
	// WaitReplicas, until that many replicas have too.
	WaitAOF bool
	// WaitReplicas makes Append wait until that many replicas have the
	// append (WAIT), or, with WaitAOF, have fsynced it.
	WaitReplicas int
	// WaitTimeout bounds those waits (default 1 s, or half of ReadTimeout
	// if that is shorter); an append not confirmed in time fails with
	// ErrUnavailable although it was applied. It must be shorter than
	// ReadTimeout.
	WaitTimeout time.Duration
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
}

// Store is the Redis engine. It is safe for concurrent use.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	where  string // the server's address, for messages: never the URL
	log    *slog.Logger
	opts   Options

	// Scripts keep their SHA and fall back from EVALSHA to EVAL when a
	// restarted Redis has forgotten them.
	appendScript    *goredis.Script
	createDocScript *goredis.Script
	updateDocScript *goredis.Script
	adoptDocScript  *goredis.Script
	swapTokenScript *goredis.Script
	takeTokenScript *goredis.Script
	dropPtrScript   *goredis.Script

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// validID reports whether id may appear in a key. It is the server's
// allowlist, checked again so that no key is ever built from unchecked text.
func validID(id string) bool { return idPattern.MatchString(id) }

// Open connects to the Redis at rawURL (redis://[user:password@]host:port[/db],
// rediss://… for TLS, unix:///path/to/socket) and checks that it answers.
// A Redis Cluster is recognised by itself (INFO cluster), starting from
// that node; more seed nodes can be given as addr=host:port parameters.
// Errors never contain the password.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = "cq"
	}
	if !prefixPattern.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("open redis: key prefix %q: want 1 to 64 letters, digits, '-', '_' or '.'", opts.Prefix)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	copt, seeds, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open redis: %w", err)
	}
	applyOptions(copt, opts)
	if opts.WaitAOF || opts.WaitReplicas > 0 {
		// WAIT and WAITAOF block for up to WaitTimeout; the read must
		// outlast them or a slow confirmation would look like a dead Redis.
		read := copt.ReadTimeout
		if read == 0 {
			read = 3 * time.Second // go-redis' default
		}
		if opts.WaitTimeout <= 0 {
			opts.WaitTimeout = time.Second
			if read > 0 {
				opts.WaitTimeout = min(opts.WaitTimeout, read/2)
			}
		}
		if read > 0 && opts.WaitTimeout >= read {
			return nil, fmt.Errorf("open redis: WaitTimeout %s must be shorter than ReadTimeout %s", opts.WaitTimeout, read)
		}
	}
	where := copt.Addr

	var c goredis.UniversalClient = goredis.NewClient(copt)
	if err := ping(ctx, c, where); err != nil {
		c.Close()
		return nil, err
	}
	if len(seeds) > 0 || isCluster(ctx, c, opts.Logger) {
		c.Close()
		if copt.DB != 0 {
			return nil, fmt.Errorf("open redis at %s: a Redis Cluster has only database 0; the URL selects %d", where, copt.DB)
		}
		c = goredis.NewClusterClient(clusterOptions(copt, seeds))
		if err := ping(ctx, c, where); err != nil {
			c.Close()
			return nil, err
		}
	}

	s := &Store{
		c:               c,
		prefix:          opts.Prefix,
		where:           where,
		log:             opts.Logger,
		opts:            opts,
		appendScript:    goredis.NewScript(appendLua),
		createDocScript: goredis.NewScript(createDocLua),
		updateDocScript: goredis.NewScript(updateDocLua),
		adoptDocScript:  goredis.NewScript(adoptDocLua),
		swapTokenScript: goredis.NewScript(swapTokenLua),
		takeTokenScript: goredis.NewScript(takeTokenLua),
		dropPtrScript:   goredis.NewScript(dropPtrLua),
	}
	if err := s.checkWait(ctx); err != nil {
		c.Close()
		return nil, err
	}
	_, cluster := c.(*goredis.ClusterClient)
	s.log.Info("store opened", "redis", where, "cluster", cluster, "prefix", s.prefix,
		"wait_aof", opts.WaitAOF, "wait_replicas", opts.WaitReplicas)
	return s, nil
}

// parseURL parses rawURL into go-redis options plus extra cluster seeds
// (addr=… parameters). Its errors never quote the URL: it may hold a
// password, and url.Parse's own errors repeat their input.
func parseURL(rawURL string) (*goredis.Options, []string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, errors.New("redis URL is not a valid URL (special characters in a password must be percent-encoded)")
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" || u.Hostname() == "" {
			// go-redis would quietly use localhost:6379 instead.
			return nil, nil, errors.New("redis URL has no host; want redis://host:port")
		}
	case "unix":
		if u.Path == "" {
			return nil, nil, errors.New("redis URL has no socket path; want unix:///path/to/redis.sock")
		}
	case "":
		return nil, nil, errors.New("redis URL has no scheme; want redis://host:port")
	default:
		return nil, nil, fmt.Errorf("redis URL scheme %q is not supported; want redis://, rediss:// or unix://", u.Scheme)
	}
	q := u.Query()
	seeds := q["addr"]
	q.Del("addr")
	u.RawQuery = q.Encode()
	opt, err := goredis.ParseURL(u.String())
	if err != nil {
		// go-redis' messages name the offending option or path, never
		// the userinfo.
		return nil, nil, fmt.Errorf("redis URL %s: %w", u.Redacted(), err)
	}
	return opt, seeds, nil
}

// applyOptions lets Options override what the URL (or go-redis) chose.
func applyOptions(o *goredis.Options, opts Options) {
	if opts.DialTimeout != 0 {
		o.DialTimeout = opts.DialTimeout
	}
	if opts.ReadTimeout != 0 {
		o.ReadTimeout = opts.ReadTimeout
	}
	if opts.WriteTimeout != 0 {
		o.WriteTimeout = opts.WriteTimeout
	}
	if opts.MaxRetries != 0 {
		o.MaxRetries = opts.MaxRetries
	}
	if opts.MaxRetries < 0 {
		// go-redis also redials a refused connection 5 times, 100 ms
		// apart, inside one command; "never retry" means once here too.
		o.DialerRetries = 1
	}
	// A caller's deadline also bounds the network wait, so a request
	// timeout in the server is not outlived by a Redis call.
	o.ContextTimeoutEnabled = true
	if o.ClientName == "" {
		o.ClientName = "communique"
	}
}

// clusterOptions carries the single-node options over to a cluster client.
func clusterOptions(o *goredis.Options, seeds []string) *goredis.ClusterOptions {
	return &goredis.ClusterOptions{
		Addrs:                 append([]string{o.Addr}, seeds...),
		ClientName:            o.ClientName,
		Protocol:              o.Protocol,
		Username:              o.Username,
		Password:              o.Password,
		TLSConfig:             o.TLSConfig,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		MaxRetries:            o.MaxRetries,
		MinRetryBackoff:       o.MinRetryBackoff,
		MaxRetryBackoff:       o.MaxRetryBackoff,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.PoolTimeout,
		MinIdleConns:          o.MinIdleConns,
		MaxIdleConns:          o.MaxIdleConns,
		MaxActiveConns:        o.MaxActiveConns,
		ConnMaxIdleTime:       o.ConnMaxIdleTime,
		ConnMaxLifetime:       o.ConnMaxLifetime,
	}
}

// ping checks that Redis answers, and says why not in words an operator
// can act on.
func ping(ctx context.Context, c goredis.UniversalClient, where string) error {
	err := c.Ping(ctx).Err()
	switch {
	case err == nil:
		return nil
	case goredis.IsAuthError(err):
		return fmt.Errorf("open redis at %s: authentication failed (check the user and password in the URL): %w", where, err)
	case goredis.IsPermissionError(err):
		return fmt.Errorf("open redis at %s: the user may not run PING: %w", where, err)
	case ctx.Err() != nil:
		return fmt.Errorf("open redis at %s: %w", where, err)
	default:
		return fmt.Errorf("open redis at %s: %w (is it running and reachable?): %w", where, store.ErrUnavailable, err)
	}
}

// isCluster reports whether the node c talks to has cluster mode on.
func isCluster(ctx context.Context, c goredis.UniversalClient, log *slog.Logger) bool {
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		// Some hosted Redis refuse INFO; they are not clusters we can
		// address with the cluster protocol anyway.
		log.Warn("redis: INFO cluster failed; assuming a single server", "err", err)
		return false
	}
	return strings.Contains(info, "cluster_enabled:1")
}

// checkWait makes sure the waits Options asks for can be honoured, rather
// than discovering on the first append that they cannot.
func (s *Store) checkWait(ctx context.Context) error {
	if !s.opts.WaitAOF && s.opts.WaitReplicas == 0 {
		return nil
	}
	check := func(ctx context.Context, c *goredis.Client) error {
		var err error
		if s.opts.WaitAOF {
			// Nothing written yet on this connection: answers at once.
			err = c.Do(ctx, "WAITAOF", 1, 0, 0).Err()
		} else {
			err = c.Do(ctx, "WAIT", 0, 0).Err()
		}
		if err != nil {
			return fmt.Errorf("open redis at %s: WaitAOF needs Redis 7.2 or later with appendonly yes: %w", c.Options().Addr, err)
		}
		return nil
	}
	switch c := s.c.(type) {
	case *goredis.Client:
		return check(ctx, c)
	case *goredis.ClusterClient:
		return c.ForEachMaster(ctx, check)
	default:
		return fmt.Errorf("open redis at %s: WaitAOF and WaitReplicas need a single server or a cluster client, not %T", s.where, c)
	}
}

// Client returns the store's Redis client, so that the pub/sub bus shares
// its configuration. It is closed by Close: close the bus first.
func (s *Store) Client() goredis.UniversalClient { return s.c }

// Prefix returns the key prefix; a bus on the same Redis uses it too.
func (s *Store) Prefix() string { return s.prefix }

// Close closes the connections. Calls after Close fail with an error
// wrapping store.ErrUnavailable. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.c.Close(); err != nil {
			s.closeErr = fmt.Errorf("close redis store %s: %w", s.where, err)
		}
		s.log.Info("store closed", "redis", s.where)
	})
	return s.closeErr
}

// classify wraps a go-redis error so callers can branch on it (see the
// package comment).
func classify(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		return err
	case ctx.Err() != nil:
		if errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	case goredis.HasErrorPrefix(err, "WRONGTYPE"):
		return fmt.Errorf("%w: %w", store.ErrCorrupt, err)
	default:
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
}

// Keys. Only these functions build keys, and only from checked ids.

func (s *Store) summitKey(id string) string   { return s.prefix + ":summit:" + id }
func (s *Store) docsKey(summit string) string { return s.prefix + ":docs:" + summit }
func (s *Store) tokensKey(summit string) string {
	return s.prefix + ":tokens:" + summit
}
func (s *Store) tokenPtrKey(hash []byte) string {
	return s.prefix + ":token:" + fmt.Sprintf("%x", hash)
}

// docTag is the hash tag every key of one document shares.
func (s *Store) docTag(summit, doc string) string {
	return "{" + s.prefix + ":" + summit + ":" + doc + "}"
}

func (s *Store) docKey(summit, doc string) string { return s.docTag(summit, doc) + ":doc" }

// streamKeys are the keys of one stream, in the order the scripts take them.
type streamKeys struct {
	head, ops, clients, snap, snaps, recent string
}

func (k streamKeys) list() []string {
	return []string{k.head, k.ops, k.clients, k.snap, k.snaps, k.recent}
}

// keysOf returns the keys of stream k, or false if k cannot name a stream.
func (s *Store) keysOf(k store.StreamKey) (streamKeys, bool) {
	if !validID(k.Summit) || !validID(k.Doc) || (k.Stream != store.Draft && k.Stream != store.Approved) {
		return streamKeys{}, false
	}
	p := s.docTag(k.Summit, k.Doc) + ":" + string(k.Stream) + ":"
	return streamKeys{
		head:    p + "head",
		ops:     p + "ops",
		clients: p + "clients",
		snap:    p + "snap",
		snaps:   p + "snaps",
		recent:  p + "recent",
	}, true
}

func keyString(k store.StreamKey) string {
	return k.Summit + "/" + k.Doc + "/" + string(k.Stream)
}
