package wanbench

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestSecondTicksAreWholeSeconds: a time axis is labelled in whole seconds
// ("25", never "25.00"), with at most maxSecondTicks labels, whatever its
// span.
func TestSecondTicksAreWholeSeconds(t *testing.T) {
	for _, tt := range []struct {
		lo, hi float64
		want   string // the labels, comma-separated
	}{
		{0, 5.5, "0,1,2,3,4,5"},
		{0, 12.5, "0,2,4,6,8,10,12"},
		{0, 57.3, "0,10,20,30,40,50"},
		{0, 130, "0,20,40,60,80,100,120"},
		{0, 600, "0,120,240,360,480,600"},
		{3.5, 9, "4,5,6,7,8,9"},
	} {
		var labels []string
		for _, tick := range (secondTicks{}).Ticks(tt.lo, tt.hi) {
			if tick.IsMinor() {
				continue
			}
			if _, err := strconv.Atoi(tick.Label); err != nil {
				t.Errorf("[%g, %g]: label %q is not a whole number", tt.lo, tt.hi, tick.Label)
			}
			labels = append(labels, tick.Label)
		}
		if got := strings.Join(labels, ","); got != tt.want {
			t.Errorf("[%g, %g]: labels %s, want %s", tt.lo, tt.hi, got, tt.want)
		}
	}
}

// TestPlainTicksHaveNoTrailingZeros: a linear axis's labels read "250",
// not "250.00".
func TestPlainTicksHaveNoTrailingZeros(t *testing.T) {
	for _, hi := range []float64{1, 7.5, 160, 800, 1250} {
		for _, tick := range (plainTicks{}).Ticks(0, hi) {
			if strings.Contains(tick.Label, ".") && strings.HasSuffix(tick.Label, "0") {
				t.Errorf("[0, %g]: label %q has trailing zeros", hi, tick.Label)
			}
		}
	}
}

// TestExponentTicksStopAboveTheData: a log10 axis is labelled in its
// values at 1, 2 and 5 times powers of ten, up to the first such value at
// or above the data's highest, and no higher: the room above is the
// legend's.
func TestExponentTicksStopAboveTheData(t *testing.T) {
	ticks := exponentTicks{upTo: 9600}.Ticks(math.Log10(20), math.Log10(500000))
	var labels []string
	for _, tick := range ticks {
		if want := strconv.FormatFloat(math.Pow(10, tick.Value), 'g', 6, 64); want != tick.Label {
			t.Errorf("tick at 10^%g labelled %q, want %q", tick.Value, tick.Label, want)
		}
		labels = append(labels, tick.Label)
	}
	if got, want := strings.Join(labels, ","), "20,50,100,200,500,1000,2000,5000,10000"; got != want {
		t.Errorf("labels %s, want %s", got, want)
	}
}

// TestPlainTicksAreRoundSteps: a linear axis gets 2 to maxPlainTicks
// labelled ticks at a step of 1, 2 or 5 times a power of ten, inside the
// axis, in order, with unlabelled ticks only between them.
func TestPlainTicksAreRoundSteps(t *testing.T) {
	for _, r := range [][2]float64{{0, 1}, {0, 7.5}, {0, 160}, {0, 271}, {0, 800}, {0, 1250}, {3, 47}, {0.0001, 0.0009}} {
		var labels []float64
		for _, tick := range (plainTicks{}).Ticks(r[0], r[1]) {
			if tick.Value < r[0]-1e-12 || tick.Value > r[1]+1e-12 {
				t.Errorf("%v: tick %g outside the axis", r, tick.Value)
			}
			if tick.IsMinor() {
				continue
			}
			v, err := strconv.ParseFloat(tick.Label, 64)
			if err != nil || math.Abs(v-tick.Value) > 1e-9*math.Max(1, math.Abs(v)) {
				t.Errorf("%v: tick at %g labelled %q", r, tick.Value, tick.Label)
			}
			labels = append(labels, v)
		}
		if len(labels) < 2 || len(labels) > maxPlainTicks {
			t.Errorf("%v: %d labelled ticks %v, want 2 to %d", r, len(labels), labels, maxPlainTicks)
			continue
		}
		step := labels[1] - labels[0]
		mant := step / math.Pow(10, math.Floor(math.Log10(step)))
		if math.Abs(mant-1) > 1e-6 && math.Abs(mant-2) > 1e-6 && math.Abs(mant-5) > 1e-6 {
			t.Errorf("%v: step %g is not 1, 2 or 5 times a power of ten", r, step)
		}
	}
}
