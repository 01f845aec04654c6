package e2e

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

// TestMetrics checks that /metrics reports connections, applied ops, op
// latency and store commits after real traffic.
func TestMetrics(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	s.Summit(t, "seoul-2013")
	s.Doc(t, "seoul-2013", "chair-summary", "text")
	tok := s.Token(t, "seoul-2013", "delegate", "KOR")
	c := s.NewClient(t, "seoul-2013", "chair-summary", tok, "m")
	for i := 0; i < 3; i++ {
		if err := c.Edit(ot.Op{}.Retain(ot.NewText(c.Text).Len()).Insert("!")); err != nil {
			t.Fatal(err)
		}
		if err := c.Settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	body := string(s.MustDo(t, http.StatusOK, "GET", "/metrics", "", nil).Body)
	for _, tc := range []struct {
		metric string
		min    float64
	}{
		{"communique_connections", 1},
		{"communique_ops_applied_total", 3},
		{"communique_op_latency_seconds_count", 3},
		{"communique_store_commit_seconds_count", 3},
		{"communique_open_documents", 1},
		{"communique_fanout_drops_total", 0},
	} {
		m := regexp.MustCompile(`(?m)^` + tc.metric + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("metric %s missing", tc.metric)
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil || v < tc.min {
			t.Errorf("%s = %s; want at least %v", tc.metric, m[1], tc.min)
		}
	}
}
