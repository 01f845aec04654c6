package doc

import (
	"testing"

	"communique/ot"
)

// TestTextCachesDroppedByUndo: the text caches are keyed by version, and an
// undone batch (a failed or lost append, whose snapshot already read the
// text) gives its versions back to other text; a hello must never see the
// undone text.
func TestTextCachesDroppedByUndo(t *testing.T) {
	st := &stream{text: ot.NewText("abc"), version: 5}
	st.rb = rollback{set: true, text: st.text, version: 5}
	st.text, st.version = ot.NewText("abc-undone"), 6
	if got := st.textString(); got != "abc-undone" {
		t.Fatalf("textString = %q", got)
	}
	if got := string(st.textJSON()); got != `"abc-undone"` {
		t.Fatalf("textJSON = %s", got)
	}
	st.undo()
	st.text, st.version = ot.NewText("abc-other <&> \"é\" 👨‍👩‍👧"), 6 // another op at the same version
	if got := st.textString(); got != "abc-other <&> \"é\" 👨‍👩‍👧" {
		t.Errorf("textString after undo = %q; want the new text", got)
	}
	if got := string(st.textJSON()); got != `"abc-other \u003c\u0026\u003e \"é\" 👨‍👩‍👧"` {
		t.Errorf("textJSON after undo = %s; want the new text", got)
	}
}
