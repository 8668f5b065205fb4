//go:build unix

package main

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

type gossipRegion struct {
	name  string
	url   string
	kv    causewayv1connect.KVServiceClient
	admin causewayv1connect.AdminServiceClient
}

func (r *gossipRegion) status(t *testing.T) *v1.StatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := r.admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatalf("status of %s: %v", r.name, err)
	}
	return res.Msg
}

func (r *gossipRegion) stateOf(t *testing.T, region string) string {
	for _, m := range r.status(t).Members {
		if m.Region == region {
			return m.State
		}
	}
	return ""
}

// pollUntil checks cond every 50ms until it holds, or fails after limit.
func pollUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", limit, what)
		}
		<-tick.C
	}
}

// TestPartitionEndToEnd isolates one region of three real processes, joined
// only by gossip, with the link layer: both sides keep serving causal reads
// and writes, each side sees the other suspect and then dead, and after the
// heal membership recovers and all regions converge to identical state.
func TestPartitionEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := uuid.NewString()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	procs := newServeRegions(t)
	start := func(name string, join string) *gossipRegion {
		procs.add(name, t.TempDir())
		args := []string{"--cluster-id", cluster, "--fault-injection"}
		if join != "" {
			args = append(args, "--join", join)
		}
		url := procs.start(ctx, name, args...)
		return &gossipRegion{name: name, url: url,
			kv:    causewayv1connect.NewKVServiceClient(client, url),
			admin: causewayv1connect.NewAdminServiceClient(client, url)}
	}
	a := start("us-east", "")
	seed := a.status(t).Members[0].GossipAddress
	b, c := start("eu-west", seed), start("ap-south", seed)
	regions := []*gossipRegion{a, b, c}
	pollUntil(t, 30*time.Second, "every region alive everywhere and serving", func() bool {
		for _, r := range regions {
			if r.status(t).GetCausalState() != "serving" {
				return false
			}
			for _, other := range regions {
				if r.stateOf(t, other.name) != "alive" {
					return false
				}
			}
		}
		return true
	})

	setCut := func(cut v1.LinkCut) {
		for _, other := range []string{"eu-west", "ap-south"} {
			if _, err := a.admin.SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: other, Cut: cut})); err != nil {
				t.Fatal(err)
			}
		}
	}
	setCut(v1.LinkCut_LINK_CUT_BOTH)
	var suspectOnB, suspectOnA bool
	pollUntil(t, 60*time.Second, "us-east dead on eu-west and eu-west dead on us-east", func() bool {
		sb, sa := b.stateOf(t, "us-east"), a.stateOf(t, "eu-west")
		suspectOnB = suspectOnB || sb == "suspect"
		suspectOnA = suspectOnA || sa == "suspect"
		return sb == "dead" && sa == "dead"
	})
	if !suspectOnB || !suspectOnA {
		t.Errorf("a side went dead without being seen suspect first (eu-west saw suspect: %v, us-east: %v)", suspectOnB, suspectOnA)
	}

	// Both sides keep serving causal reads and writes.
	written := map[string]string{}
	for _, r := range regions {
		token := ""
		for j := range 5 {
			key := r.name + "-during-" + string(rune('a'+j))
			res, err := r.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(key), CausalToken: token}))
			if err != nil {
				t.Fatalf("write in %s during the partition: %v", r.name, err)
			}
			token = res.Msg.CausalToken
			got, err := r.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token}))
			if err != nil || string(got.Msg.Value) != key {
				t.Fatalf("read-your-write in %s during the partition: %v, %v", r.name, got, err)
			}
			written[key] = key
		}
	}
	// A causal read across the partition is refused, not stale.
	res, err := a.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "x", Value: []byte("x")}))
	if err != nil {
		t.Fatal(err)
	}
	shortCtx, cancelShort := context.WithTimeout(ctx, time.Second) // the server answers 250ms before it
	_, err = b.kv.Get(shortCtx, connect.NewRequest(&v1.GetRequest{Key: "x", CausalToken: res.Msg.CausalToken}))
	cancelShort()
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("eu-west answering for a token that needs us-east's write across the partition: %v, want unavailable", err)
	}
	written["x"] = "x"

	setCut(v1.LinkCut_LINK_CUT_UNSPECIFIED)
	pollUntil(t, 60*time.Second, "every region alive again everywhere", func() bool {
		for _, r := range regions {
			for _, other := range regions {
				if r.stateOf(t, other.name) != "alive" {
					return false
				}
			}
		}
		return true
	})
	pollUntil(t, 60*time.Second, "identical vectors in every region", func() bool {
		v := a.status(t).Vector
		return maps.Equal(v, b.status(t).Vector) && maps.Equal(v, c.status(t).Vector) && len(v) == 3
	})
	for key, want := range written {
		for _, r := range regions {
			got, err := r.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key}))
			if err != nil || string(got.Msg.Value) != want {
				t.Fatalf("%s after the heal: %s = %q, %v; want %q", r.name, key, got.Msg.GetValue(), err, want)
			}
		}
	}
}
