package replica_test

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
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

// region is one in-process region of a test cluster.
type region struct {
	name, dir, addr string
	node            *replica.Node
	srv             *replica.Server
	served          chan error
	kv              causewayv1connect.KVServiceClient
}

// startRegion opens a node and serves it on addr ("127.0.0.1:0" for any
// port); stop undoes it, and t.Cleanup stops whatever is still running.
func startRegion(t *testing.T, name, dir, addr string, cluster uuid.UUID, peers map[string]string, mutate ...func(*replica.Config)) *region {
	t.Helper()
	cfg := replica.Config{
		Region: name, DataDir: dir, ClusterID: cluster, Peers: peers,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	node, err := replica.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	r := &region{name: name, dir: dir, addr: ln.Addr().String(), node: node, srv: replica.NewServer(node), served: make(chan error, 1)}
	go func() { r.served <- r.srv.Serve(ln) }()
	r.kv = causewayv1connect.NewKVServiceClient(http.DefaultClient, "http://"+r.addr)
	t.Cleanup(r.stop)
	return r
}

func (r *region) stop() {
	if r.node == nil {
		return
	}
	// HTTP/2 connections of peers linger up to a second after GOAWAY;
	// tests do not wait for that.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if r.srv.Shutdown(ctx) != nil {
		r.srv.Close()
	}
	<-r.served
	r.node.Close()
	r.node = nil
}

// threeRegions starts us-east, then eu-west and ap-south naming the regions
// before them as peers; the others learn of them when they connect.
func threeRegions(t *testing.T) []*region {
	cluster := uuid.New()
	a := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", cluster, nil)
	b := startRegion(t, "eu-west", t.TempDir(), "127.0.0.1:0", cluster, map[string]string{"us-east": a.addr})
	c := startRegion(t, "ap-south", t.TempDir(), "127.0.0.1:0", cluster, map[string]string{"us-east": a.addr, "eu-west": b.addr})
	return []*region{a, b, c}
}

func mustPut(t *testing.T, r *region, key, value, token, requestID string) *v1.PutResponse {
	t.Helper()
	res, err := r.kv.Put(context.Background(), connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value), CausalToken: token, RequestId: requestID}))
	if err != nil {
		t.Fatalf("put %s in %s: %v", key, r.name, err)
	}
	return res.Msg
}

func mustGet(t *testing.T, r *region, key, token string) *v1.GetResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token, Siblings: true}))
	if err != nil {
		t.Fatalf("get %s in %s: %v", key, r.name, err)
	}
	return res.Msg
}

func TestReplicationSessionMovesBetweenRegions(t *testing.T) {
	regions := threeRegions(t)
	token := ""
	for i := range 30 {
		w, r := regions[i%3], regions[(i+1)%3]
		value := "v" + string(rune('a'+i%26)) + time.Now().String()
		put := mustPut(t, w, "k", value, token, "")
		got := mustGet(t, r, "k", put.CausalToken)
		if string(got.Value) != value || got.Version.GetOriginSeq() != put.Version.GetOriginSeq() || got.Version.GetOriginRegion() != w.name {
			t.Fatalf("write %d in %s, read in %s: got %q at %v, want %q at %v", i, w.name, r.name, got.Value, got.Version, value, put.Version)
		}
		if got.HasSiblings {
			t.Fatalf("a session's own successive writes are never concurrent: %v", got.Siblings)
		}
		token = got.CausalToken
	}
}

func TestReplicationRetryInAnotherRegionAppliesOnce(t *testing.T) {
	regions := threeRegions(t)
	a, b := regions[0], regions[1]
	id := uuid.NewString()
	put := mustPut(t, a, "order-42", "paid", "", id)
	mustGet(t, b, "order-42", put.CausalToken) // b has the write
	before := b.node.Status().Vector.Get("eu-west")

	retry := mustPut(t, b, "order-42", "paid", put.CausalToken, id)
	if retry.Version.GetOriginRegion() != "us-east" || retry.Version.GetOriginSeq() != put.Version.GetOriginSeq() {
		t.Fatalf("retry in eu-west = %v, want the original %v", retry.Version, put.Version)
	}
	if after := b.node.Status().Vector.Get("eu-west"); after != before {
		t.Fatalf("retry wrote in eu-west: its sequence went %d -> %d", before, after)
	}
	_, err := b.kv.Put(context.Background(), connect.NewRequest(&v1.PutRequest{Key: "order-42", Value: []byte("refunded"), RequestId: id}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("request id reused for another value in another region: %v, want invalid_argument", err)
	}
}

func TestReplicationResumesAfterRestart(t *testing.T) {
	regions := threeRegions(t)
	a, b := regions[0], regions[1]
	mustGet(t, b, "warmup", mustPut(t, a, "warmup", "x", "", "").CausalToken)
	dir, addr := b.dir, b.addr
	b.stop()

	var token string
	for i := range 20 {
		token = mustPut(t, a, "k"+string(rune('a'+i)), "v", token, "").CausalToken
	}
	b = startRegion(t, "eu-west", dir, addr, a.node.ClusterID(), map[string]string{"us-east": a.addr})
	for i := range 20 {
		got := mustGet(t, b, "k"+string(rune('a'+i)), token)
		if string(got.Value) != "v" {
			t.Fatalf("after restart eu-west lacks k%c: %v", 'a'+i, got)
		}
	}
	if v := b.node.Status().Vector.Get("us-east"); v != 21 {
		t.Fatalf("eu-west applied %d of us-east's writes, want 21 (each exactly once)", v)
	}
}

func TestReplicationMetrics(t *testing.T) {
	regions := threeRegions(t)
	a, b := regions[0], regions[1]
	mustGet(t, b, "k", mustPut(t, a, "k", "v", "", "").CausalToken)
	eventually(t, "eu-west's status showing us-east's head and no lag", func() bool {
		for _, p := range status(t, b).Peers {
			if p.Region == "us-east" {
				return p.HeadSeq == 1 && p.AppliedSeq == 1 && p.LagWrites == 0
			}
		}
		return false
	})
	raw := metricsText(t, b.node)
	for _, want := range []string{
		`causeway_visibility_latency_seconds_count{origin="us-east",region="eu-west"} 1`,
		`causeway_replicated_writes_applied_total{region="eu-west"} 1`,
		`causeway_apply_duration_seconds_count{region="eu-west"}`,
		`causeway_dependency_wait_writes{region="eu-west"} 0`,
		`causeway_replication_lag_writes{origin="us-east",region="eu-west"}`,
		`causeway_replication_lag_seconds{origin="us-east",region="eu-west"}`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("eu-west's metrics lack %s", want)
		}
	}
}

func http0() *http.Client { return http.DefaultClient }

// eventually polls cond (a status check) until it holds or the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func status(t *testing.T, r *region) *v1.StatusResponse {
	t.Helper()
	res, err := causewayv1connect.NewAdminServiceClient(http0(), "http://"+r.addr).Status(context.Background(), connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg
}
