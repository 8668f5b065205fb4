package wanbench

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsPage renders a node's visibility histogram after the given
// observations (seconds) from origin "a", as /metrics shows it.
func metricsPage(t *testing.T, obs ...float64) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "causeway", Name: "visibility_latency_seconds", ConstLabels: prometheus.Labels{"region": "b"},
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"origin"})
	reg.MustRegister(h)
	for _, o := range obs {
		h.WithLabelValues("a").Observe(o)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// The phase's figures are the difference of two readings.
func TestNodeVisibilityFromTwoReadings(t *testing.T) {
	early := []float64{5, 5, 5} // before the phase: must not count
	var phase []float64
	for range 90 {
		phase = append(phase, 0.045)
	}
	for range 10 {
		phase = append(phase, 0.150)
	}
	before, err := parseVisibility(strings.NewReader(metricsPage(t, early...)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseVisibility(strings.NewReader(metricsPage(t, append(early, phase...)...)))
	if err != nil {
		t.Fatal(err)
	}
	rows := []VisibilityRow{{From: "a", To: "b", OneWayMs: 40}, {From: "b", To: "a"}}
	addNodeVisibility(rows,
		map[[2]string]nodeHist{{"a", "b"}: before["a"]},
		map[[2]string]nodeHist{{"a", "b"}: after["a"]})
	r := rows[0]
	if r.NodeWrites != 100 {
		t.Fatalf("node writes %d, want the phase's 100", r.NodeWrites)
	}
	if want := (90*45.0 + 10*150.0) / 100; math.Abs(r.NodeMeanMs-want) > 1e-6 {
		t.Fatalf("mean %.3f ms, want %.3f", r.NodeMeanMs, want)
	}
	if rows[1].NodeWrites != 0 {
		t.Fatal("a pair without readings got node figures")
	}
	// A region that restarted between the readings counts from zero again:
	// no figure rather than a wrapped-around one.
	restarted := []VisibilityRow{{From: "a", To: "b"}}
	addNodeVisibility(restarted,
		map[[2]string]nodeHist{{"a", "b"}: after["a"]},
		map[[2]string]nodeHist{{"a", "b"}: before["a"]})
	if restarted[0].NodeWrites != 0 {
		t.Fatalf("counts that went down gave %d writes", restarted[0].NodeWrites)
	}
	var out strings.Builder
	writeNodeVisibility(&out, rows)
	if !strings.Contains(out.String(), "| a | b | 0 | 40.0 | 100 | 55.5 | +15.5 |") {
		t.Fatalf("report table:\n%s", out.String())
	}
	out.Reset()
	writeNodeVisibility(&out, rows[1:])
	if out.Len() != 0 {
		t.Fatalf("a table without node figures: %q", out.String())
	}
}
