package redis

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"communique/server/store/redis/redistest"

	goredis "github.com/redis/go-redis/v9"
)

// TestCluster: on a Redis Cluster the bus uses sharded pub/sub, topics
// spread over the masters, and a killed connection is replaced there too.
func TestCluster(t *testing.T) {
	if os.Getenv("COMMUNIQUE_TEST_CLUSTER_BUS") != "1" {
		// Known flake (docs/status.md): after CLIENT KILL on every master, a
		// sharded resubscription can be answered MOVED and lose a message
		// published right after OnReconnect. Cluster mode is not used by the
		// server's own tests; set COMMUNIQUE_TEST_CLUSTER_BUS=1 to run it.
		t.Skip("SKIPPED: Redis Cluster bus test is opt-in (COMMUNIQUE_TEST_CLUSTER_BUS=1) until its resubscription flake is fixed")
	}
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
		b := New(c, prefix, testLog(t))
		b.subscribeWait = 300 * time.Millisecond
		b.pingEvery = 200 * time.Millisecond
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

	err = admin.ForEachMaster(context.Background(), func(ctx context.Context, c *goredis.Client) error {
		return c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()
	})
	if err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	// Each topic has its own connection here, and each says when it is
	// back; messages published before that may be lost.
	deadline := time.Now().Add(waitFor)
	for reconnects.Load() < topics {
		if time.Now().After(deadline) {
			t.Fatalf("%d OnReconnect calls within %s; want one per topic, %d", reconnects.Load(), waitFor, topics)
		}
		time.Sleep(10 * time.Millisecond)
	}
	send("after kill")
}
