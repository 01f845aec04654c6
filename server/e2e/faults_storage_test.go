package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"communique/ot"
	"communique/server/servertest"
	"communique/server/store/bolt"
)

// TestFaultFailingCommit covers FAULTS.md case 30 with the store's fault
// hook (bolt.Options.FailCommit): while every commit fails, an op is
// answered with unavailable (and its seq) instead of an ack, PUT and
// metadata writes with 503 unavailable, nothing is broadcast and nothing
// changes; the server stays healthy; once commits work again the same
// (src, seq) is applied once, and a restart shows exactly what was acked.
func TestFaultFailingCommit(t *testing.T) {
	var failing atomic.Bool
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	opts.Bolt.FailCommit = func() error {
		if failing.Load() {
			return fmt.Errorf("injected: %w", syscall.ENOSPC)
		}
		return nil
	}
	e := newFaultEnv(t, opts)
	a, _ := fltDial(t, e, e.doc, e.kor, nil)
	w, _ := fltDial(t, e, e.doc, e.gbr, nil)
	before := e.get(t, e.doc)
	failing.Store(true)

	op := fltOpMsg(0, ot.Op{}.Retain(10).Insert(" ok"), "a", 1)
	tests := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"op", func(t *testing.T) {
			if err := a.Send(op); err != nil {
				t.Fatal(err)
			}
			if f := fltExpect(t, a, "error"); f.Code != "unavailable" || f.Seq != 1 {
				t.Errorf("got %s; want unavailable for seq 1", f.Raw)
			}
		}},
		{"the same op again", func(t *testing.T) {
			if err := a.Send(op); err != nil {
				t.Fatal(err)
			}
			if f := fltExpect(t, a, "error"); f.Code != "unavailable" || f.Seq != 1 {
				t.Errorf("got %s; want unavailable for seq 1", f.Raw)
			}
		}},
		{"PUT", func(t *testing.T) {
			r := e.s.Do(t, "PUT", e.docPath(e.doc)+"/draft", e.gbr, map[string]any{"base_version": 0, "text": "Seoul 2013 put"})
			if r.Status != http.StatusServiceUnavailable || r.ErrorCode() != "unavailable" {
				t.Errorf("got %d %s; want 503 unavailable", r.Status, r.Body)
			}
		}},
		{"new document", func(t *testing.T) {
			r := e.s.Do(t, "POST", "/api/summits/"+e.summit+"/docs", e.chair, map[string]string{"id": "annex-2", "title": "x", "text": "x"})
			if r.Status != http.StatusServiceUnavailable || r.ErrorCode() != "unavailable" {
				t.Errorf("got %d %s; want 503 unavailable", r.Status, r.Body)
			}
		}},
		{"new token", func(t *testing.T) {
			r := e.s.Do(t, "POST", "/api/summits/"+e.summit+"/tokens", e.chair, map[string]string{"role": "observer"})
			if r.Status != http.StatusServiceUnavailable || r.ErrorCode() != "unavailable" {
				t.Errorf("got %d %s; want 503 unavailable", r.Status, r.Body)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.do(t)
			e.s.MustDo(t, http.StatusOK, "GET", "/healthz", "", nil)
			fltQuiet(t, w)
			fltUnchanged(t, e, e.doc, before)
		})
	}
	if r := e.s.Do(t, "GET", e.docPath("annex-2"), e.chair, nil); r.Status != http.StatusNotFound {
		t.Errorf("document created during the failure: %d; want 404", r.Status)
	}

	failing.Store(false)
	if err := a.Send(op); err != nil {
		t.Fatal(err)
	}
	if ack := fltExpect(t, a, "ack"); ack.Seq != 1 || ack.Version != 1 {
		t.Fatalf("after recovery: got %s; want ack of seq 1 at 1", ack.Raw)
	}
	if f := fltExpect(t, w, "op"); f.Version != 1 {
		t.Fatalf("watcher got %s; want the op at 1", f.Raw)
	}
	r := e.s.MustDo(t, http.StatusOK, "PUT", e.docPath(e.doc)+"/draft", e.gbr, map[string]any{"base_version": 0, "text": "Seoul 2013 put"})
	var out servertest.StreamState
	r.JSON(t, &out)
	if want := (servertest.StreamState{Version: 2, Text: "Seoul 2013 put ok"}); out != want {
		t.Errorf("PUT = %+v; want %+v", out, want)
	}
	e.s.Restart(t)
	if d := e.get(t, e.doc); *d.Draft != out {
		t.Errorf("after restart: %+v; want %+v", *d.Draft, out)
	}
	if ops := fltLog(t, e, e.doc); len(ops) != 2 {
		t.Errorf("log has %d ops; want 2", len(ops))
	}
}

// TestFaultDiskFull is case 30 on a real full disk: the data folder is on
// a 4 MiB tmpfs that the test fills. A big op is refused with unavailable,
// the server stays up, and once space is freed the same op is applied. It
// needs to mount (root with CAP_SYS_ADMIN); elsewhere it skips and
// TestFaultFailingCommit covers the path.
func TestFaultDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v)", err)
	}
	t.Cleanup(func() { // after the server's own cleanup, which is registered later
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	opts := faultOptions()
	opts.Dir = filepath.Join(mnt, "data")
	opts.WS.MaxFrameBytes = 1 << 20
	opts.Doc.MaxDocRunes = 1 << 20
	e := newFaultEnv(t, opts)
	a, _ := fltDial(t, e, e.doc, e.kor, nil)
	w, _ := fltDial(t, e, e.doc, e.gbr, nil)
	before := e.get(t, e.doc)

	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	f.Close()

	op := fltOpMsg(0, ot.Op{}.Retain(10).Insert(strings.Repeat("x", 300<<10)), "a", 1)
	if err := a.Send(op); err != nil {
		t.Fatal(err)
	}
	if f := fltExpect(t, a, "error"); f.Code != "unavailable" || f.Seq != 1 {
		t.Errorf("on a full disk: got %.200s; want unavailable for seq 1", f.Raw)
	}
	e.s.MustDo(t, http.StatusOK, "GET", "/healthz", "", nil)
	fltQuiet(t, w)
	fltUnchanged(t, e, e.doc, before)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(op); err != nil {
		t.Fatal(err)
	}
	if ack := fltExpect(t, a, "ack"); ack.Version != 1 {
		t.Fatalf("after freeing space: got %.200s; want ack at 1", ack.Raw)
	}
	if f := fltExpect(t, w, "op"); f.Version != 1 {
		t.Fatalf("watcher got %.200s; want the op at 1", f.Raw)
	}
	e.s.Restart(t)
	if d := e.get(t, e.doc); d.Draft.Version != 1 || len(d.Draft.Text) != 10+300<<10 {
		t.Errorf("after restart: version %d, %d bytes; want the big op at 1", d.Draft.Version, len(d.Draft.Text))
	}
}

// TestFaultSecondServer covers FAULTS.md case 31: a second store or a
// second server process on a data folder in use fails fast with a message
// that names the folder and the cause, and the first one serves on
// undisturbed.
func TestFaultSecondServer(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		dir := t.TempDir()
		quiet := slog.New(slog.DiscardHandler)
		first, err := bolt.Open(dir, bolt.Options{LockTimeout: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		second, err := bolt.Open(dir, bolt.Options{LockTimeout: 100 * time.Millisecond, Logger: quiet})
		if err == nil {
			second.Close()
			t.Fatal("a second store opened a folder in use")
		}
		if !errors.Is(err, bolt.ErrInUse) || !strings.Contains(err.Error(), dir) {
			t.Errorf("got %v; want ErrInUse naming %s", err, dir)
		}
	})
	t.Run("process", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the binary")
		}
		bin := servertest.BuildBinary(t)
		data := t.TempDir()
		p := servertest.StartProcess(t, bin, data, "127.0.0.1:0")
		p.Summit(t, "seoul-2013")
		p.Doc(t, "seoul-2013", "chair-summary", "Seoul 2013")

		cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--admin-token", servertest.AdminToken)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Errorf("second server exited with %v; want a non-zero status", err)
			}
		case <-time.After(fltWait):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("second server still running after %v:\n%s", fltWait, out.String())
		}
		msg := out.String()
		if !strings.Contains(msg, "in use by another communique process") || !strings.Contains(msg, data) {
			t.Errorf("second server said %q; want the folder and that it is in use", msg)
		}
		if strings.Contains(msg, "listening") {
			t.Errorf("second server listened: %q", msg)
		}
		d := p.GetDoc(t, "seoul-2013", "chair-summary", servertest.AdminToken)
		if d.Draft == nil || d.Draft.Text != "Seoul 2013" {
			t.Errorf("first server's document: %+v", d)
		}
		if err := p.Stop(fltWait); err != nil {
			t.Errorf("first server on SIGTERM: %v; want exit 0", err)
		}
	})
}

// fltRec is one key/value pair of the bbolt file, with the path of nested
// buckets that holds it.
type fltRec struct {
	path     []string
	key, val []byte
}

func (r fltRec) id() string { return fmt.Sprintf("%q/%q", r.path, r.key) }

// fltRecords lists every key/value pair in the file. The tests find records
// by what they hold, not where: the store's layout is its own business
// (and still moving); only its JSON encoding of records is relied on.
func fltRecords(tx *bbolt.Tx) []fltRec {
	var out []fltRec
	var walk func(b *bbolt.Bucket, path []string)
	walk = func(b *bbolt.Bucket, path []string) {
		_ = b.ForEach(func(k, v []byte) error {
			if v == nil {
				walk(b.Bucket(k), append(slices.Clone(path), string(k)))
				return nil
			}
			out = append(out, fltRec{path: path, key: bytes.Clone(k), val: bytes.Clone(v)})
			return nil
		})
	}
	_ = tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		walk(b, []string{string(name)})
		return nil
	})
	return out
}

// fltBucket is the bucket at path.
func fltBucket(tx *bbolt.Tx, path []string) *bbolt.Bucket {
	b := tx.Bucket([]byte(path[0]))
	for _, p := range path[1:] {
		b = b.Bucket([]byte(p))
	}
	return b
}

// fltDump is the whole file as id -> value.
func fltDump(t *testing.T, file string) map[string]string {
	t.Helper()
	db, err := bbolt.Open(file, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	_ = db.View(func(tx *bbolt.Tx) error {
		for _, r := range fltRecords(tx) {
			out[r.id()] = string(r.val)
		}
		return nil
	})
	return out
}

// fltOpRecord reports whether r is the stored op (src, seq).
func fltOpRecord(r fltRec, src string, seq uint64) bool {
	var v struct {
		Op  json.RawMessage `json:"op"`
		Src string          `json:"src"`
		Seq uint64          `json:"seq"`
	}
	return json.Unmarshal(r.val, &v) == nil && v.Op != nil && v.Src == src && v.Seq == seq
}

// fltSnapshot reports whether r is a snapshot whose text contains marker.
func fltSnapshot(r fltRec, marker string) bool {
	var v struct {
		Op   json.RawMessage `json:"op"`
		Text *string         `json:"text"`
	}
	return json.Unmarshal(r.val, &v) == nil && v.Op == nil && v.Text != nil && strings.Contains(*v.Text, marker)
}

// TestFaultCorruptRecord covers FAULTS.md case 32 and the failing-load
// half of 16: with one stored record of a document damaged (garbage bytes
// in an op, valid JSON that does not fit the text, an op missing, garbage
// snapshots) and the server restarted, every way into that document — GET
// (twice: a failed load leaves nothing behind), PUT, a socket on either
// stream with or without since — answers 500 with code internal and a
// message that says a record is corrupt. The document is never served or
// saved as empty: the file is byte for byte what the damage left. The
// other documents work normally.
func TestFaultCorruptRecord(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	e := newFaultEnv(t, opts)
	// Each damage finds its target among the records of document d, whose
	// ops have src d and whose initial text contains "«d»".
	corruptions := []struct {
		doc    string
		damage func(tx *bbolt.Tx, r fltRec, d string) (bool, error)
	}{
		{"garbage-op", func(tx *bbolt.Tx, r fltRec, d string) (bool, error) {
			if !fltOpRecord(r, d, 2) {
				return false, nil
			}
			return true, fltBucket(tx, r.path).Put(r.key, []byte("\x00\xffgarbage{"))
		}},
		{"op-that-does-not-fit", func(tx *bbolt.Tx, r fltRec, d string) (bool, error) {
			if !fltOpRecord(r, d, 2) {
				return false, nil
			}
			return true, fltBucket(tx, r.path).Put(r.key, []byte(`{"v":2,"op":[9999,"x"],"a":"KOR","src":"`+d+`","seq":2,"t":"2026-01-01T00:00:00Z"}`))
		}},
		{"op-missing", func(tx *bbolt.Tx, r fltRec, d string) (bool, error) {
			if !fltOpRecord(r, d, 2) {
				return false, nil
			}
			return true, fltBucket(tx, r.path).Delete(r.key)
		}},
		{"garbage-snapshots", func(tx *bbolt.Tx, r fltRec, d string) (bool, error) {
			if !fltSnapshot(r, "«"+d+"»") {
				return false, nil
			}
			return true, fltBucket(tx, r.path).Put(r.key, []byte("not a snapshot"))
		}},
	}
	docs := []string{e.doc}
	for _, c := range corruptions {
		docs = append(docs, c.doc)
		e.s.Doc(t, e.summit, c.doc, "Seoul 2013 «"+c.doc+"»")
	}
	for _, d := range docs {
		c, h := fltDial(t, e, d, e.kor, nil)
		n := ot.NewText(*h.Text).Len()
		for v := 0; v < 3; v++ {
			if err := c.Send(fltOpMsg(uint64(v), ot.Op{}.Retain(n+v).Insert("!"), d, uint64(v+1))); err != nil {
				t.Fatal(err)
			}
			fltExpect(t, c, "ack")
		}
		c.Close()
	}
	healthy := e.get(t, e.doc)

	e.s.Stop()
	file := filepath.Join(e.s.Dir, bolt.FileName)
	db, err := bbolt.Open(file, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		recs := fltRecords(tx)
		for _, c := range corruptions {
			hit := 0
			for _, r := range recs {
				ok, err := c.damage(tx, r, c.doc)
				if err != nil {
					return err
				}
				if ok {
					hit++
				}
			}
			if hit == 0 {
				return fmt.Errorf("%s: found no record to damage", c.doc)
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	damaged := fltDump(t, file)
	e.s.Restart(t)

	for _, c := range corruptions {
		t.Run(c.doc, func(t *testing.T) {
			check := func(what string, status int, body []byte) {
				t.Helper()
				if status != http.StatusInternalServerError {
					t.Errorf("%s: got %d %s; want 500", what, status, body)
				}
				fltErrorBody(t, body, "internal")
				if !strings.Contains(string(body), "corrupt") {
					t.Errorf("%s: message %s does not say a record is corrupt", what, body)
				}
			}
			for i := 0; i < 2; i++ {
				status, body := fltHTTP(t, e.s.URL, "GET", e.docPath(c.doc), e.chair, nil)
				check("GET", status, body)
			}
			status, body := fltHTTP(t, e.s.URL, "PUT", e.docPath(c.doc)+"/draft", e.kor,
				strings.NewReader(`{"base_version":0,"text":""}`))
			check("PUT", status, body)
			for _, q := range []url.Values{nil, {"since": {"0"}}, {"stream": {"approved"}}} {
				conn, resp, err := e.s.Dial(e.summit, c.doc, e.kor, q, nil)
				if err == nil {
					conn.Close()
					t.Errorf("socket %v: upgraded; want 500", q)
					continue
				}
				if resp == nil {
					t.Errorf("socket %v: %v; want 500", q, err)
					continue
				}
				var b bytes.Buffer
				_, _ = b.ReadFrom(resp.Body)
				resp.Body.Close()
				check(fmt.Sprintf("socket %v", q), resp.StatusCode, b.Bytes())
			}
		})
	}

	// Nothing was written while the damaged documents were refused: no
	// empty document saved over a real one.
	e.s.Stop()
	now := fltDump(t, file)
	for k, v := range damaged {
		if now[k] != v {
			t.Errorf("record %s changed from %.80q to %.80q", k, v, now[k])
		}
	}
	for k := range now {
		if _, ok := damaged[k]; !ok {
			t.Errorf("record %s appeared", k)
		}
	}
	e.s.Restart(t)

	t.Run("other documents", func(t *testing.T) {
		if d := e.get(t, e.doc); *d.Draft != *healthy.Draft {
			t.Errorf("healthy document = %+v; want %+v", *d.Draft, *healthy.Draft)
		}
		c, h := fltDial(t, e, e.doc, e.kor, nil)
		if err := c.Send(fltOpMsg(h.Version, ot.Op{}.Retain(13).Insert("?"), "k2", 1)); err != nil {
			t.Fatal(err)
		}
		if a := fltExpect(t, c, "ack"); a.Version != h.Version+1 {
			t.Errorf("got %s; want ack at %d", a.Raw, h.Version+1)
		}
		r := e.s.MustDo(t, http.StatusOK, "GET", "/api/summits/"+e.summit+"/docs", e.kor, nil)
		for _, d := range docs {
			if !strings.Contains(string(r.Body), `"`+d+`"`) {
				t.Errorf("document list %s lacks %s", r.Body, d)
			}
		}
	})
}
