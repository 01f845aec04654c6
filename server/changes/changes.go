package changes

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"communique/ot"
)

// Change is one pending hunk: approved[ApprovedStart:ApprovedEnd] == Old
// would become draft[DraftStart:DraftEnd] == New. Offsets count code points.
type Change struct {
	ID            string   `json:"id"`
	Old           string   `json:"old"`
	New           string   `json:"new"`
	ApprovedStart int      `json:"approved_start"`
	ApprovedEnd   int      `json:"approved_end"`
	DraftStart    int      `json:"draft_start"`
	DraftEnd      int      `json:"draft_end"`
	Authors       []string `json:"authors"`
}

// Compute lists the pending changes between approved and draft (diff-match-
// patch with semantic cleanup), each with its id and authors.
//
// The id depends only on the hunk's own wording (Old, New) and on how many
// earlier hunks have the very same wording, so it stays the same while edits
// elsewhere move the hunk, and changes as soon as its wording does — a
// decision naming an id can never land on different text.
//
// Authors are the delegations (or "chair") who inserted any code point of
// New, and, when the hunk removes text, who deleted text inside it. A hunk
// whose text predates every tracked edit (authorship lost, which should not
// happen) names no one rather than guessing.
func Compute(approved, draft string, auth Authorship) []Change {
	hunks := ot.Diff(approved, draft)
	out := make([]Change, 0, len(hunks))
	seen := map[string]int{}
	for _, h := range hunks {
		key := h.Old + "\x00" + h.New
		k := seen[key]
		seen[key] = k + 1
		out = append(out, Change{
			ID:            ID(h.Old, h.New, k),
			Old:           h.Old,
			New:           h.New,
			ApprovedStart: h.AStart,
			ApprovedEnd:   h.AEnd,
			DraftStart:    h.BStart,
			DraftEnd:      h.BEnd,
			Authors:       auth.Authors(h.BStart, h.BEnd, h.Old),
		})
	}
	return out
}

// Hunks lists the pending changes between approved and draft as Compute
// does, with their places and wording only: no ids, no authors. It is what
// Prune needs.
func Hunks(approved, draft string) []Change {
	hunks := ot.Diff(approved, draft)
	out := make([]Change, len(hunks))
	for i, h := range hunks {
		out[i] = Change{Old: h.Old, New: h.New, ApprovedStart: h.AStart, ApprovedEnd: h.AEnd, DraftStart: h.BStart, DraftEnd: h.BEnd}
	}
	return out
}

// ID names the k-th hunk (from 0) that replaces old with new.
func ID(old, new string, k int) string {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(old))))
	h.Write([]byte{0})
	h.Write([]byte(old))
	h.Write([]byte{0})
	h.Write([]byte(new))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(k)))
	return "ch_" + hex.EncodeToString(h.Sum(nil)[:8])
}

// ApproveOp is the op on the approved text that carries c into it.
func (c Change) ApproveOp(approvedLen int) ot.Op {
	return ot.Op{}.Retain(c.ApprovedStart).Insert(c.New).Delete(c.ApprovedEnd - c.ApprovedStart).Retain(approvedLen - c.ApprovedEnd)
}

// RejectOp is the op on the draft that puts the approved wording back.
func (c Change) RejectOp(draftLen int) ot.Op {
	return ot.Op{}.Retain(c.DraftStart).Insert(c.Old).Delete(c.DraftEnd - c.DraftStart).Retain(draftLen - c.DraftEnd)
}
