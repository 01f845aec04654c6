package ws

import (
	"runtime/debug"
	"sync"
	"time"
)

// memTrim gives the memory of a burst of handshakes back to the operating
// system once the burst is over. Each handshake leaves garbage several
// times the size of the idle connection it creates (net/http's request,
// buffers, the hello with the document's text); after thousands of
// observers connect at once — the opening of a session, a reconnect storm
// after a deploy — the heap has grown to hold it, and the runtime's
// background scavenger returns it slowly (an idle server never collects).
// A collection with a full release then brings the server's RSS back to
// what its live connections use.
type memTrim struct {
	mu      sync.Mutex
	count   int       // handshakes since the last trim
	last    time.Time // the latest handshake
	timer   *time.Timer
	stopped bool
}

const (
	trimBurst = 1000            // handshakes that make a burst worth a trim
	trimQuiet = 3 * time.Second // no handshake for this long: the burst is over
)

// handshake counts one handshake.
func (m *memTrim) handshake() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count++
	m.last = time.Now()
	if m.count >= trimBurst && m.timer == nil && !m.stopped {
		m.timer = time.AfterFunc(trimQuiet, m.fire)
	}
}

func (m *memTrim) fire() {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	if quiet := time.Since(m.last); quiet < trimQuiet {
		m.timer.Reset(trimQuiet - quiet)
		m.mu.Unlock()
		return
	}
	m.count, m.timer = 0, nil
	m.mu.Unlock()
	debug.FreeOSMemory()
}

func (m *memTrim) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	if m.timer != nil {
		m.timer.Stop()
	}
}
