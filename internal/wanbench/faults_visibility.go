package wanbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// Visibility through the fault timeline. Beside the timeline's load, a
// probe per ordered pair of regions is started faultProbeRate times a
// second: it writes a fresh key in the origin and reads it in the other
// region until it is there, exactly as the visibility rows do (visibility.go:
// one monotonic clock, the sample is the finding read's return minus the
// write's acknowledgement), with two differences a fault forces:
//
//   - A probe does not give up when the fault hides its write: a write made
//     during a partition becomes visible at the heal, one made while the
//     destination is down when it is back and has caught up, and that wait
//     is exactly what the plot shows. A read that fails (the destination
//     is down) tells nothing and is retried.
//   - Polling backs off: every 1 ms until faultProbeFastPoll after the
//     write could first have arrived, then a tenth of the time waited so
//     far, at most faultProbeMaxPoll. So dozens of probes waiting through a
//     partition cost a few hundred reads a second, not tens of thousands;
//     the price is a larger error bound on the long waits (at most a
//     tenth of the wait plus one read, and never more than
//     faultProbeMaxPoll plus one read), which is reported per second.
//
// Samples are binned by the second (from the timeline's start) in which
// the write was acknowledged, and grouped by pair: writes into the faulted
// region, writes from it, and writes between the other regions. A write
// that failed is counted in its second; a probe still waiting
// faultProbeGrace after the load stopped, or not started because its
// pair already had faultProbesPending waiting, is counted as unseen.
const (
	faultProbeRate     = 5 // per second per ordered pair
	faultProbesPending = 128
	faultProbeGrace    = 30 * time.Second
	faultProbeFastPoll = 20 * time.Millisecond
	faultProbeMaxPoll  = 250 * time.Millisecond
)

// The pair groups of the visibility series.
const (
	pairsInto    = "into"    // another region -> the faulted one
	pairsFrom    = "from"    // the faulted region -> another
	pairsBetween = "between" // between two other regions
)

var pairGroups = []string{pairsInto, pairsFrom, pairsBetween}

// FaultVisibilityBin is the visibility of the writes acknowledged in one
// second, over the pairs of one group.
type FaultVisibilityBin struct {
	T       float64 `json:"t_s"`
	Samples int     `json:"samples"`
	// P50ms, P99ms and MaxMs are the visibility latency of those writes;
	// OverOneWayP50ms the median of each sample minus its pair's one-way
	// delay.
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	OverOneWayP50ms float64 `json:"over_one_way_p50_ms"`
	// ErrorBoundMaxMs: the most any sample of the second may overstate
	// the truth (the window between the last read that missed and the one
	// that found).
	ErrorBoundMaxMs float64 `json:"error_bound_max_ms"`
	// WriteErrors are probes whose write failed in that second; Unseen
	// are probes whose write was never found (see faultProbeGrace).
	WriteErrors int `json:"write_errors"`
	Unseen      int `json:"unseen"`
}

// FaultVisibilitySeries is one pair group's visibility over time.
type FaultVisibilitySeries struct {
	// Pairs is "into" (other regions -> the faulted region), "from" (the
	// faulted region -> the others) or "between" (among the others).
	Pairs string               `json:"pairs"`
	Bins  []FaultVisibilityBin `json:"bins"`
}

// FaultWindowVisibility is the visibility of the writes acknowledged
// during one fault window, over one pair group.
type FaultWindowVisibility struct {
	Pairs   string  `json:"pairs"`
	Samples int     `json:"samples"`
	P50ms   float64 `json:"p50_ms"`
	MaxMs   float64 `json:"max_ms"`
	Unseen  int     `json:"unseen"`
	// WriteErrors are probes whose write failed (its origin was down or
	// cut off from the client).
	WriteErrors int `json:"write_errors"`
}

// pairsLabel names a pair group for a legend or a table.
func pairsLabel(group, faulted string) string {
	switch group {
	case pairsInto:
		return "into " + faulted
	case pairsFrom:
		return "from " + faulted
	default:
		return "between the others"
	}
}

type visEvent struct {
	at        time.Duration // acknowledgement (or failed write), from the start
	lat       time.Duration
	bound     time.Duration
	oneWay    time.Duration
	group     string
	written   bool
	seen      bool
	unstarted bool // not started: too many probes of its pair waiting
}

// faultVisibility probes every ordered pair until loadCtx ends, then lets
// the probes still waiting poll for faultProbeGrace more. Call wait to
// have their events once the load has stopped.
type faultVisibility struct {
	start   time.Time
	faulted string
	mu      sync.Mutex
	events  []visEvent
	probes  sync.WaitGroup
	pairs   sync.WaitGroup
	cancel  context.CancelFunc
}

func (b *bench) startFaultVisibility(ctx, loadCtx context.Context, start time.Time, faulted string) *faultVisibility {
	probeCtx, cancel := context.WithCancel(ctx)
	v := &faultVisibility{start: start, faulted: faulted, cancel: cancel}
	interval := time.Second / faultProbeRate
	for _, from := range b.target.Regions {
		for _, to := range b.target.Regions {
			if from == to {
				continue
			}
			group := pairsBetween
			switch faulted {
			case to:
				group = pairsInto
			case from:
				group = pairsFrom
			}
			oneWay := b.matrix.OneWay(from, to)
			src, dst := b.target.kv(from), b.target.kv(to)
			pending := make(chan struct{}, faultProbesPending)
			v.pairs.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-loadCtx.Done():
						return
					case <-time.After(time.Until(start.Add(time.Duration(n) * interval))):
					}
					select {
					case pending <- struct{}{}:
					default:
						v.record(visEvent{at: time.Since(start), group: group, unstarted: true})
						continue
					}
					key := fmt.Sprintf("bench/%s/fault-vis/%s/%s/%d", b.run, from, to, n)
					v.probes.Go(func() {
						defer func() { <-pending }()
						e := faultProbe(probeCtx, src, dst, key, oneWay, start)
						e.group, e.oneWay = group, oneWay
						v.record(e)
					})
				}
			})
		}
	}
	return v
}

func (v *faultVisibility) record(e visEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.events) < maxSamples {
		v.events = append(v.events, e)
	}
}

// wait returns every probe's event once the probes have ended: found,
// failed, or given up faultProbeGrace after the load stopped (the
// caller's loadCtx is done).
func (v *faultVisibility) wait() []visEvent {
	v.pairs.Wait()
	done := make(chan struct{})
	go func() { v.probes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(faultProbeGrace):
		v.cancel()
		<-done
	}
	v.cancel()
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.events)
}

// faultProbe writes key in src and polls dst until it finds the key or ctx
// ends. Its event's time is the write's acknowledgement (or failure) from
// start.
func faultProbe(ctx context.Context, src, dst kvClient, key string, oneWay time.Duration, start time.Time) visEvent {
	want := probeValue(key)
	sent := time.Now()
	wctx, cancel := context.WithTimeout(ctx, faultOpTimeout)
	_, err := src.Put(wctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: want}))
	cancel()
	if err != nil {
		return visEvent{at: sent.Sub(start)}
	}
	ack := time.Now()
	e := visEvent{at: ack.Sub(start), written: true}
	arrival := sent.Add(oneWay) // no byte of the write reaches dst earlier
	lastMiss := arrival
	next := arrival.Add(-visibilityHeadStart)
	for {
		select {
		case <-ctx.Done():
			return e // unseen
		case <-time.After(time.Until(next)):
		}
		t := time.Now()
		rctx, cancel := context.WithTimeout(ctx, faultOpTimeout)
		r, err := dst.Get(rctx, connect.NewRequest(&v1.GetRequest{Key: key}))
		cancel()
		now := time.Now()
		switch {
		case err != nil:
			// Down or restarting: no evidence either way.
		case sawProbe(r.Msg, want):
			e.seen, e.lat, e.bound = true, now.Sub(ack), max(now.Sub(lastMiss), 0)
			return e
		case t.After(lastMiss):
			lastMiss = t
		}
		poll := time.Millisecond
		if waited := now.Sub(arrival); waited > faultProbeFastPoll {
			poll = min(max(waited/10, time.Millisecond), faultProbeMaxPoll)
		}
		next = now.Add(poll)
	}
}

// visibilitySeries bins the events per second of the timeline, up to end
// (whole seconds), per pair group.
func visibilitySeries(events []visEvent, end float64) []FaultVisibilitySeries {
	var out []FaultVisibilitySeries
	for _, group := range pairGroups {
		s := FaultVisibilitySeries{Pairs: group}
		bins := map[int][]visEvent{}
		for _, e := range events {
			if e.group == group {
				sec := int(e.at.Seconds())
				bins[sec] = append(bins[sec], e)
			}
		}
		for sec := 0; float64(sec+1) <= end; sec++ {
			bin := FaultVisibilityBin{T: float64(sec)}
			var lats, over []time.Duration
			for _, e := range bins[sec] {
				switch {
				case e.unstarted:
					bin.Unseen++
				case !e.written:
					bin.WriteErrors++
				case !e.seen:
					bin.Unseen++
				default:
					lats = append(lats, e.lat)
					over = append(over, e.lat-e.oneWay)
					bin.ErrorBoundMaxMs = max(bin.ErrorBoundMaxMs, ms(e.bound))
				}
			}
			slices.Sort(lats)
			slices.Sort(over)
			bin.Samples = len(lats)
			if len(lats) > 0 {
				bin.P50ms, bin.P99ms, bin.MaxMs = ms(percentile(lats, 50)), ms(percentile(lats, 99)), ms(lats[len(lats)-1])
				bin.OverOneWayP50ms = ms(percentile(over, 50))
			}
			s.Bins = append(s.Bins, bin)
		}
		out = append(out, s)
	}
	return out
}

// windowVisibility is the visibility of the writes acknowledged within
// [from, to), per pair group.
func windowVisibility(events []visEvent, from, to float64) []FaultWindowVisibility {
	var out []FaultWindowVisibility
	for _, group := range pairGroups {
		w := FaultWindowVisibility{Pairs: group}
		var lats []time.Duration
		for _, e := range events {
			if e.group != group || e.at.Seconds() < from || e.at.Seconds() >= to {
				continue
			}
			switch {
			case !e.written && !e.unstarted:
				w.WriteErrors++
			case e.seen:
				lats = append(lats, e.lat)
			default:
				w.Unseen++
			}
		}
		slices.Sort(lats)
		w.Samples = len(lats)
		if len(lats) > 0 {
			w.P50ms, w.MaxMs = ms(percentile(lats, 50)), ms(lats[len(lats)-1])
		}
		out = append(out, w)
	}
	return out
}
