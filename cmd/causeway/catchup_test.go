//go:build unix

package main

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// TestRestartedRegionCatchesUpUnderLoad is the "restarted datacenter never
// catches up" failure of other stores: a region is down while the others
// keep taking writes, and comes back while they still do. It must catch up
// with everything written while it was away and keep up with what is
// written after, and every acknowledged write must be everywhere. The test
// reports the catch-up rate (writes applied per second from its restart
// until it held every write acknowledged before the restart); it asserts no
// rate, which this shared machine could not promise.
func TestRestartedRegionCatchesUpUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := newRejoinCluster(t, ctx)
	eu := c.regions["eu-west"]

	var (
		mu      sync.Mutex
		written = map[string]string{}
		heads   = map[string]uint64{}
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		once    sync.Once
	)
	halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(written) }
	for _, region := range []string{"us-east", "ap-south"} {
		for w := range 4 {
			wg.Go(func() {
				r := c.regions[region]
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key, value := fmt.Sprintf("load/%s/%d/%06d", region, w, i), fmt.Sprintf("%s %d %d", region, w, i)
					rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
					res, err := r.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value)}))
					rcancel()
					if err != nil {
						t.Errorf("put %s: %v", key, err)
						return
					}
					mu.Lock()
					written[key] = value
					heads[region] = max(heads[region], res.Msg.GetVersion().GetOriginSeq())
					mu.Unlock()
				}
			})
		}
	}
	pollUntil(t, 30*time.Second, "100 writes before eu-west goes down", func() bool { return count() >= 100 })
	c.procs.kill("eu-west")
	before := count()
	pollUntil(t, 60*time.Second, "1000 writes while eu-west is down", func() bool { return count() >= before+1000 })

	mu.Lock()
	target := maps.Clone(heads)
	mu.Unlock()
	restarted := time.Now()
	startVec := map[string]uint64{}
	c.start("eu-west", "")
	if st := eu.status(t); st != nil {
		startVec = st.GetVector()
	}
	pollUntil(t, 90*time.Second, fmt.Sprintf("eu-west to hold every write acknowledged before its restart (%v)", target), func() bool {
		v := eu.status(t).GetVector()
		for region, seq := range target {
			if v[region] < seq {
				return false
			}
		}
		return true
	})
	took := time.Since(restarted)
	var caughtUp uint64
	for region, seq := range target {
		caughtUp += seq - min(seq, startVec[region])
	}
	t.Logf("catch-up: eu-west applied %d writes missed while down in %v after its restart (%.0f writes/s), while %d clients kept writing",
		caughtUp, took.Round(time.Millisecond), float64(caughtUp)/took.Seconds(), 8)
	after := count()
	pollUntil(t, 60*time.Second, "200 more writes after eu-west caught up", func() bool { return count() >= after+200 })
	halt()
	if t.Failed() {
		return
	}
	c.awaitConverged(90 * time.Second)
	c.checkHeld(written, "")
}
