package linear

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// reach is what this voter's Raft knows of which voters it hears from,
// which is fresher than gossip's view: a leader learns of a follower it
// cannot reach when a heartbeat fails (one transport timeout), where gossip
// takes several probe rounds to call a member suspect.
type reach struct {
	mu sync.Mutex
	// unreachable, on a leader: followers (server ids) whose heartbeats
	// fail now.
	unreachable map[raft.ServerID]bool
}

// observationBuffer bounds the observations waiting for the watcher; when
// it is full raft drops new ones (the watcher is never behind for long:
// each observation is a map update).
const observationBuffer = 64

// watchReach follows raft's heartbeat and leadership observations until
// stop closes.
func (n *Node) watchReach() {
	defer n.wg.Done()
	ch := make(chan raft.Observation, observationBuffer)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-n.stop:
			return
		case o := <-ch:
			n.reach.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				n.reach.unreachable[d.PeerID] = true
			case raft.ResumedHeartbeatObservation:
				delete(n.reach.unreachable, d.PeerID)
			case raft.LeaderObservation:
				clear(n.reach.unreachable) // a new term: followers' state starts afresh
			}
			n.reach.mu.Unlock()
		}
	}
}

// raftReachable gives Raft's opinion of whether server id is reachable
// from here, if it has one: on a leader, whether heartbeats to it
// succeed; on a follower, for the leader, whether it was heard from
// within the leader lease.
func (n *Node) raftReachable(id, leader raft.ServerID) (reachable, known bool) {
	if n.raft == nil {
		return false, false
	}
	if n.isLeader() {
		n.reach.mu.Lock()
		defer n.reach.mu.Unlock()
		return !n.reach.unreachable[id], true
	}
	if id == leader && leader != "" {
		return n.leaderFresh(), true
	}
	return false, false
}

// leaderFresh reports whether this follower heard from its leader within
// the leader lease: the leader sends heartbeats ten times per heartbeat
// timeout, so silence for half of it means the leader is cut off (or
// gone), well before this follower would start an election.
func (n *Node) leaderFresh() bool {
	return time.Since(n.raft.LastContact()) < n.timing.lease
}
