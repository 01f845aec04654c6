package ws

import "testing"

// TestMemTrimArmsOnBurst: a burst of handshakes arms the trim once, and
// stop disarms it for good.
func TestMemTrimArmsOnBurst(t *testing.T) {
	var m memTrim
	for range trimBurst - 1 {
		m.handshake()
	}
	if m.timer != nil {
		t.Fatal("armed before a burst")
	}
	m.handshake()
	armed := m.timer
	if armed == nil {
		t.Fatal("not armed after a burst")
	}
	m.handshake()
	if m.timer != armed {
		t.Fatal("armed twice for one burst")
	}
	m.stop()
	if armed.Stop() {
		t.Fatal("still armed after stop")
	}
	m.fire() // after stop: nothing, and no panic
	if m.count == 0 {
		t.Fatal("a stopped trim trimmed")
	}
}
