package changes

// A persistent B-tree of weighted items, the shape of ot.Text's rope with
// items instead of UTF-8 chunks: Authorship keeps its spans in one (an
// item's weight is its length in code points) and its deletion marks in
// another (a mark's weight is its distance from the previous mark, so its
// position is the sum of the weights up to and including it). Inner nodes
// cache the total weight and item count of their subtrees, so finding a
// position skips whole subtrees, and an edit copies only the path it
// touches: the cost of an op does not grow with the document's history.
//
// Nodes are never modified once built; every function returns new nodes
// and leaves its inputs as they were, so an old Authorship stays valid (for
// rollback, and for readers on other goroutines).

const (
	maxItems = 32           // items per leaf, at most
	minItems = maxItems / 4 // a smaller non-root leaf is merged with a neighbour
	cutItems = maxItems * 3 / 4
	maxKids  = 16 // children per inner node, at most
	minKids  = maxKids / 4
)

// item is what a tree holds.
type item interface {
	Span | markItem
	weight() int
}

type node[T item] struct {
	w     int        // total weight of the subtree
	n     int        // items in the subtree
	items []T        // a leaf's items; never appended to in place
	kids  []*node[T] // an inner node's children; nil for a leaf
}

func (x *node[T]) leaf() bool { return x.kids == nil }

func (x *node[T]) underfull() bool {
	if x.leaf() {
		return len(x.items) < minItems
	}
	return len(x.kids) < minKids
}

// newLeaf takes ownership of items.
func newLeaf[T item](items []T) *node[T] {
	x := &node[T]{items: items, n: len(items)}
	for _, it := range items {
		x.w += it.weight()
	}
	return x
}

func newInner[T item](kids []*node[T]) *node[T] {
	x := &node[T]{kids: kids}
	for _, k := range kids {
		x.w += k.w
		x.n += k.n
	}
	return x
}

// leavesOf appends to dst leaves holding items, spread evenly over as few
// leaves of about cutItems as needed. The leaves share items' backing
// array, each capped so that nothing can append into its neighbour.
func leavesOf[T item](items []T, dst []*node[T]) []*node[T] {
	if len(items) == 0 {
		return dst
	}
	if len(items) <= maxItems {
		return append(dst, newLeaf(items[:len(items):len(items)]))
	}
	k := (len(items) + cutItems - 1) / cutItems
	for i := range k {
		lo, hi := len(items)*i/k, len(items)*(i+1)/k
		dst = append(dst, newLeaf(items[lo:hi:hi]))
	}
	return dst
}

// build is the tree of items (nil for none).
func build[T item](items []T) *node[T] {
	return buildRoot(leavesOf(items, nil))
}

// buildRoot stacks levels over same-height nodes until one root remains.
func buildRoot[T item](level []*node[T]) *node[T] {
	if len(level) == 0 {
		return nil
	}
	for len(level) > 1 {
		level = group(level)
	}
	root := level[0]
	for !root.leaf() && len(root.kids) == 1 {
		root = root.kids[0]
	}
	return root
}

// group packs same-height nodes into as few parents as possible, spread
// evenly so that every parent is at least half full when there are several.
func group[T item](list []*node[T]) []*node[T] {
	k := (len(list) + maxKids - 1) / maxKids
	out := make([]*node[T], 0, k)
	for i := range k {
		lo, hi := len(list)*i/k, len(list)*(i+1)/k
		out = append(out, newInner(append([]*node[T](nil), list[lo:hi]...)))
	}
	return out
}

// leafEdit rewrites the items of one leaf: weight [pos, pos+del) removed
// and ins put at pos. It returns a new slice, never one sharing items'
// array.
type leafEdit[T item] func(items []T, pos, del int, ins []T) []T

// splice replaces weight [pos, pos+del) of the subtree x (nil = empty) with
// ins, as edit does it inside a leaf; it appends the replacement, zero or
// more nodes of x's height, to dst. Whole subtrees inside the range are
// dropped (only spans are ever deleted this way; marks keep their items).
// Underfull nodes are merged with a sibling on the way back up, exactly as
// in ot.Text's splice, whose comments explain the invariants.
func splice[T item](dst []*node[T], x *node[T], pos, del int, ins []T, edit leafEdit[T]) []*node[T] {
	if x == nil {
		return leavesOf(edit(nil, pos, del, ins), dst)
	}
	if x.leaf() {
		return leavesOf(edit(x.items, pos, del, ins), dst)
	}
	// The first child touched: the one holding pos, or, for a pure insert
	// at a boundary, the child ending there.
	ch := x.kids
	i, acc := 0, 0
	for i < len(ch)-1 && (pos > acc+ch[i].w || (del > 0 && pos == acc+ch[i].w)) {
		acc += ch[i].w
		i++
	}
	kids := make([]*node[T], 0, len(ch)+2)
	kids = append(kids, ch[:i]...)
	j := i
	if del == 0 || pos+del <= acc+ch[i].w {
		// (A mark may be put past the last one: pos beyond the weight.)
		kids = splice(kids, ch[i], pos-acc, del, ins, edit)
	} else {
		accJ := acc
		for accJ+ch[j].w < pos+del {
			accJ += ch[j].w
			j++
		}
		kids = splice(kids, ch[i], pos-acc, ch[i].w-(pos-acc), ins, edit)
		kids = splice(kids, ch[j], 0, pos+del-accJ, nil, edit)
	}
	kids = append(kids, ch[j+1:]...)
	kids = fixUnderfull(kids)
	switch {
	case len(kids) == 0:
		return dst
	case len(kids) <= maxKids:
		return append(dst, newInner(kids))
	default:
		return append(dst, group(kids)...)
	}
}

// fixUnderfull merges every underfull node of a list of same-height
// siblings with a neighbour, as long as the list has more than one node.
func fixUnderfull[T item](list []*node[T]) []*node[T] {
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
		k = l
		if len(merged) == 2 || !merged[0].underfull() {
			k = l + len(merged)
		}
	}
	return list
}

// merge joins two adjacent same-height nodes into one, or two if one would
// be too big.
func merge[T item](x, y *node[T]) []*node[T] {
	if x.leaf() {
		items := make([]T, 0, len(x.items)+len(y.items))
		items = append(append(items, x.items...), y.items...)
		if len(items) <= maxItems {
			return []*node[T]{newLeaf(items)}
		}
		h := len(items) / 2
		return []*node[T]{newLeaf(items[:h:h]), newLeaf(items[h:])}
	}
	kids := make([]*node[T], 0, len(x.kids)+len(y.kids))
	kids = append(append(kids, x.kids...), y.kids...)
	kids = fixUnderfull(kids)
	if len(kids) <= maxKids {
		return []*node[T]{newInner(kids)}
	}
	h := len(kids) / 2
	return []*node[T]{newInner(kids[:h:h]), newInner(kids[h:])}
}

// each calls fn with every item in order until it returns false.
func (x *node[T]) each(fn func(T) bool) bool {
	if x == nil {
		return true
	}
	if x.leaf() {
		for _, it := range x.items {
			if !fn(it) {
				return false
			}
		}
		return true
	}
	for _, k := range x.kids {
		if !k.each(fn) {
			return false
		}
	}
	return true
}

func (x *node[T]) weight() int {
	if x == nil {
		return 0
	}
	return x.w
}

func (x *node[T]) count() int {
	if x == nil {
		return 0
	}
	return x.n
}
