package wire

import (
	"encoding/json"
	"testing"
)

// TestHelloFrameSplicesText: a hello whose text comes encoded (TextJSON)
// is the same message as one that carries it as a string.
func TestHelloFrameSplicesText(t *testing.T) {
	text := "Seoul <2013> & \"Framework\"\n서울 👨‍👩‍👧 e\u0301"
	enc, err := json.Marshal(text)
	if err != nil {
		t.Fatal(err)
	}
	h := Hello{Type: "hello", Stream: "draft", Version: 7, Head: 7, Role: "delegate", Client: "c1", Presence: []Peer{}}
	plain := h
	plain.Text = &text
	spliced := h
	spliced.TextJSON = enc

	decode := func(f *Frame) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(f.Data, &m); err != nil {
			t.Fatalf("frame payload is not JSON: %v: %s", err, f.Data)
		}
		return m
	}
	a, b := decode(plain.Frame()), decode(spliced.Frame())
	if b["text"] != text {
		t.Errorf("spliced text = %q; want %q", b["text"], text)
	}
	if len(a) != len(b) {
		t.Errorf("fields differ: %v vs %v", a, b)
	}
	for k, v := range a {
		if k != "presence" && k != "limits" && b[k] != v {
			t.Errorf("field %s: %v vs %v", k, v, b[k])
		}
	}
}
