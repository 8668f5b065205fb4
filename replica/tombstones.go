package replica

import (
	"bytes"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// maxTombstonesPerRound bounds the work of one collection round.
const maxTombstonesPerRound = 1000

// collectTombstones deletes tombstones that every region has and that no
// write still on its way can lose to. A tombstone t goes when
//
//   - the stable vector covers it: every region has applied t, so no
//     region will ever need it to supersede a version it still holds;
//   - it is its key's only version (a concurrent sibling may lose to it,
//     and must keep losing); and
//   - its timestamp is below this region's safe time: for every region,
//     the writes not yet received from it carry later timestamps (streams
//     are in order and timestamps grow), so any write concurrent with t
//     that arrives later wins over t anyway, here and everywhere.
//
// Deleting it then changes no region's answer. It reports how many it
// collected.
func (n *Node) collectTombstones(stable clocks.Vector, safeWallMs uint64) (int, error) {
	it, err := n.store.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceTombstone}, UpperBound: []byte{spaceTombstone + 1}})
	if err != nil {
		return 0, err
	}
	type candidate struct{ index, dataKey []byte }
	var candidates []candidate
	for ok := it.First(); ok && len(candidates) < maxTombstonesPerRound; ok = it.Next() {
		origin, seq, dataKey, valid := parseTombstoneKey(it.Key())
		if !valid || seq > stable.Get(origin) {
			continue
		}
		candidates = append(candidates, candidate{bytes.Clone(it.Key()), bytes.Clone(dataKey)})
	}
	if err := it.Close(); err != nil || len(candidates) == 0 {
		return 0, err
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.store.db.NewBatch()
	defer b.Close()
	collected := 0
	for _, c := range candidates {
		key, ok := decodeDataKey(c.dataKey)
		if !ok {
			continue
		}
		// Whatever happens below, the key's cached siblings may no longer be
		// what the store holds.
		n.siblings.forget(key)
		siblings, err := siblingsFrom(n.store.db, key, false)
		if err != nil {
			return collected, err
		}
		still := false
		for _, s := range siblings {
			still = still || bytes.Equal(appendDataKey(nil, key, s.Timestamp), c.dataKey)
		}
		switch {
		case !still:
			_ = b.Delete(c.index, nil) // superseded already: only the index entry is left
		case len(siblings) == 1 && siblings[0].Kind == causal.KindTombstone && siblings[0].Timestamp.WallMs < safeWallMs:
			_ = b.Delete(c.dataKey, nil)
			_ = b.Delete(c.index, nil)
			collected++
		}
	}
	// Losing this batch in a crash only brings tombstones back.
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, err
	}
	n.metrics.tombstones.Add(float64(collected))
	return collected, nil
}

// safeWallMs is the physical time below which no write can still arrive
// here: the least of this node's clock and, for every peer, the peer's
// clock when it last reported that this node had all its writes, less the
// maximum clock offset.
func (r *replication) safeWallMs() uint64 {
	safe := uint64(r.n.cfg.Now().UnixMilli())
	r.mu.Lock()
	for _, p := range r.peers {
		safe = min(safe, p.caughtUpWallMs.Load())
	}
	r.mu.Unlock()
	margin := uint64(r.n.cfg.MaxClockOffset / time.Millisecond)
	if safe < margin {
		return 0
	}
	return safe - margin
}

// stableVector is gossip's stable vector, usable only when gossip vouches
// for every region this node replicates with: a peer that gossip has not
// heard from (gossip not joined, say) could lack any write, so without
// word from it nothing counts as stable.
func (r *replication) stableVector() (clocks.Vector, bool) {
	g := r.gossipNode()
	if g == nil {
		return nil, false
	}
	reported := map[string]bool{}
	for _, m := range g.Members() {
		if m.Applied != nil {
			reported[m.Meta.Region] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for region := range r.peers {
		if !reported[region] {
			return nil, false
		}
	}
	return g.StableVector(), true
}
