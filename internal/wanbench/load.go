package wanbench

import (
	"context"
	"sync"
	"time"
)

// Op is one operation of one client. It returns the time its measured
// part took, or an error. Most operations are timed whole by the driver
// and return 0; an operation with an untimed set-up step (the session move
// writes first, then reads) times its own measured part and returns it.
type Op func(ctx context.Context) (time.Duration, error)

// NewOp returns client number i's operation. Each client has its own, so
// that it can keep state (a session's causal token, a register's version).
type NewOp func(client int) Op

// opTimeout bounds one operation: a request the cluster never answers is
// an error, not a stalled benchmark.
const opTimeout = 30 * time.Second

// runOne runs op once and records it in s; scheduled is when it should
// have started (open loop). The time between scheduled and the actual start
// (waiting for a free client) counts in the latency.
func runOne(ctx context.Context, op Op, scheduled time.Time, s *samples) {
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	started := time.Now()
	own, err := op(opCtx)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			s.fail(err)
		}
	case own > 0:
		s.add(started.Sub(scheduled) + own)
	default:
		s.add(time.Since(scheduled))
	}
}

// closedLoop runs clients clients, each issuing its next operation as soon
// as the previous one returns, for d. Latency is from each operation's
// start to its end.
func closedLoop(ctx context.Context, clients int, d time.Duration, newOp NewOp) (*samples, time.Duration) {
	// The phase ends new operations, not those in flight: an operation cut
	// short by the phase's end would be recorded as neither a latency nor
	// an error, and the slowest ones, most likely to be in flight at the
	// end, would go missing from the percentiles. So each operation gets
	// its own deadline (opTimeout) from the run's context, and a client
	// starts no new one after the phase ends.
	stop := time.Now().Add(d)
	per := make([]*samples, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		per[i] = &samples{rnd: uint64(i)*0x9E3779B97F4A7C15 | 1}
		op := newOp(i)
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				t := time.Now()
				opCtx, cancelOp := context.WithTimeout(ctx, opTimeout)
				own, err := op(opCtx)
				cancelOp()
				switch {
				case err != nil:
					if ctx.Err() == nil {
						per[i].fail(err)
					}
				case own > 0:
					per[i].add(own)
				default:
					per[i].add(time.Since(t))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := &samples{rnd: 1}
	for _, s := range per {
		all.merge(s)
	}
	return all, elapsed
}

// openLoop issues operations at a fixed arrival rate (per second) for d,
// whatever the latency of earlier ones, on up to workers concurrent
// clients. Each operation's latency is measured from the moment it was
// scheduled to start, not the moment a client was free to send it: when
// the system falls behind, the time requests spend waiting for a client
// counts, which is what avoids coordinated omission (a closed loop slows
// its own arrival rate down when the system is slow, and so hides the
// queueing a real arrival process would meet). The queue of scheduled
// operations is bounded by workers: when every worker is busy and the
// queue is full, the scheduler waits, and the operations it then issues
// carry their original, earlier, scheduled times.
func openLoop(ctx context.Context, rate float64, workers int, d time.Duration, newOp NewOp) (*samples, time.Duration) {
	interval := time.Duration(float64(time.Second) / rate)
	queue := make(chan time.Time, workers)
	per := make([]*samples, workers)
	var wg sync.WaitGroup
	for i := range workers {
		per[i] = &samples{rnd: uint64(i)*0x9E3779B97F4A7C15 | 1}
		op := newOp(i)
		wg.Go(func() {
			for scheduled := range queue {
				runOne(ctx, op, scheduled, per[i])
			}
		})
	}
	start := time.Now()
	end := start.Add(d)
	timer := time.NewTimer(0)
	defer timer.Stop()
schedule:
	for n := 0; ; n++ {
		at := start.Add(time.Duration(n) * interval)
		if !at.Before(end) {
			break
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				break schedule
			case <-timer.C:
			}
		}
		select {
		case <-ctx.Done():
			break schedule
		case queue <- at:
		}
	}
	close(queue)
	wg.Wait()
	elapsed := time.Since(start)
	all := &samples{rnd: 1}
	for _, s := range per {
		all.merge(s)
	}
	return all, elapsed
}
