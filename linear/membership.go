package linear

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	causewayv1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// membershipLoop, on the leader, makes the Raft configuration follow
// gossip (see reconcile), one change per tick.
func (n *Node) membershipLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.timing.heartbeat / 2)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		for _, p := range n.cfg.Peers() {
			if p.RaftAddr != "" {
				n.cfg.Links.Learn(p.RaftAddr, p.Region)
			}
		}
		if !n.isLeader() {
			continue
		}
		if err := n.reconcile(); err != nil {
			n.log.Warn("linearizable tier: membership change failed; will retry", "err", err)
		}
	}
}

// promotion tracks, on the leader, the non-voters waiting to catch up, so
// that the wait is logged now and then rather than on every tick.
type promotion struct {
	since  map[raft.ServerID]time.Time
	logged map[raft.ServerID]time.Time
}

// promotionLogEvery is how often a non-voter still catching up is logged.
const promotionLogEvery = 10 * time.Second

// reconcile makes one change, if one is due, towards a configuration with
// one voter per live region, under the id that region's node announces:
//
//   - A removed region's ids leave the group.
//   - A region announcing an id the configuration lacks (a new region, or
//     one that lost its data directory and came back under a new id) is
//     added as a non-voter: it does not count towards the quorum while it
//     catches up. If a lost id of that region holds the same address, that
//     id is removed first (Raft wants distinct addresses).
//   - A non-voter whose log has reached the leader's commit index (asked
//     through LinearService.Progress) is promoted to voter.
//   - Once the new id votes, the region's other ids are removed.
//
// An id some live member announces is never removed, and a
// region with two live ids gets neither promoted nor trimmed (two nodes
// claim one region: an operator error, logged). Dead members' ids stay in
// the configuration until their region comes back or is removed: they
// count against the quorum, which is the point.
//
// Order and quorum: with one region of three lost, the configuration is
// {a, b, lost}, quorum 2: both a and b are needed, lost being dead. When the
// region comes back at the same address, removing the lost id first makes
// {a, b}, quorum 2: still both; adding the new id as a non-voter keeps it
// so, and promoting it makes {a, b, new}, quorum 2 of 3. At a new address
// the new id is added and promoted first ({a, b, lost, new}: quorum 3 of
// the 3 live) and the lost id removed after.
//
// Changing the address of a server Raft replicates to races inside
// hashicorp/raft v1.8 (startStopReplication writes the follower's peer
// while its replication goroutine reads it; upstream issue 681), so a lost
// id is removed, never given another address.
func (n *Node) reconcile() error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	servers := cf.Configuration().Servers
	peers := n.cfg.Peers()
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Region, b.Region) })
	live := map[raft.ServerID]bool{n.id: true}
	removed := map[string]bool{}
	for _, p := range peers {
		switch {
		case p.Removed:
			removed[p.Region] = true
		case p.Alive && p.RaftAddr != "":
			live[peerServerID(p)] = true
		}
	}

	for _, s := range servers {
		if s.ID != n.id && removed[regionOf(s.ID)] {
			n.log.Info("linearizable tier: removing the server of a removed region", "region", regionOf(s.ID), "server_id", s.ID)
			return n.change("remove", s.ID, n.raft.RemoveServer(s.ID, 0, n.timing.call))
		}
	}
	// This node's own region: it leads, so it votes; trim ids it replaced.
	if changed, err := n.trimRegion(servers, n.id, live); changed {
		return err
	}
	for _, p := range peers {
		if p.Removed || !p.Alive || p.RaftAddr == "" || p.Region == n.cfg.Region {
			continue
		}
		if changed, err := n.reconcileRegion(servers, p, live); changed {
			return err
		}
	}
	return nil
}

// reconcileRegion makes the change due for the region of live peer p, if
// any; changed reports whether it tried one.
func (n *Node) reconcileRegion(servers []raft.Server, p Peer, live map[raft.ServerID]bool) (changed bool, err error) {
	id, addr := peerServerID(p), raft.ServerAddress(p.RaftAddr)
	var self *raft.Server
	var others []raft.Server // the region's other ids
	for i, s := range servers {
		switch {
		case s.ID == id:
			self = &servers[i]
		case regionOf(s.ID) == p.Region:
			others = append(others, s)
		}
	}
	for _, o := range others {
		if live[o.ID] {
			n.log.Warn("linearizable tier: two live nodes announce Raft server ids for one region; leaving it as it is (run one voter per region)",
				"region", p.Region, "server_id", id, "other_server_id", o.ID)
			return false, nil
		}
	}
	// A lost id of the region holds its address: remove it first (it is
	// dead, so the quorum needs the same live voters without it).
	for _, o := range others {
		if o.Address != addr {
			continue
		}
		n.log.Info("linearizable tier: a region came back under a new server id at its address; removing the lost id",
			"region", p.Region, "lost_server_id", o.ID, "suffrage", o.Suffrage.String(), "server_id", id, "raft_addr", addr)
		return true, n.change("remove", o.ID, n.raft.RemoveServer(o.ID, 0, n.timing.call))
	}
	if self == nil && len(others) == 0 && !n.voterAllowed(p.Region) {
		// A region that never was a member, and is not approved.
		n.refuseUnapproved(p)
		return false, nil
	}
	switch {
	case self == nil:
		n.log.Info("linearizable tier: adding a new member as a non-voter; it votes once it has caught up",
			"region", p.Region, "server_id", id, "raft_addr", addr, "replaces", serverIDs(others))
		return true, n.change("add non-voter", id, n.raft.AddNonvoter(id, addr, 0, n.timing.call))
	case self.Address != addr && self.Suffrage == raft.Voter:
		n.log.Info("linearizable tier: updating a voter's address", "server_id", id, "raft_addr", addr)
		return true, n.change("update", id, n.raft.AddVoter(id, addr, 0, n.timing.call))
	case self.Address != addr:
		n.log.Info("linearizable tier: updating a non-voter's address", "server_id", id, "raft_addr", addr)
		return true, n.change("update", id, n.raft.AddNonvoter(id, addr, 0, n.timing.call))
	case self.Suffrage != raft.Voter:
		ok, err := n.caughtUp(p, id)
		if !ok {
			n.logCatchingUp(id, err)
			return false, nil
		}
		n.log.Info("linearizable tier: promoting a member that caught up to voter", "region", p.Region, "server_id", id)
		delete(n.promotion.since, id)
		delete(n.promotion.logged, id)
		return true, n.change("promote", id, n.raft.AddVoter(id, addr, 0, n.timing.call))
	}
	return n.trimRegion(servers, id, live)
}

// trimRegion removes the ids of voter id's region other than id, once id
// votes, unless a live member announces them.
func (n *Node) trimRegion(servers []raft.Server, id raft.ServerID, live map[raft.ServerID]bool) (changed bool, err error) {
	for _, s := range servers {
		if s.ID != id || s.Suffrage != raft.Voter {
			continue
		}
		for _, o := range servers {
			if o.ID != id && regionOf(o.ID) == regionOf(id) && !live[o.ID] {
				n.log.Info("linearizable tier: removing a lost server id, replaced by a new member of its region",
					"region", regionOf(id), "lost_server_id", o.ID, "server_id", id)
				return true, n.change("remove", o.ID, n.raft.RemoveServer(o.ID, 0, n.timing.call))
			}
		}
	}
	return false, nil
}

// change waits for a configuration change and names it in its error.
func (n *Node) change(what string, id raft.ServerID, f raft.IndexFuture) error {
	if err := f.Error(); err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return nil
}

// caughtUp asks p, through LinearService.Progress, whether its log
// has reached this leader's commit index. A member whose log holds every
// committed entry can be promoted without slowing commits down (a voter far
// behind would count towards the quorum while unable to acknowledge).
// Safety does not depend on it: a voter that never forgets is safe however
// far behind it starts.
func (n *Node) caughtUp(p Peer, id raft.ServerID) (bool, error) {
	if p.APIAddr == "" {
		return false, fmt.Errorf("gossip announces no API address for %s", id)
	}
	commit := n.raft.CommitIndex()
	ctx, cancel := context.WithTimeout(context.Background(), n.timing.heartbeat)
	defer cancel()
	client := causewayv1connect.NewLinearServiceClient(n.cfg.HTTPClient, "http://"+p.APIAddr)
	res, err := client.Progress(ctx, connect.NewRequest(&causewayv1.ProgressRequest{}))
	if err != nil {
		return false, err
	}
	if res.Msg.ServerId != string(id) {
		return false, fmt.Errorf("%s answers as server %q", p.APIAddr, res.Msg.ServerId)
	}
	if res.Msg.LastIndex < commit {
		return false, fmt.Errorf("its log ends at %d, the commit index is %d", res.Msg.LastIndex, commit)
	}
	return true, nil
}

func (n *Node) logCatchingUp(id raft.ServerID, why error) {
	if n.promotion.since == nil {
		n.promotion.since, n.promotion.logged = map[raft.ServerID]time.Time{}, map[raft.ServerID]time.Time{}
	}
	now := time.Now()
	if _, ok := n.promotion.since[id]; !ok {
		n.promotion.since[id] = now
	}
	if now.Sub(n.promotion.logged[id]) < promotionLogEvery {
		return
	}
	n.promotion.logged[id] = now
	n.log.Info("linearizable tier: a non-voter is catching up before promotion", "server_id", id,
		"waiting", now.Sub(n.promotion.since[id]).Round(time.Millisecond), "reason", why)
}

func serverIDs(servers []raft.Server) []raft.ServerID {
	out := make([]raft.ServerID, len(servers))
	for i, s := range servers {
		out[i] = s.ID
	}
	return out
}
