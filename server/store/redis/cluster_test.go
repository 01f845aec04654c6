package redis_test

import (
	"context"
	"testing"

	"communique/server/store"
	"communique/server/store/redis"
	"communique/server/store/redis/redistest"
	"communique/server/store/storetest"

	goredis "github.com/redis/go-redis/v9"
)

// TestCluster runs the shared suite on a three-master Redis Cluster, found
// from one node's plain redis:// URL, and checks that a document's keys
// (and its bus channel) share one hash slot, which the scripts need.
func TestCluster(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	url := cluster.Nodes[1].URL()

	t.Run("storetest", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := redis.Open(context.Background(), url, redis.Options{Prefix: redistest.Prefix(t), Logger: quiet})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if _, ok := s.Client().(*goredis.ClusterClient); !ok {
				t.Fatalf("Client() is %T; want a *redis.ClusterClient for a cluster", s.Client())
			}
			return s
		})
	})

	t.Run("SameSlot", func(t *testing.T) {
		prefix := redistest.Prefix(t)
		s := open(t, cluster.URL(), redis.Options{Prefix: prefix})
		ctx := context.Background()
		tag := "{" + prefix + ":seoul-2013:final}"
		keys := []string{
			tag + ":doc", tag + ":draft:head", tag + ":draft:ops", tag + ":approved:snaps",
			tag + ":events", // the bus channel of topic seoul-2013/final
		}
		want, err := s.Client().ClusterKeySlot(ctx, keys[0]).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		for _, k := range keys[1:] {
			if got, err := s.Client().ClusterKeySlot(ctx, k).Result(); err != nil || got != want {
				t.Errorf("slot of %s = %d, %v; want %d", k, got, err, want)
			}
		}
	})
}
