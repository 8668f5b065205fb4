package replica

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
)

// joinRetryInterval is how often a join looks again at the regions whose snapshot
// it still lacks.
const joinRetryInterval = 500 * time.Millisecond

// regionState is what the region lets clients do: everything, or nothing
// while it joins, while it is drained, or after it has found that it lost
// writes.
type regionState struct {
	// joining: the region started with no data and --join (or a crash
	// interrupted a snapshot merge), and has not yet merged a snapshot of
	// every other region (causal.Join).
	joining atomic.Bool
	mu      sync.Mutex
	waiting []string // while joining: regions whose snapshot is missing
	// drained: fault injection asked the region to refuse clients
	// (AdminService/SetDrain).
	drained atomic.Bool
	// lost is set, for good, once a subscriber proved that this region lost
	// writes it had acknowledged (causal.CheckResume).
	lost atomic.Pointer[string]
	// noMembership is why membership (gossip) did not start, when it did
	// not: a joining region that knows no peer then never learns the
	// cluster's regions, and its state says why.
	noMembership atomic.Pointer[string]
}

// The causal tier's states (Node.CausalState); every state but serving
// and clockFenced refuses every client request.
const (
	stateServing     = "serving"
	stateJoining     = "joining"
	stateMerging     = "merging"
	stateDrained     = "drained"
	stateLostWrites  = "lost-writes"
	stateClockFenced = "clock-fenced" // reads served, writes refused
	stateRemoved     = "removed"      // an operator removed this region: every request refused
)

// refusal is the state that refuses every client request and its error,
// or ("", nil) when the region serves clients.
func (s *regionState) refusal(region string, merging bool) (string, error) {
	if why := s.lost.Load(); why != nil {
		return stateLostWrites, api.Errorf(api.ErrUnavailable, "region %s refuses requests: %s", region, *why)
	}
	if s.joining.Load() {
		s.mu.Lock()
		waiting := strings.Join(s.waiting, ", ")
		s.mu.Unlock()
		if waiting == "" {
			waiting = "the cluster's membership"
			if why := s.noMembership.Load(); why != nil {
				waiting += ", which this node cannot learn: gossip did not start (" + *why +
					"); restart it with a free --gossip-listen address, or name the regions with --peers"
			}
		}
		return stateJoining, api.Errorf(api.ErrUnavailable, "region %s is joining the cluster with no data of its own: it serves once it holds a snapshot of every other region (waiting for %s); retry shortly or use another region",
			region, waiting)
	}
	if s.drained.Load() {
		return stateDrained, api.Errorf(api.ErrUnavailable, "region %s is drained (fault injection: AdminService/SetDrain); use another region", region)
	}
	if merging {
		return stateMerging, api.Errorf(api.ErrUnavailable, "region %s is merging a snapshot of another region; retry shortly", region)
	}
	return "", nil
}

// runJoin copies a snapshot of every other region the cluster has, then
// lets the region serve. Until then it refuses every client request: a
// write would take a sequence number that another region may hold already
// (causal.Join says why). Regions that cannot be reached are waited for; an
// operator removes one that is gone for good (remove-region).
func (r *replication) runJoin() {
	defer r.wg.Done()
	n := r.n
	j := causal.NewJoin(n.cfg.Region)
	n.log.Info("joining: copying a snapshot of every other region before serving")
	for {
		regions, addrs, ready := r.clusterRegions()
		missing := j.Missing(regions)
		n.state.mu.Lock()
		n.state.waiting = missing
		n.state.mu.Unlock()
		if ready && len(regions) > 0 && len(missing) == 0 {
			if err := n.finishJoin(); err != nil {
				n.log.Error("joining: could not record the end of the join; retrying", "err", err)
			} else {
				return
			}
		}
		for _, region := range missing {
			addr := addrs[region]
			if addr == "" {
				continue // known by name only, for now
			}
			vec, err := r.mergeSnapshot(r.ctx, region, addr, nil)
			if err != nil {
				if r.ctx.Err() != nil {
					return
				}
				n.log.Warn("joining: no snapshot from region yet; will retry", "peer", region, "err", err)
				continue
			}
			j.Merged(region, vec)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(joinRetryInterval):
		}
	}
}

// rejoin stops the region serving after a snapshot merge from region
// failed half way (its data is then a mix no vector describes) and joins
// again: merges every region before it serves.
func (r *replication) rejoin(region string) {
	if !r.n.state.joining.CompareAndSwap(false, true) {
		return // a join is running; it merges every region anyway
	}
	r.n.log.Warn("a snapshot merge did not finish: refusing requests until a snapshot of every region is merged", "peer", region)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return // closing; the next start joins (metaMerging is set)
	}
	r.wg.Add(1)
	go r.runJoin()
}

// clusterRegions lists the other regions of the cluster with the API
// address of each where known: replication peers, and gossip members of
// any state (a dead or departed region may hold this region's writes as
// well as a live one) except removed ones. ready is false until gossip has
// joined the cluster, before which the list may be incomplete.
func (r *replication) clusterRegions() (regions []string, addrs map[string]string, ready bool) {
	addrs = map[string]string{}
	r.mu.Lock()
	for region, p := range r.peers {
		addrs[region] = p.addr
	}
	removed := maps.Clone(r.removed)
	ms := r.membership
	r.mu.Unlock()
	ready = ms == nil || ms.Joined()
	if ms != nil {
		for _, m := range ms.Members() {
			region := m.Region
			switch {
			case region == r.n.cfg.Region:
			case m.Removed:
				removed[region] = true
			case addrs[region] == "" || (m.Alive && m.ReplicationAddr != ""):
				addrs[region] = m.ReplicationAddr
			}
		}
	}
	for region := range addrs {
		if !removed[region] {
			regions = append(regions, region)
		}
	}
	slices.Sort(regions)
	return regions, addrs, ready
}

// finishJoin records durably that the join is over, then serves.
func (n *Node) finishJoin() error {
	n.mu.Lock()
	wb := n.store.newWriteBatch()
	wb.putState(&nodeState{Vector: n.causal.Applied(), Clock: n.clock.Last()})
	wb.deleteMeta(metaJoining)
	wb.deleteMeta(metaMerging)
	err := n.commit(wb)
	n.mu.Unlock()
	if err != nil {
		wb.abandon()
		return err
	}
	if err := wb.wait(); err != nil {
		return n.fail(err)
	}
	n.state.joining.Store(false)
	vec, _ := n.durableVector()
	n.log.Info("joined: serving", "vector", vec.String(), "next_write", n.durableSeq(n.cfg.Region)+1)
	return nil
}

// lostWrites stops the region for good (until an operator repairs it): a
// subscriber holds writes of this region that the region does not.
func (n *Node) lostWrites(subscriber string, err error) {
	why := fmt.Sprintf("region %s holds writes of this region that its data directory lacks (%v): the directory was lost, "+
		"wiped or restored from an older copy and the node started without --join, so writes it accepts now would reuse "+
		"sequence numbers other regions already hold and be dropped there. Stop this node, empty its data directory, and "+
		"start it again with --join <a live region's gossip address>: it then copies every region before it serves",
		subscriber, err)
	if n.state.lost.CompareAndSwap(nil, &why) {
		n.log.Error("lost writes: refusing every request", "subscriber", subscriber, "err", err,
			"repair", "stop the node, empty its data directory, start it again with --join")
	}
}

// CausalState is what the causal tier does for clients ("serving",
// "joining", "merging", "drained", "lost-writes", "removed", or
// "clock-fenced": reads served, writes refused by the clock offset fence)
// and, unless serving, why.
func (n *Node) CausalState() (state, reason string) {
	if state, err := n.clientRefusal(); err != nil {
		return state, err.Error()
	}
	if err := n.clockFence.check(); err != nil {
		return stateClockFenced, err.Error()
	}
	return stateServing, ""
}

// SetDrain makes the causal tier refuse client requests, or serve them
// again; replication goes on. Fault injection only.
func (n *Node) SetDrain(drain bool) error {
	if !n.cfg.FaultInjection {
		return api.Errorf(api.ErrPermissionDenied,
			"fault injection is off on this node; start it with --fault-injection to drain it")
	}
	n.state.drained.Store(drain)
	n.log.Info("drain changed", "drained", drain)
	return nil
}

// clientRefusal is the state refusing every client request and its error,
// or ("", nil) when the region serves clients (regionState.refusal).
func (n *Node) clientRefusal() (string, error) {
	if n.removedHere() {
		return stateRemoved, api.Errorf(api.ErrFailedPrecondition,
			"region %s was removed from the cluster (causeway remove-region): what it accepted would reach no other region, so it refuses requests; to serve again, stop it, empty its data directory and start it with --join",
			n.cfg.Region)
	}
	return n.state.refusal(n.cfg.Region, n.repl.bootstrapping.Load())
}
