package wanbench

import (
	"slices"
	"time"
)

// Summary is the latency distribution of one row: percentiles of every
// sample it took, exact (from the sorted samples, nearest rank), in
// milliseconds.
type Summary struct {
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	P999ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	// OpsPerSec is Count divided by the row's wall time.
	OpsPerSec float64 `json:"ops_per_s"`
}

// maxSamples bounds the samples one row keeps (8 bytes each): beyond it, a
// row keeps a uniform reservoir of this many, so percentiles stay
// unbiased and memory bounded. A 10-minute run at the rates this benchmark
// reaches on 2 cores stays far below it.
const maxSamples = 1 << 20

// samples collects one row's latencies. It is not safe for concurrent
// use; each client keeps its own and they are merged.
type samples struct {
	d      []time.Duration
	seen   int
	errors int
	// lastErr is the most recent error, for the report.
	lastErr error
	rnd     uint64
}

func (s *samples) add(d time.Duration) {
	s.seen++
	if len(s.d) < maxSamples {
		s.d = append(s.d, d)
		return
	}
	// Reservoir sampling with a xorshift generator: no global rand.
	s.rnd ^= s.rnd << 13
	s.rnd ^= s.rnd >> 7
	s.rnd ^= s.rnd << 17
	if j := int(s.rnd % uint64(s.seen)); j < maxSamples {
		s.d[j] = d
	}
}

func (s *samples) fail(err error) {
	s.errors++
	s.lastErr = err
}

func (s *samples) merge(o *samples) {
	for _, d := range o.d {
		s.add(d)
	}
	s.errors += o.errors
	if o.lastErr != nil {
		s.lastErr = o.lastErr
	}
}

// percentile is the nearest-rank percentile p (0-100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize sorts s and summarizes it over wall time elapsed.
func (s *samples) summarize(elapsed time.Duration) Summary {
	slices.Sort(s.d)
	out := Summary{Count: s.seen, Errors: s.errors}
	if len(s.d) > 0 {
		out.P50ms = ms(percentile(s.d, 50))
		out.P90ms = ms(percentile(s.d, 90))
		out.P99ms = ms(percentile(s.d, 99))
		out.P999ms = ms(percentile(s.d, 99.9))
		out.MaxMs = ms(s.d[len(s.d)-1])
	}
	if elapsed > 0 {
		out.OpsPerSec = float64(s.seen) / elapsed.Seconds()
	}
	return out
}

// cdf returns up to points (latency ms, fraction) pairs of the sorted
// samples' empirical distribution, for plotting.
func cdf(sorted []time.Duration, points int) [][2]float64 {
	if len(sorted) == 0 {
		return nil
	}
	step := max(1, len(sorted)/points)
	var out [][2]float64
	for i := 0; i < len(sorted); i += step {
		out = append(out, [2]float64{ms(sorted[i]), float64(i+1) / float64(len(sorted))})
	}
	last := len(sorted) - 1
	if out[len(out)-1][1] < 1 {
		out = append(out, [2]float64{ms(sorted[last]), 1})
	}
	return out
}
