package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Target is the server under load: its base URL and a token that may create
// documents and tokens (the admin's, or a chair's with an existing summit).
type Target struct {
	URL   string // http://127.0.0.1:port
	Token string
	http  *http.Client
}

// ErrNotLoopback refuses a target that is not this machine: the load
// generator opens thousands of sockets and must never be pointed at
// someone else's server by mistake.
var ErrNotLoopback = errors.New("only loopback targets (127.0.0.1, ::1, localhost) may be loaded")

// NewTarget checks that raw is an http URL on a loopback address.
func NewTarget(raw, token string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("target %q: scheme must be http (loopback only)", raw)
	}
	host := u.Hostname()
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("target %q: %w", raw, ErrNotLoopback)
		}
	}
	return &Target{
		URL:   strings.TrimRight(u.Scheme+"://"+u.Host, "/"),
		Token: token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// wsURL is the socket address of a document stream.
func (t *Target) wsURL(summit, doc, stream string, since *uint64) string {
	u := "ws" + strings.TrimPrefix(t.URL, "http") + "/api/summits/" + summit + "/docs/" + doc + "/ws?stream=" + stream
	if since != nil {
		u += fmt.Sprintf("&since=%d", *since)
	}
	return u
}

// call sends a JSON request with the target's token and decodes a JSON
// answer into out (when not nil). A status other than want is an error
// carrying the body.
func (t *Target) call(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.URL+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %.300s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// CreateSummit creates a summit (admin token).
func (t *Target) CreateSummit(ctx context.Context, id, title string) error {
	return t.call(ctx, "POST", "/api/summits", map[string]string{"id": id, "title": title}, nil, http.StatusCreated)
}

// CreateDoc creates a document with its initial text.
func (t *Target) CreateDoc(ctx context.Context, summit, id, title, text string) error {
	return t.call(ctx, "POST", "/api/summits/"+summit+"/docs",
		map[string]string{"id": id, "title": title, "text": text}, nil, http.StatusCreated)
}

// CreateToken issues a token and returns its secret. delegation is for
// delegates only.
func (t *Target) CreateToken(ctx context.Context, summit, role, delegation, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := t.call(ctx, "POST", "/api/summits/"+summit+"/tokens",
		map[string]string{"role": role, "delegation": delegation, "name": name}, &out, http.StatusCreated)
	return out.Token, err
}

// StreamText is one stream of a document as GET …/docs/{d} answers it.
type StreamText struct {
	Version uint64 `json:"version"`
	Text    string `json:"text"`
}

// GetDraft reads the draft of a document.
func (t *Target) GetDraft(ctx context.Context, summit, doc string) (StreamText, error) {
	var out struct {
		Draft *StreamText `json:"draft"`
	}
	if err := t.call(ctx, "GET", "/api/summits/"+summit+"/docs/"+doc, nil, &out, http.StatusOK); err != nil {
		return StreamText{}, err
	}
	if out.Draft == nil {
		return StreamText{}, fmt.Errorf("GET document %s/%s: no draft in the answer (is the token an observer's?)", summit, doc)
	}
	return *out.Draft, nil
}

// WaitHealthy polls /healthz until it answers 200 or ctx ends.
func (t *Target) WaitHealthy(ctx context.Context) error {
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", t.URL+"/healthz", nil)
		if err != nil {
			return fmt.Errorf("healthz: %w", err)
		}
		resp, err := t.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s not healthy: %w", t.URL, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fetch GETs path with the token and returns the body (for pprof).
func (t *Target) fetch(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", t.URL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	c := &http.Client{} // a CPU profile takes as long as it was asked to
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %.200s", path, resp.StatusCode, data)
	}
	return data, nil
}
