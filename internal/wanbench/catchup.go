package wanbench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// CatchUp is the catch-up row: one region cut off from every other while
// the first region takes writes at a fixed rate, then healed.
//
// Method: the writer issues Puts in the first region in open loop at
// WriteRatePerSec for the whole row. The last region is cut off from all
// others (both directions, through the admin API) for CutSeconds; at the
// heal the benchmark writes a marker in the first region and reads it in
// the cut region with the marker's causal token, which answers once that
// region holds every write the first region made before the marker (the
// origin's writes are applied in order). CatchUpSeconds is the time from
// the heal to that answer; Backlog is the writes acknowledged during the
// cut; the catch-up rate is Backlog / CatchUpSeconds and Ratio is that rate
// over the write rate. The catch-up time includes reconnecting the
// replication stream after the heal, so Ratio understates the stream's own
// speed.
type CatchUp struct {
	Writer          string  `json:"writer"`
	Cut             string  `json:"cut_region"`
	WriteRatePerSec float64 `json:"write_rate_per_s"`
	CutSeconds      float64 `json:"cut_s"`
	Backlog         int     `json:"backlog_writes"`
	CatchUpSeconds  float64 `json:"catch_up_s"`
	CatchUpPerSec   float64 `json:"catch_up_per_s"`
	Ratio           float64 `json:"ratio"`
	Error           string  `json:"error,omitempty"`
}

// catchUpLimit bounds the wait for the cut region to catch up.
const catchUpLimit = 2 * time.Minute

func (t *Target) setCut(ctx context.Context, region string, cut v1.LinkCut) error {
	for _, other := range t.Regions {
		if other == region {
			continue
		}
		for _, pair := range [][2]string{{region, other}, {other, region}} {
			if _, err := t.admin(pair[0]).SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: pair[1], Cut: cut})); err != nil {
				return fmt.Errorf("set link %s->%s: %w", pair[0], pair[1], err)
			}
		}
	}
	return nil
}

func (b *bench) catchUp(ctx context.Context, rate float64, cutFor time.Duration) *CatchUp {
	writer, cut := b.target.Regions[0], b.target.Regions[len(b.target.Regions)-1]
	res := &CatchUp{Writer: writer, Cut: cut, WriteRatePerSec: rate, CutSeconds: cutFor.Seconds()}
	fail := func(err error) *CatchUp {
		res.Error = err.Error()
		// Heal whatever was cut, so later rows run on a whole cluster.
		b.target.setCut(context.WithoutCancel(ctx), cut, v1.LinkCut_LINK_CUT_UNSPECIFIED)
		return res
	}
	if err := b.target.setCut(ctx, cut, v1.LinkCut_LINK_CUT_BOTH); err != nil {
		return fail(err)
	}
	// Write during the cut.
	s, _ := openLoop(ctx, rate, b.cfg.OpenWorkers, cutFor, b.causalOp("put", writer))
	res.Backlog = s.seen
	if err := b.target.setCut(ctx, cut, v1.LinkCut_LINK_CUT_UNSPECIFIED); err != nil {
		return fail(err)
	}
	healed := time.Now()
	// Keep writing while the region catches up, as a live system would.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { openLoop(loadCtx, rate, b.cfg.OpenWorkers, catchUpLimit, b.causalOp("put", writer)) })
	defer func() { stopLoad(); wg.Wait() }()

	key := "bench/" + b.run + "/catch-up-marker"
	m, err := b.target.kv(writer).Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: value}))
	if err != nil {
		return fail(fmt.Errorf("marker write in %s: %w", writer, err))
	}
	deadline := healed.Add(catchUpLimit)
	for {
		gctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := b.target.kv(cut).Get(gctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: m.Msg.GetCausalToken()}))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			res.Error = fmt.Sprintf("%s did not catch up within %v: %v", cut, catchUpLimit, err)
			return res
		}
		time.Sleep(10 * time.Millisecond) // the read answered unavailable before its deadline: ask again
	}
	took := time.Since(healed)
	res.CatchUpSeconds = took.Seconds()
	if took > 0 {
		res.CatchUpPerSec = float64(res.Backlog) / took.Seconds()
		res.Ratio = res.CatchUpPerSec / rate
	}
	return res
}
