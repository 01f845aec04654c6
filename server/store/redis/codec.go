package redis

// codec.go is the only place that knows how values are encoded: JSON, the
// same shapes as the embedded engine, so that a record can be read with
// redis-cli and moved between engines by a plain export.

import (
	"encoding/json"
	"fmt"
	"strconv"

	"communique/server/store"
)

// encode encodes metadata values; op records and snapshots, which carry
// user text, go through encodeRecord and encodeSnapshot.
func encode[T store.Summit | store.Token | store.Doc | store.ClientSeq](v *T) ([]byte, error) {
	return json.Marshal(v)
}

// decode decodes any stored value. A failure is always reported wrapped in
// store.ErrCorrupt by the caller: what is stored was written by us.
func decode[T store.Summit | store.Token | store.Doc | store.OpRecord | store.Snapshot | store.ClientSeq](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// maxVersion is the largest version the engine stores. Lua numbers are
// doubles, and sorted-set scores too: up to 2^53 every integer is exact. The
// wire protocol caps versions there as well.
const maxVersion = 1 << 53

// formatVersion is the one spelling of a version in keys, fields and values.
// The Lua scripts compare versions as these strings and never do arithmetic
// on them, so no precision is lost in Lua.
func formatVersion(v uint64) string { return strconv.FormatUint(v, 10) }

// parseVersion reads a version written by formatVersion.
func parseVersion(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > maxVersion || formatVersion(v) != s {
		return 0, fmt.Errorf("%w: version %q", store.ErrCorrupt, s)
	}
	return v, nil
}
