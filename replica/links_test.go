package replica_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

func withFaults(c *replica.Config) { c.FaultInjection = true }

func TestSetLinkNeedsFaultInjection(t *testing.T) {
	cluster := uuid.New()
	a := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", cluster, nil)
	startRegion(t, "eu-west", t.TempDir(), "127.0.0.1:0", cluster, map[string]string{"us-east": a.addr})
	admin := causewayv1connect.NewAdminServiceClient(http0(), "http://"+a.addr)
	_, err := admin.SetLink(context.Background(), connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west", Cut: v1.LinkCut_LINK_CUT_BOTH}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("SetLink without --fault-injection: %v, want permission_denied", err)
	}
}

func TestSetLinkRejectsBadInput(t *testing.T) {
	a := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", uuid.New(), map[string]string{"eu-west": "127.0.0.1:1"}, withFaults)
	admin := causewayv1connect.NewAdminServiceClient(http0(), "http://"+a.addr)
	for name, req := range map[string]*v1.SetLinkRequest{
		"unknown region":  {Region: "mars-north"},
		"own region":      {Region: "us-east"},
		"negative delay":  {Region: "eu-west", Delay: durationpb.New(-time.Second)},
		"absurd delay":    {Region: "eu-west", Delay: durationpb.New(24 * time.Hour)},
		"negative jitter": {Region: "eu-west", Jitter: durationpb.New(-time.Millisecond)},
		"unknown cut":     {Region: "eu-west", Cut: v1.LinkCut(42)},
		"jitter over delay": {Region: "eu-west", Delay: durationpb.New(10 * time.Millisecond),
			Jitter: durationpb.New(20 * time.Millisecond)},
		"jitter alone":   {Region: "eu-west", Jitter: durationpb.New(time.Millisecond)}, // the delay is 0
		"invalid jitter": {Region: "eu-west", Jitter: &durationpb.Duration{Seconds: 1, Nanos: -1}},
	} {
		if _, err := admin.SetLink(context.Background(), connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", name, err)
		}
	}
}

// TestPartitionAndHeal cuts the link between two regions at one of them:
// both keep serving, nothing crosses, and after the heal they converge.
func TestPartitionAndHeal(t *testing.T) {
	cluster := uuid.New()
	a := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", cluster, nil, withFaults)
	b := startRegion(t, "eu-west", t.TempDir(), "127.0.0.1:0", cluster, map[string]string{"us-east": a.addr}, withFaults)
	mustGet(t, b, "warm", mustPut(t, a, "warm", "up", "", "").CausalToken)
	mustGet(t, a, "warm2", mustPut(t, b, "warm2", "up", "", "").CausalToken)

	admin := causewayv1connect.NewAdminServiceClient(http0(), "http://"+a.addr)
	if _, err := admin.SetLink(context.Background(), connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west", Cut: v1.LinkCut_LINK_CUT_BOTH})); err != nil {
		t.Fatal(err)
	}
	// Both sides keep accepting writes and reading their own.
	pa := mustPut(t, a, "during-a", "1", "", "")
	pb := mustPut(t, b, "during-b", "2", "", "")
	mustGet(t, a, "during-a", pa.CausalToken)
	mustGet(t, b, "during-b", pb.CausalToken)
	// eu-west cannot serve a session that saw us-east's new write: it
	// says so instead of answering stale.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // the server answers 250ms before it
	defer cancel()
	_, err := b.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "during-a", CausalToken: pa.CausalToken}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("read across the cut: %v, want unavailable", err)
	}
	st, err := admin.Status(context.Background(), connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var linkSt *v1.LinkStatus
	for _, l := range st.Msg.Links {
		if l.Region == "eu-west" {
			linkSt = l
		}
	}
	if linkSt == nil || !linkSt.CutOutgoing || !linkSt.CutIncoming {
		t.Fatalf("status does not show the cut: %v", st.Msg.Links)
	}

	if _, err := admin.SetLink(context.Background(), connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west"})); err != nil {
		t.Fatal(err)
	}
	// After the heal both directions catch up (each read waits for its
	// token's past, bounded by mustGet's deadline).
	if got := mustGet(t, b, "during-a", pa.CausalToken); string(got.Value) != "1" {
		t.Fatalf("eu-west after heal: %v", got)
	}
	if got := mustGet(t, a, "during-b", pb.CausalToken); string(got.Value) != "2" {
		t.Fatalf("us-east after heal: %v", got)
	}
}

func TestSetLinkKeepsWhatItIsNotTold(t *testing.T) {
	a := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", uuid.New(), map[string]string{"eu-west": "127.0.0.1:1"}, withFaults)
	admin := causewayv1connect.NewAdminServiceClient(http0(), "http://"+a.addr)
	ctx := context.Background()
	if _, err := admin.SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west", Delay: durationpb.New(30 * time.Millisecond)})); err != nil {
		t.Fatal(err)
	}
	res, err := admin.SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west", Cut: v1.LinkCut_LINK_CUT_OUTGOING}))
	if err != nil {
		t.Fatal(err)
	}
	if l := res.Msg.Link; l.GetDelay().AsDuration() != 30*time.Millisecond || !l.CutOutgoing || l.CutIncoming {
		t.Fatalf("after cutting: %v, want the 30ms delay kept and only outgoing cut", l)
	}
	res, err = admin.SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west"}))
	if err != nil {
		t.Fatal(err)
	}
	if l := res.Msg.Link; l.CutOutgoing || l.GetDelay().AsDuration() != 30*time.Millisecond {
		t.Fatalf("after healing: %v, want no cut and the delay kept", l)
	}
}
