package replica

import (
	"fmt"
	"time"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// applyRemote offers writes replicated from another region to the causal
// state machine and durably applies every write it releases, possibly
// including writes from other origins that were waiting for these. It
// returns once they are durable. causal.ErrPendingFull means the rest of the
// batch was refused for now; the stream resumes from the durable position.
func (n *Node) applyRemote(writes []*causal.Write) error {
	n.repl.bootstrapMu.RLock()
	defer n.repl.bootstrapMu.RUnlock()
	start := time.Now()

	n.mu.Lock()
	var refused error
	for _, w := range writes {
		if err := n.causal.Receive(w); err != nil {
			refused = err
			break
		}
	}
	ready := n.causal.Ready()
	n.metrics.pending.Set(float64(n.causal.Pending()))
	if len(ready) == 0 {
		n.mu.Unlock()
		return refused
	}
	wb := n.store.newWriteBatch()
	applied := clocks.Vector{}
	for _, w := range ready {
		if err := n.stageWrite(wb, w); err != nil {
			n.mu.Unlock()
			wb.abandon()
			return n.fail(err)
		}
		applied[w.Origin()] = w.Seq
	}
	appliedAll := n.causal.Applied()
	feedPos := n.stageRemoteFeed(wb, ready, appliedAll)
	wb.putState(&nodeState{Vector: appliedAll, Clock: n.clock.Last()})
	if err := n.commit(wb); err != nil {
		n.mu.Unlock()
		wb.abandon()
		return n.fail(fmt.Errorf("commit replicated writes: %w", err))
	}
	n.mu.Unlock()
	if err := n.waitDurable(wb); err != nil {
		return n.fail(fmt.Errorf("sync replicated writes: %w", err))
	}
	// Metrics first: once durable is marked, readers (and tests) may look.
	now := n.cfg.Now()
	n.metrics.applyLatency.Observe(time.Since(start).Seconds())
	for _, w := range ready {
		visible := now.Sub(time.UnixMilli(int64(w.Timestamp.WallMs)))
		n.metrics.visibility.WithLabelValues(w.Origin()).Observe(max(visible, 0).Seconds())
	}
	n.metrics.applied.Add(float64(len(ready)))
	n.feed.markDurable(feedPos)
	n.markDurableVector(applied)
	return refused
}
