package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

// Helpers of the chair's-office tests (chair_*_test.go). They return errors
// rather than failing the test where a goroutine other than the test's may
// call them.

// chrChange is one entry of GET …/changes (and of decided lists).
type chrChange struct {
	ID            string   `json:"id"`
	Old           string   `json:"old"`
	New           string   `json:"new"`
	ApprovedStart int      `json:"approved_start"`
	ApprovedEnd   int      `json:"approved_end"`
	DraftStart    int      `json:"draft_start"`
	DraftEnd      int      `json:"draft_end"`
	Authors       []string `json:"authors"`
}

type chrChanges struct {
	DraftVersion    uint64      `json:"draft_version"`
	ApprovedVersion uint64      `json:"approved_version"`
	Changes         []chrChange `json:"changes"`
}

type chrDecided struct {
	DraftVersion    uint64      `json:"draft_version"`
	ApprovedVersion uint64      `json:"approved_version"`
	Decided         []chrChange `json:"decided"`
}

type chrHistoryOp struct {
	Version  uint64          `json:"version"`
	Op       json.RawMessage `json:"op"`
	Author   string          `json:"author"`
	Name     string          `json:"name"`
	Time     int64           `json:"time"`
	Decision *struct {
		Kind    string   `json:"kind"`
		Change  string   `json:"change"`
		Old     string   `json:"old"`
		New     string   `json:"new"`
		Authors []string `json:"authors"`
	} `json:"decision"`
}

type chrHistory struct {
	Stream string         `json:"stream"`
	Ops    []chrHistoryOp `json:"ops"`
	Next   *uint64        `json:"next"`
}

type chrDecision struct {
	Kind    string    `json:"kind"`
	Change  string    `json:"change"`
	Old     string    `json:"old"`
	New     string    `json:"new"`
	Authors []string  `json:"authors"`
	By      string    `json:"by"`
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"`
	Version uint64    `json:"version"`
}

// chrDocPath is the API path of a document of seoul-2013.
func chrDocPath(d string) string { return "/api/summits/seoul-2013/docs/" + d }

// chrGet does a GET and decodes a 200 answer into v.
func chrGet(s *servertest.Server, path, token string, v any) error {
	req, err := http.NewRequest("GET", s.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode %s: %w", path, body, err)
	}
	return nil
}

// chrPost does a POST with a JSON body (none when nil) and returns the
// status and body.
func chrPost(s *servertest.Server, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest("POST", s.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// chrHistoryAll reads a stream's whole history through the paged endpoint.
func chrHistoryAll(t *testing.T, s *servertest.Server, d, stream, token string, limit int) []chrHistoryOp {
	t.Helper()
	var out []chrHistoryOp
	after := uint64(0)
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("history of %s never ends", stream)
		}
		var h chrHistory
		path := fmt.Sprintf("%s/history?stream=%s&after=%d&limit=%d", chrDocPath(d), stream, after, limit)
		if err := chrGet(s, path, token, &h); err != nil {
			t.Fatal(err)
		}
		if h.Stream != stream {
			t.Fatalf("history stream = %q; want %q", h.Stream, stream)
		}
		out = append(out, h.Ops...)
		if h.Next == nil {
			return out
		}
		if len(h.Ops) == 0 || *h.Next != h.Ops[len(h.Ops)-1].Version {
			t.Fatalf("history page after %d: next %d after ops %+v", after, *h.Next, h.Ops)
		}
		after = *h.Next
	}
}

// chrReplay applies ops to initial and returns the text after each version
// (texts[v] is the text at version v).
func chrReplay(t *testing.T, initial string, ops []chrHistoryOp) []string {
	t.Helper()
	texts := []string{initial}
	for i, h := range ops {
		if h.Version != uint64(i+1) {
			t.Fatalf("history op %d has version %d; want %d", i, h.Version, i+1)
		}
		op, err := ot.Parse(h.Op)
		if err != nil {
			t.Fatalf("history op %d: %v", h.Version, err)
		}
		next, err := ot.Apply(texts[i], op)
		if err != nil {
			t.Fatalf("replay op %d: %v", h.Version, err)
		}
		texts = append(texts, next)
	}
	return texts
}

// chrText is GET …/text.
func chrText(t *testing.T, s *servertest.Server, d, stream string, version uint64, token string) string {
	t.Helper()
	var out struct {
		Stream  string
		Version uint64
		Text    string
	}
	if err := chrGet(s, fmt.Sprintf("%s/text?stream=%s&version=%d", chrDocPath(d), stream, version), token, &out); err != nil {
		t.Fatal(err)
	}
	if out.Stream != stream || out.Version != version {
		t.Fatalf("text of %s at %d answered %s at %d", stream, version, out.Stream, out.Version)
	}
	return out.Text
}

// chrOpRange is the range an op deletes and what it inserts there, for ops
// of the shape the chair's decisions make (retain, insert, delete, retain).
func chrOpRange(t *testing.T, raw json.RawMessage) (start, end int, ins string) {
	t.Helper()
	op, err := ot.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	start = -1
	for _, c := range op {
		switch {
		case c.Retain > 0:
			if start >= 0 {
				return start, end, ins
			}
			pos += c.Retain
		case c.Insert != "":
			if start < 0 {
				start, end = pos, pos
			}
			ins += c.Insert
		case c.Delete > 0:
			if start < 0 {
				start, end = pos, pos
			}
			end += c.Delete
		}
	}
	if start < 0 {
		start, end = pos, pos
	}
	return start, end, ins
}

func chrRunes(s string, from, to int) string {
	r := []rune(s)
	return string(r[from:to])
}
