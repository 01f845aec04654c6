package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
	"communique/server/ws"
)

// TestClosingHandshake checks the server's side of the WebSocket control
// frames while the document is busy: a client's ping is answered with its
// payload, and a client's close is answered with a close frame carrying
// the same code, after which the server sends nothing (RFC 6455 5.5.1;
// Chromium fails the connection with "Data frame received after close"
// otherwise, which a browser test once caught) and hangs up.
//
// The client here is written by hand on a TCP socket because a WebSocket
// library hides exactly what is checked: which frames arrive, in what
// order, after the close.
func TestClosingHandshake(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) { testClosingHandshake(t, mode.cfg) })
	}
}

// readModes: sockets read by the shared poller (Linux), and by a goroutine
// each (elsewhere).
var readModes = []struct {
	name string
	cfg  ws.Config
}{
	{"poller", ws.Config{}},
	{"goroutine per socket", ws.Config{BlockingReads: true}},
}

func testClosingHandshake(t *testing.T, cfg ws.Config) {
	e := newFaultEnv(t, servertest.Options{WS: cfg})
	ctx, cancel := context.WithCancel(context.Background())
	var typists sync.WaitGroup
	defer func() { cancel(); typists.Wait() }()
	// Three delegations type continuously, so that ops and presence are
	// being written to every follower when it closes.
	for i, tok := range []string{e.kor, e.gbr, e.chair} {
		c, _ := fltDial(t, e, e.doc, tok, nil)
		typists.Add(1)
		go func() {
			defer typists.Done()
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for seq := uint64(1); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				// Inserting at the start of version 0 is valid whatever
				// was applied since.
				_ = c.Send(fltOpMsg(0, ot.Op{}.Insert("x").Retain(len([]rune(fltText))), fmt.Sprintf("typist%d", i), seq))
				for { // drain acks and broadcasts
					if _, err := c.Next(time.Millisecond); err != nil {
						break
					}
				}
			}
		}()
	}

	for i := range 40 {
		rc := rawDial(t, e.s.Addr, servertest.WSPath(e.summit, e.doc)+"?stream=draft", e.kor)
		if f := rc.next(t); f.opcode != opText {
			t.Fatalf("round %d: first frame opcode %d; want the hello (text)", i, f.opcode)
		}
		payload := []byte(fmt.Sprintf("ping %d", i))
		rc.send(t, opPing, payload)
		for f := rc.next(t); f.opcode != opPong; f = rc.next(t) {
			if f.opcode != opText {
				t.Fatalf("round %d: opcode %d before the pong; want text frames", i, f.opcode)
			}
		}
		// The pong's payload was checked by next; now close while frames
		// keep coming.
		rc.send(t, opClose, binary.BigEndian.AppendUint16(nil, 1000))
		var closed *rawFrame
		for {
			f, err := rc.read()
			if err != nil {
				if closed == nil {
					t.Fatalf("round %d: connection ended (%v) without a close frame", i, err)
				}
				break // the server hung up after its close: right
			}
			if closed != nil {
				t.Fatalf("round %d: frame with opcode %d (%q) after the server's close frame", i, f.opcode, f.payload)
			}
			switch f.opcode {
			case opText:
			case opClose:
				closed = &f
			default:
				t.Fatalf("round %d: unexpected opcode %d", i, f.opcode)
			}
		}
		if len(closed.payload) < 2 || binary.BigEndian.Uint16(closed.payload) != 1000 {
			t.Fatalf("round %d: close payload %q; want code 1000 echoed", i, closed.payload)
		}
		if rc.pongs[0] != string(payload) {
			t.Fatalf("round %d: pong payload %q; want %q", i, rc.pongs[0], payload)
		}
	}
}

const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

type rawFrame struct {
	opcode  byte
	payload []byte
}

// rawConn is a minimal WebSocket client: a handshake and unfragmented
// frames, nothing hidden.
type rawConn struct {
	nc    net.Conn
	br    *bufio.Reader
	pongs []string
}

func rawDial(t *testing.T, addr, path, token string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, fltWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(fltWait))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\n" +
		"Authorization: Bearer " + token + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return &rawConn{nc: nc, br: br}
}

// read returns the next frame; pongs are recorded as they pass.
func (c *rawConn) read() (rawFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(fltWait))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return rawFrame{}, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return rawFrame{}, fmt.Errorf("header %x: want FIN set and no mask (server frames)", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return rawFrame{}, fmt.Errorf("frame of %d bytes", n)
	}
	f := rawFrame{opcode: h[0] & 0x0f, payload: make([]byte, n)}
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return rawFrame{}, err
	}
	if f.opcode == opPong {
		c.pongs = append(c.pongs, string(f.payload))
	}
	return f, nil
}

func (c *rawConn) next(t *testing.T) rawFrame {
	t.Helper()
	f, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// send writes one masked frame (clients must mask).
func (c *rawConn) send(t *testing.T, opcode byte, payload []byte) {
	t.Helper()
	if len(payload) > 125 {
		t.Fatal("rawConn sends small frames only")
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b := []byte{0x80 | opcode, 0x80 | byte(len(payload))}
	b = append(b, mask[:]...)
	for i, p := range payload {
		b = append(b, p^mask[i%4])
	}
	if _, err := c.nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestProtocolViolations: frames that break RFC 6455 close the socket with
// 1002 and a reason, change nothing, and leave other sockets working; a
// close without a code is answered with a close without a code.
func TestProtocolViolations(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := faultOptions()
			opts.WS.BlockingReads = mode.cfg.BlockingReads
			testProtocolViolations(t, opts)
		})
	}
}

func testProtocolViolations(t *testing.T, opts servertest.Options) {
	e := newFaultEnv(t, opts)
	watch, _ := fltDial(t, e, e.doc, e.gbr, nil)
	before := e.get(t, e.doc)
	masked := func(b0 byte, payload []byte) []byte {
		b := []byte{b0, 0x80 | byte(len(payload)), 0, 0, 0, 0} // a zero mask
		return append(b, payload...)
	}
	op := []byte(`{"type":"op","version":0,"op":["x",10],"src":"pv","seq":1}`)
	tests := []struct {
		name  string
		bytes []byte
		code  int // 0: a close frame without a code
	}{
		{"an unmasked frame", append([]byte{0x81, byte(len(op))}, op...), 1002},
		{"a reserved bit set", masked(0x80|0x40|opText, op), 1002},
		{"an unknown opcode", masked(0x83, nil), 1002},
		{"a continuation without a message", masked(0x80, op), 1002},
		{"a fragmented ping", masked(opPing, []byte("p")), 1002},
		{"a ping of 126 bytes", append([]byte{0x80 | opPing, 0x80 | 126, 0, 126, 0, 0, 0, 0}, make([]byte, 126)...), 1002},
		{"a new message inside a fragmented one", append(masked(opText, op[:10]), masked(0x80|opText, op)...), 1002},
		{"a close of one byte", masked(0x80|opClose, []byte{3}), 1002},
		{"a close with code 1005", masked(0x80|opClose, []byte{0x03, 0xed}), 1002},
		{"a close without a code", masked(0x80|opClose, nil), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawDial(t, e.s.Addr, servertest.WSPath(e.summit, e.doc)+"?stream=draft", e.kor)
			if f := rc.next(t); f.opcode != opText {
				t.Fatalf("first frame opcode %d; want the hello", f.opcode)
			}
			if _, err := rc.nc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			var closed *rawFrame
			for closed == nil {
				f := rc.next(t)
				if f.opcode == opClose {
					closed = &f
				}
			}
			switch {
			case tc.code == 0 && len(closed.payload) != 0:
				t.Errorf("close payload %q; want none", closed.payload)
			case tc.code != 0 && (len(closed.payload) < 2 || int(binary.BigEndian.Uint16(closed.payload)) != tc.code):
				t.Errorf("close payload %q; want code %d", closed.payload, tc.code)
			}
			if f, err := rc.read(); err == nil {
				t.Errorf("frame with opcode %d after the close", f.opcode)
			}
			fltQuiet(t, watch)
			fltUnchanged(t, e, e.doc, before)
		})
	}
	fltStillLive(t, e, watch)
}
