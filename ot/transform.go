package ot

import "unicode/utf8"

// cursor walks an op component by component and lets the caller consume a
// component partially. For inserts it tracks the remaining code point count
// so lengths are never recounted.
type cursor struct {
	op  Op
	i   int
	c   Component // what is left of the current component
	n   int       // its length in code points
	end bool
}

func newCursor(op Op) cursor {
	cur := cursor{op: op}
	cur.next()
	return cur
}

func (cur *cursor) next() {
	if cur.i >= len(cur.op) {
		cur.end = true
		cur.c = Component{}
		cur.n = 0
		return
	}
	cur.c = cur.op[cur.i]
	cur.i++
	switch {
	case cur.c.Retain > 0:
		cur.n = cur.c.Retain
	case cur.c.Delete > 0:
		cur.n = cur.c.Delete
	default:
		cur.n = utf8.RuneCountInString(cur.c.Insert)
	}
}

func (cur *cursor) isRetain() bool { return !cur.end && cur.c.Retain > 0 }
func (cur *cursor) isDelete() bool { return !cur.end && cur.c.Delete > 0 }
func (cur *cursor) isInsert() bool { return !cur.end && cur.c.Insert != "" }

// take consumes m code points (m <= cur.n) of the current component and
// returns them as a component of the same kind.
func (cur *cursor) take(m int) Component {
	var out Component
	switch {
	case cur.c.Retain > 0:
		out.Retain = m
		cur.c.Retain -= m
	case cur.c.Delete > 0:
		out.Delete = m
		cur.c.Delete -= m
	default:
		if m == cur.n {
			out.Insert = cur.c.Insert
		} else {
			out.Insert, cur.c.Insert = splitRunes(cur.c.Insert, m)
		}
	}
	cur.n -= m
	if cur.n == 0 {
		cur.next()
	}
	return out
}

// Transform takes two ops a and b that were made concurrently against the
// same text and returns a2 and b2 such that applying a then b2 gives the same
// text as applying b then a2 (convergence, "TP1"):
//
//	Apply(Apply(s, a), b2) == Apply(Apply(s, b), a2)
//
// b2 is b rewritten to apply after a, a2 is a rewritten to apply after b.
// This is ot.js's transform(operation1, operation2) with a as operation1.
//
// Tie-break: when a and b insert at the same position, a's insert ends up
// first (to the left). Some fixed rule is needed for convergence; the server
// passes the op it already accepted as a, so the earlier-accepted text stays
// in front. Deletes of the same text are applied once; a retain of text the
// other op deleted disappears.
//
// Inputs need not be canonical: Transform(a, b) == Transform(canonical a,
// canonical b). a and b must have the same base length; otherwise, or if
// either is invalid, the error wraps ErrBadOp.
func Transform(a, b Op) (a2, b2 Op, err error) {
	baseA, _, err := a.validate()
	if err != nil {
		return nil, nil, err
	}
	baseB, _, err := b.validate()
	if err != nil {
		return nil, nil, err
	}
	if baseA != baseB {
		return nil, nil, badOp("transform: base lengths differ (%d, %d)", baseA, baseB)
	}
	// The tie-break looks at component order, so a delete written before an
	// insert at the same place would be ordered differently from the
	// equivalent canonical op. Canonicalising first makes equal edits
	// transform equally.
	a, b = a.canonical(), b.canonical()
	a2, b2 = make(Op, 0, len(a)+len(b)), make(Op, 0, len(a)+len(b))
	ca, cb := newCursor(a), newCursor(b)
	for !ca.end || !cb.end {
		// Inserts go first, a's before b's: the other side retains them.
		if ca.isInsert() {
			n := ca.n
			a2 = a2.Insert(ca.take(n).Insert)
			b2 = b2.Retain(n)
			continue
		}
		if cb.isInsert() {
			n := cb.n
			a2 = a2.Retain(n)
			b2 = b2.Insert(cb.take(n).Insert)
			continue
		}
		if ca.end || cb.end {
			// Unreachable after the base length check; kept as a guard.
			return nil, nil, badOp("transform: ops have different lengths")
		}
		m := min(ca.n, cb.n)
		switch {
		case ca.isRetain() && cb.isRetain():
			a2 = a2.Retain(m)
			b2 = b2.Retain(m)
		case ca.isDelete() && cb.isDelete():
			// Both deleted the same text: nothing left to do on either side.
		case ca.isDelete() && cb.isRetain():
			a2 = a2.Delete(m)
		case ca.isRetain() && cb.isDelete():
			b2 = b2.Delete(m)
		}
		ca.take(m)
		cb.take(m)
	}
	return a2, b2, nil
}

// Compose returns one op with the effect of a followed by b:
//
//	Apply(s, Compose(a, b)) == Apply(Apply(s, a), b)
//
// b must apply to a's result, so b.BaseLen() must equal a.TargetLen();
// otherwise, or if either op is invalid, the error wraps ErrBadOp. Text that
// a inserts and b deletes vanishes from the result. This is ot.js's compose;
// the server uses it to fold a client's queued ops into one.
//
// Caveat: compose forgets on which side of deleted text an insert was made.
// Transforming Compose(a1, a2) against a concurrent b converges, but where a
// and b insert at the same place it may order the inserts differently from
// transforming a1 and then a2 one by one (e.g. "ab": a1 appends "Z", a2
// deletes "ab", b prepends "b": composed gives "Zb", one by one "bZ"). All
// replicas must therefore transform the same ops the same way; each is
// correct on its own.
func Compose(a, b Op) (Op, error) {
	_, targetA, err := a.validate()
	if err != nil {
		return nil, err
	}
	baseB, _, err := b.validate()
	if err != nil {
		return nil, err
	}
	if targetA != baseB {
		return nil, badOp("compose: first op target length %d != second op base length %d", targetA, baseB)
	}
	out := make(Op, 0, len(a)+len(b))
	ca, cb := newCursor(a), newCursor(b)
	for !ca.end || !cb.end {
		// a's deletes happen before b sees the text; b's inserts do not
		// consume anything of a's result.
		if ca.isDelete() {
			out = out.Delete(ca.take(ca.n).Delete)
			continue
		}
		if cb.isInsert() {
			out = out.Insert(cb.take(cb.n).Insert)
			continue
		}
		if ca.end || cb.end {
			// Unreachable after the length check; kept as a guard.
			return nil, badOp("compose: ops have incompatible lengths")
		}
		m := min(ca.n, cb.n)
		switch {
		case ca.isRetain() && cb.isRetain():
			out = out.Retain(m)
			ca.take(m)
		case ca.isInsert() && cb.isDelete():
			ca.take(m) // inserted by a, deleted by b: never existed
		case ca.isInsert() && cb.isRetain():
			out = out.Insert(ca.take(m).Insert)
		case ca.isRetain() && cb.isDelete():
			out = out.Delete(m)
			ca.take(m)
		}
		cb.take(m)
	}
	return out, nil
}

// Invert returns the op that undoes op, given the text op was applied to:
//
//	Apply(Apply(s, op), Invert(op, s)) == s
//
// Retains stay retains, inserts become deletes, and deletes become inserts
// of the text they removed, which is why base is needed: an op alone does not
// record what it deleted. op.BaseLen() must equal the code point count of
// base (invalid UTF-8 in base is read as U+FFFD per byte, as in Apply).
// Text.ApplyInvert does the same while applying, without a second pass.
func Invert(op Op, base string) (Op, error) {
	n, _, err := op.validate()
	if err != nil {
		return nil, err
	}
	base = validUTF8(base)
	if l := utf8.RuneCountInString(base); l != n {
		return nil, badOp("invert: op base length %d != text length %d", n, l)
	}
	out := make(Op, 0, len(op))
	i := 0 // byte offset in base
	for _, c := range op {
		switch {
		case c.Retain > 0:
			out = out.Retain(c.Retain)
			i += runeOffset(base[i:], c.Retain)
		case c.Delete > 0:
			j := runeOffset(base[i:], c.Delete)
			out = out.Insert(base[i : i+j])
			i += j
		default:
			out = out.Delete(utf8.RuneCountInString(c.Insert))
		}
	}
	return out, nil
}

// TransformIndex moves a cursor position pos (in code points of op's base
// text) through op and returns where it is in op's result:
//
//   - text inserted before pos moves it right, text deleted before it moves
//     it left, and a position inside a deleted range collapses to where the
//     range was;
//   - text inserted exactly at pos leaves the cursor before the insert,
//     unless stickRight is set, in which case it moves after it (use
//     stickRight for the end of a selection or for the author's own caret);
//   - the order of positions is preserved: p <= q implies
//     TransformIndex(p) <= TransformIndex(q);
//   - the result is clamped into [0, op.TargetLen()], and pos is first
//     clamped into [0, op.BaseLen()], so a stale cursor never points outside
//     the document.
//
// ot.js's transformIndex always sticks right; the explicit flag lets remote
// carets stay put while someone types in front of them.
func TransformIndex(pos int, op Op, stickRight bool) int {
	if pos < 0 {
		pos = 0
	}
	if base := op.BaseLen(); pos > base {
		pos = base
	}
	b, t := 0, 0 // consumed base, produced target
	for _, c := range op {
		switch {
		case c.Retain > 0:
			if pos < b+c.Retain {
				return clampIndex(t+pos-b, op)
			}
			b += c.Retain
			t += c.Retain
		case c.Delete > 0:
			// A position inside the deleted range maps to the same place as
			// the end of the range.
			if pos < b+c.Delete {
				pos = b + c.Delete
			}
			b += c.Delete
		case c.Insert != "":
			if b == pos && !stickRight {
				return clampIndex(t, op)
			}
			t += utf8.RuneCountInString(c.Insert)
		}
	}
	return clampIndex(t, op)
}

func clampIndex(i int, op Op) int {
	if i < 0 {
		return 0
	}
	if n := op.TargetLen(); i > n {
		return n
	}
	return i
}
