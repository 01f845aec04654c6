package e2e

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

// TestPresenceOnFirstAct: a connection on the draft stream is announced
// (presence join, listed in later hellos) when it first acts — a cursor
// report, whose join carries the cursor, or an op, whose join comes before
// the op — and only then gets a leave. A connection that only reads the
// draft is never announced, so a thousand of them cost the others nothing.
func TestPresenceOnFirstAct(t *testing.T) {
	e := newFaultEnv(t, faultOptions())
	watch, _ := fltDial(t, e, e.doc, e.obs, url.Values{"stream": {"approved"}})
	reader, rh := fltDial(t, e, e.doc, e.gbr, nil) // never acts
	a, ah := fltDial(t, e, e.doc, e.kor, nil)
	if f, err := watch.Next(300 * time.Millisecond); !errors.Is(err, servertest.ErrTimeout) {
		t.Fatalf("observer got %s (%v) before anyone acted; want nothing", f.Raw, err)
	}

	if err := a.Send(map[string]any{"type": "presence", "version": ah.Version, "cursor": map[string]int{"anchor": 2, "head": 5}}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*servertest.Conn{"observer": watch, "reader": reader} {
		f := c.Expect(t, "presence")
		var p struct {
			Event string
			Peer  struct {
				Client string
				Cursor *struct{ Anchor, Head int }
			}
		}
		if err := json.Unmarshal(f.Raw, &p); err != nil {
			t.Fatal(err)
		}
		if p.Event != "join" || p.Peer.Client != ah.Client || p.Peer.Cursor == nil || p.Peer.Cursor.Anchor != 2 || p.Peer.Cursor.Head != 5 {
			t.Errorf("%s got %s; want the join of %s with its cursor 2..5", name, f.Raw, ah.Client)
		}
	}

	chair, ch := fltDial(t, e, e.doc, e.chair, nil)
	if err := chair.Send(fltOpMsg(ch.Version, ot.Op{}.Insert("¶").Retain(10), "chair", 1)); err != nil {
		t.Fatal(err)
	}
	fltExpect(t, chair, "ack")
	for name, c := range map[string]*servertest.Conn{"reader": reader, "drafter": a} {
		if f := c.Expect(t, "presence"); f.Event != "join" || !strings.Contains(string(f.Raw), ch.Client) {
			t.Errorf("%s got %s; want the chair's join before its op", name, f.Raw)
		}
		fltExpect(t, c, "op")
	}

	_, late := fltDial(t, e, e.doc, e.gbr, nil)
	listed := map[string]bool{}
	for _, p := range fltPresence(t, late) {
		listed[p.Client] = true
	}
	if !listed[ah.Client] || !listed[ch.Client] || listed[rh.Client] || len(listed) != 2 {
		t.Errorf("hello lists %v; want the two who acted (%s, %s), not the reader %s", listed, ah.Client, ch.Client, rh.Client)
	}

	// The observer has seen the chair's join; then the reader and the
	// drafter go: only the drafter's leave comes.
	if f := watch.Expect(t, "presence"); f.Event != "join" || !strings.Contains(string(f.Raw), ch.Client) {
		t.Errorf("observer got %s; want the chair's join", f.Raw)
	}
	reader.Close()
	time.Sleep(100 * time.Millisecond) // the reader's end is handled first
	a.Close()
	f := watch.Expect(t, "presence")
	if f.Event != "leave" || !strings.Contains(string(f.Raw), ah.Client) {
		t.Errorf("observer got %s; want only the drafter's leave (none for the reader %s)", f.Raw, rh.Client)
	}
}
