// Command otcheck answers the web client's unit tests with the server's own
// ot package, so the JavaScript OT is checked against the Go one on the
// same random cases. It reads one JSON case per line on stdin and writes
// one JSON result per line:
//
//	{"text":"…","a":[…],"b":[…],"pos":3}
//	→ {"transform":[a2,b2],"compose":[…]|null,"apply_a":"…","index":n,"index_right":n}
//
// compose is of a then b2 (always defined); index is TransformIndex of pos
// through a.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"communique/ot"
)

type testCase struct {
	Text string          `json:"text"`
	A    json.RawMessage `json:"a"`
	B    json.RawMessage `json:"b"`
	Pos  int             `json:"pos"`
}

type result struct {
	Transform  [2]ot.Op `json:"transform"`
	Compose    ot.Op    `json:"compose"`
	ApplyA     string   `json:"apply_a"`
	Index      int      `json:"index"`
	IndexRight int      `json:"index_right"`
	Err        string   `json:"err,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var c testCase
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "otcheck:", err)
			os.Exit(2)
		}
		_ = enc.Encode(run(c))
	}
}

func run(c testCase) (r result) {
	a, err := ot.Parse(c.A)
	if err != nil {
		return result{Err: err.Error()}
	}
	b, err := ot.Parse(c.B)
	if err != nil {
		return result{Err: err.Error()}
	}
	a2, b2, err := ot.Transform(a, b)
	if err != nil {
		return result{Err: err.Error()}
	}
	r.Transform = [2]ot.Op{a2, b2}
	if r.Compose, err = ot.Compose(a, b2); err != nil {
		return result{Err: err.Error()}
	}
	if r.ApplyA, err = ot.Apply(c.Text, a); err != nil {
		return result{Err: err.Error()}
	}
	r.Index = ot.TransformIndex(c.Pos, a, false)
	r.IndexRight = ot.TransformIndex(c.Pos, a, true)
	return r
}
