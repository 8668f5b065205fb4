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

// plainTicks mark a linear axis at 1, 2 or 5 times a power of ten, the
// smallest such step that gives at most maxPlainTicks labelled ticks,
// labelled without trailing zeros ("250", not "250.00"), with unlabelled
// ticks between. gonum's default labels two ticks of a typical axis, with
// two decimals.
type plainTicks struct{}

// maxPlainTicks bounds the labelled ticks of a linear axis.
const maxPlainTicks = 6

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return nil
	}
	mag := math.Pow(10, math.Floor(math.Log10((hi-lo)/maxPlainTicks)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(m*mag) <= maxPlainTicks {
			step = m * mag
			break
		}
	}
	minor := step / 5
	if math.Abs(step/mag-2) < 1e-9 {
		minor = step / 4
	}
	var ticks []plot.Tick
	first := math.Ceil(lo/step) * step
	for i := 0; ; i++ {
		v := first + float64(i)*step
		if v > hi+step*1e-9 {
			break
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(roundTo(v, step), 'f', -1, 64)})
	}
	firstMinor := math.Ceil(lo/minor) * minor
	for i := 0; ; i++ {
		v := firstMinor + float64(i)*minor
		if v > hi+minor*1e-9 {
			break
		}
		if r := math.Mod(math.Abs(v), step); r > minor/2 && step-r > minor/2 {
			ticks = append(ticks, plot.Tick{Value: v})
		}
	}
	return ticks
}

// roundTo rounds v to the decimals step has, so that a sum of float steps
// (0.1+0.2) is labelled as its decimal value.
func roundTo(v, step float64) float64 {
	decimals := max(0, -int(math.Floor(math.Log10(step))))
	scale := math.Pow(10, float64(decimals))
	return math.Round(v*scale) / scale
}
