package ot

import (
	"strings"
	"unicode/utf8"
)

// Text is an immutable document: a persistent B-tree rope of code points.
//
// Apply returns a new Text and leaves the receiver untouched; the two share
// every node the op did not touch (path copying). Keeping the old value is
// therefore a cheap snapshot, useful for rollback and for readers on other
// goroutines, which may read a Text concurrently without locking because no
// Text is ever modified after it is built. The zero value is the empty text.
//
// Shape: leaves hold UTF-8 chunks of at most maxLeaf bytes with cached code
// point and byte counts; inner nodes hold up to maxFan children and cache the
// totals of their subtrees. All leaves are at the same depth and every node
// except the root is kept at least a quarter full, so the depth is
// O(log n). Walking to a position skips whole subtrees by their counts, so an
// op touching k places costs O(k·(log n + leaf size) + inserted bytes),
// independent of the document length.
type Text struct {
	root *node
}

const (
	maxLeaf = 512             // bytes of UTF-8 per leaf, at most
	minLeaf = maxLeaf / 4     // a smaller non-root leaf is merged with a neighbour
	maxFan  = 32              // children per inner node, at most
	minFan  = maxFan / 4      // fewer makes a non-root inner node underfull
	cutLeaf = maxLeaf * 3 / 4 // target chunk size when building leaves
)

// node is a leaf (children == nil, text set) or an inner node. Nodes are
// never modified once they are reachable from a Text.
type node struct {
	runes    int // code points in the subtree
	bytes    int // UTF-8 bytes in the subtree
	text     string
	children []*node
}

func (n *node) leaf() bool { return n.children == nil }

func (n *node) underfull() bool {
	if n.leaf() {
		return n.bytes < minLeaf
	}
	return len(n.children) < minFan
}

func newLeaf(s string, runes int) *node {
	return &node{runes: runes, bytes: len(s), text: s}
}

func newInner(children []*node) *node {
	n := &node{children: children}
	for _, c := range children {
		n.runes += c.runes
		n.bytes += c.bytes
	}
	return n
}

// NewText builds a Text holding s. Invalid UTF-8 bytes become U+FFFD, one
// code point each (see the package documentation).
func NewText(s string) Text {
	s = validUTF8(s)
	return Text{root: buildRoot(leavesOf(s, nil))}
}

// leavesOf appends to dst leaves holding s cut at code point boundaries into
// chunks of about cutLeaf bytes (never more than maxLeaf).
func leavesOf(s string, dst []*node) []*node {
	if len(s) <= maxLeaf {
		if s != "" {
			dst = append(dst, newLeaf(s, utf8.RuneCountInString(s)))
		}
		return dst
	}
	// Spread evenly so no chunk is tiny: k chunks of about len(s)/k bytes,
	// each cut moved forward to the next code point boundary. Cuts are
	// computed from absolute offsets so the adjustments never accumulate.
	k := (len(s) + cutLeaf - 1) / cutLeaf
	prev := 0
	for i := 1; i <= k; i++ {
		end := len(s) * i / k
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		if end > prev {
			dst = append(dst, newLeaf(s[prev:end], utf8.RuneCountInString(s[prev:end])))
		}
		prev = end
	}
	return dst
}

// buildRoot stacks levels over same-height nodes until one root remains.
func buildRoot(level []*node) *node {
	if len(level) == 0 {
		return nil
	}
	for len(level) > 1 {
		level = group(level)
	}
	root := level[0]
	// A root with a single child is just that child.
	for !root.leaf() && len(root.children) == 1 {
		root = root.children[0]
	}
	return root
}

// group packs same-height nodes into as few parents as possible, spreading
// them evenly so every parent has at least maxFan/2 children when there is
// more than one parent.
func group(list []*node) []*node {
	k := (len(list) + maxFan - 1) / maxFan
	out := make([]*node, 0, k)
	for i := 0; i < k; i++ {
		lo, hi := len(list)*i/k, len(list)*(i+1)/k
		out = append(out, newInner(append([]*node(nil), list[lo:hi]...)))
	}
	return out
}

// Len is the number of code points, in O(1).
func (t Text) Len() int {
	if t.root == nil {
		return 0
	}
	return t.root.runes
}

// String returns the whole text.
func (t Text) String() string {
	if t.root == nil {
		return ""
	}
	var b strings.Builder
	b.Grow(t.root.bytes)
	t.root.writeTo(&b)
	return b.String()
}

func (n *node) writeTo(b *strings.Builder) {
	if n.leaf() {
		b.WriteString(n.text)
		return
	}
	for _, c := range n.children {
		c.writeTo(b)
	}
}

// Slice returns code points [from, to). Bounds are clamped into [0, Len()]
// and an empty or inverted range yields "", so a stale range never panics.
// It costs O(log n + to - from).
func (t Text) Slice(from, to int) string {
	from = max(from, 0)
	to = min(to, t.Len())
	if from >= to {
		return ""
	}
	var b strings.Builder
	t.root.slice(from, to, &b)
	return b.String()
}

func (n *node) slice(from, to int, b *strings.Builder) {
	if n.leaf() {
		ascii := n.runes == n.bytes
		i := leafOffset(n.text, from, ascii)
		j := i + leafOffset(n.text[i:], to-from, ascii)
		b.WriteString(n.text[i:j])
		return
	}
	acc := 0
	for _, c := range n.children {
		if acc >= to {
			return
		}
		if end := acc + c.runes; end > from {
			c.slice(max(from-acc, 0), min(to-acc, c.runes), b)
		}
		acc += c.runes
	}
}

// leafOffset is runeOffset with a shortcut for all-ASCII leaves.
func leafOffset(s string, n int, ascii bool) int {
	if ascii {
		return min(n, len(s))
	}
	return runeOffset(s, n)
}

// Apply returns the text with op applied; t itself is unchanged. The law is
// the same as for the function Apply: op.BaseLen() must equal t.Len(), and
// Apply(t.String(), op) == result.String(). On error (wrapping ErrBadOp) t
// is returned unchanged. Retains are skipped by subtree counts, so the cost
// depends on the number and size of the edits, not the document length.
func (t Text) Apply(op Op) (Text, error) {
	out, _, err := t.apply(op, false)
	return out, err
}

// ApplyInvert is Apply that also returns the inverse op (see Invert),
// reading the deleted text from the tree as it goes, at the same cost.
func (t Text) ApplyInvert(op Op) (Text, Op, error) {
	return t.apply(op, true)
}

func (t Text) apply(op Op, invert bool) (Text, Op, error) {
	base, _, err := op.validate()
	if err != nil {
		return t, nil, err
	}
	if base != t.Len() {
		return t, nil, badOp("op base length %d != text length %d", base, t.Len())
	}
	var inv Op
	if invert {
		inv = make(Op, 0, len(op))
	}
	root := t.root
	pos := 0 // position in the partly edited text
	for i := 0; i < len(op); {
		c := op[i]
		if c.Retain > 0 {
			pos += c.Retain
			if invert {
				inv = inv.Retain(c.Retain)
			}
			i++
			continue
		}
		// Gather the run of inserts and deletes up to the next retain into
		// one splice.
		del, ins, insRunes := 0, "", 0
		for ; i < len(op) && op[i].Retain == 0; i++ {
			if op[i].Delete > 0 {
				del += op[i].Delete
			} else {
				ins += op[i].Insert
				insRunes += utf8.RuneCountInString(op[i].Insert)
			}
		}
		if invert {
			var deleted string
			if del > 0 {
				var b strings.Builder
				root.slice(pos, pos+del, &b)
				deleted = b.String()
			}
			inv = inv.Insert(deleted).Delete(insRunes)
		}
		var buf [2]*node
		root = buildRoot(splice(buf[:0], root, pos, del, ins, insRunes))
		pos += insRunes
	}
	return Text{root: root}, inv, nil
}

// splice replaces code points [pos, pos+del) of the subtree n (nil = empty)
// with ins, appends the replacement to dst and returns the extended slice.
// The replacement is zero or more nodes of n's height. Each is either
// sound (no underfull node below it) or, when an edit left it a single
// child, the top of a chain of single children ending in a sound node. The
// returned nodes may be underfull themselves: the caller merges them with a
// sibling (fixUnderfull, whose merge repairs such chains at the seam), and
// buildRoot collapses a chain that reaches the root. Appending to the
// caller's slice, rather than returning a new one, saves an allocation per
// level on the hot path.
func splice(dst []*node, n *node, pos, del int, ins string, insRunes int) []*node {
	if n == nil {
		return leavesOf(ins, dst)
	}
	if n.leaf() {
		ascii := n.runes == n.bytes
		i := leafOffset(n.text, pos, ascii)
		j := i + leafOffset(n.text[i:], del, ascii)
		if len(n.text)-(j-i)+len(ins) <= maxLeaf {
			s := n.text[:i] + ins + n.text[j:]
			if s == "" {
				return dst
			}
			return append(dst, newLeaf(s, n.runes-del+insRunes))
		}
		return leavesOf(n.text[:i]+ins+n.text[j:], dst)
	}

	// Find the first child touched: the one holding pos, or, for a pure
	// insert at a boundary, the child ending there (typing appends to the
	// end of a leaf rather than the start of the next one).
	ch := n.children
	i, acc := 0, 0
	for i < len(ch)-1 && (pos > acc+ch[i].runes || (del > 0 && pos == acc+ch[i].runes)) {
		acc += ch[i].runes
		i++
	}
	children := make([]*node, 0, len(ch)+1)
	children = append(children, ch[:i]...)
	j := i
	if pos+del <= acc+ch[i].runes {
		children = splice(children, ch[i], pos-acc, del, ins, insRunes)
	} else {
		// The deleted range spans children i..j: cut the tail of i (and
		// insert there), drop the children in between, cut the head of j.
		accJ := acc
		for accJ+ch[j].runes < pos+del {
			accJ += ch[j].runes
			j++
		}
		children = splice(children, ch[i], pos-acc, ch[i].runes-(pos-acc), ins, insRunes)
		children = splice(children, ch[j], 0, pos+del-accJ, "", 0)
	}
	children = append(children, ch[j+1:]...)
	children = fixUnderfull(children)
	switch {
	case len(children) == 0:
		return dst
	case len(children) <= maxFan:
		return append(dst, newInner(children))
	default:
		return append(dst, group(children)...)
	}
}

// fixUnderfull merges every underfull node in a list of same-height
// siblings with a neighbour, as long as the list has more than one node. The
// list is modified in place and returned.
func fixUnderfull(list []*node) []*node {
	for k := 0; k < len(list) && len(list) > 1; {
		if !list[k].underfull() {
			k++
			continue
		}
		l := k
		if l == len(list)-1 {
			l--
		}
		merged := merge(list[l], list[l+1])
		list = append(list[:l], append(merged, list[l+2:]...)...)
		// A split result is always full enough. A single merged node can
		// still be underfull if both inputs were small: then look at it
		// again, so it merges with its next neighbour.
		k = l
		if len(merged) == 2 || !merged[0].underfull() {
			k = l + len(merged)
		}
	}
	return list
}

// merge joins two adjacent same-height nodes into one, or two if one would
// be too big. Underfull children meeting at the seam are merged in turn.
func merge(x, y *node) []*node {
	if x.leaf() {
		s := x.text + y.text
		if len(s) <= maxLeaf {
			return []*node{newLeaf(s, x.runes+y.runes)}
		}
		// Split in the middle, at a code point boundary.
		i := len(s) / 2
		for !utf8.RuneStart(s[i]) {
			i++
		}
		return []*node{newLeaf(s[:i], utf8.RuneCountInString(s[:i])), newLeaf(s[i:], utf8.RuneCountInString(s[i:]))}
	}
	children := make([]*node, 0, len(x.children)+len(y.children))
	children = append(children, x.children...)
	children = append(children, y.children...)
	children = fixUnderfull(children)
	if len(children) <= maxFan {
		return []*node{newInner(children)}
	}
	h := len(children) / 2
	return []*node{newInner(children[:h:h]), newInner(children[h:])}
}
