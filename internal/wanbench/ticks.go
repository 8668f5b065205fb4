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
