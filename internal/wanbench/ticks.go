package wanbench

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// logTicks marks a log-scaled latency axis at 1, 2 and 5 times each power
// of ten, labelled, so that a range inside one decade (200 to 700 ms)
// still has labels; gonum's LogTicks labels powers of ten only.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		base := math.Pow(10, e)
		for _, m := range []float64{1, 2, 5} {
			v := m * base
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return ticks
}

// exponentTicks marks a linear axis of base-10 logarithms (a log axis drawn
// as linear: gonum places a log axis's label by the arithmetic middle of
// its range, near the top, and pushes the data area down to fit it) with
// logTicks' values, ending at the first of them at or above upTo, the
// data's highest value: above it the axis is the legend's room, and no
// gridline or label crosses the legend.
type exponentTicks struct{ upTo float64 }

func (t exponentTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := logTicks{}.Ticks(math.Pow(10, lo), min(math.Pow(10, hi), logTickAtOrAbove(t.upTo)))
	for i := range ticks {
		ticks[i].Value = math.Log10(ticks[i].Value)
	}
	return ticks
}

// logTickAtOrAbove is the smallest of 1, 2 and 5 times a power of ten at
// or above v (v > 0).
func logTickAtOrAbove(v float64) float64 {
	base := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*base >= v*(1-1e-9) {
			return m * base
		}
	}
	return 10 * base
}

// secondTicks marks a time axis in whole seconds: labelled ticks every 1,
// 2, 5, 10, 20, 30 or 60 s (or a multiple of 60), the smallest step that
// gives at most maxSecondTicks of them, and unlabelled ticks between.
// gonum's default ticks may fall on fractions and are labelled with two
// decimals ("25.00").
type secondTicks struct{}

// maxSecondTicks bounds the labelled ticks of a time axis.
const maxSecondTicks = 8

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return nil
	}
	step := 60.0
	for _, s := range []float64{1, 2, 5, 10, 20, 30, 60} {
		if (hi-lo)/s <= maxSecondTicks {
			step = s
			break
		}
	}
	for (hi-lo)/step > maxSecondTicks {
		step += 60
	}
	minor := step / 5
	switch {
	case step == 1:
		minor = 0
	case step == 2 || step == 30:
		minor = step / 2
	case step == 20:
		minor = 5
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	if minor > 0 {
		for v := math.Ceil(lo/minor) * minor; v <= hi; v += minor {
			if math.Mod(v, step) != 0 {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	return ticks
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("250", not "250.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if !t.IsMinor() {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
}
