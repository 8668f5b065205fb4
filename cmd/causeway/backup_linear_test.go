//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// TestRestoredVoterRejoinsTheLinearTier backs up a voter of the
// linearizable tier, writes through the tier after the backup, then loses
// the voter's disk and restores it from the backup. The manifest records
// the voter's Raft state; the restored node comes back the documented way
// (README, "A region that lost its data"): under a new Raft server id,
// added by the leader, the old id removed; it serves the causal tier again,
// and a linearizable read there returns the write made after the backup.
func TestRestoredVoterRejoinsTheLinearTier(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startLinearCluster(t, ctx)
	leader := c.region(c.awaitVoters(30 * time.Second))
	var voter *linearRegion
	for _, r := range c.regions {
		if r != leader {
			voter = r
			break
		}
	}
	cas := func(value string, version uint64) uint64 {
		t.Helper()
		var res *connect.Response[v1.CompareAndSetResponse]
		rid := uuid.NewString()
		err := retrying(ctx, 30*time.Second, func(ctx context.Context) (err error) {
			res, err = leader.lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: "restored", Value: []byte(value),
				Expect: &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: version}, RequestId: rid}))
			return err
		})
		if err != nil {
			t.Fatalf("CAS %q: %v", value, err)
		}
		return res.Msg.Version
	}
	version := cas("before", 0)

	dir := filepath.Join(t.TempDir(), "backup")
	if r := runCLI("", append([]string{"backup", "--addr", voter.url, "--out", dir}, c.procs.cliCredentials()...)...); r.code != exitOK {
		t.Fatalf("backup of a voter: %v", r)
	}
	m, err := readBackupManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	oldID := m.GetLinear().GetServerId()
	if !m.GetLinear().GetVoter() || oldID == "" || m.GetLinear().GetTerm() == 0 {
		t.Fatalf("manifest of a voter's backup: linear %v; want the voter's server id and term", m.GetLinear())
	}
	version = cas("after", version)

	c.procs.kill(voter.name)
	c.client.CloseIdleConnections()
	if err := os.RemoveAll(voter.dataDir); err != nil {
		t.Fatal(err)
	}
	if r := runCLI("", "restore", dir, "--data", voter.dataDir); r.code != exitOK || !strings.Contains(r.stdout, "new server id") {
		t.Fatalf("restore of a voter: %v", r)
	}
	var args, join []string
	for i := 0; i < len(voter.args); i++ {
		if voter.args[i] == "--join" {
			i++
			continue
		}
		args = append(args, voter.args[i])
	}
	for _, o := range c.regions {
		if o != voter {
			join = append(join, o.gossip)
		}
	}
	voter.args = append(args, "--join", strings.Join(join, ","))
	c.start(voter)

	c.awaitVoters(90 * time.Second)
	// The leader adds the new id as a non-voter, promotes it once caught
	// up, and removes the old one: one change per tick, so wait for all
	// three rather than read the first status after the restart.
	var newID string
	pollUntil(t, 90*time.Second, "the restored voter to be a voter under a new id, its old id removed", func() bool {
		st, err := voter.status(ctx)
		if err != nil {
			return false
		}
		newID = linearMembers(st)[voter.name]
		for _, v := range st.GetLinear().GetVoters() {
			if v.GetServerId() == oldID {
				return false
			}
		}
		return newID != "" && newID != oldID
	})
	pollUntil(t, 60*time.Second, "the restored region's causal tier to serve", func() bool {
		st, err := voter.status(ctx)
		return err == nil && st.GetCausalState() == "serving"
	})
	// Just after the membership changes a loaded machine may leave the
	// restored voter without a reachable leader for a moment: a read that
	// answers unavailable is asked again, within a bound.
	var res *connect.Response[v1.LinearServiceGetResponse]
	err = retrying(ctx, 30*time.Second, func(ctx context.Context) (err error) {
		res, err = voter.lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: "restored"}))
		return err
	})
	if err != nil || string(res.Msg.GetValue()) != "after" || res.Msg.GetVersion() != version {
		t.Errorf("linearizable read on the restored voter: %v %v; want %q at version %d", res, err, "after", version)
	}
}
