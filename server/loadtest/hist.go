package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts durations in log-linear buckets, like HdrHistogram: each
// power of two is split into 2^subBits buckets, so a percentile is off by
// at most 1/2^subBits (under 0.8%). Recording is one atomic add and never
// allocates, so thousands of followers can share one histogram without a
// lock; quantiles are read from a Snapshot.
type Histogram struct {
	counts [buckets]atomic.Uint64
	max    atomic.Int64
}

const (
	subBits = 7
	subN    = 1 << subBits
	// Durations are recorded in nanoseconds; 2^40 ns is about 18 minutes,
	// far beyond any run, and larger values land in the last bucket.
	maxExp  = 40
	buckets = (maxExp - subBits + 2) * subN
)

func bucketOf(ns int64) int {
	if ns < subN {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	e := bits.Len64(uint64(ns)) - subBits // >= 1
	if e > maxExp-subBits+1 {
		return buckets - 1
	}
	return e*subN + int(uint64(ns)>>(e-1)) - subN
}

// bucketMid is a representative value of bucket i: its midpoint.
func bucketMid(i int) int64 {
	if i < subN {
		return int64(i)
	}
	e := i / subN
	lo := int64(i%subN+subN) << (e - 1)
	return lo + (int64(1)<<(e-1))/2
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	ns := int64(d)
	h.counts[bucketOf(ns)].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// Snapshot is a copy of a Histogram's counts at one moment.
type Snapshot struct {
	counts [buckets]uint64
	n      uint64
	max    int64
}

// Snapshot copies the current counts.
func (h *Histogram) Snapshot() *Snapshot {
	s := &Snapshot{max: h.max.Load()}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] = c
		s.n += c
	}
	return s
}

// Sub returns the counts recorded between prev and s (for a progress line
// over the last interval). Max is s's.
func (s *Snapshot) Sub(prev *Snapshot) *Snapshot {
	d := &Snapshot{max: s.max}
	for i := range s.counts {
		d.counts[i] = s.counts[i] - prev.counts[i]
		d.n += d.counts[i]
	}
	return d
}

// Count is the number of recorded durations.
func (s *Snapshot) Count() uint64 { return s.n }

// Max is the largest duration recorded (exact).
func (s *Snapshot) Max() time.Duration { return time.Duration(s.max) }

// Quantile returns the duration below which a fraction q of the samples
// fall (0 with no samples).
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			v := bucketMid(i)
			if v > s.max {
				v = s.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(s.max)
}

// Mean is the average duration, from bucket midpoints.
func (s *Snapshot) Mean() time.Duration {
	if s.n == 0 {
		return 0
	}
	var sum float64
	for i, c := range s.counts {
		if c > 0 {
			sum += float64(c) * float64(bucketMid(i))
		}
	}
	return time.Duration(sum / float64(s.n))
}
