package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/metrics"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// op performs operation number i of client c. A client's operations run one
// after another on one goroutine, so op may keep per-client state indexed by
// c without locking.
type op func(ctx context.Context, c, i int) error

// load is the outcome of one drive.
type load struct {
	ops       int
	elapsed   time.Duration
	latencies []time.Duration // one per operation, sorted ascending
}

// drive runs total operations spread over clients goroutines, client c doing
// operations c, c+clients, c+2*clients, ... so that together they perform
// each index below total exactly once. It returns when every client is done,
// with the first error any client met (that client stops; the others finish).
func drive(ctx context.Context, total, clients int, do op) (load, error) {
	return run(ctx, clients, total/max(clients, 1)+1, func(c, k int, _ time.Time) bool { return c+k*clients < total }, do)
}

// driveFor is drive bounded by time instead of a count: every client keeps
// starting operations (client c doing c, c+clients, ...) until d has passed
// since the first one started, and the load ends when the last one in
// flight finishes.
func driveFor(ctx context.Context, d time.Duration, clients int, do op) (load, error) {
	return run(ctx, clients, 0, func(_, _ int, t0 time.Time) bool { return time.Since(t0) < d }, do)
}

// run is drive and driveFor: client c performs operations c, c+clients,
// c+2*clients, ... while more(c, k, start) is true for its k-th operation.
// Each client's latency record starts with room for perClient operations,
// so that a counted load does not grow it while the clock runs.
func run(ctx context.Context, clients, perClient int, more func(c, k int, start time.Time) bool, do op) (load, error) {
	if clients < 1 {
		return load{}, fmt.Errorf("clients = %d: need at least 1", clients)
	}
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		t0       time.Time
		perCl    = make([][]time.Duration, clients)
		errMu    sync.Mutex
		firstErr error
	)
	for c := range clients {
		lat := make([]time.Duration, 0, perClient)
		wg.Go(func() {
			<-start
			for k := 0; more(c, k, t0); k++ {
				t1 := time.Now()
				if err := do(ctx, c, c+k*clients); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("client %d, operation %d: %w", c, c+k*clients, err)
					}
					errMu.Unlock()
					break
				}
				lat = append(lat, time.Since(t1))
			}
			perCl[c] = lat
		})
	}
	// Every goroutine exists before the clock starts, so their creation is
	// not charged to the operations. Closing start publishes t0 to them.
	t0 = time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)

	total := 0
	for _, l := range perCl {
		total += len(l)
	}
	all := make([]time.Duration, 0, total)
	for _, l := range perCl {
		all = append(all, l...)
	}
	slices.Sort(all)
	return load{ops: len(all), elapsed: elapsed, latencies: all}, firstErr
}

// measure runs b.N operations over clients goroutines under the benchmark
// timer and reports throughput and latency percentiles. Setup done by the
// caller before measure is not timed.
func measure(b *testing.B, clients int, do op) {
	b.Helper()
	b.ResetTimer()
	cpu0, sched0 := processCPU(), readSchedCPU()
	l, err := drive(context.Background(), b.N, clients, do)
	cpu, sched := processCPU()-cpu0, readSchedCPU().minus(sched0)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if l.elapsed > 0 {
		b.ReportMetric(float64(l.ops)/l.elapsed.Seconds(), "ops/s")
	}
	b.ReportMetric(micros(percentile(l.latencies, 50)), "p50-us")
	b.ReportMetric(micros(percentile(l.latencies, 99)), "p99-us")
	if l.ops > 0 {
		b.ReportMetric(micros(cpu)/float64(l.ops), "cpu-us/op")
	}
	if l.elapsed > 0 {
		b.ReportMetric(cpu.Seconds()/l.elapsed.Seconds(), "cores")
	}
	if sched.total > 0 {
		b.ReportMetric(100*sched.idle/sched.total, "go-idle-%")
	}
}

// schedCPU is the Go scheduler's account of its processors' time (P time:
// GOMAXPROCS times wall time), from runtime/metrics: total, and the part no
// goroutine was ready to use.
type schedCPU struct{ total, idle float64 }

func readSchedCPU() schedCPU {
	s := []metrics.Sample{{Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 || s[1].Value.Kind() != metrics.KindFloat64 {
		return schedCPU{} // not reported by this Go version: the metric is left out
	}
	return schedCPU{total: s[0].Value.Float64(), idle: s[1].Value.Float64()}
}

func (s schedCPU) minus(o schedCPU) schedCPU {
	return schedCPU{total: s.total - o.total, idle: s.idle - o.idle}
}

// processCPU is the user and system CPU time this process has used so far:
// clients and server share the process, so per operation it is what one
// operation costs the machine, whatever the concurrency.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample such that at least p percent of
// the samples are less than or equal to it. It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", ms(7), 50, 7 * time.Millisecond},
		{"one sample p99", ms(7), 99, 7 * time.Millisecond},
		{"median of odd count", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even count is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100 samples", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 100 samples", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 10 samples is the maximum", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p100 is the maximum", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"tiny p is the minimum", ms(1, 2, 3), 0.001, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestDrive(t *testing.T) {
	for _, tt := range []struct{ total, clients int }{
		{0, 1}, {1, 64}, {10, 3}, {64, 64}, {1000, 64},
	} {
		t.Run(fmt.Sprintf("total=%d/clients=%d", tt.total, tt.clients), func(t *testing.T) {
			var mu sync.Mutex
			seen := make(map[int]int)
			l, err := drive(context.Background(), tt.total, tt.clients, func(_ context.Context, c, i int) error {
				if i%tt.clients != c {
					return fmt.Errorf("operation %d ran on client %d", i, c)
				}
				mu.Lock()
				seen[i]++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if l.ops != tt.total || len(l.latencies) != tt.total {
				t.Errorf("ops = %d with %d latencies, want %d", l.ops, len(l.latencies), tt.total)
			}
			for i := range tt.total {
				if seen[i] != 1 {
					t.Errorf("operation %d ran %d times, want once", i, seen[i])
				}
			}
			if !slices.IsSorted(l.latencies) {
				t.Error("latencies are not sorted")
			}
		})
	}
}

func TestDriveReportsFirstError(t *testing.T) {
	boom := errors.New("boom")
	l, err := drive(context.Background(), 100, 4, func(_ context.Context, c, i int) error {
		if c == 2 && i >= 50 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	// Client 2 does operations 2, 6, ..., 98; it stops at 50, the 13th.
	if want := 100 - (25 - 12); l.ops != want {
		t.Errorf("ops = %d, want %d (client 2 stops at its first failure)", l.ops, want)
	}
}

func TestDriveForStopsStartingAfterItsDuration(t *testing.T) {
	const (
		clients = 4
		d       = 100 * time.Millisecond
	)
	var mu sync.Mutex
	seen := make(map[int]int)
	started := make(map[int]time.Time)
	l, err := driveFor(context.Background(), d, clients, func(_ context.Context, c, i int) error {
		if i%clients != c {
			return fmt.Errorf("operation %d ran on client %d", i, c)
		}
		now := time.Now()
		mu.Lock()
		seen[i]++
		started[i] = now
		mu.Unlock()
		// An operation long enough that the clients cannot start an
		// unbounded number of them within d.
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.ops != len(seen) || len(l.latencies) != l.ops {
		t.Errorf("ops = %d with %d latencies, but %d distinct operations ran", l.ops, len(l.latencies), len(seen))
	}
	if l.ops == 0 {
		t.Error("no operation ran")
	}
	// Operation indices are dense per client: client c ran c, c+clients, ...
	// up to its last, each once.
	last := make([]int, clients)
	for i := range last {
		last[i] = -1
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("operation %d ran %d times, want once", i, n)
		}
		last[i%clients] = max(last[i%clients], i)
	}
	for c, hi := range last {
		for i := c; i <= hi; i += clients {
			if seen[i] != 1 {
				t.Errorf("client %d skipped operation %d (its last was %d)", c, i, hi)
			}
		}
	}
	if l.elapsed < d {
		t.Errorf("elapsed %v, shorter than the %v the clients were to keep going for", l.elapsed, d)
	}
	// No operation started after the window: the first one started at or
	// after the load's start, and every later one before d had passed. An
	// operation reads the clock a scheduling delay after driveFor checked
	// it, so the span may pass d by that delay (allowed: d/2); a driveFor
	// that kept starting operations would pass it by far more.
	var first, latest time.Time
	for _, ts := range started {
		if first.IsZero() || ts.Before(first) {
			first = ts
		}
		if ts.After(latest) {
			latest = ts
		}
	}
	if span := latest.Sub(first); span >= d+d/2 {
		t.Errorf("operations started over %v, not within the %v window", span, d)
	}
}
