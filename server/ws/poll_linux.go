package ws

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
)

// poller waits for many idle sockets at once with an epoll instance of its
// own (beside the Go runtime's, which keeps serving the sockets' writes and
// deadlines), so that an idle connection costs no goroutine. Each socket is
// registered one-shot: when it has bytes, the poller starts conn.readable,
// which reads it dry and re-arms it; there is never more than one reader
// per socket, and messages are acted on in order.
//
// Registrations go through the socket's syscall.RawConn, which holds the
// descriptor open for the duration of the call, so a registration can never
// name a descriptor that was closed and reused by another connection.
// Events carry a connection id, not the descriptor, for the same reason: an
// event that was already on its way when its connection went finds no
// connection and is dropped.
type poller struct {
	log   *slog.Logger
	epfd  int
	wakeR int // the read end of a pipe whose write end stop closes
	wakeW int

	mu      sync.Mutex
	conns   map[uint64]*conn
	next    uint64
	stopped bool // epfd is closed (its number may be another file's now)
	done    chan struct{}
}

// wakeID is the event id of the stop pipe; connection ids start at 1.
const wakeID = 0

func newPoller(log *slog.Logger) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setEventID(&ev, wakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(pipe[0])
		_ = syscall.Close(pipe[1])
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &poller{log: log, epfd: epfd, wakeR: pipe[0], wakeW: pipe[1], conns: make(map[uint64]*conn), done: make(chan struct{})}
	go p.run()
	return p, nil
}

func setEventID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func eventID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// events a registration waits for: bytes, or the peer's hang-up (which a
// read then reports).
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// add registers c, armed.
func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.next++
	id := p.next
	p.conns[id] = c
	p.mu.Unlock()
	c.pollID = id
	if err := p.ctl(c, syscall.EPOLL_CTL_ADD); err != nil {
		p.mu.Lock()
		delete(p.conns, id)
		p.mu.Unlock()
		return err
	}
	return nil
}

// rearm waits for c's next bytes (after a readable has read it dry).
func (p *poller) rearm(c *conn) error { return p.ctl(c, syscall.EPOLL_CTL_MOD) }

// remove unregisters c (before its socket is closed).
func (p *poller) remove(c *conn) {
	p.mu.Lock()
	delete(p.conns, c.pollID)
	p.mu.Unlock()
	_ = p.ctl(c, syscall.EPOLL_CTL_DEL)
}

func (p *poller) ctl(c *conn, op int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return errors.New("socket poller stopped")
	}
	ev := syscall.EpollEvent{Events: pollEvents}
	setEventID(&ev, c.pollID)
	var cerr error
	if err := c.raw.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	}); err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("epoll_ctl: %w", cerr)
	}
	return nil
}

// run waits for events until stop. A readable socket gets a goroutine of
// its own (conn.readable): the poller never does a connection's work, so
// one busy document cannot delay another's reads.
func (p *poller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.log.Error("epoll_wait failed; sockets are no longer read", "err", err)
			return
		}
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == wakeID {
				return
			}
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil {
				go c.readable()
			}
		}
	}
}

// stop ends run and releases the epoll instance. Connections still
// registered are no longer read; it is called once every socket has been
// told to close.
func (p *poller) stop() {
	_ = syscall.Close(p.wakeW) // the read end sees end of file: readable
	<-p.done
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = syscall.Close(p.wakeR)
	_ = syscall.Close(p.epfd)
}
