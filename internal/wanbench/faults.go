package wanbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// The fault timeline (--faults): every region runs causal Puts and linear
// Claims in open loop at the configured rates for the whole timeline,
// while the last region is first cut off from every other (a partition),
// then healed, then killed (SIGKILL) and restarted, then restarted with
// its clock 2s ahead and restarted again without the skew. Every operation is
// recorded with its scheduled time, latency and outcome, and binned per
// second into throughput and latency over time for the faulted region and
// for the others, beside visibility latency over time per pair group
// (faults_visibility.go), with the fault periods marked: the causal tier should
// keep serving in every region through the partition, the linearizable
// tier only on the majority side.

// FaultWindow is one fault's period, in seconds from the timeline's start.
type FaultWindow struct {
	Fault   string  `json:"fault"`
	Region  string  `json:"region"`
	StartS  float64 `json:"start_s"`
	EndS    float64 `json:"end_s"`
	Comment string  `json:"comment,omitempty"`
	// Visibility is that of the writes acknowledged during the window,
	// per pair group (faults_visibility.go).
	Visibility []FaultWindowVisibility `json:"visibility,omitempty"`
}

// FaultBin is one second of one series.
type FaultBin struct {
	T         float64 `json:"t_s"`
	OK        int     `json:"ok"`
	Errors    int     `json:"errors"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	PerRegion float64 `json:"ok_per_region_per_s"`
}

// FaultSeries is one tier seen from the faulted region or from the others.
type FaultSeries struct {
	Tier    string     `json:"tier"`
	Regions string     `json:"regions"` // "faulted" or "others"
	Bins    []FaultBin `json:"bins"`
}

// FaultRun is the timeline's result.
type FaultRun struct {
	Faulted string        `json:"faulted_region"`
	Windows []FaultWindow `json:"windows"`
	Series  []FaultSeries `json:"series"`
	// Visibility is the visibility latency over time per pair group
	// (faults_visibility.go).
	Visibility []FaultVisibilitySeries `json:"visibility,omitempty"`
	Error      string                  `json:"error,omitempty"`
}

// faultSkew is the clock skew of the timeline's skew fault.
const faultSkew = 2 * time.Second

// faultOpTimeout bounds one operation in the timeline: short, so that an
// operation stuck behind a fault shows as an error within seconds rather
// than hiding the rest of the timeline.
const faultOpTimeout = 5 * time.Second

type faultEvent struct {
	at     time.Duration // scheduled, from the start
	lat    time.Duration
	ok     bool
	tier   string
	region string
}

func (b *bench) faultTimeline(ctx context.Context) *FaultRun {
	faulted := b.target.Regions[len(b.target.Regions)-1]
	run := &FaultRun{Faulted: faulted}
	var mu sync.Mutex
	var events []faultEvent
	maxEvents := maxSamples
	start := time.Now()
	loadCtx, stopLoad := context.WithCancel(ctx)
	vis := b.startFaultVisibility(ctx, loadCtx, start, faulted)
	var wg sync.WaitGroup
	for _, region := range b.target.Regions {
		for _, tier := range []string{"causal", "linear"} {
			rate, newOp := b.cfg.CausalRate, b.causalOp("put", region)
			if tier == "linear" {
				rate, newOp = b.cfg.LinearRate, b.linearOp("claim", region)
			}
			wg.Go(func() {
				interval := time.Duration(float64(time.Second) / rate)
				queue := make(chan time.Time, b.cfg.OpenWorkers)
				var workers sync.WaitGroup
				for i := range b.cfg.OpenWorkers {
					op := newOp(i)
					workers.Go(func() {
						for at := range queue {
							opCtx, cancel := context.WithTimeout(ctx, faultOpTimeout)
							_, err := op(opCtx)
							cancel()
							mu.Lock()
							if len(events) < maxEvents {
								events = append(events, faultEvent{at: at.Sub(start), lat: time.Since(at), ok: err == nil, tier: tier, region: region})
							}
							mu.Unlock()
						}
					})
				}
				for n := 0; ; n++ {
					at := start.Add(time.Duration(n) * interval)
					select {
					case <-loadCtx.Done():
						close(queue)
						workers.Wait()
						return
					case <-time.After(time.Until(at)):
					}
					select {
					case <-loadCtx.Done():
					case queue <- at:
					}
				}
			})
		}
	}
	since := func() float64 { return time.Since(start).Seconds() }
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	p := b.cfg.Phase
	fail := func(err error) {
		if run.Error == "" {
			run.Error = err.Error()
		}
	}
	b.prog.step("faults: steady state", p)
	sleep(p)
	b.prog.step("faults: "+faulted+" partitioned from every other region", p)
	w := FaultWindow{Fault: "partition", Region: faulted, StartS: since()}
	if err := b.target.setCut(ctx, faulted, v1.LinkCut_LINK_CUT_BOTH); err != nil {
		fail(err)
	}
	sleep(p)
	if err := b.target.setCut(ctx, faulted, v1.LinkCut_LINK_CUT_UNSPECIFIED); err != nil {
		fail(err)
	}
	w.EndS = since()
	run.Windows = append(run.Windows, w)
	b.prog.step("faults: healed", p)
	sleep(p)
	b.prog.step("faults: "+faulted+" killed, then restarted", p)
	w = FaultWindow{Fault: "killed", Region: faulted, StartS: since()}
	if err := b.target.Kill(faulted); err != nil {
		fail(err)
	}
	sleep(p)
	if err := b.target.Restart(ctx, faulted, true); err != nil {
		fail(fmt.Errorf("restart %s: %w", faulted, err))
	}
	w.EndS = since()
	w.Comment = "until the restarted region serves again"
	run.Windows = append(run.Windows, w)
	b.prog.step("faults: after the restart", p)
	sleep(p)
	// A clock skew: the region restarted with its physical clock ahead by
	// four times serve's default max clock offset (500ms), then restarted
	// without it. The window covers both restarts.
	b.prog.step("faults: "+faulted+" restarted with its clock "+faultSkew.String()+" ahead", p)
	w = FaultWindow{Fault: "clock skew +" + faultSkew.String(), Region: faulted, StartS: since(), Comment: "from the kill before the skewed start to the un-skewed region serving again"}
	if err := b.target.Kill(faulted); err != nil {
		fail(err)
	}
	if err := b.target.Restart(ctx, faulted, false, "--clock-skew", faultSkew.String()); err != nil {
		fail(fmt.Errorf("restart %s with a skewed clock: %w", faulted, err))
	}
	sleep(p)
	if err := b.target.Kill(faulted); err != nil {
		fail(err)
	}
	if err := b.target.Restart(ctx, faulted, true); err != nil {
		fail(fmt.Errorf("restart %s without the skew: %w", faulted, err))
	}
	w.EndS = since()
	run.Windows = append(run.Windows, w)
	b.prog.step("faults: after the clock skew", p)
	sleep(p)
	stopLoad()
	wg.Wait()
	end := since()
	b.prog.step("faults: waiting for the last visibility probes", 0)
	visEvents := vis.wait()
	run.Visibility = visibilitySeries(visEvents, end)
	for i, w := range run.Windows {
		run.Windows[i].Visibility = windowVisibility(visEvents, w.StartS, w.EndS)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, tier := range []string{"causal", "linear"} {
		for _, group := range []string{"faulted", "others"} {
			regions := 1.0
			if group == "others" {
				regions = float64(len(b.target.Regions) - 1)
			}
			s := FaultSeries{Tier: tier, Regions: group}
			for sec := 0; float64(sec+1) <= end; sec++ { // whole seconds only
				var lats []time.Duration
				bin := FaultBin{T: float64(sec)}
				for _, e := range events {
					if e.tier != tier || (e.region == faulted) != (group == "faulted") || int(e.at.Seconds()) != sec {
						continue
					}
					if e.ok {
						bin.OK++
						lats = append(lats, e.lat)
					} else {
						bin.Errors++
					}
				}
				slices.Sort(lats)
				bin.P50ms, bin.P99ms = ms(percentile(lats, 50)), ms(percentile(lats, 99))
				bin.PerRegion = float64(bin.OK) / regions
				s.Bins = append(s.Bins, bin)
			}
			run.Series = append(run.Series, s)
		}
	}
	return run
}

// meanOK is the mean successful operations per second per region of a
// series over the whole seconds within [from, to). A window too short to
// hold a whole second (a timeline run with --phase 1s) is given the mean
// of the seconds it overlaps, each weighted by its overlap, rather than
// none.
func (f *FaultRun) meanOK(tier, group string, from, to float64) float64 {
	for _, s := range f.Series {
		if s.Tier != tier || s.Regions != group {
			continue
		}
		var sum, weighted, overlap float64
		n := 0
		for _, b := range s.Bins {
			if b.T >= from && b.T+1 <= to {
				sum += b.PerRegion
				n++
			}
			if o := min(b.T+1, to) - max(b.T, from); o > 0 {
				weighted += b.PerRegion * o
				overlap += o
			}
		}
		switch {
		case n > 0:
			return sum / float64(n)
		case overlap > 0:
			return weighted / overlap
		}
	}
	return 0
}
