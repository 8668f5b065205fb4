//go:build unix

package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// link cuts (or heals) the link between a and b, on both ends.
func (c *linearCluster) link(a, b *linearRegion, cut v1.LinkCut) {
	c.t.Helper()
	c.linkEnd(a, b, cut)
	c.linkEnd(b, a, cut)
}

// linkEnd cuts (or heals) the link between a and b on a's end only; a cut
// in both directions on one end stops traffic both ways.
func (c *linearCluster) linkEnd(a, b *linearRegion, cut v1.LinkCut) {
	c.t.Helper()
	if _, err := a.admin.SetLink(c.ctx, connect.NewRequest(&v1.SetLinkRequest{Region: b.name, Cut: cut})); err != nil {
		c.t.Fatalf("set link %s→%s: %v", a.name, b.name, err)
	}
}

// wipe kills r with SIGKILL, deletes its whole data directory, and restarts
// it with its flags and --join naming every other region's gossip address:
// the README's recovery of a region whose data directory was lost.
func (c *linearCluster) wipe(r *linearRegion) {
	c.t.Helper()
	c.procs.kill(r.name)
	c.client.CloseIdleConnections()
	if err := os.RemoveAll(r.dataDir); err != nil {
		c.t.Fatal(err)
	}
	var args, join []string
	for i := 0; i < len(r.args); i++ {
		if r.args[i] == "--join" {
			i++ // replaced below
			continue
		}
		args = append(args, r.args[i])
	}
	for _, o := range c.regions {
		if o != r {
			join = append(join, o.gossip)
		}
	}
	r.args = append(args, "--join", strings.Join(join, ","))
	c.start(r)
}

// linearMembers is region -> Raft server id of the voters r's status lists.
func linearMembers(st *v1.StatusResponse) map[string]string {
	out := map[string]string{}
	for _, v := range st.GetLinear().GetVoters() {
		out[v.Region] = v.ServerId
	}
	return out
}

// TestWipedVoterRejoinsAsNewMember is issue 21's reproduction with three
// real processes. Acknowledged CAS writes are committed on the leader and
// one follower only (the other follower is cut off); that follower then
// loses its disk and rejoins with --join while cut from the leader, and its
// link to the stale follower is healed. A voter that forgot its log and its
// vote must not help the stale follower win an election: no region may
// answer without the acknowledged writes, and after every link heals each
// region reads the last acknowledged value, the region that lost its disk
// is back as a new member (a new Raft server id), and a CAS expecting the
// acknowledged version succeeds.
func TestWipedVoterRejoinsAsNewMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startLinearCluster(t, ctx)
	leader := c.region(c.awaitVoters(30 * time.Second))
	var stale, wiped *linearRegion // F1 and F2 of the issue
	for _, r := range c.regions {
		switch {
		case r == leader:
		case stale == nil:
			stale = r
		default:
			wiped = r
		}
	}
	st, err := leader.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldID := linearMembers(st)[wiped.name]
	oldNode := ""
	for _, m := range st.Members {
		if m.Region == wiped.name && m.State == "alive" {
			oldNode = m.NodeId
		}
	}

	// 1. The stale follower is cut off from both others.
	c.cut(stale, v1.LinkCut_LINK_CUT_BOTH)

	// 2. Twenty CAS writes acknowledged by the leader: committed on the
	// leader and the follower that will lose its disk.
	const key = "issue-21"
	var version uint64
	var value string
	for i := range 20 {
		value = "v" + string(rune('a'+i))
		rid := uuid.NewString()
		var res *connect.Response[v1.CompareAndSetResponse]
		err := retrying(ctx, 30*time.Second, func(ctx context.Context) (err error) {
			res, err = leader.lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: key, Value: []byte(value),
				Expect: &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: version}, RequestId: rid}))
			return err
		})
		if err != nil {
			t.Fatalf("CAS %d through the leader %s: %v", i, leader.name, err)
		}
		version = res.Msg.Version
	}

	// 3. The leader is cut from that follower, which loses its disk and
	// rejoins with --join. Link cuts live in each process: the restarted
	// one starts with none, and the cuts on the leader's and the stale
	// follower's ends keep it apart from both.
	c.link(leader, wiped, v1.LinkCut_LINK_CUT_BOTH)
	c.wipe(wiped)

	// 4. The link between the stale follower and the wiped one heals. The
	// wiped one must not make the stale one a leader: for several election
	// timeouts, any linearizable read the stale side answers must hold the
	// acknowledged writes (the fix: it answers none, having no quorum).
	c.linkEnd(stale, wiped, v1.LinkCut_LINK_CUT_UNSPECIFIED)
	pollUntil(t, 60*time.Second, "the stale follower's gossip to see the rejoined region alive", func() bool {
		st, err := stale.status(ctx)
		if err != nil {
			return false
		}
		for _, m := range st.Members {
			if m.Region == wiped.name && m.State == "alive" && m.NodeId != oldNode {
				return true
			}
		}
		return false
	})
	window := time.Now().Add(15 * time.Second)
	for time.Now().Before(window) {
		for _, r := range []*linearRegion{stale, wiped} {
			cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
			res, err := r.lin.Get(cctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: key}))
			ccancel()
			if err == nil && res.Msg.Version != version {
				t.Fatalf("%s answered a linearizable read with version %d (%q) while the leader holding the acknowledged version %d is cut off: acknowledged writes were lost",
					r.name, res.Msg.Version, res.Msg.Value, version)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond): // probe interval
		}
	}

	// Every link heals: the group settles on three voters, the wiped
	// region's under a new server id.
	c.linkEnd(leader, wiped, v1.LinkCut_LINK_CUT_UNSPECIFIED)
	c.linkEnd(leader, stale, v1.LinkCut_LINK_CUT_UNSPECIFIED)
	c.linkEnd(stale, leader, v1.LinkCut_LINK_CUT_UNSPECIFIED)
	c.awaitVoters(90 * time.Second)
	for _, r := range c.regions {
		res, err := r.lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: key}))
		if err != nil {
			t.Fatalf("linearizable read in %s after the heal: %v", r.name, err)
		}
		if !res.Msg.Found || res.Msg.Version != version || string(res.Msg.Value) != value {
			t.Fatalf("linearizable read in %s after the heal: found=%v version %d value %q; acknowledged version %d value %q",
				r.name, res.Msg.Found, res.Msg.Version, res.Msg.Value, version, value)
		}
	}
	st, err = wiped.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	members := linearMembers(st)
	if newID := members[wiped.name]; newID == "" || newID == oldID {
		t.Fatalf("region %s rejoined as Raft server %q; want a new id (it was %q), members %v", wiped.name, newID, oldID, members)
	}
	if ids := slices.Collect(func(yield func(string) bool) {
		for _, v := range st.Linear.Voters {
			if !yield(v.ServerId) {
				return
			}
		}
	}); slices.Contains(ids, oldID) {
		t.Fatalf("the lost server id %s is still a voter: %v", oldID, ids)
	}
	res, err := c.regions[0].lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: key, Value: []byte("after"),
		Expect: &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: version}, RequestId: uuid.NewString()}))
	if err != nil || res.Msg.Version <= version {
		t.Fatalf("CAS expecting the acknowledged version %d after the heal: %v %v", version, res, err)
	}
}
