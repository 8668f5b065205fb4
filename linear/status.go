package linear

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/api"
	causewayv1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// voter is one member of the Raft configuration as this node sees it.
type voter struct {
	id           raft.ServerID
	region, addr string
	suffrage     raft.ServerSuffrage
	reachable    bool
}

// members lists the group's members: from the Raft configuration on a
// voter, from gossip on a forwarder (one per region: a live node's if
// there is one). Reachable means this node itself, or gossip reports the
// member alive; on a voter, Raft's own view where it has one; and never a
// member whose region this node's emulated link cuts off (known at once,
// where gossip and Raft take timeouts to notice).
func (n *Node) members() []voter {
	alive := map[raft.ServerID]bool{}
	var out []voter
	peers := n.cfg.Peers()
	for _, p := range peers {
		if p.Alive && !p.Removed {
			alive[peerServerID(p)] = true
		}
	}
	if n.raft == nil {
		byRegion := map[string]int{}
		for _, p := range peers {
			if p.RaftAddr == "" || p.Removed {
				continue
			}
			v := voter{id: peerServerID(p), region: p.Region, addr: p.RaftAddr, suffrage: raft.Voter, reachable: p.Alive && !n.linkCut(p.Region)}
			if i, ok := byRegion[p.Region]; !ok {
				byRegion[p.Region] = len(out)
				out = append(out, v)
			} else if v.reachable && !out[i].reachable {
				out[i] = v
			}
		}
	} else if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		_, leader := n.raft.LeaderWithID()
		for _, s := range cf.Configuration().Servers {
			reachable := s.ID == n.id || alive[s.ID]
			if s.ID != n.id {
				// Raft's own view, where it has one, is fresher than
				// gossip's (see reach).
				if rr, known := n.raftReachable(s.ID, leader); known {
					reachable = rr
				}
				reachable = reachable && !n.linkCut(regionOf(s.ID))
			}
			out = append(out, voter{id: s.ID, region: regionOf(s.ID), addr: string(s.Address), suffrage: s.Suffrage, reachable: reachable})
		}
	}
	slices.SortFunc(out, func(a, b voter) int { return strings.Compare(string(a.id), string(b.id)) })
	return out
}

// linkCut reports whether the emulated link to region is cut in either
// direction: a request to a voter there, or its answer, cannot cross.
func (n *Node) linkCut(region string) bool {
	l := n.cfg.Links.Get(region)
	return l.CutOut || l.CutIn
}

// voters is members less the non-voters: those the quorum counts.
func (n *Node) voters() []voter {
	return slices.DeleteFunc(n.members(), func(v voter) bool { return v.suffrage != raft.Voter })
}

// reachability summarises the voters this node reaches, for messages.
func (n *Node) reachability() string {
	vs := n.voters()
	reachable := 0
	for _, v := range vs {
		if v.reachable {
			reachable++
		}
	}
	if len(vs) == 0 {
		return "no voters known yet"
	}
	return fmt.Sprintf("%d of %d voters reachable, a quorum is %d", reachable, len(vs), len(vs)/2+1)
}

// unavailable is the error of a request the tier cannot serve here now:
// what happened, how many voters this node reaches, and that the causal
// tier still serves. It wraps api.ErrUnavailable.
func (n *Node) unavailable(format string, args ...any) error {
	return api.Errorf(api.ErrUnavailable, "linearizable tier unavailable here (region %s): %s (%s); causal reads and writes still available",
		n.cfg.Region, fmt.Sprintf(format, args...), n.reachability())
}

// Status reports the tier's state on this node.
func (n *Node) Status() *causewayv1.LinearStatus {
	st := &causewayv1.LinearStatus{Enabled: true, Voter: n.raft != nil, ServerId: n.ServerID()}
	var leader raft.ServerID
	if n.raft != nil {
		st.State = n.raft.State().String()
		_, leader = n.raft.LeaderWithID()
		st.Term = n.raft.CurrentTerm()
		st.LastIndex = n.raft.LastIndex()
		st.AppliedIndex = n.raft.AppliedIndex()
	}
	st.LeaderId, st.LeaderRegion = string(leader), regionOf(leader)
	voters := 0
	for _, v := range n.members() {
		vs := &causewayv1.VoterStatus{Region: v.region, Address: v.addr, Reachable: v.reachable, Leader: leader != "" && v.id == leader}
		if n.raft != nil {
			vs.ServerId = string(v.id)
		}
		if v.suffrage != raft.Voter {
			vs.Suffrage = "nonvoter"
			st.NonVoters = append(st.NonVoters, vs)
			continue
		}
		vs.Suffrage = "voter"
		st.Voters = append(st.Voters, vs)
		voters++
		if v.reachable {
			st.ReachableVoters++
		}
	}
	st.Quorum = uint32(voters/2 + 1)
	st.ApprovedVoters, _ = n.approvedVoters() // an unreadable state lists what the flag names
	st.Unapproved = n.unapprovedSeen()
	switch {
	case n.raft == nil:
		st.Available = st.ReachableVoters > 0
		if !st.Available {
			st.Reason = "no voter reachable"
		}
	case leader == "":
		st.Reason = "no leader: " + n.reachability()
	case leader != n.id && !n.leaderFresh():
		st.Reason = fmt.Sprintf("leader %s not heard from for %v: %s", leader, n.timing.lease, n.reachability())
	default:
		st.Available = true
	}
	return st
}
