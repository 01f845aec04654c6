package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"communique/server/doc"
)

// metrics are the server's Prometheus collectors, in a registry of its own
// (no global state: two servers in one test process do not collide).
type metrics struct {
	registry    *prometheus.Registry
	connections prometheus.Gauge
	opsApplied  prometheus.Counter
	opLatency   prometheus.Histogram
	commit      prometheus.Histogram
	drops       prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "communique_connections",
			Help: "Open WebSocket connections.",
		}),
		opsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "communique_ops_applied_total",
			Help: "Operations committed and acknowledged.",
		}),
		opLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "communique_op_latency_seconds",
			Help:    "Time from receiving an op to acknowledging it (includes the fsync).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "communique_store_commit_seconds",
			Help:    "Duration of one store append as a document session sees it.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		drops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "communique_fanout_drops_total",
			Help: "Connections dropped because their send queue was full.",
		}),
	}
	m.registry.MustRegister(m.connections, m.opsApplied, m.opLatency, m.commit, m.drops,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) docHooks() doc.Hooks {
	return doc.Hooks{
		OpApplied: func(received time.Time) {
			m.opsApplied.Inc()
			m.opLatency.Observe(time.Since(received).Seconds())
		},
		Committed: func(took time.Duration) { m.commit.Observe(took.Seconds()) },
		Dropped:   m.drops.Inc,
	}
}

func (m *metrics) connCount(delta int) { m.connections.Add(float64(delta)) }
