package bolt

// codec.go is the only place that knows how records are encoded. Today it is
// JSON (easy to inspect with bbolt's CLI); moving to a binary encoding means
// changing these functions and bumping schemaVersion.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"communique/server/store"
)

func encodeU64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

func decodeU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("want 8 bytes, got %d", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// timeKey orders times by their bytes: UnixNano with the sign bit flipped,
// big-endian. Times outside UnixNano's range (including the zero Time) are
// clamped so they still sort first or last.
func timeKey(t time.Time) []byte {
	var n int64
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		n = math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return encodeU64(uint64(n) ^ (1 << 63))
}

// encode encodes metadata records; op records and snapshots, which carry
// user text, go through encodeRecord and encodeSnapshot.
func encode[T store.Summit | store.Token | store.Doc | store.ClientSeq](v *T) ([]byte, error) {
	return json.Marshal(v)
}

// decode copies everything out of b (which may be bbolt's memory map).
func decode[T store.Summit | store.Token | store.Doc | store.OpRecord | store.Snapshot | store.ClientSeq](b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, err
	}
	return v, nil
}
