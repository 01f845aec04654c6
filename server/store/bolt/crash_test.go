package bolt

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"communique/server/store"
)

// childEnv makes TestMain run a child role instead of the tests:
// "crash:<dir>" appends forever and prints every acknowledged version,
// "lock:<dir>" tries to open a folder that the parent holds.
const childEnv = "BOLT_TEST_CHILD"

var crashDocs = []string{"a", "b", "c", "d"}

func runChild(mode string) int {
	role, dir, _ := strings.Cut(mode, ":")
	switch role {
	case "crash":
		return childCrash(dir)
	case "lock":
		s, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			fmt.Printf("ERR %v\n", err)
			return 0
		}
		s.Close()
		fmt.Println("OPENED")
		return 1
	}
	fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
	return 2
}

// crashBatch is the batch ending at version to: each record carries the
// batch's last version in Seq, so a reader can tell a torn batch.
func crashBatch(doc string, from, to uint64) []store.OpRecord {
	recs := records(doc, from, to)
	for i := range recs {
		recs[i].Src, recs[i].Seq = "child", to
	}
	return recs
}

func crashSnapText(doc string, v uint64) string { return fmt.Sprintf("%s@%d", doc, v) }

// childCrash appends batches of 1-3 records to every doc, one goroutine per
// doc (so commits are shared), and prints "ACK <doc> <version>" only after
// Append returned. It runs until killed; the deadline only guards against
// an orphaned child.
func childCrash(dir string) int {
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	deadline := time.Now().Add(30 * time.Second)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, doc := range crashDocs {
		wg.Go(func() {
			st, err := s.LoadStream(context.Background(), key(doc))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			head := st.Snapshot.Version + uint64(len(st.Ops))
			for time.Now().Before(deadline) {
				n := 1 + rand.Uint64N(3)
				a := store.Append{Key: key(doc), Records: crashBatch(doc, head+1, head+n)}
				if (head+n)/10 != head/10 { // a snapshot about every 10 versions
					a.Snapshot = &store.Snapshot{Version: head + n, Text: crashSnapText(doc, head+n)}
				}
				if err := s.Append(context.Background(), a); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				head += n
				mu.Lock()
				fmt.Printf("ACK %s %d\n", doc, head) // os.Stdout is unbuffered: one write per line
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.Close()
	return 0
}

// TestCrashDurability kills a writing child process with SIGKILL at a
// random moment and checks that every version it acknowledged is on disk,
// with no gap, no duplicate and no torn batch.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	setup(t, s, crashDocs...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	const rounds = 4
	for round := range rounds {
		acked := runCrashChild(t, dir)
		s := openT(t, dir, Options{})
		for _, doc := range crashDocs {
			checkCrashedStream(t, s, round, doc, acked[doc])
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// runCrashChild starts the child, kills it a random time after its first
// acknowledgement and returns the highest acknowledged version per doc.
func runCrashChild(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=crash:"+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	// Whatever happens, the child does not outlive the test.
	t.Cleanup(func() { cmd.Process.Kill() })

	acked := map[string]uint64{}
	lines := 0
	var killed time.Duration
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var doc string
		var v uint64
		if _, err := fmt.Sscanf(sc.Text(), "ACK %s %d", &doc, &v); err != nil {
			t.Errorf("child said %q", sc.Text())
			continue
		}
		if v <= acked[doc] {
			t.Errorf("child acknowledged %s v%d after v%d", doc, v, acked[doc])
		}
		acked[doc] = v
		lines++
		if lines == 1 {
			killed = time.Duration(10+rand.IntN(250)) * time.Millisecond
			time.AfterFunc(killed, func() { cmd.Process.Signal(syscall.SIGKILL) })
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v; stderr:\n%s", err, stderr.String())
	}
	t.Logf("child killed %v after its first ack; %d acks read; heads %v", killed, lines, acked)
	return acked
}

func checkCrashedStream(t *testing.T, s *Store, round int, doc string, acked uint64) {
	t.Helper()
	ctx := context.Background()
	st, err := s.LoadStream(ctx, key(doc))
	if err != nil {
		t.Fatalf("round %d: LoadStream(%s): %v", round, doc, err)
	}
	all, err := s.Since(ctx, key(doc), 0, 0)
	if err != nil {
		t.Fatalf("round %d: Since(%s): %v", round, doc, err)
	}
	head := uint64(len(all))
	if head < acked {
		t.Errorf("round %d doc %s: head %d; the child acknowledged %d", round, doc, head, acked)
	}
	if got := st.Snapshot.Version + uint64(len(st.Ops)); got != head {
		t.Errorf("round %d doc %s: LoadStream reaches %d; Since reaches %d", round, doc, got, head)
	}
	if v := st.Snapshot.Version; v > 0 && st.Snapshot.Text != crashSnapText(doc, v) {
		t.Errorf("round %d doc %s: snapshot v%d text %q; want %q", round, doc, v, st.Snapshot.Text, crashSnapText(doc, v))
	}
	for i, r := range all {
		v := uint64(i) + 1
		want := record(doc, v)
		if r.Version != v || r.Op[0].Insert != want.Op[0].Insert {
			t.Fatalf("round %d doc %s: record %d is v%d %q; want v%d %q", round, doc, i, r.Version, r.Op[0].Insert, v, want.Op[0].Insert)
		}
		// A batch is all or nothing: its last record must be there too.
		if r.Seq < v || r.Seq > head || all[r.Seq-1].Seq != r.Seq {
			t.Fatalf("round %d doc %s: v%d belongs to batch ending %d, which is torn (head %d)", round, doc, v, r.Seq, head)
		}
	}
	if head > 0 {
		if got, want := st.Clients["child"], (store.ClientSeq{Seq: head, Version: head}); got != want {
			t.Errorf("round %d doc %s: Clients[child] = %+v; want %+v", round, doc, got, want)
		}
	}
}

// TestSecondProcessFailsFast opens the folder from another process while
// this one holds it.
func TestSecondProcessFailsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	openT(t, dir, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=lock:"+dir)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("child: %v; output:\n%s", err, out)
	}
	want := "ERR data folder " + dir + " is in use by another communique process"
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("child output %q; want it to start with %q", out, want)
	}
	if took > 10*time.Second {
		t.Errorf("second process took %v to give up; want about the 1 s lock timeout", took)
	}
}
