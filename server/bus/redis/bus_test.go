package redis

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"communique/server/store/redis/redistest"

	goredis "github.com/redis/go-redis/v9"
)

// waitFor bounds how long a test waits for something that must happen.
const waitFor = 10 * time.Second

func newClient(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	opt.MaxRetries, opt.DialerRetries = -1, 1 // a dead Redis fails at once
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// testLog sends the bus's log to t, so it shows with a failure. The bus is
// closed before t ends, so nothing logs after.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newBus returns a Bus on a client of its own, as another instance would
// have, closed when t ends.
func newBus(t *testing.T, url, prefix string) *Bus {
	t.Helper()
	b := New(newClient(t, url), prefix, testLog(t))
	b.subscribeWait = 300 * time.Millisecond
	b.pingEvery = 200 * time.Millisecond
	t.Cleanup(b.Close)
	return b
}

// inbox collects messages without ever blocking the bus.
type inbox chan string

func newInbox() inbox { return make(inbox, 1000) }

func (in inbox) put(msg []byte) {
	select {
	case in <- string(msg):
	default:
	}
}

func (in inbox) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-in:
		if got != want {
			t.Fatalf("received %q; want %q", got, want)
		}
	case <-time.After(waitFor):
		t.Fatalf("no message within %s; want %q", waitFor, want)
	}
}

// expectNone checks that nothing is queued now. Delivery is in order, so
// callers first publish and receive a later marker message.
func (in inbox) expectNone(t *testing.T) {
	t.Helper()
	select {
	case got := <-in:
		t.Fatalf("received %q; want nothing", got)
	default:
	}
}

func mustPublish(t *testing.T, b *Bus, topic, msg string) {
	t.Helper()
	if err := b.Publish(context.Background(), topic, []byte(msg)); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

func signal(ch chan struct{}) func() {
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func expectSignal(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("%s did not happen within %s", what, waitFor)
	}
}

func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	a, b := newBus(t, url, prefix), newBus(t, url, prefix)

	decl, annex := newInbox(), newInbox()
	unsubDecl := a.Subscribe("geneva/decl", decl.put)
	a.Subscribe("geneva/annex", annex.put)
	second := newInbox()
	unsubSecond := a.Subscribe("geneva/decl", second.put)

	for _, tc := range []struct{ topic, msg string }{
		{"geneva/decl", "v1"},
		{"geneva/annex", "a1"},
		{"geneva/decl", "v2 with 🕊️ and \x00 bytes"},
	} {
		mustPublish(t, b, tc.topic, tc.msg)
	}
	decl.expect(t, "v1")
	decl.expect(t, "v2 with 🕊️ and \x00 bytes")
	second.expect(t, "v1")
	second.expect(t, "v2 with 🕊️ and \x00 bytes")
	annex.expect(t, "a1")

	// A bus hears its own messages too; topics are apart.
	mustPublish(t, a, "geneva/annex", "a2")
	annex.expect(t, "a2")
	decl.expectNone(t)

	// After unsubscribe, nothing more for that subscriber; the other
	// subscriber of the topic keeps receiving.
	unsubSecond()
	unsubSecond() // idempotent
	mustPublish(t, b, "geneva/decl", "v3")
	decl.expect(t, "v3")
	second.expectNone(t)

	unsubDecl()
	mustPublish(t, b, "geneva/decl", "v4")
	mustPublish(t, b, "geneva/annex", "a3") // a marker: v4 would come first
	annex.expect(t, "a3")
	decl.expectNone(t)

	// A different prefix is a different namespace.
	other := newBus(t, url, redistest.Prefix(t))
	otherIn := newInbox()
	other.Subscribe("geneva/annex", otherIn.put)
	mustPublish(t, b, "geneva/annex", "a4")
	annex.expect(t, "a4")
	mustPublish(t, other, "geneva/annex", "o1")
	otherIn.expect(t, "o1")
	annex.expectNone(t)
}

// TestSubscribeIsConfirmed: once Subscribe returns, a message published
// (by another client) is delivered; no gap between the two.
func TestSubscribeIsConfirmed(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	a, b := newBus(t, url, prefix), newBus(t, url, prefix)
	keep := newInbox()
	a.Subscribe("s/keep", keep.put) // keeps a's connection up throughout
	for i := range 50 {
		topic := fmt.Sprintf("s/d%d", i%5)
		in := newInbox()
		unsub := a.Subscribe(topic, in.put)
		mustPublish(t, b, topic, fmt.Sprint(i))
		in.expect(t, fmt.Sprint(i))
		unsub()
	}
}

// TestConcurrentSubscribers churns subscriptions of one topic from many
// goroutines: every subscriber that is subscribed when a message is
// published gets it.
func TestConcurrentSubscribers(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	a, b := newBus(t, url, prefix), newBus(t, url, prefix)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				in := newInbox()
				unsub := a.Subscribe("s/churn", in.put)
				msg := fmt.Sprintf("g%d-%d", g, i)
				if err := b.Publish(context.Background(), "s/churn", []byte(msg)); err != nil {
					errs <- err
					unsub()
					return
				}
				// Others publish too; ours must arrive among them.
				found := false
				deadline := time.After(waitFor)
				for !found {
					select {
					case got := <-in:
						found = got == msg
					case <-deadline:
						errs <- fmt.Errorf("%s never arrived", msg)
						unsub()
						return
					}
				}
				unsub()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClientKill (FAULTS 34): a killed pub/sub connection is replaced,
// OnReconnect says so (messages may have been lost), and later messages
// arrive.
func TestClientKill(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t) // CLIENT KILL TYPE pubsub hits every test on the server
	prefix := redistest.Prefix(t)
	a, b := newBus(t, srv.URL(), prefix), newBus(t, srv.URL(), prefix)
	reconnected := make(chan struct{}, 1)
	a.OnReconnect(signal(reconnected))
	in := newInbox()
	a.Subscribe("geneva/decl", in.put)
	mustPublish(t, b, "geneva/decl", "before")
	in.expect(t, "before")

	admin := newClient(t, srv.URL())
	for round := range 3 {
		n, err := admin.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result()
		if err != nil || n == 0 {
			t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want at least one killed", n, err)
		}
		expectSignal(t, reconnected, "OnReconnect")
		msg := fmt.Sprintf("after kill %d", round)
		mustPublish(t, b, "geneva/decl", msg)
		in.expect(t, msg)
	}
}

// TestRedisRestart: the bus rides out a Redis restart; OnReconnect fires
// once it is back, and subscriptions work again.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	a, b := newBus(t, srv.URL(), prefix), newBus(t, srv.URL(), prefix)
	reconnected := make(chan struct{}, 1)
	a.OnReconnect(signal(reconnected))
	in := newInbox()
	a.Subscribe("geneva/decl", in.put)

	srv.Kill()
	if err := b.Publish(context.Background(), "geneva/decl", []byte("lost")); err == nil {
		t.Errorf("Publish with Redis down succeeded; want an error")
	}
	// Subscribing while Redis is down returns (unconfirmed) and is made
	// good once Redis is back.
	late := newInbox()
	a.Subscribe("geneva/annex", late.put)

	srv.Restart()
	expectSignal(t, reconnected, "OnReconnect after restart")
	var err error
	for range 20 { // b's pooled connections to the old process fail once
		if err = b.Publish(context.Background(), "geneva/decl", []byte("back")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	in.expect(t, "back")
	mustPublish(t, b, "geneva/annex", "late")
	late.expect(t, "late")
}

// TestSubscribeWhileDown: a Subscribe that cannot be confirmed returns
// after subscribeWait; OnReconnect fires once the subscription is made.
func TestSubscribeWhileDown(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	a := newBus(t, srv.URL(), prefix)
	reconnected := make(chan struct{}, 1)
	a.OnReconnect(signal(reconnected))
	srv.Kill()
	in := newInbox()
	a.Subscribe("geneva/decl", in.put) // returns after subscribeWait
	srv.Restart()
	expectSignal(t, reconnected, "OnReconnect")
	b := newBus(t, srv.URL(), prefix)
	mustPublish(t, b, "geneva/decl", "hello")
	in.expect(t, "hello")
}

// TestUnsubscribeWaitsForCall: after unsubscribe returns, fn is neither
// running nor called again.
func TestUnsubscribeWaitsForCall(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	a, b := newBus(t, url, prefix), newBus(t, url, prefix)
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	unsubscribed := false
	calledAfter := false
	var once sync.Once
	unsub := a.Subscribe("s/slow", func([]byte) {
		mu.Lock()
		if unsubscribed {
			calledAfter = true
		}
		mu.Unlock()
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	mustPublish(t, b, "s/slow", "1")
	mustPublish(t, b, "s/slow", "2")
	<-entered
	done := make(chan struct{})
	go func() {
		unsub()
		mu.Lock()
		unsubscribed = true
		mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("unsubscribe returned while fn was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	// A marker on another topic proves the bus has moved past "2".
	in := newInbox()
	a.Subscribe("s/marker", in.put)
	mustPublish(t, b, "s/slow", "3")
	mustPublish(t, b, "s/marker", "m")
	in.expect(t, "m")
	mu.Lock()
	defer mu.Unlock()
	if calledAfter {
		t.Error("fn was called after unsubscribe returned")
	}
}

func TestBadTopic(t *testing.T) {
	t.Parallel()
	b := newBus(t, redistest.URL(t), redistest.Prefix(t))
	for _, topic := range []string{"", "a}b", "a{b", "sp ace", "new\nline", "a:b", "/a", "a/", "a//b", strings.Repeat("x", 300)} {
		if err := b.Publish(context.Background(), topic, []byte("x")); err == nil {
			t.Errorf("Publish(%q) succeeded; want an error", topic)
		}
		unsub := b.Subscribe(topic, func([]byte) { t.Errorf("message on bad topic %q", topic) })
		unsub()
	}
	if got, err := b.channel("seoul-2013/final_decl"); err != nil || got != "{"+b.prefix+":seoul-2013:final_decl}:events" {
		t.Errorf("channel = %q, %v; want the doc's hash tag + :events", got, err)
	}
}

// TestCloseLeavesNoGoroutines: every goroutine the bus starts has exited
// when Close returns, including those of connections that were killed and
// replaced.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	srv := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	client := newClient(t, srv.URL())
	publisher := newClient(t, srv.URL())
	if err := client.Ping(context.Background()).Err(); err != nil { // warm up the client
		t.Fatal(err)
	}
	if err := publisher.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	b := New(client, prefix, testLog(t))
	b.pingEvery = 50 * time.Millisecond
	reconnected := make(chan struct{}, 1)
	b.OnReconnect(signal(reconnected))
	in := newInbox()
	var unsubs []func()
	for i := range 5 {
		unsubs = append(unsubs, b.Subscribe(fmt.Sprintf("s/d%d", i), in.put))
	}
	if err := publisher.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	expectSignal(t, reconnected, "OnReconnect")
	unsubs[0]()
	unsubs[1]()
	b.Close()
	b.Close() // idempotent
	for _, u := range unsubs {
		u() // after Close: harmless
	}
	if b.Subscribe("s/after", in.put) == nil {
		t.Error("Subscribe after Close returned nil")
	}

	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
