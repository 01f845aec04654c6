package ot_test

import (
	"sync"
	"testing"

	"communique/ot"
	"communique/ot/ottrace"
)

// The trace is part of the repository (see testdata/traces/README.md); tests
// never read anything outside it.
const automergePaper = "../testdata/traces/automerge-paper.json.gz"

var loadTrace = sync.OnceValues(func() (*ottrace.Trace, error) {
	return ottrace.Load(automergePaper)
})

func trace(tb testing.TB) *ottrace.Trace {
	tb.Helper()
	tr, err := loadTrace()
	if err != nil {
		tb.Fatalf("loading trace: %v", err)
	}
	return tr
}

// traceOps builds, for every patch, the op a server would receive for it.
func traceOps(tb testing.TB, tr *ottrace.Trace) []ot.Op {
	tb.Helper()
	var ops []ot.Op
	n := []rune(tr.Start)
	docLen := len(n)
	for _, txn := range tr.Txns {
		for _, p := range txn.Patches {
			op := p.Op(docLen)
			ops = append(ops, op)
			docLen = op.TargetLen()
		}
	}
	return ops
}

func TestTraceAutomergePaper(t *testing.T) {
	tr := trace(t)
	if got, want := len(tr.Txns), 259778; got != want {
		t.Fatalf("trace has %d txns; want %d", got, want)
	}
	ops := traceOps(t, tr)
	doc := ot.NewText(tr.Start)
	var err error
	var mid ot.Text
	var midString string
	inverses := make([]ot.Op, len(ops))
	for i, op := range ops {
		doc, inverses[i], err = doc.ApplyInvert(op)
		if err != nil {
			t.Fatalf("op %d %s: %v", i, mustJSON(t, op), err)
		}
		if i == len(ops)/2 {
			mid, midString = doc, doc.String()
		}
	}
	if got := doc.String(); got != tr.End {
		t.Fatalf("replayed text differs from endContent (len %d vs %d)", len(got), len(tr.End))
	}
	if got, want := doc.Len(), 104852; got != want {
		t.Errorf("final length %d; want %d", got, want)
	}
	// The snapshot taken halfway must be unaffected by the later edits,
	// which share most of its nodes.
	if mid.String() != midString {
		t.Errorf("snapshot changed after later edits")
	}
	// Undo everything, newest first: back to startContent, passing through
	// the halfway snapshot.
	for i := len(inverses) - 1; i >= 0; i-- {
		if doc, err = doc.Apply(inverses[i]); err != nil {
			t.Fatalf("undo %d %s: %v", i, mustJSON(t, inverses[i]), err)
		}
		if i == len(ops)/2+1 && doc.String() != midString {
			t.Fatalf("undo did not pass through the halfway text")
		}
	}
	if doc.String() != tr.Start {
		t.Errorf("undoing every op gives %d code points; want startContent", doc.Len())
	}
}

func mustJSON(tb testing.TB, op ot.Op) string {
	tb.Helper()
	data, err := op.MarshalJSON()
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// TestTraceWireReplay replays a prefix of the trace the way the server gets
// it: each op marshalled to JSON, parsed, applied.
func TestTraceWireReplay(t *testing.T) {
	tr := trace(t)
	ops := traceOps(t, tr)
	n := 20000
	if testing.Short() {
		n = 2000
	}
	doc := ot.NewText(tr.Start)
	for i, op := range ops[:n] {
		data, err := op.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ot.Parse(data)
		if err != nil {
			t.Fatalf("op %d %s: %v", i, data, err)
		}
		if doc, err = doc.Apply(got); err != nil {
			t.Fatalf("op %d %s: %v", i, data, err)
		}
	}
	want := ot.NewText(tr.Start)
	for _, op := range ops[:n] {
		want, _ = want.Apply(op)
	}
	if doc.String() != want.String() {
		t.Errorf("wire replay differs from direct replay")
	}
}

// BenchmarkTraceAutomergePaper replays the whole trace (259,778 single
// character edits) through Text.Apply, building each op [pos, "x" or -1,
// rest] from its patch inside the timed loop, as a server would receive it.
func BenchmarkTraceAutomergePaper(b *testing.B) {
	tr := trace(b)
	var patches []ottrace.Patch
	for _, txn := range tr.Txns {
		patches = append(patches, txn.Patches...)
	}
	replay := func() ot.Text {
		doc := ot.NewText(tr.Start)
		var err error
		for _, p := range patches {
			if doc, err = doc.Apply(p.Op(doc.Len())); err != nil {
				b.Fatal(err)
			}
		}
		return doc
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if doc := replay(); doc.Len() != 104852 {
			b.Fatal("wrong final length")
		}
	}
	b.StopTimer()
	// Checked outside the timed loop: String is O(n) and not part of a replay.
	if replay().String() != tr.End {
		b.Fatal("replay does not reproduce endContent")
	}
}

// BenchmarkTraceAutomergePaperWire adds the wire decoding: each op arrives as
// JSON and is parsed before it is applied.
func BenchmarkTraceAutomergePaperWire(b *testing.B) {
	tr := trace(b)
	ops := traceOps(b, tr)
	wire := make([][]byte, len(ops))
	for i, op := range ops {
		data, err := op.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		wire[i] = data
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		doc := ot.NewText(tr.Start)
		for _, data := range wire {
			op, err := ot.Parse(data)
			if err != nil {
				b.Fatal(err)
			}
			if doc, err = doc.Apply(op); err != nil {
				b.Fatal(err)
			}
		}
		if doc.Len() != 104852 {
			b.Fatal("wrong final length")
		}
	}
}
