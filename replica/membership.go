package replica

import (
	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/clocks"
	"time"
)

// startMembership starts membership (Config.Membership) with this node's
// API address. Members of other regions become replication peers when
// they are alive; removed ones stop being followed.
func (r *replication) startMembership(advertise string) error {
	n := r.n
	m, err := n.cfg.Membership(n.env(advertise), memberEvents{r})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.membership = m
	r.mu.Unlock()
	alivePeers := func() int {
		regions := map[string]bool{}
		for _, m := range m.Members() {
			if m.Alive && !m.Removed && m.ReplicationAddr != "" && m.Region != n.cfg.Region {
				regions[m.Region] = true
			}
		}
		return len(regions)
	}
	n.clockFence.knownPeers.Store(&alivePeers)
	return nil
}

// memberEvents is how membership reaches the node (MemberEvents).
type memberEvents struct{ r *replication }

// AppliedVector is a copy of the durable vector.
func (e memberEvents) AppliedVector() clocks.Vector {
	v, _ := e.r.n.durableVector()
	return v.Clone()
}

func (e memberEvents) MemberChanged(m Member) { e.r.memberChanged(m) }

// ClockReading feeds the clock offset fence (clockoffset.go).
func (e memberEvents) ClockReading(c ClockReading) { e.r.n.clockFence.reading(c) }

// memberChanged follows membership: a live member of another region is
// replicated with, a removed region no longer is.
func (r *replication) memberChanged(m Member) {
	if m.Region == r.n.cfg.Region {
		return
	}
	r.n.cfg.Links.Learn(m.GossipAddr, m.Region)
	switch {
	case m.Removed:
		r.removePeer(m.Region)
	case m.Alive && m.ReplicationAddr != "":
		r.addPeer(m.Region, m.ReplicationAddr)
	}
}

// removePeer stops following region and stops keeping the log for it.
func (r *replication) removePeer(region string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed[region] {
		return
	}
	r.removed[region] = true
	if p, ok := r.peers[region]; ok {
		p.cancel()
		delete(r.peers, region)
	}
	delete(r.acks, region)
	if err := r.n.store.forgetPeer(region); err != nil {
		r.n.log.Error("forget peer", "peer", region, "err", err)
	}
	r.n.log.Info("region removed: no longer replicated with", "peer", region)
}

// members is membership's view (nil without membership).
func (r *replication) members() []Member {
	if m := r.membershipNow(); m != nil {
		return m.Members()
	}
	return nil
}

func (r *replication) stopMembership() {
	r.mu.Lock()
	m := r.membership
	r.membership = nil
	r.mu.Unlock()
	if m != nil {
		if err := m.Close(); err != nil {
			r.n.log.Warn("membership did not stop cleanly", "err", err)
		}
	}
}

// membershipNow is membership once started (nil before, or without it).
func (r *replication) membershipNow() Membership {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.membership
}

// RemoveRegion declares region gone for good (see AdminService.RemoveRegion).
// A region membership sees alive is removed only when forced: it would
// refuse its clients from then on (removedHere), and what it accepted
// since would reach no other region.
func (n *Node) RemoveRegion(region string, force bool) error {
	if err := clocks.ValidateRegion(region); err != nil {
		return api.Errorf(api.ErrInvalidArgument, "%v", err)
	}
	if region == n.cfg.Region {
		return api.Errorf(api.ErrInvalidArgument, "region %s is this node's own; remove it from another region", region)
	}
	known := n.repl.knownRegion(region)
	if m := n.repl.membershipNow(); m != nil {
		for _, mem := range m.Members() {
			known = known || mem.Region == region
			if mem.Region == region && mem.Alive && !mem.Removed && !force {
				return api.Errorf(api.ErrFailedPrecondition,
					"region %s is alive (member %s, alive since %s): a removed region refuses its clients and its writes since would reach no other region; stop it first, or force the removal (--force) if it is cut off for good",
					region, mem.NodeID, mem.Since.Format(time.RFC3339))
			}
		}
		if known {
			if err := m.Remove(region); err != nil {
				return api.Errorf(api.ErrInvalidArgument, "%v", err)
			}
		}
	}
	if !known {
		return api.Errorf(api.ErrInvalidArgument, "unknown region %q: this node knows %v", region, n.knownRegions())
	}
	n.repl.removePeer(region)
	return nil
}

// removedHere reports whether an operator removed this node's own region:
// membership marks this node removed. Such a region refuses every client
// request: a write it accepted would never reach another region.
func (n *Node) removedHere() bool {
	for _, m := range n.repl.members() {
		if m.Region == n.cfg.Region && m.Removed {
			return true
		}
	}
	return false
}
