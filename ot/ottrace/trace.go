// Package ottrace loads sequential editing traces in the format of
// josephg/editing-traces (see testdata/traces/README.md) and turns their
// patches into ot ops, for replay tests and benchmarks.
package ottrace

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"communique/ot"
)

// Trace is a whole editing history: the text before and after, and the
// transactions in between.
type Trace struct {
	Start, End string
	Txns       []Txn
}

// Txn is one transaction. Its patches are in descending position order, so
// applying them one after another to the document is correct.
type Txn struct {
	Patches []Patch
}

// Patch removes Del code points at Pos and then inserts Ins there.
type Patch struct {
	Pos, Del int
	Ins      string
}

// Op returns the op performing p on a document of docLen code points:
// retain Pos, insert Ins, delete Del, retain the rest. It does not check that
// the patch fits; applying an op for a patch that does not fit fails with
// ot.ErrBadOp.
func (p Patch) Op(docLen int) ot.Op {
	return make(ot.Op, 0, 4).Retain(p.Pos).Insert(p.Ins).Delete(p.Del).Retain(docLen - p.Pos - p.Del)
}

// UnmarshalJSON decodes the wire form [pos, delCount, insText].
func (p *Patch) UnmarshalJSON(data []byte) error {
	// The traces hold hundreds of thousands of patches; splitting the array
	// by hand is several times faster than decoding it through reflection.
	// encoding/json has already checked that data is well-formed JSON.
	fields, ok := splitTriple(data)
	if !ok {
		return fmt.Errorf("ottrace: patch %s is not [pos, delCount, insText]", data)
	}
	var q Patch
	var err error
	if q.Pos, err = strconv.Atoi(string(fields[0])); err != nil || q.Pos < 0 {
		return fmt.Errorf("ottrace: bad patch position in %s", data)
	}
	if q.Del, err = strconv.Atoi(string(fields[1])); err != nil || q.Del < 0 {
		return fmt.Errorf("ottrace: bad patch delete count in %s", data)
	}
	if err := json.Unmarshal(fields[2], &q.Ins); err != nil {
		return fmt.Errorf("ottrace: patch insert text: %w", err)
	}
	*p = q
	return nil
}

// splitTriple splits a well-formed JSON array of two numbers and a string
// into its three elements, without surrounding whitespace.
func splitTriple(data []byte) (fields [3][]byte, ok bool) {
	data = bytes.TrimSpace(data)
	if len(data) < 2 || data[0] != '[' || data[len(data)-1] != ']' {
		return fields, false
	}
	rest := data[1 : len(data)-1]
	for i := range 2 {
		j := bytes.IndexByte(rest, ',')
		if j < 0 {
			return fields, false
		}
		fields[i] = bytes.TrimSpace(rest[:j])
		rest = rest[j+1:]
	}
	fields[2] = bytes.TrimSpace(rest)
	return fields, len(fields[2]) > 0 && fields[2][0] == '"'
}

type fileTrace struct {
	StartContent *string `json:"startContent"`
	EndContent   *string `json:"endContent"`
	Txns         []struct {
		Patches []Patch `json:"patches"`
	} `json:"txns"`
}

// Load reads a trace file: gzipped when its name ends in .gz (or it starts
// with the gzip magic number), plain JSON otherwise.
func Load(path string) (*Trace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ottrace: %w", err)
	}
	if strings.HasSuffix(path, ".gz") || bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("ottrace: %s: %w", path, err)
		}
		// The gzip trailer records the uncompressed size (mod 2^32): use it
		// to read into one buffer instead of growing one step by step.
		hint := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
		buf := bytes.NewBuffer(make([]byte, 0, min(hint, 1<<28)+bytes.MinRead))
		if _, err := buf.ReadFrom(zr); err != nil {
			return nil, fmt.Errorf("ottrace: %s: %w", path, err)
		}
		data = buf.Bytes()
	}
	return Decode(data)
}

// Decode parses an uncompressed trace.
func Decode(data []byte) (*Trace, error) {
	var ft fileTrace
	if err := json.Unmarshal(data, &ft); err != nil {
		return nil, fmt.Errorf("ottrace: %w", err)
	}
	if ft.StartContent == nil || ft.EndContent == nil {
		return nil, fmt.Errorf("ottrace: missing startContent or endContent")
	}
	t := &Trace{Start: *ft.StartContent, End: *ft.EndContent, Txns: make([]Txn, len(ft.Txns))}
	for i, txn := range ft.Txns {
		t.Txns[i] = Txn{Patches: txn.Patches}
	}
	return t, nil
}
