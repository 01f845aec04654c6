//go:build !linux

package ws

import (
	"errors"
	"log/slog"
)

// poller exists on Linux only (poll_linux.go); elsewhere every connection
// has a goroutine blocked in its reads (conn.readBlocking).
type poller struct{}

func newPoller(*slog.Logger) (*poller, error) {
	return nil, errors.New("no socket poller on this system")
}

func (*poller) add(*conn) error   { return errors.New("no socket poller") }
func (*poller) rearm(*conn) error { return errors.New("no socket poller") }
func (*poller) remove(*conn)      {}
func (*poller) stop()             {}
