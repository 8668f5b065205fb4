package wanbench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// Visibility latency is measured by probes, one per ordered pair of
// regions (A, B), all running at once beside a background load of
// loadClients closed-loop Put clients in every region:
//
//  1. write a fresh key in A (no causal token, so nothing delays it) with
//     a value that names the probe, and note the time its acknowledgement
//     arrives, t_ack;
//  2. from t_ack + oneWay(A,B) - visibilityHeadStart on, read the key in B
//     (no token: a plain read of what B holds) every visibilityPoll until
//     it is found;
//  3. the sample is t_found - t_ack, where t_found is when the first read
//     that found the key with the probe's own value returned.
//
// Keys are fresh per run, per call of visibility and per probe, and a read
// counts only the probe's own value, so a key left by an earlier phase (or
// an earlier run against the same --addr cluster) is never taken for the
// write that is being timed.
//
// Every time is read from this process's one monotonic clock, so no clock
// skew between regions enters. The key became visible in B at some moment
// after the last read that missed it started and before the read that
// found it returned; the sample is the upper end of that window, so it
// overstates visibility by at most the window's width, poll interval plus
// one read's latency in B. Each sample's window is recorded and the rows
// report its median and maximum as the error bound. If the first read
// already finds the key (on a loaded machine the first read itself starts
// or returns late), the window's lower end is the earliest the write could
// have arrived: when its Put was sent plus the one-way delay, since the
// link layer releases no byte earlier.
const (
	visibilityPoll      = time.Millisecond
	visibilityHeadStart = 10 * time.Millisecond
)

// VisibilityRow is the visibility latency of one ordered pair of regions.
type VisibilityRow struct {
	From     string  `json:"from"`
	To       string  `json:"to"`
	OneWayMs float64 `json:"one_way_ms"`
	Summary
	// ErrorBoundP50Ms and ErrorBoundMaxMs: how much a sample may overstate
	// the true visibility latency (the window between the last read that
	// missed and the read that found), median and worst over the samples.
	ErrorBoundP50Ms float64 `json:"error_bound_p50_ms"`
	ErrorBoundMaxMs float64 `json:"error_bound_max_ms"`
	// LoadClients is the closed-loop Put clients per region running at the
	// same time.
	LoadClients int `json:"load_clients"`
	// NodeWrites and NodeMeanMs: the receiving node's own histogram over
	// the phase (visibility_nodes.go): every write from From that became
	// visible in To, and their mean visibility latency from the write's
	// timestamp in From. Zero when /metrics could not be read.
	NodeWrites uint64  `json:"node_writes,omitempty"`
	NodeMeanMs float64 `json:"node_mean_ms,omitempty"`
}

// visibility runs the probes for d beside loadClients Put clients per
// region.
func (b *bench) visibility(ctx context.Context, loadClients int, d time.Duration) []VisibilityRow {
	before, scrapeErr := b.scrapeVisibility(ctx)
	stop := time.Now().Add(d)
	phase := b.seq.Add(1)
	var wg sync.WaitGroup
	for _, r := range b.target.Regions {
		wg.Go(func() { closedLoop(ctx, loadClients, d, b.causalOp("put", r)) })
	}
	type result struct {
		lat, bound samples
	}
	var rows []VisibilityRow
	var mu sync.Mutex
	results := map[[2]string]*result{}
	start := time.Now()
	for _, from := range b.target.Regions {
		for _, to := range b.target.Regions {
			if from == to {
				continue
			}
			res := &result{}
			results[[2]string{from, to}] = res
			wg.Go(func() {
				src, dst := b.target.kv(from), b.target.kv(to)
				oneWay := b.matrix.OneWay(from, to)
				for n := 0; ctx.Err() == nil && time.Now().Before(stop); n++ {
					opCtx, cancelOp := context.WithTimeout(ctx, opTimeout)
					lat, bound, err := probe(opCtx, src, dst, fmt.Sprintf("bench/%s/vis/%d/%s/%s/%d", b.run, phase, from, to, n), oneWay)
					cancelOp()
					mu.Lock()
					if err != nil {
						if ctx.Err() == nil {
							res.lat.fail(err)
						}
					} else {
						res.lat.add(lat)
						res.bound.add(bound)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, from := range b.target.Regions {
		for _, to := range b.target.Regions {
			if from == to {
				continue
			}
			res := results[[2]string{from, to}]
			bound := res.bound.summarize(elapsed)
			rows = append(rows, VisibilityRow{
				From: from, To: to, OneWayMs: ms(b.matrix.OneWay(from, to)),
				Summary:         res.lat.summarize(elapsed),
				ErrorBoundP50Ms: bound.P50ms, ErrorBoundMaxMs: bound.MaxMs,
				LoadClients: loadClients,
			})
		}
	}
	if scrapeErr == nil {
		var after map[[2]string]nodeHist
		if after, scrapeErr = b.scrapeVisibility(ctx); scrapeErr == nil {
			addNodeVisibility(rows, before, after)
		}
	}
	if scrapeErr != nil && ctx.Err() == nil {
		b.skip("the nodes' own visibility figures: " + scrapeErr.Error())
	}
	return rows
}

// probe writes key in src and polls dst until it finds the write. It
// returns the visibility latency (upper end of the window) and the
// window's width.
func probe(ctx context.Context, src, dst kvClient, key string, oneWay time.Duration) (lat, bound time.Duration, err error) {
	want := probeValue(key)
	sent := time.Now()
	if _, err := src.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: want})); err != nil {
		return 0, 0, fmt.Errorf("write: %w", err)
	}
	ack := time.Now()
	if wait := oneWay - visibilityHeadStart; wait > 0 {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(wait):
		}
	}
	// The write cannot be in dst before it was sent plus the one-way delay.
	lastMiss := sent.Add(oneWay)
	for {
		t := time.Now()
		r, err := dst.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key}))
		if err != nil {
			return 0, 0, fmt.Errorf("read: %w", err)
		}
		if sawProbe(r.Msg, want) {
			found := time.Now()
			return found.Sub(ack), max(found.Sub(lastMiss), 0), nil
		}
		if t.After(lastMiss) {
			lastMiss = t
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(visibilityPoll):
		}
	}
}

// probeValue is the value a probe writes under key: the key itself, then
// the benchmark's usual value, so that it is no smaller than a load
// write's and equal to no other write's.
func probeValue(key string) []byte {
	return append([]byte(key+"\n"), value...)
}

// sawProbe reports whether a read found the probe's own write.
func sawProbe(r *v1.GetResponse, want []byte) bool {
	return r.GetFound() && bytes.Equal(r.GetValue(), want)
}
