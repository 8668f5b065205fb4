package wanbench

import (
	"math"
	"testing"
)

// TestMeanOKOverWindows: a fault window's throughput is the mean of the
// whole seconds within it, and a window shorter than a whole second gets
// the overlap-weighted mean of the seconds it touches, not zero.
func TestMeanOKOverWindows(t *testing.T) {
	run := &FaultRun{Series: []FaultSeries{{Tier: "causal", Regions: "faulted", Bins: []FaultBin{
		{T: 0, PerRegion: 10}, {T: 1, PerRegion: 20}, {T: 2, PerRegion: 30}, {T: 3, PerRegion: 40},
	}}}}
	for _, c := range []struct {
		name     string
		from, to float64
		want     float64
	}{
		{"two whole seconds", 1, 3, 25},
		{"whole seconds only, edges left out", 0.5, 3.5, 25},
		{"shorter than a whole second", 1.02, 2.05, (20*0.98 + 30*0.05) / 1.03},
		{"past the last bin", 9, 10, 0},
	} {
		if got := run.meanOK("causal", "faulted", c.from, c.to); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s [%.2f, %.2f): %.3f ok/s, want %.3f", c.name, c.from, c.to, got, c.want)
		}
	}
	if got := run.meanOK("linear", "faulted", 1, 3); got != 0 {
		t.Errorf("a tier with no series: %.1f, want 0", got)
	}
}
