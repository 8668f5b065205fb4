package replica

import (
	"bytes"
	"time"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// maxTombstonesPerRound bounds the work of one collection round.
const maxTombstonesPerRound = 1000

// collectTombstones deletes tombstones that every region has and that no
// write still on its way can lose to (causal.Collectable says when: the
// stable vector covers it, its timestamp is below this region's safe time,
// and it is its key's only version or a losing sibling). Deleting it then
// changes no region's answer. It reports how many it collected.
func (n *Node) collectTombstones(stable clocks.Vector, safeWallMs uint64) (int, error) {
	candidates, err := n.store.tombstoneCandidates(stable, maxTombstonesPerRound)
	if err != nil || len(candidates) == 0 {
		return 0, err
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	var deletes [][]byte
	collected := 0
	for _, c := range candidates {
		key, ok := decodeDataKey(c.dataKey)
		if !ok {
			continue
		}
		// Whatever happens below, the key's cached siblings may no longer be
		// what the store holds.
		n.siblings.forget(key)
		siblings, err := n.store.Siblings(key, false)
		if err != nil {
			return collected, err
		}
		var t *causal.Version
		for i := range siblings {
			if bytes.Equal(appendDataKey(nil, key, siblings[i].Timestamp), c.dataKey) {
				t = &siblings[i]
			}
		}
		switch {
		case t == nil:
			deletes = append(deletes, c.index) // superseded already: only the index entry is left
		case causal.Collectable(t, siblings, stable, safeWallMs):
			deletes = append(deletes, c.dataKey, c.index)
			collected++
		}
	}
	// Losing this batch in a crash only brings tombstones back.
	if err := n.store.deleteUnsynced(deletes); err != nil {
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
	r.mu.Lock()
	caughtUp := make([]uint64, 0, len(r.peers))
	for _, p := range r.peers {
		caughtUp = append(caughtUp, p.caughtUpWallMs.Load())
	}
	r.mu.Unlock()
	return causal.SafeWallMs(uint64(r.n.cfg.Now().UnixMilli()), caughtUp, uint64(r.n.cfg.MaxClockOffset/time.Millisecond))
}

// stableVector is gossip's stable vector, usable only when gossip vouches
// for every region this node replicates with: a peer that gossip has not
// heard from (gossip not joined, say) could lack any write, so without
// word from it nothing counts as stable.
func (r *replication) stableVector() (clocks.Vector, bool) {
	ms := r.membershipNow()
	if ms == nil {
		return nil, false
	}
	reported := map[string]bool{}
	for _, m := range ms.Members() {
		if m.Applied != nil {
			reported[m.Region] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for region := range r.peers {
		if !reported[region] {
			return nil, false
		}
	}
	return ms.StableVector(), true
}
