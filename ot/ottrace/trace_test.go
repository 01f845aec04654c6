package ottrace

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"communique/ot"
	"github.com/google/go-cmp/cmp"
)

const sample = `{
  "startContent": "Seoul 2013",
  "endContent": "서울 Conference 2013",
  "txns": [
    {"time": "2024-01-01T00:00:00Z", "patches": [[6, 0, "Conference "]]},
    {"time": "2024-01-01T00:00:01Z", "patches": [[0, 5, "서울"]]},
    {"time": "2024-01-01T00:00:02Z", "patches": [[2, 0, "\u00e9"], [2, 1, ""]]}
  ]
}`

func TestDecode(t *testing.T) {
	tr, err := Decode([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := &Trace{
		Start: "Seoul 2013",
		End:   "서울 Conference 2013",
		Txns: []Txn{
			{Patches: []Patch{{Pos: 6, Ins: "Conference "}}},
			{Patches: []Patch{{Pos: 0, Del: 5, Ins: "서울"}}},
			{Patches: []Patch{{Pos: 2, Ins: "é"}, {Pos: 2, Del: 1}}},
		},
	}
	if diff := cmp.Diff(want, tr); diff != "" {
		t.Fatalf("Decode mismatch (-want +got):\n%s", diff)
	}
	// Replaying it reproduces endContent.
	doc := ot.NewText(tr.Start)
	for _, txn := range tr.Txns {
		for _, p := range txn.Patches {
			if doc, err = doc.Apply(p.Op(doc.Len())); err != nil {
				t.Fatalf("patch %+v: %v", p, err)
			}
		}
	}
	if doc.String() != tr.End {
		t.Errorf("replay = %q; want %q", doc.String(), tr.End)
	}
}

func TestPatchOp(t *testing.T) {
	tests := []struct {
		p      Patch
		docLen int
		want   ot.Op
	}{
		{Patch{Pos: 3, Ins: "x"}, 10, ot.Op{{Retain: 3}, {Insert: "x"}, {Retain: 7}}},
		{Patch{Pos: 0, Del: 1}, 1, ot.Op{{Delete: 1}}},
		{Patch{Pos: 2, Del: 2, Ins: "🌐"}, 4, ot.Op{{Retain: 2}, {Insert: "🌐"}, {Delete: 2}}},
		{Patch{Pos: 0, Ins: "首尔"}, 0, ot.Op{{Insert: "首尔"}}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.p.Op(tt.docLen)); diff != "" {
			t.Errorf("%+v.Op(%d) mismatch (-want +got):\n%s", tt.p, tt.docLen, diff)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, s := range []string{
		``,
		`{"txns": []}`,
		`{"startContent": "", "endContent": "", "txns": [{"patches": [[1, 2]]}]}`,
		`{"startContent": "", "endContent": "", "txns": [{"patches": [[1, 2, 3]]}]}`,
		`{"startContent": "", "endContent": "", "txns": [{"patches": [[-1, 0, "x"]]}]}`,
		`{"startContent": "", "endContent": "", "txns": [{"patches": [[1.5, 0, "x"]]}]}`,
		`{"startContent": "", "endContent": "", "txns": [{"patches": [["a", 0, "x"]]}]}`,
	} {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%s) succeeded; want an error", s)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "t.json")
	if err := os.WriteFile(plain, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(sample))
	zw.Close()
	gz := filepath.Join(dir, "t.json.gz")
	if err := os.WriteFile(gz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Load(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(gz)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("gzipped and plain differ:\n%s", diff)
	}
	if _, err := Load(filepath.Join(dir, "missing.json.gz")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	bad := filepath.Join(dir, "bad.json.gz")
	os.WriteFile(bad, []byte("not gzip at all"), 0o644)
	if _, err := Load(bad); err == nil {
		t.Error("Load of a corrupt .gz succeeded")
	}
}
