package wanbench

import (
	"testing"
	"time"
)

func TestPercentilesNearestRank(t *testing.T) {
	var s samples
	for i := 100; i >= 1; i-- { // added out of order
		s.add(time.Duration(i) * time.Millisecond)
	}
	s.fail(nil)
	sum := s.summarize(time.Second)
	for _, tt := range []struct {
		name      string
		got, want float64
	}{
		{"p50", sum.P50ms, 50}, {"p90", sum.P90ms, 90}, {"p99", sum.P99ms, 99},
		{"p99.9", sum.P999ms, 100}, {"max", sum.MaxMs, 100}, {"ops/s", sum.OpsPerSec, 100},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if sum.Count != 100 || sum.Errors != 1 {
		t.Errorf("count %d errors %d, want 100 and 1", sum.Count, sum.Errors)
	}
	if empty := (&samples{}).summarize(time.Second); empty.P50ms != 0 || empty.Count != 0 {
		t.Errorf("empty summary = %+v", empty)
	}
}

func TestSamplesStayBounded(t *testing.T) {
	s := samples{rnd: 7}
	for i := range maxSamples + 1000 {
		s.add(time.Duration(i))
	}
	if len(s.d) != maxSamples || s.seen != maxSamples+1000 {
		t.Fatalf("kept %d of %d samples, want %d of %d", len(s.d), s.seen, maxSamples, maxSamples+1000)
	}
}

func TestCDFEndsAtOne(t *testing.T) {
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7}
	pts := cdf(sorted, 3)
	if len(pts) == 0 || pts[len(pts)-1][1] != 1 {
		t.Fatalf("cdf %v does not end at fraction 1", pts)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i][0] < pts[i-1][0] || pts[i][1] < pts[i-1][1] {
			t.Fatalf("cdf %v is not monotonic", pts)
		}
	}
}
