package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
	"communique/server/store"
	"communique/server/store/bolt"
)

// TestKill9KeepsAcknowledgedOps kills the real server process with SIGKILL
// at random moments while delegations type, restarts it on the same data
// folder, and checks FAULTS.md case 29: every acknowledged op is present
// exactly once, an unacknowledged one at most once, and the log has no gap
// and no duplicate.
func TestKill9KeepsAcknowledgedOps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := servertest.BuildBinary(t)
	data := t.TempDir()
	p := servertest.StartProcess(t, bin, data, "127.0.0.1:0")
	addr := p.Addr
	p.Summit(t, "seoul-2013")
	initial := "Chair's summary 서울 🌐\n"
	p.Doc(t, "seoul-2013", "chair-summary", initial)
	var tokens []string
	for _, d := range []string{"KOR", "GBR", "HUN", "KEN"} {
		tokens = append(tokens, p.Token(t, "seoul-2013", "delegate", d))
	}

	var mu sync.Mutex
	acked := map[string]bool{} // marker -> acknowledged
	sent := map[string]bool{}
	r := rand.New(rand.NewPCG(7, 7))
	const rounds = 4
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, len(tokens))
		for i, tok := range tokens {
			wg.Add(1)
			go func(i int, tok string) {
				defer wg.Done()
				errs <- typeUntilGone(&p.Endpoint, tok, fmt.Sprintf("r%dc%d", round, i), &mu, sent, acked)
			}(i, tok)
		}
		time.Sleep(time.Duration(150+r.IntN(600)) * time.Millisecond)
		p.Kill()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		p = servertest.StartProcess(t, bin, data, addr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 20 {
		t.Fatalf("only %d ops acknowledged over %d rounds; the test proves little", len(acked), rounds)
	}
	admin := servertest.AdminToken
	d := p.GetDoc(t, "seoul-2013", "chair-summary", admin)
	for m := range sent {
		n := strings.Count(d.Draft.Text, m)
		if acked[m] && n != 1 {
			t.Errorf("acknowledged %s appears %d times; want 1", m, n)
		}
		if n > 1 {
			t.Errorf("%s appears %d times; want at most 1", m, n)
		}
	}
	p.Kill()
	st, err := bolt.Open(data, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Since(context.Background(), store.StreamKey{Summit: "seoul-2013", Doc: "chair-summary", Stream: store.Draft}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	text, seen := initial, map[string]bool{}
	for i, rec := range recs {
		if rec.Version != uint64(i+1) {
			t.Fatalf("log record %d has version %d", i, rec.Version)
		}
		k := fmt.Sprintf("%s/%d", rec.Src, rec.Seq)
		if seen[k] {
			t.Fatalf("%s logged twice", k)
		}
		seen[k] = true
		if text, err = ot.Apply(text, rec.Op); err != nil {
			t.Fatalf("replay %d: %v", rec.Version, err)
		}
	}
	if text != d.Draft.Text || uint64(len(recs)) != d.Draft.Version {
		t.Fatalf("replay of the log (%d ops) differs from the served draft (version %d)", len(recs), d.Draft.Version)
	}
	t.Logf("%d ops acknowledged, %d sent, %d logged", len(acked), len(sent), len(recs))
}

// typeUntilGone inserts one marker at a time, waiting for each ack, until
// the server disappears.
func typeUntilGone(e *servertest.Endpoint, token, src string, mu *sync.Mutex, sent, acked map[string]bool) error {
	c, err := e.Connect("seoul-2013", "chair-summary", token, src)
	if err != nil {
		return nil // the server was killed before we connected
	}
	pending := ""
	for n := 0; ; n++ {
		if !c.Pending() {
			if pending != "" {
				mu.Lock()
				acked[pending] = true
				mu.Unlock()
			}
			pending = fmt.Sprintf("«%s:%d»", src, n)
			mu.Lock()
			sent[pending] = true
			mu.Unlock()
			size := ot.NewText(c.Text).Len()
			pos := size // at the end, so a marker never lands inside another
			if err := c.Edit(ot.Op{}.Retain(pos).Insert(pending).Retain(size - pos)); err != nil {
				return err
			}
		}
		if err := c.Pump(5 * time.Millisecond); err != nil {
			return err
		}
		if !c.Connected() {
			return nil
		}
	}
}
