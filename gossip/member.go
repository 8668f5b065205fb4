package gossip

import (
	"fmt"
	"time"

	"github.com/causewaydb/causeway/clocks"
)

// State is a member's liveness as this node sees it.
type State int

const (
	// Alive: memberlist considers the member alive and a heartbeat from it
	// arrived within Timing.SuspectAfter.
	Alive State = iota
	// Suspect: memberlist has not declared the member dead, but no new
	// heartbeat from it arrived for Timing.SuspectAfter. It is this node's
	// own view; it turns back to Alive when a heartbeat arrives.
	Suspect
	// Dead: memberlist's failure detector declared the member failed (it
	// stopped answering probes, directly and through other members, for the
	// suspicion timeout).
	Dead
	// Left: the member announced a graceful departure (Leave).
	Left
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	case Left:
		return "left"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Member is one node as this node sees it.
type Member struct {
	Meta Meta
	// Addr is the member's gossip address (host:port), e.g. for a link
	// emulator to learn which region an address belongs to.
	Addr string
	// State is the member's liveness, and Since when it has been in it.
	State State
	Since time.Time
	// Applied is the newest applied vector the member reported (nil until
	// one arrives). Owned by the caller.
	Applied clocks.Vector
	// Removed reports that an operator removed the member's region
	// (Gossip.Remove): it no longer holds back the stable vector.
	Removed bool
}

// StableVector returns the element-wise minimum, over the regions with a
// causal replica among members, of what each such region has applied: the
// writes every counted region is known to have applied. Log entries at or
// below it are no longer needed by any of those regions.
//
// Which members count:
//   - Only those with a ReplicationAddr (causal replicas of their region).
//   - Not those whose region was removed (Member.Removed).
//   - All others, whatever their State. A suspect, dead or departed member
//     keeps holding the minimum back at its last reported vector, because a
//     region that is merely partitioned or restarting looks exactly like
//     that, and garbage-collecting past it would leave it unable to catch
//     up. Only an operator, by removing the region, decides it is gone.
//   - A member that has not reported a vector yet counts as having applied
//     nothing, so the minimum never outruns a node that just joined.
//
// A region's applied vector is the element-wise maximum of its members'
// reports: a region keeps one store, applied vectors only grow, and a
// member's report is a lower bound of what the region holds, so a restarted
// node under a new id and its dead predecessor together say no more than the
// region has.
//
// With no counted member the result is empty. It never returns nil.
func StableVector(members []Member) clocks.Vector {
	regions := make(map[string]clocks.Vector)
	for _, m := range members {
		if m.Removed || m.Meta.ReplicationAddr == "" {
			continue
		}
		if v, ok := regions[m.Meta.Region]; ok {
			v.MergeInPlace(m.Applied)
		} else {
			regions[m.Meta.Region] = m.Applied.Clone()
		}
	}
	var stable clocks.Vector
	for _, v := range regions {
		if stable == nil {
			stable = v.Clone()
			continue
		}
		for r, seq := range stable {
			if o := v.Get(r); o < seq {
				if o == 0 {
					delete(stable, r)
				} else {
					stable[r] = o
				}
			}
		}
	}
	if stable == nil {
		return clocks.Vector{}
	}
	return stable
}
