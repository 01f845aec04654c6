// Package redis is the message bus between Communiqué instances that share
// a Redis: an instance that commits ops to a document publishes a short
// message on the document's topic, and every instance with the document
// open hears it and reads the new ops from the store.
//
// Delivery is at most once. Redis pub/sub keeps nothing: a message sent
// while a connection is down is lost. Callers therefore treat a message as
// a hint and the store as the truth (versions reveal gaps), and re-read
// what they hold when OnReconnect says the connection was re-established.
//
// # Channels
//
// A topic is made of segments separated by '/', such as "<summit>/<doc>" or
// "tokens/revoked"; segments are letters, digits, '-', '_' and '.'. Its
// channel is "{<prefix>:<segments joined by ':'>}:events": for a document,
// "{cq:<summit>:<doc>}:events", the hash tag of the document's keys in
// store/redis, so on a Redis Cluster the channel lives on the node that
// owns the document. (':' is not allowed in topics, so the mapping is one
// to one.)
//
// On a single server (or a primary with replicas) the Bus uses PUBLISH and
// SUBSCRIBE over one pub/sub connection for all topics. On a Redis Cluster
// (a *redis.ClusterClient) it uses sharded pub/sub, SPUBLISH and SSUBSCRIBE,
// so a message travels only within the owning shard instead of across the
// whole cluster; as SSUBSCRIBE only takes channels of one hash slot per
// command and go-redis resubscribes all of a connection's channels in one
// command, each topic then has a pub/sub connection of its own.
//
// # Goroutines
//
// Each pub/sub connection has one goroutine, started with its first
// subscription and stopped when its last one ends or by Close. It reads
// messages and calls the subscribers' functions, and pings Redis when the
// connection has been quiet, so that a dead connection is found within
// about two ping intervals even without traffic.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const (
	// pingEvery is how long a connection may be quiet before it is
	// pinged; a ping unanswered for as long again means it is dead.
	pingEvery = time.Second
	// subscribeWait bounds how long Subscribe waits for Redis to confirm.
	subscribeWait = 3 * time.Second
	// Reconnection attempts back off from minBackoff to maxBackoff.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

var (
	topicPattern  = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
	prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// maxTopic bounds a topic's length; channel names are sent with every
// message.
const maxTopic = 256

var errClosed = errors.New("bus is closed")

// Bus publishes and receives messages on topics. It is safe for concurrent
// use.
type Bus struct {
	client  goredis.UniversalClient
	prefix  string
	log     *slog.Logger
	sharded bool // SPUBLISH/SSUBSCRIBE, one connection per topic

	// Tests shorten these.
	pingEvery, subscribeWait time.Duration

	mu        sync.Mutex
	closed    bool
	shards    map[string]*shard // by channel when sharded, else the one under ""
	reconnect []func()
	nextID    uint64
}

// New returns a Bus on client (which the caller keeps and closes after the
// Bus). prefix must be the store's key prefix (store/redis Options.Prefix;
// "" means "cq"). log receives connection events (nil: slog.Default()).
func New(client goredis.UniversalClient, prefix string, log *slog.Logger) *Bus {
	if prefix == "" {
		prefix = "cq"
	}
	if log == nil {
		log = slog.Default()
	}
	_, sharded := client.(*goredis.ClusterClient)
	return &Bus{
		client:        client,
		prefix:        prefix,
		log:           log,
		sharded:       sharded,
		pingEvery:     pingEvery,
		subscribeWait: subscribeWait,
		shards:        make(map[string]*shard),
	}
}

// channel returns topic's channel name, refusing names that could move it
// to another hash slot or break out of the key scheme.
func (b *Bus) channel(topic string) (string, error) {
	if len(topic) > maxTopic || !topicPattern.MatchString(topic) {
		return "", fmt.Errorf("topic %q: want segments of letters, digits, '-', '_' or '.' separated by '/'", topic)
	}
	if !prefixPattern.MatchString(b.prefix) {
		return "", fmt.Errorf("prefix %q: want letters, digits, '-', '_' or '.'", b.prefix)
	}
	return "{" + b.prefix + ":" + strings.ReplaceAll(topic, "/", ":") + "}:events", nil
}

// Publish sends msg to every current subscriber of topic, on every
// instance. nil means Redis took it, not that anyone received it.
func (b *Bus) Publish(ctx context.Context, topic string, msg []byte) error {
	ch, err := b.channel(topic)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("publish to %s: %w", topic, errClosed)
	}
	if b.sharded {
		err = b.client.SPublish(ctx, ch, msg).Err()
	} else {
		err = b.client.Publish(ctx, ch, msg).Err()
	}
	if err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn with every message published to topic from now until
// unsubscribe is called.
//
// Subscribe returns once Redis has confirmed the subscription, so a message
// published after it returns is delivered (unless the connection drops).
// If Redis does not confirm within a few seconds (it is down), Subscribe
// returns anyway; the subscription is made as soon as Redis is back, and
// the OnReconnect functions are called then.
//
// fn runs on the bus's goroutine: it must return quickly (hand the message
// to a channel with a select, say) and must not call the Bus. Calls for one
// topic come one at a time, in the order Redis delivered them; on a
// cluster, calls for different topics may run concurrently. msg is fn's to
// keep. After unsubscribe returns, fn is not running and will not be
// called again. unsubscribe may be called more than once.
func (b *Bus) Subscribe(topic string, fn func(msg []byte)) (unsubscribe func()) {
	ch, err := b.channel(topic)
	if err != nil {
		b.log.Error("redis bus: subscribe refused", "err", err)
		return func() {}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return func() {}
	}
	key := ""
	if b.sharded {
		key = ch
	}
	sh := b.shards[key]
	if sh == nil {
		sh = newShard(b, key)
		b.shards[key] = sh
		go sh.run()
	}
	sh.refs++
	b.nextID++
	id := b.nextID
	b.mu.Unlock()

	if w := sh.add(ch, id, fn); w != nil {
		sh.wait(ch, w)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			sh.remove(ch, id)
			b.release(sh)
		})
	}
}

// OnReconnect registers fn to be called after a pub/sub connection was
// lost and is subscribed again (and after a Subscribe that returned
// unconfirmed has been confirmed). Messages may have been lost meanwhile:
// callers re-read what they hold from the store. fn runs on a bus
// goroutine, under the same rules as Subscribe's fn. On a cluster every
// topic has its own connection, and each calls fn when it is back, so
// after a node restarts fn may run once per topic that node served.
func (b *Bus) OnReconnect(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reconnect = append(b.reconnect, fn)
}

// Close ends every subscription and stops the bus's goroutines; it returns
// once they have exited. The client stays open. Close is idempotent.
func (b *Bus) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	shards := slices.Collect(maps.Values(b.shards))
	clear(b.shards)
	b.mu.Unlock()
	for _, sh := range shards {
		sh.stop()
	}
}

// release drops one subscription's hold on sh and stops sh when it was the
// last, so connections do not pile up for documents no longer open.
func (b *Bus) release(sh *shard) {
	b.mu.Lock()
	sh.refs--
	last := sh.refs == 0 && !b.closed
	if last {
		delete(b.shards, sh.key)
	}
	b.mu.Unlock()
	if last {
		sh.stop()
	}
}

func (b *Bus) notifyReconnect() {
	b.mu.Lock()
	fns := slices.Clone(b.reconnect)
	b.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// shard is one pub/sub connection and the goroutine that reads it.
//
// Subscriptions are confirmed by counting: every SUBSCRIBE we send for a
// channel on the current connection expects one confirmation, and Redis
// answers in order, so a waiter released at confirmation n knows that its
// own SUBSCRIBE (the n-th) has been processed, even if an UNSUBSCRIBE and
// another SUBSCRIBE of the same channel went before it. When the connection
// is replaced (reset), the counts start again from the one SUBSCRIBE that
// covers every channel.
type shard struct {
	b    *Bus
	key  string
	refs int // subscriptions holding the shard; guarded by b.mu

	// cmdMu orders the commands sent on the connection with the decisions
	// behind them, and guards replacing ps.
	cmdMu   sync.Mutex
	ps      *goredis.PubSub // nil until connected; replaced only by run
	stopped bool

	mu       sync.Mutex
	handlers map[string]map[uint64]func([]byte)
	sent     map[string]int // SUBSCRIBEs sent per channel on ps
	acked    map[string]int // their confirmations received
	waiters  map[string][]*waiter

	// dispatchMu is held while subscribers' functions run, so that
	// unsubscribe can wait for a call in progress.
	dispatchMu sync.Mutex
	fns        []func([]byte) // dispatch's reused buffer; under dispatchMu

	needReset  atomic.Bool // replace the connection before reading on
	owesNotice atomic.Bool // call OnReconnect at the next confirmation

	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type waiter struct {
	target int // released once acked reaches this
	ready  chan struct{}
}

func newShard(b *Bus, key string) *shard {
	sh := &shard{
		b:        b,
		key:      key,
		handlers: make(map[string]map[uint64]func([]byte)),
		sent:     make(map[string]int),
		acked:    make(map[string]int),
		waiters:  make(map[string][]*waiter),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	sh.needReset.Store(true) // run connects first
	return sh
}

// live reports whether commands can go out on ps now; cmdMu is held.
func (sh *shard) live() bool {
	return sh.ps != nil && !sh.stopped && !sh.needReset.Load()
}

// add registers fn and, for a channel new to the connection, subscribes.
// It returns a waiter if the subscription is not confirmed yet.
func (sh *shard) add(ch string, id uint64, fn func([]byte)) *waiter {
	sh.cmdMu.Lock()
	defer sh.cmdMu.Unlock()
	live := sh.live()
	sh.mu.Lock()
	hs := sh.handlers[ch]
	first := len(hs) == 0
	if first {
		hs = make(map[uint64]func([]byte))
		sh.handlers[ch] = hs
	}
	hs[id] = fn
	var w *waiter
	switch {
	case !live:
		// The next reset subscribes every channel with one command and
		// sets every waiter's target to its confirmation.
		w = &waiter{target: 1, ready: make(chan struct{})}
	case first:
		sh.sent[ch]++
		w = &waiter{target: sh.sent[ch], ready: make(chan struct{})}
	case sh.acked[ch] < sh.sent[ch]:
		// Another subscriber's SUBSCRIBE is on its way: wait for it too.
		w = &waiter{target: sh.sent[ch], ready: make(chan struct{})}
	}
	if w != nil {
		sh.waiters[ch] = append(sh.waiters[ch], w)
	}
	sh.mu.Unlock()
	if first && live {
		if err := sh.subscribe(sh.ps, ch); err != nil {
			sh.broken(err)
		}
	}
	return w
}

// wait blocks until w is released, the shard stops, or subscribeWait
// passes; in that last case the connection is replaced and OnReconnect
// will be called once the subscription is in place.
func (sh *shard) wait(ch string, w *waiter) {
	t := time.NewTimer(sh.b.subscribeWait)
	defer t.Stop()
	select {
	case <-w.ready:
		return
	case <-sh.quit:
		return
	case <-t.C:
	}
	sh.mu.Lock()
	pending := slices.Contains(sh.waiters[ch], w)
	sh.waiters[ch] = slices.DeleteFunc(sh.waiters[ch], func(x *waiter) bool { return x == w })
	sh.mu.Unlock()
	if !pending {
		return // confirmed just now
	}
	sh.b.log.Warn("redis bus: subscription not confirmed in time; resubscribing, OnReconnect follows", "channel", ch, "waited", sh.b.subscribeWait)
	sh.owesNotice.Store(true)
	sh.needReset.Store(true)
}

// remove unregisters a subscriber, unsubscribes the channel if it was the
// last, and waits for a call of fn in progress.
func (sh *shard) remove(ch string, id uint64) {
	sh.cmdMu.Lock()
	live := sh.live()
	sh.mu.Lock()
	hs := sh.handlers[ch]
	delete(hs, id)
	last := len(hs) == 0
	if last {
		delete(sh.handlers, ch)
		sh.forgetIfSettled(ch)
	}
	sh.mu.Unlock()
	if last && live {
		if err := sh.unsubscribe(sh.ps, ch); err != nil {
			sh.broken(err)
		}
	}
	sh.cmdMu.Unlock()
	sh.dispatchMu.Lock()
	sh.dispatchMu.Unlock() // an empty critical section: a barrier
}

// forgetIfSettled drops ch's counts once nothing is subscribed or pending,
// so the maps do not grow with every document ever opened; mu is held.
func (sh *shard) forgetIfSettled(ch string) {
	if len(sh.handlers[ch]) == 0 && sh.acked[ch] >= sh.sent[ch] {
		delete(sh.sent, ch)
		delete(sh.acked, ch)
	}
}

func (sh *shard) subscribe(ps *goredis.PubSub, chans ...string) error {
	if sh.b.sharded {
		return ps.SSubscribe(context.Background(), chans...)
	}
	return ps.Subscribe(context.Background(), chans...)
}

func (sh *shard) unsubscribe(ps *goredis.PubSub, ch string) error {
	if sh.b.sharded {
		return ps.SUnsubscribe(context.Background(), ch)
	}
	return ps.Unsubscribe(context.Background(), ch)
}

func (sh *shard) newPubSub() *goredis.PubSub {
	// No channels: this only builds the value; it connects on first use.
	if sh.b.sharded {
		return sh.b.client.SSubscribe(context.Background())
	}
	return sh.b.client.Subscribe(context.Background())
}

// broken marks the connection for replacement after a failed command: go-redis
// may have reconnected by itself, without telling us, and dropped messages.
func (sh *shard) broken(err error) {
	if !sh.needReset.Swap(true) {
		sh.b.log.Warn("redis bus: pub/sub command failed; reconnecting", "err", err)
	}
	sh.owesNotice.Store(true)
}

// stop ends the shard's goroutine and closes its connection; it returns
// once the goroutine has exited.
func (sh *shard) stop() {
	sh.stopOnce.Do(func() {
		close(sh.quit)
		sh.cmdMu.Lock()
		sh.stopped = true
		if sh.ps != nil {
			_ = sh.ps.Close() // unblocks a read in progress
		}
		sh.cmdMu.Unlock()
		<-sh.done
	})
}

// run owns the connection: it (re)connects, reads, pings and dispatches
// until stop.
//
// A new connection counts as established (healthy) only when Redis
// confirms its subscription, not at its first reply of any kind: only
// then are messages delivered again, so only then may OnReconnect tell
// callers to re-read. A connection that fails before that (refused, closed,
// or answered with an error such as MOVED) is a failed attempt: the next
// one waits a backoff, and on a cluster the slot map is refreshed first.
func (sh *shard) run() {
	defer close(sh.done)
	var (
		pinged   bool // a ping is unanswered
		healthy  bool // the subscription was confirmed since the last reset
		pingOnly bool // the last reset subscribed nothing, so a PONG confirms it
		failures int  // consecutive failed attempts, for backoff and logging
	)
	for {
		select {
		case <-sh.quit:
			return
		default:
		}
		if sh.needReset.Load() {
			if healthy {
				sh.owesNotice.Store(true)
			}
			healthy, pinged = false, false
			if failures > 0 && !sh.sleep(backoffFor(failures)) {
				return
			}
			var err error
			if pingOnly, err = sh.reset(); err != nil {
				if failures == 0 {
					sh.b.log.Warn("redis bus: cannot connect; retrying", "err", err)
				}
				failures++
				sh.refreshSlots()
				continue
			}
		}
		msg, err := sh.ps.ReceiveTimeout(context.Background(), sh.b.pingEvery)
		if err != nil {
			select {
			case <-sh.quit:
				return
			default:
			}
			if isTimeout(err) && !pinged {
				if err := sh.ps.Ping(context.Background()); err != nil {
					sh.broken(err)
				}
				pinged = true
				continue
			}
			switch {
			case healthy:
				sh.b.log.Warn("redis bus: pub/sub connection lost; resubscribing", "err", err)
			case failures == 0:
				sh.b.log.Warn("redis bus: subscription failed; retrying", "err", err)
			}
			if !healthy {
				failures++
			}
			// A MOVED or ASK answer means the slot map is stale; a lost
			// connection may mean its node failed over. Either way, route
			// the next attempt by a fresh map.
			sh.refreshSlots()
			sh.needReset.Store(true)
			continue
		}
		pinged = false
		if !healthy && establishes(msg, pingOnly) {
			healthy = true
			if failures > 0 {
				sh.b.log.Info("redis bus: connected again", "after_failures", failures)
				failures = 0
			}
			if sh.owesNotice.Swap(false) {
				sh.b.notifyReconnect()
			}
		}
		switch m := msg.(type) {
		case *goredis.Message:
			sh.dispatch(m.Channel, m.Payload)
		case *goredis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				sh.confirmed(m.Channel)
			}
		}
	}
}

// establishes reports whether msg, the first reply we care about on a new
// connection, shows that it is set up: a subscription confirmation (Redis
// answers in order, so the reset's SUBSCRIBE has been processed: every
// channel it named is subscribed), or, if the reset subscribed nothing, the
// PONG to its PING.
func establishes(msg any, pingOnly bool) bool {
	switch m := msg.(type) {
	case *goredis.Subscription:
		return m.Kind == "subscribe" || m.Kind == "ssubscribe"
	case *goredis.Pong:
		return pingOnly
	}
	return false
}

// backoffFor is the wait before attempt failures+1: doubling from
// minBackoff up to maxBackoff.
func backoffFor(failures int) time.Duration {
	d := minBackoff
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// sleep waits d, or until stop; it reports false if the shard is stopping.
func (sh *shard) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sh.quit:
		return false
	case <-t.C:
		return true
	}
}

// refreshSlots asks a cluster client to reload its slot map (in the
// background; concurrent requests are merged), because go-redis routes a
// new pub/sub connection by the map it has and does not reload it when a
// pub/sub command is answered MOVED. The backoff before the next attempt
// gives the reload time to finish.
func (sh *shard) refreshSlots() {
	if cc, ok := sh.b.client.(*goredis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

// reset replaces the connection with a new one subscribed to every
// channel that has subscribers. It reports whether it subscribed nothing
// and only pinged.
//
// On a cluster it always subscribes the shard's own channel, even before
// add has registered the subscriber that created the shard: go-redis
// connects a sharded PubSub to the node that owns its first channel, and a
// PubSub without channels to a random node, where the SSUBSCRIBE that add
// then sends would be answered MOVED. (Subscribing with no subscriber yet
// is harmless: dispatch finds no one to call, and the counts stay exact.)
func (sh *shard) reset() (pingOnly bool, err error) {
	sh.cmdMu.Lock()
	defer sh.cmdMu.Unlock()
	if sh.stopped {
		return false, errClosed
	}
	if sh.ps != nil {
		_ = sh.ps.Close()
		sh.ps = nil
	}
	sh.mu.Lock()
	var chans []string
	if sh.b.sharded {
		chans = []string{sh.key} // a shard serves its key's channel only
	} else {
		chans = slices.Collect(maps.Keys(sh.handlers))
	}
	clear(sh.sent)
	clear(sh.acked)
	for _, ch := range chans {
		sh.sent[ch] = 1
	}
	for _, ws := range sh.waiters {
		for _, w := range ws {
			w.target = 1
		}
	}
	sh.mu.Unlock()
	ps := sh.newPubSub()
	if len(chans) > 0 {
		err = sh.subscribe(ps, chans...)
	} else {
		err = ps.Ping(context.Background())
	}
	if err != nil {
		_ = ps.Close()
		return false, fmt.Errorf("resubscribe: %w", err)
	}
	sh.ps = ps
	sh.needReset.Store(false)
	return len(chans) == 0, nil
}

// confirmed counts a subscription confirmation and releases its waiters.
func (sh *shard) confirmed(ch string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.acked[ch]++
	n := sh.acked[ch]
	sh.waiters[ch] = slices.DeleteFunc(sh.waiters[ch], func(w *waiter) bool {
		if w.target <= n {
			close(w.ready)
			return true
		}
		return false
	})
	if len(sh.waiters[ch]) == 0 {
		delete(sh.waiters, ch)
	}
	sh.forgetIfSettled(ch)
}

// dispatch calls ch's subscribers with payload, each with its own copy.
func (sh *shard) dispatch(ch, payload string) {
	sh.dispatchMu.Lock()
	defer sh.dispatchMu.Unlock()
	sh.mu.Lock()
	fns := sh.fns[:0]
	for _, fn := range sh.handlers[ch] {
		fns = append(fns, fn)
	}
	sh.mu.Unlock()
	for _, fn := range fns {
		fn([]byte(payload))
	}
	clear(fns) // do not keep unsubscribed functions alive
	sh.fns = fns[:0]
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
