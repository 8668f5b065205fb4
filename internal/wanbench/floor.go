package wanbench

import (
	"slices"
	"time"
)

// QuorumFloor is the least time a consensus write can take when sent from
// region from to a group of voters led from leader, given the matrix's
// one-way delays and nothing else (no fsync, no CPU):
//
//   - from the leader: the round trip to the voter that completes a
//     majority, which is the k-th nearest other voter with k = len(voters)/2
//     (for 3 voters, the nearest; for 5, the second nearest);
//   - from another region: the round trip that carries the request to the
//     leader and the answer back, plus the leader's floor.
//
// The same floor bounds etcd's Put from a member's region: a follower
// forwards the proposal to the leader, which commits it with a quorum, and
// the follower answers once it learns the commit.
func QuorumFloor(m Matrix, voters []string, leader, from string) time.Duration {
	var others []time.Duration
	for _, v := range voters {
		if v != leader {
			others = append(others, m.OneWay(leader, v))
		}
	}
	slices.Sort(others)
	var floor time.Duration
	if k := len(voters) / 2; k > 0 && k <= len(others) {
		floor = 2 * others[k-1]
	}
	if from != leader {
		floor += 2 * m.OneWay(from, leader)
	}
	return floor
}
