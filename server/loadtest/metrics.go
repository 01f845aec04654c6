package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
)

// promHist is one Prometheus histogram read from /metrics: cumulative
// counts by upper bound (seconds).
type promHist struct {
	bounds []float64
	counts []float64 // cumulative, same order as bounds; the last bound is +Inf
}

// scrapeHists reads the named histograms from the server's /metrics.
func (t *Target) scrapeHists(ctx context.Context, names ...string) (map[string]*promHist, error) {
	data, err := t.fetch(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]*promHist{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
			if !ok {
				continue
			}
			i := strings.Index(rest, `"}`)
			if i < 0 {
				continue
			}
			le, err1 := strconv.ParseFloat(rest[:i], 64) // "+Inf" parses as +Inf
			n, err2 := strconv.ParseFloat(strings.TrimSpace(rest[i+2:]), 64)
			if err1 != nil || err2 != nil {
				continue
			}
			h := out[name]
			if h == nil {
				h = &promHist{}
				out[name] = h
			}
			h.bounds = append(h.bounds, le)
			h.counts = append(h.counts, n)
		}
	}
	for _, h := range out {
		sort.Sort(byBound{h})
	}
	return out, sc.Err()
}

type byBound struct{ h *promHist }

func (b byBound) Len() int           { return len(b.h.bounds) }
func (b byBound) Less(i, j int) bool { return b.h.bounds[i] < b.h.bounds[j] }
func (b byBound) Swap(i, j int) {
	b.h.bounds[i], b.h.bounds[j] = b.h.bounds[j], b.h.bounds[i]
	b.h.counts[i], b.h.counts[j] = b.h.counts[j], b.h.counts[i]
}

// addHists adds b's histograms to a's (a may be nil: b is copied) and
// returns the sum, or nil if the two have different buckets.
func addHists(a, b map[string]*promHist) map[string]*promHist {
	out := make(map[string]*promHist, len(b))
	for name, hb := range b {
		ha := a[name]
		if a != nil && (ha == nil || len(ha.counts) != len(hb.counts)) {
			return nil
		}
		h := &promHist{bounds: hb.bounds, counts: make([]float64, len(hb.counts))}
		for i, c := range hb.counts {
			h.counts[i] = c
			if ha != nil {
				if ha.bounds[i] != hb.bounds[i] {
					return nil
				}
				h.counts[i] += ha.counts[i]
			}
		}
		out[name] = h
	}
	return out
}

// sub returns the observations between prev and h (same buckets).
func (h *promHist) sub(prev *promHist) *promHist {
	if prev == nil || len(prev.counts) != len(h.counts) {
		return h
	}
	d := &promHist{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		d.counts[i] = h.counts[i] - prev.counts[i]
	}
	return d
}

// quantile interpolates linearly inside the bucket holding rank q, as
// Prometheus's histogram_quantile does; it returns seconds (NaN if empty).
func (h *promHist) quantile(q float64) float64 {
	if h == nil || len(h.counts) == 0 {
		return math.NaN()
	}
	total := h.counts[len(h.counts)-1]
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	lower, prevCount := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			upper := h.bounds[i]
			if math.IsInf(upper, 1) {
				return lower // beyond the last finite bound: report that bound
			}
			if c == prevCount {
				return upper
			}
			return lower + (upper-lower)*(rank-prevCount)/(c-prevCount)
		}
		lower, prevCount = h.bounds[i], c
	}
	return lower
}

func (h *promHist) count() float64 {
	if h == nil || len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// ServerLatency is what the server itself measured during the window, from
// its Prometheus histograms (bucket bounds double from 50 µs, so these are
// interpolated estimates).
type ServerLatency struct {
	OpP50        float64 `json:"op_p50_ms"` // receipt to ack, fsync included
	OpP99        float64 `json:"op_p99_ms"`
	CommitP50    float64 `json:"commit_p50_ms"` // one store append as a session sees it
	CommitP99    float64 `json:"commit_p99_ms"`
	Commits      float64 `json:"commits"`
	OpsPerCommit float64 `json:"ops_per_commit"`
}

const (
	metricOp     = "communique_op_latency_seconds"
	metricCommit = "communique_store_commit_seconds"
)

func serverLatency(before, after map[string]*promHist) *ServerLatency {
	if before == nil || after == nil || after[metricOp] == nil || after[metricCommit] == nil {
		return nil
	}
	op := after[metricOp].sub(before[metricOp])
	cm := after[metricCommit].sub(before[metricCommit])
	ms := func(s float64) float64 {
		if math.IsNaN(s) {
			return 0
		}
		return s * 1000
	}
	sl := &ServerLatency{
		OpP50: ms(op.quantile(0.5)), OpP99: ms(op.quantile(0.99)),
		CommitP50: ms(cm.quantile(0.5)), CommitP99: ms(cm.quantile(0.99)),
		Commits: cm.count(),
	}
	if sl.Commits > 0 {
		sl.OpsPerCommit = op.count() / sl.Commits
	}
	return sl
}
