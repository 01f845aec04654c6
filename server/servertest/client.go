package servertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"communique/ot"
	"communique/server/loadtest"
)

// Frame is one message received from the server.
type Frame struct {
	Type    string          `json:"type"`
	Stream  string          `json:"stream"`
	Version uint64          `json:"version"`
	Head    uint64          `json:"head"`
	Text    *string         `json:"text"`
	Op      json.RawMessage `json:"op"`
	Author  string          `json:"author"`
	Src     string          `json:"src"`
	Seq     uint64          `json:"seq"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Role    string          `json:"role"`
	Client  string          `json:"client"`
	Event   string          `json:"event"`
	Raw     []byte          `json:"-"`
}

// ErrTimeout is returned by Conn.Next when no frame came in time.
var ErrTimeout = errors.New("no frame in time")

// Conn is a raw protocol connection: a WebSocket whose frames are read by a
// goroutine into a buffered channel.
type Conn struct {
	WS     *websocket.Conn
	frames chan Frame
	// Closed receives the read error that ended the connection (a
	// *websocket.CloseError for a close frame).
	Closed chan error
}

// WSPath is the socket path of a document.
func WSPath(summit, doc string) string {
	return "/api/summits/" + summit + "/docs/" + doc + "/ws"
}

// Dial opens a socket. q holds query parameters (stream, since, token);
// header may carry Authorization or Origin. On a refused handshake it
// returns the HTTP response with the error.
func (s *Endpoint) Dial(summit, doc, token string, q url.Values, header http.Header) (*Conn, *http.Response, error) {
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	u := "ws://" + s.Addr + WSPath(summit, doc)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(u, header)
	if err != nil {
		return nil, resp, err
	}
	c := &Conn{WS: ws, frames: make(chan Frame, 1<<14), Closed: make(chan error, 1)}
	go c.read()
	return c, resp, nil
}

func (c *Conn) read() {
	defer close(c.frames)
	for {
		_, data, err := c.WS.ReadMessage()
		if err != nil {
			c.Closed <- err
			return
		}
		var f Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.Closed <- fmt.Errorf("server sent non-JSON %q: %w", data, err)
			return
		}
		f.Raw = data
		c.frames <- f
	}
}

// Next returns the next frame, ErrTimeout, or the error that closed the
// connection.
func (c *Conn) Next(timeout time.Duration) (Frame, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			select {
			case err := <-c.Closed:
				c.Closed <- err
				return Frame{}, err
			default:
				return Frame{}, errors.New("connection closed")
			}
		}
		return f, nil
	case <-time.After(timeout):
		return Frame{}, ErrTimeout
	}
}

// Expect returns the next frame and fails the test unless it has type typ.
func (c *Conn) Expect(t testing.TB, typ string) Frame {
	t.Helper()
	f, err := c.Next(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for %q: %v", typ, err)
	}
	if f.Type != typ {
		t.Fatalf("got frame %s; want type %q", f.Raw, typ)
	}
	return f
}

// Send writes one text frame of v encoded as JSON ([]byte and string are
// sent as they are).
func (c *Conn) Send(v any) error {
	var data []byte
	switch b := v.(type) {
	case []byte:
		data = b
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			return err
		}
	}
	return c.WS.WriteMessage(websocket.TextMessage, data)
}

// Close closes the TCP connection without a close handshake, like a client
// that lost its network.
func (c *Conn) Close() { _ = c.WS.NetConn().Close() }

// Client is a protocol client with client-side OT (ot.js's states:
// synchronized, awaiting ack, awaiting with buffer), for tests that edit
// concurrently, disconnect and reconnect. The OT state machine is
// loadtest.OTClient, shared with the load generator; its Src, Text and
// Version fields are the client's.
type Client struct {
	loadtest.OTClient
	s           *Endpoint
	Summit, Doc string
	Token       string
	Conn        *Conn
	Acked       map[uint64]uint64 // seq -> version the server gave it
	Errors      []Frame
}

// NewClient connects a drafting client to the draft stream.
func (s *Endpoint) NewClient(t testing.TB, summit, doc, token, src string) *Client {
	t.Helper()
	c, err := s.Connect(summit, doc, token, src)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Connect is NewClient for goroutines other than the test's.
func (s *Endpoint) Connect(summit, doc, token, src string) (*Client, error) {
	c := &Client{OTClient: loadtest.OTClient{Src: src}, s: s, Summit: summit, Doc: doc, Token: token, Acked: map[uint64]uint64{}}
	if err := c.connect(nil); err != nil {
		return nil, fmt.Errorf("client %s: %w", src, err)
	}
	return c, nil
}

func (c *Client) connect(since *uint64) error {
	q := url.Values{"stream": {"draft"}}
	if since != nil {
		q.Set("since", strconv.FormatUint(*since, 10))
	}
	conn, resp, err := c.s.Dial(c.Summit, c.Doc, c.Token, q, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return fmt.Errorf("dial (status %d): %w", status, err)
	}
	h, err := conn.Next(5 * time.Second)
	if err != nil || h.Type != "hello" {
		conn.Close()
		return fmt.Errorf("hello: %v %s", err, h.Raw)
	}
	c.Conn = conn
	if since == nil {
		if h.Text == nil {
			return fmt.Errorf("hello without text: %s", h.Raw)
		}
		c.Reset(*h.Text, h.Version)
		return nil
	}
	if h.Version != *since {
		return fmt.Errorf("hello version %d; want since %d", h.Version, *since)
	}
	// Resend the op whose ack may have been lost, as it was (same seq and
	// base): the server either applies it, transformed over what happened
	// since, or recognises the resend and acks it again.
	if out := c.InFlight(); out != nil {
		c.send(out)
	}
	return nil
}

// MoveTo makes the client's next (re)connection go to e: a client of an
// instance that died reconnects to another one.
func (c *Client) MoveTo(e *Endpoint) { c.s = e }

// Connected reports whether the client has a socket.
func (c *Client) Connected() bool { return c.Conn != nil }

// Disconnect drops the connection abruptly.
func (c *Client) Disconnect() {
	if c.Conn != nil {
		c.Conn.Close()
		// Read what was already received, so nothing processed twice.
		c.Conn = nil
	}
}

// Reconnect opens a new socket with since = the client's version.
func (c *Client) Reconnect() error {
	c.Disconnect()
	v := c.Version
	return c.connect(&v)
}

// Edit applies op (made on c.Text) locally and sends it when nothing is in
// flight, otherwise buffers it.
func (c *Client) Edit(op ot.Op) error {
	out, err := c.OTClient.Edit(op)
	if err != nil {
		return err
	}
	c.send(out)
	return nil
}

// send writes out if there is one and the client is connected; a failed
// write disconnects (the op stays in flight and is resent on reconnect).
func (c *Client) send(out *loadtest.Outgoing) {
	if out == nil || c.Conn == nil {
		return
	}
	if err := c.Conn.Send(map[string]any{"type": "op", "version": out.Base, "op": out.Op, "src": c.Src, "seq": out.Seq}); err != nil {
		c.Disconnect()
	}
}

// Handle processes one frame.
func (c *Client) Handle(f Frame) error {
	switch f.Type {
	case "op":
		own, next, err := c.Receive(f.Version, f.Src, f.Seq, f.Op)
		if err != nil {
			return err
		}
		if own {
			// Our own op, seen in a catch-up: it counts as the ack.
			c.Acked[f.Seq] = f.Version
		}
		c.send(next)
	case "ack":
		settled, next, err := c.Ack(f.Seq, f.Version)
		if err != nil || !settled {
			return err // nil for a repeated ack of an op already settled
		}
		c.Acked[f.Seq] = f.Version
		c.send(next)
	case "error":
		c.Errors = append(c.Errors, f)
		if f.Code == "rate_limited" || f.Code == "unavailable" {
			// Not applied: send the same op again (same seq) later.
			return nil
		}
		return fmt.Errorf("client %s: error frame %s", c.Src, f.Raw)
	}
	return nil
}

// Pump handles frames until none arrives for idle. A closed connection ends
// it without error (the client is then disconnected).
func (c *Client) Pump(idle time.Duration) error {
	for c.Conn != nil {
		f, err := c.Conn.Next(idle)
		if errors.Is(err, ErrTimeout) {
			return nil
		}
		if err != nil {
			c.Conn = nil
			return nil
		}
		if err := c.Handle(f); err != nil {
			return err
		}
	}
	return nil
}

// Resend sends the in-flight op again (after rate_limited or unavailable).
func (c *Client) Resend() { c.send(c.InFlight()) }

// Settle pumps until the client has no pending edits and the stream is
// quiet, reconnecting if needed, or fails after timeout.
func (c *Client) Settle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.Conn == nil {
			if err := c.Reconnect(); err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		if err := c.Pump(100 * time.Millisecond); err != nil {
			return err
		}
		if !c.Pending() && c.Conn != nil {
			return nil
		}
		c.Resend()
	}
	return fmt.Errorf("client %s did not settle: %s", c.Src, c.describePending())
}

func (c *Client) describePending() string {
	if out := c.InFlight(); out != nil {
		return fmt.Sprintf("seq %d in flight on version %d, more buffered: %v", out.Seq, out.Base, c.Pending())
	}
	return "nothing in flight"
}
