package process_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/replica"
)

// region is one process serving a region on 127.0.0.1, with gossip.
type region struct {
	name, addr string
	p          *process.Process
	served     chan error
	kv         causewayv1connect.KVServiceClient
}

// startRegion starts a region with gossip, joining through join (none for
// the first); stop undoes it, and t.Cleanup stops whatever still runs.
func startRegion(t *testing.T, name string, cluster uuid.UUID, join ...string) *region {
	t.Helper()
	p, err := process.Open(process.Config{
		Node: replica.Config{
			Region: name, DataDir: t.TempDir(), ClusterID: cluster, FaultInjection: true,
			Logger: slog.New(slog.DiscardHandler),
		},
		Gossip: &process.GossipConfig{BindAddr: "127.0.0.1:0", Join: join, MaxRoundTrip: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	r := &region{name: name, addr: ln.Addr().String(), p: p, served: make(chan error, 1)}
	go func() { r.served <- p.Serve(ln) }()
	r.kv = causewayv1connect.NewKVServiceClient(http.DefaultClient, "http://"+r.addr)
	t.Cleanup(r.stop)
	return r
}

func (r *region) stop() {
	if r.p == nil {
		return
	}
	// HTTP/2 connections of peers linger up to a second after GOAWAY;
	// tests do not wait for that.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if r.p.Shutdown(ctx) != nil {
		r.p.Close()
	}
	<-r.served
	r.p = nil
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

func http0() *http.Client { return http.DefaultClient }

func status(t *testing.T, r *region) *v1.StatusResponse {
	t.Helper()
	res, err := causewayv1connect.NewAdminServiceClient(http0(), "http://"+r.addr).Status(context.Background(), connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg
}

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

func memberState(st *v1.StatusResponse, region string) string {
	for _, m := range st.Members {
		if m.Region == region {
			return m.State
		}
	}
	return ""
}

// TestGossipDrivesReplicationAndSeesPartitions: regions that only know one
// gossip address find each other and replicate; a cut link shows the other
// side suspect, then dead; after the heal they are alive and converge.
func TestGossipDrivesReplicationAndSeesPartitions(t *testing.T) {
	cluster := uuid.New()
	a := startRegion(t, "us-east", cluster)
	seed := ""
	for _, m := range status(t, a).Members {
		seed = m.GossipAddress
	}
	b := startRegion(t, "eu-west", cluster, seed)
	c := startRegion(t, "ap-south", cluster, seed)

	// A region stamps writes once it has measured its clock against its
	// peers' (causal_state clock-fenced until then).
	eventually(t, "every region serving", func() bool {
		for _, r := range []*region{a, b, c} {
			if status(t, r).GetCausalState() != "serving" {
				return false
			}
		}
		return true
	})
	// No --peers anywhere: replication follows gossip.
	put := mustPut(t, b, "k", "from eu-west", "", "")
	if got := mustGet(t, c, "k", put.CausalToken); string(got.Value) != "from eu-west" {
		t.Fatalf("ap-south read %q", got.Value)
	}
	mustGet(t, a, "k", put.CausalToken)
	eventually(t, "every region alive everywhere", func() bool {
		for _, r := range []*region{a, b, c} {
			st := status(t, r)
			for _, other := range []string{"us-east", "eu-west", "ap-south"} {
				if memberState(st, other) != "alive" {
					return false
				}
			}
		}
		return true
	})
	// A loaded machine can make a member suspect for a moment: the gauge
	// is polled, and each scrape must account for every member once.
	eventually(t, "eu-west's causeway_gossip_members showing 3 alive", func() bool {
		return memberCounts(t, b)["alive"] == 3
	})

	admin := causewayv1connect.NewAdminServiceClient(http0(), "http://"+a.addr)
	for _, r := range []string{"eu-west", "ap-south"} {
		if _, err := admin.SetLink(context.Background(), connect.NewRequest(&v1.SetLinkRequest{Region: r, Cut: v1.LinkCut_LINK_CUT_BOTH})); err != nil {
			t.Fatal(err)
		}
	}
	sawSuspect := false
	eventually(t, "us-east seen dead from eu-west", func() bool {
		s := memberState(status(t, b), "us-east")
		sawSuspect = sawSuspect || s == "suspect"
		return s == "dead"
	})
	if !sawSuspect {
		t.Error("us-east went dead on eu-west without being seen suspect first")
	}
	eventually(t, "eu-west's causeway_gossip_members showing us-east dead", func() bool {
		return memberCounts(t, b)["dead"] >= 1
	})
	eventually(t, "eu-west seen dead from us-east", func() bool { return memberState(status(t, a), "eu-west") == "dead" })
	// Both sides keep serving writes during the partition.
	pa := mustPut(t, a, "during", "us-east", "", "")
	pb := mustPut(t, b, "during-b", "eu-west", "", "")
	// The stable vector does not move past what the cut-off region has.
	if sv := status(t, b).StableVector; sv["us-east"] >= pa.Version.GetOriginSeq() {
		t.Fatalf("stable vector %v covers us-east's write %d that eu-west cannot have", sv, pa.Version.GetOriginSeq())
	}

	for _, r := range []string{"eu-west", "ap-south"} {
		if _, err := admin.SetLink(context.Background(), connect.NewRequest(&v1.SetLinkRequest{Region: r})); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "us-east alive again on eu-west", func() bool { return memberState(status(t, b), "us-east") == "alive" })
	mustGet(t, b, "during", pa.CausalToken)
	mustGet(t, a, "during-b", pb.CausalToken)

	// An operator removes ap-south: it stops holding back the others. While
	// gossip sees it alive the removal needs force (us-east, which had its
	// link to ap-south cut, must first see it alive again).
	eventually(t, "ap-south alive again on us-east", func() bool { return memberState(status(t, a), "ap-south") == "alive" })
	if _, err := admin.RemoveRegion(context.Background(), connect.NewRequest(&v1.RemoveRegionRequest{Region: "ap-south"})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("removing a live region without force: %v, want failed_precondition", err)
	}
	c.stop()
	if _, err := admin.RemoveRegion(context.Background(), connect.NewRequest(&v1.RemoveRegionRequest{Region: "ap-south", Force: true})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removal reaching eu-west", func() bool {
		for _, m := range status(t, b).Members {
			if m.Region == "ap-south" {
				return m.Removed
			}
		}
		return false
	})
	if _, err := admin.RemoveRegion(context.Background(), connect.NewRequest(&v1.RemoveRegionRequest{Region: "mars-north"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("removing an unknown region: %v, want invalid_argument", err)
	}
}

// TestStableTombstonesAreCollected: once every region has a deletion (the
// stable vector covers it), each region drops the tombstone.
func TestStableTombstonesAreCollected(t *testing.T) {
	cluster := uuid.New()
	a := startRegion(t, "us-east", cluster)
	b := startRegion(t, "eu-west", cluster, status(t, a).Members[0].GossipAddress)
	eventually(t, "both regions serving", func() bool {
		return status(t, a).GetCausalState() == "serving" && status(t, b).GetCausalState() == "serving"
	})
	put := mustPut(t, a, "doomed", "v", "", "")
	del, err := a.kv.Delete(context.Background(), connect.NewRequest(&v1.DeleteRequest{Key: "doomed", CausalToken: put.CausalToken}))
	if err != nil {
		t.Fatal(err)
	}
	// Garbage sent to a gossip port is dropped and counted, and changes nothing.
	gossipAddr := status(t, b).Members[0].GossipAddress
	for _, m := range status(t, b).Members {
		if m.Region == "eu-west" {
			gossipAddr = m.GossipAddress
		}
	}
	if conn, err := net.Dial("udp", gossipAddr); err == nil {
		conn.Write([]byte("\x01this is not a gossip message"))
		conn.Close()
	}
	eventually(t, "eu-west counting the garbage packet", func() bool {
		return metricValue(t, b, "causeway_gossip_dropped_packets_total") >= 1
	})
	if got := mustGet(t, b, "doomed", del.Msg.CausalToken); got.Found || got.Version == nil {
		t.Fatalf("eu-west before collection: %v, want the tombstone", got)
	}
	for _, r := range []*region{a, b} {
		eventually(t, r.name+" collecting the tombstone", func() bool {
			got := mustGet(t, r, "doomed", "")
			return !got.Found && got.Version == nil
		})
	}
}

// memberCounts reads a region's causeway_gossip_members by state from one
// scrape, and fails unless every state is there and they add up to the
// three members of the test's cluster (each counted once).
func memberCounts(t *testing.T, r *region) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	counts := map[string]float64{}
	total := 0.0
	prefix := `causeway_gossip_members{region="` + r.name + `",state="`
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			state, value, _ := strings.Cut(rest, `"} `)
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			counts[state] = v
			total += v
		}
	}
	if len(counts) != 5 || total != 3 {
		t.Fatalf("%s's causeway_gossip_members = %v: want the five states, adding up to its 3 members", r.name, counts)
	}
	return counts
}

// metricValue reads one unlabelled-by-procedure metric of a region.
func metricValue(t *testing.T, r *region, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v
		}
	}
	return -1
}
