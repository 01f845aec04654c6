// Package local is an in-process bus: several server instances in one
// process (tests, benchmarks) share ops and presence through it the way
// separate processes share them through Redis pub/sub. Delivery is
// asynchronous, in order per subscriber, and at most once: Drop makes it
// lose messages on purpose, to exercise the recovery from the store.
package local

import (
	"context"
	"sync"
	"sync/atomic"
)

// Bus is an in-process publish/subscribe hub.
type Bus struct {
	mu   sync.Mutex
	subs map[string]map[*sub]struct{}
	// Drop, while true, makes Publish lose every message.
	Drop atomic.Bool
}

type sub struct {
	fn   func([]byte)
	ch   chan []byte
	done chan struct{}
}

// New returns an empty bus.
func New() *Bus { return &Bus{subs: make(map[string]map[*sub]struct{})} }

// Publish hands msg to every subscriber of topic. A subscriber whose queue
// is full misses it, as a Redis subscriber whose connection broke would.
func (b *Bus) Publish(ctx context.Context, topic string, msg []byte) error {
	if b.Drop.Load() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[topic] {
		select {
		case s.ch <- msg:
		default:
		}
	}
	return nil
}

// Subscribe calls fn for each message on topic, from a goroutine of its
// own, until unsubscribe is called.
func (b *Bus) Subscribe(topic string, fn func([]byte)) (unsubscribe func()) {
	s := &sub{fn: fn, ch: make(chan []byte, 1024), done: make(chan struct{})}
	b.mu.Lock()
	if b.subs[topic] == nil {
		b.subs[topic] = make(map[*sub]struct{})
	}
	b.subs[topic][s] = struct{}{}
	b.mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case m := <-s.ch:
				s.fn(m)
			case <-s.done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs[topic], s)
			if len(b.subs[topic]) == 0 {
				delete(b.subs, topic)
			}
			b.mu.Unlock()
			close(s.done)
			<-stopped
		})
	}
}
