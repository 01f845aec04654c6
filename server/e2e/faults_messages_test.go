package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"communique/ot"
	"communique/server/servertest"
)

// TestFaultBadMessages covers FAULTS.md cases 1–6 and the nested-JSON part
// of 12 on the socket: every row is sent by one delegate on the draft
// stream (text "Seoul 2013", 10 code points, version 0) and must be answered
// with an error frame of the given code (echoing seq where the message had
// a valid one), leave that socket open, send nothing to another delegate's
// socket, and leave the document exactly as it was.
func TestFaultBadMessages(t *testing.T) {
	opts := faultOptions()
	// Rows that reach the session spend rate-limit tokens; this test is
	// about validation, TestFaultFlood about the limit.
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	e := newFaultEnv(t, opts)
	before := e.get(t, e.doc)
	probe, _ := fltDial(t, e, e.doc, e.kor, nil)
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)

	// op builds an op message around the raw JSON of its op.
	op := func(version, rawOp string, seq int) string {
		return fmt.Sprintf(`{"type":"op","version":%s,"op":%s,"src":"probe","seq":%d}`, version, rawOp, seq)
	}
	deep := strings.Repeat("[", 30000) + strings.Repeat("]", 30000) // ~60 KB: under the 64 KiB frame limit

	tests := []struct {
		fault  int
		name   string
		frame  string
		binary bool
		code   string
		seq    uint64 // echoed in the error frame; 0: none
	}{
		// 1. Not a JSON object.
		{1, "not JSON", `hello`, false, "bad_message", 0},
		{1, "truncated JSON", `{"type":"op","version":0,"op":[10],"src":"probe"`, false, "bad_message", 0},
		{1, "JSON array", `[10]`, false, "bad_message", 0},
		{1, "JSON string", `"op"`, false, "bad_message", 0},
		{1, "JSON number", `42`, false, "bad_message", 0},
		{1, "JSON null", `null`, false, "bad_message", 0},
		{1, "empty frame", ``, false, "bad_message", 0},
		{1, "object followed by garbage", `{"type":"ping"} x`, false, "bad_message", 0},
		{1, "binary frame holding a valid op", op("0", `[10,"!"]`, 1), true, "bad_message", 0},
		// 2. Unknown type or a missing field.
		{2, "unknown type", `{"type":"delete_everything"}`, false, "bad_message", 0},
		{2, "type in capitals", `{"type":"OP","version":0,"op":[10],"src":"probe","seq":2}`, false, "bad_message", 0},
		{2, "no type", `{"version":0,"op":[10],"src":"probe","seq":3}`, false, "bad_message", 0},
		{2, "type not a string", `{"type":1}`, false, "bad_message", 0},
		{2, "type null", `{"type":null}`, false, "bad_message", 0},
		{2, "op without version", `{"type":"op","op":[10],"src":"probe","seq":4}`, false, "bad_message", 4},
		{2, "op without op", `{"type":"op","version":0,"src":"probe","seq":5}`, false, "bad_message", 5},
		{2, "op without src", `{"type":"op","version":0,"op":[10],"seq":6}`, false, "bad_message", 6},
		{2, "op with empty src", `{"type":"op","version":0,"op":[10],"src":"","seq":7}`, false, "bad_message", 7},
		{2, "op without seq", `{"type":"op","version":0,"op":[10],"src":"probe"}`, false, "bad_message", 0},
		{2, "op with seq 0", op("0", `[10]`, 0), false, "bad_message", 0},
		{2, "presence without version", `{"type":"presence","cursor":{"anchor":0,"head":0}}`, false, "bad_message", 0},
		// 3. Bad base versions.
		{3, "version negative", op("-1", `[10,"!"]`, 10), false, "bad_version", 10},
		{3, "version a float", op("1.5", `[10,"!"]`, 11), false, "bad_version", 11},
		{3, "version 0.0", op("0.0", `[10,"!"]`, 12), false, "bad_version", 12},
		{3, "version with exponent", op("1e2", `[10,"!"]`, 13), false, "bad_version", 13},
		{3, "version a string", op(`"0"`, `[10,"!"]`, 14), false, "bad_version", 14},
		{3, "version null", op("null", `[10,"!"]`, 15), false, "bad_version", 15},
		{3, "version 2^53+1", op("9007199254740993", `[10,"!"]`, 16), false, "bad_version", 16},
		{3, "version 2^64", op("18446744073709551616", `[10,"!"]`, 17), false, "bad_version", 17},
		{3, "version ahead of the server", op("1", `[10,"!"]`, 18), false, "bad_version", 18},
		// 4. Bad op parts.
		{4, "zero", op("0", `[0,10]`, 20), false, "bad_op", 20},
		{4, "minus zero", op("0", `[-0,10]`, 21), false, "bad_op", 21},
		{4, "empty string", op("0", `["",10]`, 22), false, "bad_op", 22},
		{4, "null", op("0", `[null,10]`, 23), false, "bad_op", 23},
		{4, "float", op("0", `[10.0]`, 24), false, "bad_op", 24},
		{4, "exponent", op("0", `[1e1]`, 25), false, "bad_op", 25},
		{4, "bool", op("0", `[true,10]`, 26), false, "bad_op", 26},
		{4, "object", op("0", `[{"retain":10}]`, 27), false, "bad_op", 27},
		{4, "nested array", op("0", `[[10]]`, 28), false, "bad_op", 28},
		// 010 is not JSON at all, so the message is refused before its op is read.
		{4, "leading zero", op("0", `[010]`, 29), false, "bad_message", 0},
		{4, "op a string", op("0", `"Seoul 2013!"`, 30), false, "bad_op", 30},
		{4, "op an object", op("0", `{"0":10}`, 31), false, "bad_op", 31},
		{4, "op null", op("0", `null`, 32), false, "bad_op", 32},
		{4, "insert of invalid UTF-8", op("0", "[10,\"\xff\xfe\"]", 33), false, "bad_op", 33},
		{4, "insert of a lone surrogate", op("0", `[10,"\ud800"]`, 34), false, "bad_op", 34},
		// 5. Counts that overflow.
		{5, "2^62 retained twice", op("0", `[4611686018427387904,4611686018427387904]`, 40), false, "bad_op", 40},
		{5, "2^62 deleted twice", op("0", `[-4611686018427387904,-4611686018427387904]`, 41), false, "bad_op", 41},
		{5, "2^53-1 retained twice", op("0", `[9007199254740991,9007199254740991]`, 42), false, "bad_op", 42},
		{5, "2^53-1 retained, a valid count for the wrong text", op("0", `[9007199254740991]`, 43), false, "bad_op", 43},
		{5, "2^64 retained", op("0", `[18446744073709551616]`, 44), false, "bad_op", 44},
		{5, "2^63 deleted", op("0", `[-9223372036854775808]`, 45), false, "bad_op", 45},
		// 6. Ops that do not span the text at their base version.
		{6, "retain too short", op("0", `[9]`, 50), false, "bad_op", 50},
		{6, "retain too long", op("0", `[11]`, 51), false, "bad_op", 51},
		{6, "insert only", op("0", `["x"]`, 52), false, "bad_op", 52},
		{6, "empty op", op("0", `[]`, 53), false, "bad_op", 53},
		{6, "delete past the end", op("0", `[10,-1]`, 54), false, "bad_op", 54},
		{6, "delete too much", op("0", `[-11]`, 55), false, "bad_op", 55},
		{6, "insert in the middle, one short", op("0", `[5,"x",4]`, 56), false, "bad_op", 56},
		// 12. Deep nesting within the frame limit (beyond it: TestFaultFrameLimit).
		{12, "30k nested arrays as the op", op("0", deep, 60), false, "bad_message", 0},
		{12, "30k nested arrays in an unknown field", `{"type":"ping","x":` + deep + `}`, false, "bad_message", 0},
	}

	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for _, tc := range tests {
		t.Run(fmt.Sprintf("case%d/%s", tc.fault, tc.name), func(t *testing.T) {
			var err error
			if tc.binary {
				err = probe.WS.WriteMessage(websocket.BinaryMessage, []byte(tc.frame))
			} else {
				err = probe.Send(tc.frame)
			}
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			f := fltExpect(t, probe, "error")
			if f.Code != tc.code {
				t.Errorf("got code %q (%s); want %q", f.Code, f.Message, tc.code)
			}
			if f.Seq != tc.seq {
				t.Errorf("got seq %d; want %d", f.Seq, tc.seq)
			}
			fltQuiet(t, probe) // the connection stays open
			fltQuiet(t, watch) // and the other delegate got nothing
			fltUnchanged(t, e, e.doc, before)
		})
	}
	// Case 5: no count was ever turned into an allocation. Everything this
	// loop did allocates a few MB at most; a buffer sized by one of those
	// counts would be petabytes (or a crash).
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 256<<20 {
		t.Errorf("the bad messages allocated %d MB; want a few", grew>>20)
	}
	e.s.MustDo(t, http.StatusOK, "GET", "/healthz", "", nil)

	// The probe's socket still edits, and the other delegate receives it.
	if err := probe.Send(fltOpMsg(0, ot.Op{}.Retain(10).Insert("!"), "probe", 100)); err != nil {
		t.Fatal(err)
	}
	if a := fltExpect(t, probe, "ack"); a.Seq != 100 || a.Version != 1 {
		t.Errorf("ack = %s; want seq 100 version 1", a.Raw)
	}
	if f := fltExpect(t, watch, "op"); f.Version != 1 || f.Author != "KOR" {
		t.Errorf("watcher got %s; want the op at version 1 by KOR", f.Raw)
	}
	if d := e.get(t, e.doc); d.Draft.Text != "Seoul 2013!" || d.Draft.Version != 1 {
		t.Errorf("draft = %+v; want %q at 1", *d.Draft, "Seoul 2013!")
	}
}

// TestFaultTooLarge covers FAULTS.md case 7: an insert that would push the
// document over its limit (1,000 code points here) is refused with
// too_large, over the socket and over PUT, and nothing changes. The limit
// counts code points, not bytes: 990 astral characters (3,960 bytes) bring
// "Seoul 2013" exactly to the limit and are accepted; a document at the
// limit may still shrink.
func TestFaultTooLarge(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	e := newFaultEnv(t, opts)
	probe, _ := fltDial(t, e, e.doc, e.kor, nil)
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
	before := e.get(t, e.doc)

	t.Run("socket", func(t *testing.T) {
		tests := []struct {
			name string
			op   ot.Op
		}{
			{"one over the limit", ot.Op{}.Retain(10).Insert(strings.Repeat("x", 991))},
			{"far over the limit", ot.Op{}.Retain(10).Insert(strings.Repeat("🌐", 5000))},
			{"replacing the text with too much", ot.Op{}.Insert(strings.Repeat("y", 1001)).Delete(10)},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				seq := uint64(i + 1)
				if err := probe.Send(fltOpMsg(0, tc.op, "probe", seq)); err != nil {
					t.Fatal(err)
				}
				f := fltExpect(t, probe, "error")
				if f.Code != "too_large" || f.Seq != seq {
					t.Errorf("got %s; want too_large with seq %d", f.Raw, seq)
				}
				fltQuiet(t, watch)
				fltUnchanged(t, e, e.doc, before)
			})
		}
	})
	t.Run("PUT", func(t *testing.T) {
		r := e.s.Do(t, "PUT", e.docPath(e.doc)+"/draft", e.kor,
			map[string]any{"base_version": 0, "text": strings.Repeat("z", 1001)})
		if r.Status != http.StatusRequestEntityTooLarge || r.ErrorCode() != "too_large" {
			t.Errorf("got %d %s; want 413 too_large", r.Status, r.Body)
		}
		fltQuiet(t, watch)
		fltUnchanged(t, e, e.doc, before)
	})
	t.Run("exactly at the limit in astral code points", func(t *testing.T) {
		ins := strings.Repeat("🌐", 990)
		if err := probe.Send(fltOpMsg(0, ot.Op{}.Retain(10).Insert(ins), "probe", 10)); err != nil {
			t.Fatal(err)
		}
		if a := fltExpect(t, probe, "ack"); a.Version != 1 {
			t.Fatalf("got %s; want ack at version 1", a.Raw)
		}
		fltExpect(t, watch, "op")
		// One more code point is too many …
		if err := probe.Send(fltOpMsg(1, ot.Op{}.Insert("x").Retain(1000), "probe", 11)); err != nil {
			t.Fatal(err)
		}
		if f := fltExpect(t, probe, "error"); f.Code != "too_large" {
			t.Errorf("got %s; want too_large", f.Raw)
		}
		// … but a document at its limit may still shrink.
		if err := probe.Send(fltOpMsg(1, ot.Op{}.Delete(6).Retain(994), "probe", 12)); err != nil {
			t.Fatal(err)
		}
		if a := fltExpect(t, probe, "ack"); a.Version != 2 {
			t.Fatalf("got %s; want ack at version 2", a.Raw)
		}
		d := e.get(t, e.doc)
		if want := "2013" + ins; d.Draft.Text != want || d.Draft.Version != 2 {
			t.Errorf("draft = %d code points at %d; want \"2013\" and 990 🌐 at 2", len([]rune(d.Draft.Text)), d.Draft.Version)
		}
	})
}

// TestFaultUnicodePositions covers FAULTS.md case 8: positions and lengths
// count code points through astral characters, a ZWJ family (5 code
// points), combining marks, CRLF, Hangul, CJK and Arabic, in the text ops
// retain over and in what they insert. Each step's expected text is written
// out by hand, not computed with the ot package under test.
func TestFaultUnicodePositions(t *testing.T) {
	opts := faultOptions()
	opts.WS.OpsPerSecond, opts.WS.OpsBurst = 1e6, 1e6
	e := newFaultEnv(t, opts)
	const initial = "🌐A👨\u200d👩\u200d👧B" // 🌐 A 👨 ZWJ 👩 ZWJ 👧 B: 8 code points
	e.s.Doc(t, e.summit, "annex-1", initial)
	a, _ := fltDial(t, e, "annex-1", e.kor, nil)
	b, _ := fltDial(t, e, "annex-1", e.gbr, nil)

	steps := []struct {
		name string
		op   string // JSON, positions in code points
		want string
	}{
		{"insert Hangul after an astral character", `[1,"한국",7]`, "🌐한국A👨\u200d👩\u200d👧B"},
		{"replace the ZWJ family (5 code points) with a combining sequence", `[4,-5,"e\u0301",1]`, "🌐한국Ae\u0301B"},
		{"append CRLF and CJK", `[7,"\r\n北京"]`, "🌐한국Ae\u0301B\r\n北京"},
		{"replace the combining mark alone with a flag (2 code points)", `[5,-1,"🇰🇷",5]`, "🌐한국Ae🇰🇷B\r\n北京"},
		{"replace the astral first character with Arabic", `[-1,"مرحبا ",11]`, "مرحبا 한국Ae🇰🇷B\r\n北京"},
		{"delete the CR of CRLF only", `[13,-1,3]`, "مرحبا 한국Ae🇰🇷B\n北京"},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			seq := i + 1
			if err := a.Send(fmt.Sprintf(`{"type":"op","version":%d,"op":%s,"src":"a","seq":%d}`, i, st.op, seq)); err != nil {
				t.Fatal(err)
			}
			if ack := fltExpect(t, a, "ack"); ack.Version != uint64(i+1) {
				t.Fatalf("got %s; want ack at version %d", ack.Raw, i+1)
			}
			if f := fltExpect(t, b, "op"); f.Version != uint64(i+1) || !fltSameOp(t, f.Op, st.op) {
				t.Errorf("other client got %s; want op %s at version %d", f.Raw, st.op, i+1)
			}
			if d := e.get(t, "annex-1"); d.Draft.Text != st.want {
				t.Errorf("draft = %q; want %q", d.Draft.Text, st.want)
			}
		})
	}
	// Now "مرحبا 한국Ae🇰🇷B\n北京": 16 code points, 35 UTF-8 bytes, 18
	// UTF-16 units.
	v := uint64(len(steps))

	t.Run("lengths in other units are refused", func(t *testing.T) {
		for _, n := range []int{35, 18} { // UTF-8 bytes; UTF-16 units
			msg := fmt.Sprintf(`{"type":"op","version":%d,"op":[%d],"src":"a","seq":%d}`, v, n, 100+n)
			if err := a.Send(msg); err != nil {
				t.Fatal(err)
			}
			if f := fltExpect(t, a, "error"); f.Code != "bad_op" {
				t.Errorf("retain %d: got %s; want bad_op", n, f.Raw)
			}
		}
		fltQuiet(t, b)
	})

	// Two clients insert at the same position on the same base, right after
	// an astral character: the op being transformed (the later one, b's)
	// goes to the left.
	t.Run("concurrent inserts after astral characters", func(t *testing.T) {
		if err := a.Send(fmt.Sprintf(`{"type":"op","version":%d,"op":[12,"①",4],"src":"a","seq":200}`, v)); err != nil {
			t.Fatal(err)
		}
		if ack := fltExpect(t, a, "ack"); ack.Version != v+1 {
			t.Fatalf("a: got %s; want ack at %d", ack.Raw, v+1)
		}
		if err := b.Send(fmt.Sprintf(`{"type":"op","version":%d,"op":[12,"②",4],"src":"b","seq":1}`, v)); err != nil {
			t.Fatal(err)
		}
		// b sees a's op, then its own ack.
		if f := fltExpect(t, b, "op"); f.Version != v+1 {
			t.Fatalf("b: got %s; want a's op at %d", f.Raw, v+1)
		}
		if ack := fltExpect(t, b, "ack"); ack.Version != v+2 {
			t.Fatalf("b: got %s; want ack at %d", ack.Raw, v+2)
		}
		f := fltExpect(t, a, "op")
		if want := `[12,"②",5]`; !fltSameOp(t, f.Op, want) {
			t.Errorf("a got b's op as %s; want %s", f.Op, want)
		}
		want := "مرحبا 한국Ae🇰🇷②①B\n北京"
		if d := e.get(t, "annex-1"); d.Draft.Text != want || d.Draft.Version != v+2 {
			t.Errorf("draft = %q at %d; want %q at %d", d.Draft.Text, d.Draft.Version, want, v+2)
		}
	})

	t.Run("PUT merges by code points", func(t *testing.T) {
		d := e.get(t, "annex-1")
		next := strings.Replace(d.Draft.Text, "北京", "北京 👨\u200d👩\u200d👧", 1)
		r := e.s.MustDo(t, http.StatusOK, "PUT", e.docPath("annex-1")+"/draft", e.gbr,
			map[string]any{"base_version": d.Draft.Version, "text": next})
		var out servertest.StreamState
		r.JSON(t, &out)
		if out.Text != next || out.Version != d.Draft.Version+1 {
			t.Errorf("PUT = %+v; want %q at %d", out, next, d.Draft.Version+1)
		}
		// The insert comes after 18 code points: the op must say so.
		if f := fltExpect(t, a, "op"); !fltSameOp(t, f.Op, `[18," 👨‍👩‍👧"]`) {
			t.Errorf("a got %s; want [18,\" 👨‍👩‍👧\"]", f.Op)
		}
	})
}

// TestFaultRetainOnlyOp covers FAULTS.md case 9. The server's documented
// choice (PROTOCOL.md: "Every accepted op gets the next version, even one
// that transformed to nothing"): an op that only retains is acknowledged
// with a new version, broadcast like any other, and leaves the text as it
// was.
func TestFaultRetainOnlyOp(t *testing.T) {
	e := newFaultEnv(t, faultOptions())
	e.s.Doc(t, e.summit, "empty", "")
	for _, tc := range []struct {
		doc, op string
		text    string
	}{
		{e.doc, `[10]`, e.initial},
		{"empty", `[]`, ""},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			p, _ := fltDial(t, e, tc.doc, e.kor, nil)
			w, _ := fltDial(t, e, tc.doc, e.gbr, nil)
			if err := p.Send(`{"type":"op","version":0,"op":` + tc.op + `,"src":"p","seq":1}`); err != nil {
				t.Fatal(err)
			}
			if a := fltExpect(t, p, "ack"); a.Version != 1 {
				t.Errorf("got %s; want ack at version 1", a.Raw)
			}
			if f := fltExpect(t, w, "op"); f.Version != 1 || !fltSameOp(t, f.Op, tc.op) {
				t.Errorf("other client got %s; want %s at version 1", f.Raw, tc.op)
			}
			if d := e.get(t, tc.doc); d.Draft.Text != tc.text || d.Draft.Version != 1 {
				t.Errorf("draft = %+v; want %q at 1", *d.Draft, tc.text)
			}
		})
	}
}

// TestFaultForgedIdentity covers FAULTS.md case 10: fields a client may
// forge — author, role, delegation, name, client, stream in an op; role and
// delegation in the handshake query — are ignored; identity comes from the
// token, in the broadcast, in the stored log and in hellos.
func TestFaultForgedIdentity(t *testing.T) {
	e := newFaultEnv(t, faultOptions())
	q := url.Values{"role": {"chair"}, "delegation": {"USA"}, "name": {"Chair"}}
	p, h := fltDial(t, e, e.doc, e.kor, q)
	if h.Role != "delegate" || !strings.Contains(string(h.Raw), `"delegation":"KOR"`) {
		t.Errorf("hello = %s; want role delegate, delegation KOR", h.Raw)
	}
	w, _ := fltDial(t, e, e.doc, e.gbr, nil)
	forged := `{"type":"op","version":0,"op":[10,"!"],"src":"p","seq":1,` +
		`"author":"chair","role":"chair","delegation":"USA","name":"The Chair","client":"c0","stream":"approved"}`
	if err := p.Send(forged); err != nil {
		t.Fatal(err)
	}
	if a := fltExpect(t, p, "ack"); a.Version != 1 {
		t.Fatalf("got %s; want ack at version 1", a.Raw)
	}
	f := fltExpect(t, w, "op")
	if f.Author != "KOR" || f.Stream != "draft" || strings.Contains(string(f.Raw), "Chair") || strings.Contains(string(f.Raw), "USA") {
		t.Errorf("broadcast = %s; want author KOR on draft, nothing forged", f.Raw)
	}
	d := e.get(t, e.doc)
	if d.Draft.Text != "Seoul 2013!" || d.Approved.Version != 0 || d.Approved.Text != e.initial {
		t.Errorf("doc = %+v; want the edit in the draft only", d)
	}
	// The stored record, as a catch-up replays it after a restart.
	e.s.Restart(t)
	c, _ := fltDial(t, e, e.doc, e.gbr, url.Values{"since": {"0"}})
	if f := fltExpect(t, c, "op"); f.Author != "KOR" || strings.Contains(string(f.Raw), "USA") {
		t.Errorf("stored op = %s; want author KOR", f.Raw)
	}
}

// fltSameOp reports whether the op JSON got means the op want: the server
// sends ops in canonical form (an insert before an adjacent delete) and
// encodes strings its own way, so the bytes may differ.
func fltSameOp(t *testing.T, got []byte, want string) bool {
	t.Helper()
	g, err := ot.Parse(got)
	if err != nil {
		t.Errorf("server sent op %s: %v", got, err)
		return false
	}
	w, err := ot.Parse([]byte(want))
	if err != nil {
		t.Fatalf("test op %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}
