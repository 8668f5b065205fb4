package linear

import (
	"fmt"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/api"
	causewayv1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// voter is one member of the Raft configuration as this node sees it.
type voter struct {
	region, addr string
	reachable    bool
}

// voters lists the group's voters: from the Raft configuration on a voter,
// from gossip on a forwarder. Reachable means this node itself, or gossip
// reports the voter alive.
func (n *Node) voters() []voter {
	alive := map[string]bool{}
	var out []voter
	peers := n.cfg.Peers()
	for _, p := range peers {
		if p.Alive && !p.Removed {
			alive[p.Region] = true
		}
	}
	if n.raft == nil {
		for _, p := range peers {
			if p.RaftAddr != "" && !p.Removed {
				out = append(out, voter{region: p.Region, addr: p.RaftAddr, reachable: p.Alive})
			}
		}
	} else if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		_, leader := n.raft.LeaderWithID()
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage != raft.Voter {
				continue
			}
			r := string(s.ID)
			reachable := r == n.cfg.Region || alive[r]
			if r != n.cfg.Region {
				// Raft's own view, where it has one, is fresher than
				// gossip's (see reach).
				if rr, known := n.raftReachable(r, string(leader)); known {
					reachable = rr
				}
			}
			out = append(out, voter{region: r, addr: string(s.Address), reachable: reachable})
		}
	}
	slices.SortFunc(out, func(a, b voter) int {
		switch {
		case a.region < b.region:
			return -1
		case a.region > b.region:
			return 1
		}
		return 0
	})
	return out
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
	st := &causewayv1.LinearStatus{Enabled: true, Voter: n.raft != nil}
	vs := n.voters()
	leader := ""
	if n.raft != nil {
		st.State = n.raft.State().String()
		_, id := n.raft.LeaderWithID()
		leader = string(id)
		st.Term = n.raft.CurrentTerm()
		st.LastIndex = n.raft.LastIndex()
		st.AppliedIndex = n.raft.AppliedIndex()
	}
	st.LeaderRegion = leader
	for _, v := range vs {
		st.Voters = append(st.Voters, &causewayv1.VoterStatus{Region: v.region, Address: v.addr, Reachable: v.reachable, Leader: v.region == leader})
		if v.reachable {
			st.ReachableVoters++
		}
	}
	st.Quorum = uint32(len(vs)/2 + 1)
	switch {
	case n.raft == nil:
		st.Available = st.ReachableVoters > 0
		if !st.Available {
			st.Reason = "no voter reachable"
		}
	case leader == "":
		st.Reason = "no leader: " + n.reachability()
	case leader != n.cfg.Region && !n.leaderFresh():
		st.Reason = fmt.Sprintf("leader %s not heard from for %v: %s", leader, n.timing.lease, n.reachability())
	default:
		st.Available = true
	}
	return st
}
