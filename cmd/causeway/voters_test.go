//go:build unix

package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// TestVotersOnlyAsApproved: three regions with TLS, started with
// --voters us-east,eu-west. ap-south's node has a valid node certificate
// of the cluster, yet the leader does not add it as a voter (its status
// lists it as unapproved); a node certificate cannot approve it, nor can a
// client write the tier's record of approvals; the admin approves it with
// `causeway approve-voter` sent to a region that may not lead (the CLI
// finds the leader), and it then becomes a voter.
func TestVotersOnlyAsApproved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three regions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	procs := newSecureServeRegions(t)
	client := procs.client(8, false)
	id := uuid.NewString()
	urls := map[string]string{}
	seed := ""
	for _, name := range []string{"us-east", "eu-west", "ap-south"} {
		r := procs.add(name, t.TempDir())
		args := []string{"--cluster-id", id, "--voters", "us-east,eu-west"}
		if seed != "" {
			args = append(args, "--join", seed)
		}
		seed = r.Addrs.Gossip
		urls[name] = procs.start(ctx, name, args...)
	}
	status := func(region string) *v1.StatusResponse {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := causewayv1connect.NewAdminServiceClient(client, urls[region]).Status(rctx, connect.NewRequest(&v1.StatusRequest{}))
		if err != nil {
			return nil
		}
		return res.Msg
	}
	members := func(st *v1.StatusResponse) []string {
		var out []string
		for _, v := range slices.Concat(st.GetLinear().GetVoters(), st.GetLinear().GetNonVoters()) {
			out = append(out, v.Region)
		}
		slices.Sort(out)
		return out
	}

	// The leader sees ap-south asking and refuses it.
	var leader string
	pollUntil(t, 90*time.Second, "two voters, and ap-south refused by the leader", func() bool {
		for _, name := range []string{"us-east", "eu-west"} {
			st := status(name)
			if st == nil || st.GetLinear().GetState() != "Leader" {
				continue
			}
			leader = name
			return len(st.GetLinear().GetVoters()) == 2 && slices.Contains(st.GetLinear().GetUnapproved(), "ap-south")
		}
		return false
	})
	st := status(leader)
	if got := members(st); !slices.Equal(got, []string{"eu-west", "us-east"}) {
		t.Fatalf("members of the tier: %v, want us-east and eu-west only", got)
	}
	if got := st.GetLinear().GetApprovedVoters(); !slices.Equal(got, []string{"eu-west", "us-east"}) {
		t.Errorf("approved voters in the status: %v", got)
	}

	// A node certificate does not approve; a client cannot forge the
	// tier's record.
	_, err := causewayv1connect.NewLinearServiceClient(procs.nodeClient("ap-south"), urls[leader]).
		ApproveVoter(ctx, connect.NewRequest(&v1.ApproveVoterRequest{Region: "ap-south"}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("ap-south's node approving itself: %v, want permission_denied", err)
	}
	_, err = causewayv1connect.NewLinearServiceClient(client, urls[leader]).CompareAndSet(ctx,
		connect.NewRequest(&v1.CompareAndSetRequest{Key: "causeway.voters", Value: []byte("ap-south,eu-west,us-east")}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("a client writing the approvals register: %v, want invalid_argument (reserved)", err)
	}
	if st := status(leader); slices.Contains(members(st), "ap-south") {
		t.Fatalf("ap-south joined without approval: %v", members(st))
	}

	// The admin approves it, through the region that does not lead.
	other := "us-east"
	if leader == "us-east" {
		other = "eu-west"
	}
	addr := strings.TrimPrefix(urls[other], "https://")
	r := runCLI("", append([]string{"approve-voter", "ap-south", "--addr", addr}, procs.cliCredentials()...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "ap-south approved") {
		t.Fatalf("causeway approve-voter ap-south via %s:\n%v", other, r)
	}
	if r := runCLI("", append([]string{"approve-voter", "Not A Region", "--addr", addr}, procs.cliCredentials()...)...); r.code == exitOK {
		t.Errorf("approving a malformed region name succeeded:\n%v", r)
	}
	pollUntil(t, 90*time.Second, "ap-south to become the third voter", func() bool {
		st := status("ap-south")
		return st != nil && len(st.GetLinear().GetVoters()) == 3 && st.GetLinear().GetAvailable()
	})
	if got := status(leader).GetLinear().GetApprovedVoters(); !slices.Equal(got, []string{"ap-south", "eu-west", "us-east"}) {
		t.Errorf("approved voters after the approval: %v", got)
	}
}
