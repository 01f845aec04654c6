package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"communique/server/store/redis/redistest"

	goredis "github.com/redis/go-redis/v9"
)

// TestCluster: on a Redis Cluster the bus uses sharded pub/sub, topics
// spread over the masters, and a killed connection is replaced there too.
func TestCluster(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	prefix := redistest.Prefix(t)
	newClusterBus := func() (*Bus, *goredis.ClusterClient) {
		opt, err := goredis.ParseClusterURL(cluster.URL())
		if err != nil {
			t.Fatalf("ParseClusterURL: %v", err)
		}
		c := goredis.NewClusterClient(opt)
		t.Cleanup(func() { c.Close() })
		// The default subscribeWait and pingEvery: a subscription
		// confirmed late or a slow ping would each (rightly) call
		// OnReconnect, which this test counts.
		b := New(c, prefix, testLog(t))
		t.Cleanup(b.Close)
		return b, c
	}
	a, admin := newClusterBus()
	b, _ := newClusterBus()
	if !a.sharded {
		t.Fatal("a bus on a ClusterClient does not use sharded pub/sub")
	}
	var reconnects atomic.Int32
	a.OnReconnect(func() { reconnects.Add(1) })

	const topics = 12 // enough to land on every master
	inboxes := make([]inbox, topics)
	for i := range inboxes {
		inboxes[i] = newInbox()
		a.Subscribe(fmt.Sprintf("geneva/doc-%d", i), inboxes[i].put)
	}
	send := func(round string) {
		t.Helper()
		for i := range inboxes {
			mustPublish(t, b, fmt.Sprintf("geneva/doc-%d", i), round)
		}
		for i := range inboxes {
			inboxes[i].expect(t, round)
		}
	}
	send("first")

	// Is any publication seen by a node that does not own the channel?
	// With sharded pub/sub, no: count subscribers per node.
	var masters atomic.Int32
	err := admin.ForEachMaster(context.Background(), func(ctx context.Context, c *goredis.Client) error {
		n, err := c.PubSubShardChannels(ctx, "{"+prefix+":*").Result()
		if err != nil {
			return err
		}
		if len(n) > 0 {
			masters.Add(1)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("PUBSUB SHARDCHANNELS: %v", err)
	}
	if masters.Load() < 2 {
		t.Errorf("shard channels live on %d masters; want them spread", masters.Load())
	}

	// Nothing was lost yet, so nothing should have announced a
	// reconnection: each OnReconnect below must stand for one topic
	// subscribed again. (A shard that first connected to a random node had
	// its SSUBSCRIBE answered MOVED and reconnected, and the count below
	// then reached `topics` before every topic was back.) A machine that
	// stalls past a ping may still cause one, rightly: it is counted out
	// below and logged rather than failed, so the test does not flake.
	early := reconnects.Load()
	if early != 0 {
		t.Logf("%d OnReconnect calls before any connection was lost (a stalled ping?)", early)
	}

	err = admin.ForEachMaster(context.Background(), func(ctx context.Context, c *goredis.Client) error {
		return c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()
	})
	if err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	// Each topic has its own connection here, and each says when it is
	// back; messages published before that may be lost.
	deadline := time.Now().Add(waitFor)
	for reconnects.Load()-early < topics {
		if time.Now().After(deadline) {
			t.Fatalf("%d OnReconnect calls within %s; want one per topic, %d", reconnects.Load()-early, waitFor, topics)
		}
		time.Sleep(10 * time.Millisecond)
	}
	send("after kill")
}
