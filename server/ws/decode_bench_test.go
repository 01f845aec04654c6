package ws

import (
	"strings"
	"testing"
)

// Run with: go test ./server/ws/ -run '^$' -bench Decode -benchmem

// BenchmarkDecode is what a socket's reader does with each client message
// before the session sees it: the envelope, the strict checks of seq,
// version and src, and ot.Parse of the op.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  string
	}{
		{"typing", `{"type":"op","version":52311,"op":[52311,"서",48210],"src":"c7f3a1b2","seq":1041}`},
		{"paste-1KB", `{"type":"op","version":9,"op":[1200,"` + strings.Repeat("Participants affirmed 🌐 ", 40) + `",-12,3000],"src":"c7f3a1b2","seq":7}`},
		{"presence", `{"type":"presence","version":52311,"cursor":{"anchor":120,"head":131}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := []byte(bc.msg)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decode(data); err != nil {
					b.Fatal(err.msg)
				}
			}
		})
	}
}
