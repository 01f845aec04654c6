package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"communique/server/bus/local"
	busredis "communique/server/bus/redis"
	"communique/server/doc"
	"communique/server/servertest"
	"communique/server/store"
	"communique/server/store/bolt"
	redisstore "communique/server/store/redis"
	"communique/server/store/redis/redistest"
)

// TestTwoInstancesConverge runs two server instances over one store and a
// bus, the way a Redis deployment runs them, with clients spread over both,
// moving between them on reconnect, while the bus loses messages for
// stretches of time. Both instances must serve one text that every client
// has, with every marker exactly once and a log with no gap and no repeat.
// Concurrent appends from both instances exercise the conflict path: the
// loser takes in the winner's ops and redoes its batch (FAULTS 35).
func TestTwoInstancesConverge(t *testing.T) {
	for _, seed := range []uint64{11, 12} {
		t.Run(fmt.Sprint("bolt/seed", seed), func(t *testing.T) {
			st, err := bolt.Open(t.TempDir(), bolt.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			bus := local.New()
			twoInstances(t, seed, st, bus, func(lose bool) { bus.Drop.Store(lose) })
		})
	}
	t.Run("redis", func(t *testing.T) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		st, err := redisstore.Open(ctx, redistest.URL(t), redisstore.Options{Prefix: redistest.Prefix(t), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		// Each instance has a bus of its own, as separate processes would.
		ba := busredis.New(st.Client(), st.Prefix(), log)
		bb := busredis.New(st.Client(), st.Prefix(), log)
		t.Cleanup(func() { ba.Close(); bb.Close() })
		twoInstancesOn(t, 13, st, ba, bb, func(bool) {})
	})
}

// twoInstances runs the scenario with one shared bus; lose(true) makes it
// drop messages until lose(false).
func twoInstances(t *testing.T, seed uint64, st store.Store, bus doc.Bus, lose func(bool)) {
	twoInstancesOn(t, seed, st, bus, bus, lose)
}

func twoInstancesOn(t *testing.T, seed uint64, st store.Store, busA, busB doc.Bus, lose func(bool)) {
	{
		{
			r := rand.New(rand.NewPCG(seed, 5))
			losing := false
			a := servertest.Start(t, servertest.Options{Store: st, Bus: busA, Instance: "a"})
			b := servertest.Start(t, servertest.Options{Store: st, Bus: busB, Instance: "b"})
			endpoints := []*servertest.Endpoint{&a.Endpoint, &b.Endpoint}

			a.Summit(t, "seoul-2013")
			initial := "Annex 🌐 서울\n"
			a.Doc(t, "seoul-2013", "annex-1", initial)
			var clients []*servertest.Client
			for i, del := range []string{"KOR", "GBR", "HUN", "NLD"} {
				tok := a.Token(t, "seoul-2013", "delegate", del)
				e := endpoints[i%2]
				clients = append(clients, e.NewClient(t, "seoul-2013", "annex-1", tok, fmt.Sprintf("m%d", i)))
			}
			markers := randomSession(t, r, clients, 400, func(step int) {
				if step%100 == 50 {
					losing = !losing
					lose(losing)
				}
			}, func(c *servertest.Client) { c.MoveTo(endpoints[r.IntN(2)]) })
			lose(false)
			for _, c := range clients {
				if err := c.Settle(20 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			// Followers of either instance catch up within the poll interval.
			deadline := time.Now().Add(10 * time.Second)
			var da, db servertest.DocState
			for {
				da = a.GetDoc(t, "seoul-2013", "annex-1", servertest.AdminToken)
				db = b.GetDoc(t, "seoul-2013", "annex-1", servertest.AdminToken)
				if da.Draft.Version == db.Draft.Version || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if da.Draft.Text != db.Draft.Text || da.Draft.Version != db.Draft.Version {
				t.Fatalf("instances differ: a at %d %q; b at %d %q", da.Draft.Version, da.Draft.Text, db.Draft.Version, db.Draft.Text)
			}
			for _, c := range clients {
				if err := c.Pump(300 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
				if c.Text != da.Draft.Text || c.Version != da.Draft.Version {
					t.Fatalf("client %s at %d has %q; server at %d has %q", c.Src, c.Version, c.Text, da.Draft.Version, da.Draft.Text)
				}
			}
			for _, m := range markers {
				if n := strings.Count(da.Draft.Text, m); n != 1 {
					t.Errorf("marker %s appears %d times; want 1", m, n)
				}
			}
			checkLog(t, a, "seoul-2013", "annex-1", initial, da.Draft)
		}
	}
}
