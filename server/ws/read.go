package ws

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Reading.
//
// Thousands of observers sit on a server and say nothing but a pong every
// PingPeriod, so an idle connection must cost no goroutine: a goroutine
// blocked in a read keeps a stack of at least 4 KiB, more than everything
// else a connection holds. On Linux the Handler's poller (poll_linux.go)
// waits for every idle socket at once and starts a goroutine for a socket
// only when it has bytes (readable); it reads what is there without
// blocking, acts on each complete message, keeps an incomplete frame's bytes
// (nil when idle), and hands the socket back to the poller. Elsewhere, or
// for a connection without a descriptor, a goroutine per connection reads
// with blocking reads (readBlocking). Both feed the same frame parser.
//
// The frames are parsed here rather than by gorilla/websocket, which is
// used for the handshake only: its reader needs a goroutine blocked in it
// and keeps a buffer per connection, and it answers pings and closes from
// the reading goroutine, while this package writes data frames to the
// socket itself (conn.go).

// readBufSize is the scratch buffer of one read; a message that does not
// fit is assembled in conn.in.
const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// errWouldBlock: the socket has nothing more to read now.
var errWouldBlock = errors.New("would block")

// Opcodes of RFC 6455.
const (
	opContinuation = 0
	opText         = 1
	opBinary       = 2
	opClose        = 8
	opPing         = 9
	opPong         = 10
)

// readState is what the parser keeps between reads. Only the connection's
// one active reader touches it.
type readState struct {
	in         []byte // received bytes of an incomplete frame (nil: none)
	msg        []byte // the fragments so far of a fragmented message
	msgOp      byte   // its opcode; 0: no fragmented message under way
	violations int    // rate-limited messages so far
}

// readable is started by the poller when the socket has bytes: it reads and
// acts on everything there, then re-arms the poller, or ends the
// connection.
func (c *conn) readable() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.reading = true
	c.mu.Unlock()

	bufp := readBufs.Get().(*[]byte)
	code, reason, stop := c.readAvailable(*bufp)
	readBufs.Put(bufp)

	c.mu.Lock()
	c.reading = false
	if !stop && !c.finished {
		// Re-armed under c.mu, which finish takes before it unregisters
		// and closes the socket: never re-armed after that.
		if err := c.h.poll.rearm(c); err == nil {
			c.mu.Unlock()
			return
		}
		code, reason = websocket.CloseInternalServerErr, "cannot wait for the socket"
	}
	c.endLocked(code, reason)
}

// readAvailable reads without blocking until the socket is empty (stop
// false) or the connection is to end (stop true, with the close code).
func (c *conn) readAvailable(buf []byte) (code int, reason string, stop bool) {
	for {
		var n int
		var rerr error
		if err := c.raw.Read(func(fd uintptr) bool {
			for {
				n, rerr = syscall.Read(int(fd), buf)
				if rerr == syscall.EINTR {
					continue
				}
				if rerr == syscall.EAGAIN {
					rerr = errWouldBlock
				}
				return true // never wait here: the poller waits
			}
		}); err != nil {
			return c.readFailed(err)
		}
		switch {
		case rerr == errWouldBlock:
			return 0, "", false
		case rerr != nil:
			return c.readFailed(rerr)
		case n <= 0:
			return c.readFailed(io.EOF)
		}
		if code, reason, stop := c.received(buf[:n]); stop {
			return code, reason, true
		}
	}
}

// readBlocking is the reader of a connection the poller does not serve: a
// goroutine that blocks in reads until the socket is closed (finish) or the
// client goes. startReading has set c.reading for it.
func (c *conn) readBlocking() {
	buf := make([]byte, 4096)
	var code int
	var reason string
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			var stop bool
			if code, reason, stop = c.received(buf[:n]); stop {
				break
			}
		}
		if err != nil {
			code, reason, _ = c.readFailed(err)
			break
		}
	}
	c.mu.Lock()
	c.reading = false
	c.endLocked(code, reason)
}

// readFailed is the close code for a read that failed: the client went, or
// the socket was closed by the writer.
func (c *conn) readFailed(err error) (int, string, bool) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
		c.h.log.Debug("socket read failed", "client", c.client, "err", err)
	}
	return websocket.CloseNormalClosure, "", true
}

// received parses data, the bytes just read, together with what an earlier
// read left, and acts on every complete message.
func (c *conn) received(data []byte) (code int, reason string, stop bool) {
	c.lastRead.Store(time.Now().UnixNano())
	rs := &c.rs
	if len(rs.in) > 0 {
		rs.in = append(rs.in, data...)
		data = rs.in
	}
	rest, code, reason, stop := c.parse(data)
	if stop {
		rs.in = nil
		return code, reason, true
	}
	if len(rest) == 0 {
		rs.in = nil // an idle connection keeps no buffer
	} else {
		rs.in = append(make([]byte, 0, len(rest)+512), rest...)
	}
	return 0, "", false
}

// parse acts on the complete frames at the start of data and returns what
// is left of an incomplete one.
func (c *conn) parse(data []byte) (rest []byte, code int, reason string, stop bool) {
	limit := uint64(c.h.cfg.MaxFrameBytes)
	rs := &c.rs
	for len(data) >= 2 {
		b0, b1 := data[0], data[1]
		fin, op := b0&0x80 != 0, b0&0x0f
		hdr, n := 2, uint64(b1&0x7f)
		switch n {
		case 126:
			if len(data) < 4 {
				return data, 0, "", false
			}
			hdr, n = 4, uint64(binary.BigEndian.Uint16(data[2:4]))
		case 127:
			if len(data) < 10 {
				return data, 0, "", false
			}
			hdr, n = 10, binary.BigEndian.Uint64(data[2:10])
		}
		switch {
		case b0&0x70 != 0:
			return nil, websocket.CloseProtocolError, "reserved bits set", true
		case b1&0x80 == 0:
			return nil, websocket.CloseProtocolError, "client frames must be masked", true
		case op >= opClose && op <= opPong && (!fin || n > 125):
			return nil, websocket.CloseProtocolError, "control frames are short and unfragmented", true
		case op > opBinary && op < opClose || op > opPong:
			return nil, websocket.CloseProtocolError, "unknown opcode", true
		case op < opClose && uint64(len(rs.msg))+n > limit:
			// Refused on the header: a client announcing 100 MB is not
			// waited for.
			c.h.log.Info("frame over the size limit; closed with 1009", "client", c.client)
			return nil, websocket.CloseMessageTooBig, "frame over the size limit", true
		}
		if uint64(len(data)-hdr-4) < n {
			return data, 0, "", false
		}
		mask := data[hdr : hdr+4]
		payload := data[hdr+4 : hdr+4+int(n)]
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
		data = data[hdr+4+int(n):]

		switch op {
		case opText, opBinary:
			if rs.msgOp != 0 {
				return nil, websocket.CloseProtocolError, "a new message before the last one's final fragment", true
			}
			if !fin {
				rs.msgOp, rs.msg = op, append([]byte(nil), payload...)
				continue
			}
		case opContinuation:
			if rs.msgOp == 0 {
				return nil, websocket.CloseProtocolError, "a continuation frame without a message", true
			}
			rs.msg = append(rs.msg, payload...)
			if !fin {
				continue
			}
			op, payload = rs.msgOp, rs.msg
			rs.msgOp, rs.msg = 0, nil
		case opPing:
			c.onPing(payload)
			continue
		case opPong:
			continue // lastRead is all a pong is for
		case opClose:
			closeCode := websocket.CloseNoStatusReceived
			switch {
			case len(payload) == 1:
				return nil, websocket.CloseProtocolError, "close frame of one byte", true
			case len(payload) >= 2:
				closeCode = int(binary.BigEndian.Uint16(payload))
				if !validCloseCode(closeCode) || !utf8.Valid(payload[2:]) {
					return nil, websocket.CloseProtocolError, "invalid close frame", true
				}
			}
			c.onClose(closeCode)
			return nil, websocket.CloseNormalClosure, "", true
		}
		if code, reason, stop := c.handle(int(op), payload, &rs.violations); stop {
			return nil, code, reason, true
		}
	}
	return data, 0, "", false
}

// validCloseCode reports whether a client may send code (RFC 6455 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// onPing records a pong due with the ping's payload; whoever owns the
// socket's writes sends it, in order with the data frames.
func (c *conn) onPing(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pong = append([]byte{}, data...)
	c.wakeLocked()
}

// onClose records the client's close: the writer answers it with the same
// code and nothing else (no data frame may follow a close frame; browsers
// fail a connection that receives one).
func (c *conn) onClose(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peerClosed = true
	if !c.kicked {
		c.kicked, c.code, c.reason = true, code, ""
		c.wakeLocked()
	}
}

// endLocked starts the end of the connection once both sides are done with
// it: the reader has stopped (c.reading is false) and either it asked to
// end or the writer has closed the socket. c.mu is held; endLocked unlocks.
func (c *conn) endLocked(code int, reason string) {
	if c.ended || c.reading {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.mu.Unlock()
	c.end(code, reason)
}

// end unsubscribes, has the writer close the socket, and gives the session
// back. Once Unsubscribe returns, the session has answered everything the
// reader submitted into the send queue; only then is the writer told to
// close, so those answers go out before the close frame.
func (c *conn) end(code int, reason string) {
	c.session.Unsubscribe(c)
	c.kickWith(code, reason)
	<-c.done
	c.h.track(c, false)
	c.session.Release()
	c.h.log.Debug("socket closed", "client", c.client)
}
