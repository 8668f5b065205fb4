package process_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/linear"
	"github.com/causewaydb/causeway/replica"
)

// TestProcessWiresGossipAndLinearTier: one process with gossip and a lone
// voter serves the linearizable tier, reports itself as a gossip member
// with its Raft address known to the tier, shows every component's
// figures on one /metrics, and shuts down cleanly.
func TestProcessWiresGossipAndLinearTier(t *testing.T) {
	p, err := process.Open(process.Config{
		Node:   replica.Config{Region: "us-east", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)},
		Gossip: &process.GossipConfig{BindAddr: "127.0.0.1:0", MaxRoundTrip: 50 * time.Millisecond},
		Linear: &process.LinearConfig{Role: linear.RoleVoter, BindAddr: "127.0.0.1:0", Bootstrap: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	ctx := context.Background()

	lin := causewayv1connect.NewLinearServiceClient(http.DefaultClient, url)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: "users", Name: "alice", Owner: "user/1"}))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the linearizable tier never served a claim: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	st, err := causewayv1connect.NewAdminServiceClient(http.DefaultClient, url).Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Msg.Members) != 1 || st.Msg.Members[0].Region != "us-east" || st.Msg.Members[0].ApiAddress != ln.Addr().String() {
		t.Fatalf("members = %v, want this node, advertising its API address", st.Msg.Members)
	}
	if !st.Msg.Linear.GetVoter() {
		t.Fatalf("linear status = %v, want a voter", st.Msg.Linear)
	}

	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`causeway_linear_leader{region="us-east"} 1`,
		`causeway_gossip_dropped_packets_total{region="us-east"} 0`,
		`causeway_local_writes_durable{region="us-east"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
