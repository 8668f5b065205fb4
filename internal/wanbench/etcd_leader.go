package wanbench

import (
	"context"
	"fmt"
	"time"
)

// etcd elects its leader wherever its first election happens to end, and
// Causeway's linearizable tier is led from wherever its own did. A
// linearizable operation's floor is the quorum round trip from the leader
// plus, from any other region, the round trip to the leader: with the two
// leaders in different regions, the comparison from one region would be
// between leader placements, not between systems. So the benchmark moves
// etcd's leadership to the region that leads Causeway's tier (etcd's
// MoveLeader, what `etcdctl move-leader` does), and both systems have the
// same floor from every region.

// moveLeaderTimeout bounds moving etcd's leadership and the wait for every
// member to follow the new leader.
const moveLeaderTimeout = 30 * time.Second

// moveLeader makes the member of region etcd's leader, unless it is
// already.
func (cl *etcdCluster) moveLeader(ctx context.Context, region string) error {
	if region == "" || region == cl.leaderRegion {
		return nil
	}
	to, ok := cl.members[region]
	if !ok {
		return fmt.Errorf("no etcd member in region %s", region)
	}
	ctx, cancel := context.WithTimeout(ctx, moveLeaderTimeout)
	defer cancel()
	st, err := to.cli.Status(ctx, to.client)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", region, err)
	}
	from := cl.members[cl.leaderRegion]
	// MoveLeader must be asked of the current leader.
	if _, err := from.cli.MoveLeader(ctx, st.Header.MemberId); err != nil {
		return fmt.Errorf("move etcd's leadership from %s to %s: %w", cl.leaderRegion, region, err)
	}
	last := "no status yet"
	for {
		leader, why := cl.commonLeader(ctx)
		if why == "" && leader == region {
			cl.leaderRegion = leader
			return nil
		}
		if why == "" {
			why = "the members follow " + leader
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd's leadership did not move to %s within %v: %s", region, moveLeaderTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
