package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/linear"
	"github.com/causewaydb/causeway/replica"
)

// The linearizable tier's benchmarks.
//
//	BenchmarkLinear/wan/leader=R/op=claim       one client in the leader's region R
//	BenchmarkLinear/wan/leader=R/op=cas
//	BenchmarkLinear/wan/follower=R/op=claim     one client in follower region R (forwarded)
//	BenchmarkLinear/wan/follower=R/op=cas
//	BenchmarkLinear/throughput/system=causeway/codec=proto/clients=64   Connect, binary protobuf, HTTP/1.1
//	BenchmarkLinear/throughput/system=causeway/codec=json/clients=64    Connect, JSON, HTTP/1.1
//	BenchmarkLinear/throughput/system=causeway/codec=grpc/clients=64    gRPC, cleartext HTTP/2
//	BenchmarkLinear/throughput/system=etcd/codec=json/clients=64        etcd's JSON gateway, HTTP/1.1
//	BenchmarkLinear/throughput/system=etcd/codec=grpc/clients=64        etcd's gRPC API, cleartext HTTP/2
//
// The wan rows run three voters (us-east, eu-west, ap-southeast) in this
// process, each with its own link emulator set to wanOneWay, and measure
// one client's sequential claims and compare-and-sets from every region.
// Besides ops/s, p50-us and p99-us they report the operation's physical
// floor (floor-ms, see latencyFloor) and ratio = p50 / floor. The target is
// ratio <= 1.2.
//
// The throughput rows run the same three voters with no emulated delay and
// 64 clients doing put-if-absent against the leader's region: a Claim of a
// fresh name in Causeway, a transaction "put k if k's create revision is 0"
// in a 3-member etcd cluster on the same machine (Debian's etcd-server; the
// rows skip when etcd is not installed). The target is Causeway's ops/s at
// least etcd's. Each system is measured through the JSON interface both
// offer over HTTP/1.1 (etcd's gateway, Causeway's Connect JSON), which is
// the like-for-like pair, and through its fastest binary interface.
//
// The three Causeway nodes run inside the benchmark process, beside its
// clients; the etcd members are three processes of their own. Both share
// the machine's cores with the clients, so the rows compare the two
// systems on the same hardware, and an otherwise busy machine skews them:
// compare rows of one run on an idle machine.
//
// Run all rows with `make bench-linear` (-benchtime=10s: 35 to 140
// operations per latency row, tens of thousands per throughput row), or
// the latency rows alone with a fixed count:
//
//	go test -run='^$' -bench='BenchmarkLinear/wan' -benchtime=30x ./bench/
//
// With -benchtime=10s each throughput row's Causeway cluster lives about
// 15 seconds. With -benchtime=2m or more it outlives Raft's snapshot
// interval (two to four minutes), so the row also measures the tier
// taking a snapshot of some hundred thousand claims.

// wanRegions are the regions of the wan rows, in start order: the first
// bootstraps the tier, so it normally leads.
var wanRegions = []string{"us-east", "eu-west", "ap-southeast"}

// wanOneWay is the default one-way delay matrix of `causeway cluster`.
var wanOneWay = map[[2]string]time.Duration{
	{"us-east", "eu-west"}:      40 * time.Millisecond,
	{"us-east", "ap-southeast"}: 108 * time.Millisecond,
	{"eu-west", "ap-southeast"}: 119 * time.Millisecond,
}

// oneWay is the delay between regions a and b in matrix, either way round.
func oneWay(matrix map[[2]string]time.Duration, a, b string) time.Duration {
	if d, ok := matrix[[2]string{a, b}]; ok {
		return d
	}
	return matrix[[2]string{b, a}]
}

// latencyFloor is the least time a linearizable write can take when sent
// from region from, with the tier led from region leader, given the one-way
// delays between voters:
//
//   - from the leader: one round trip to the nearest other voter, since a
//     quorum of three voters is the leader plus one follower;
//   - from a follower: the round trip that forwards the request to the
//     leader and carries the answer back, plus the leader's floor.
//
// It ignores fsyncs and CPU time, which is what ratio = p50 / floor
// measures the cost of.
func latencyFloor(matrix map[[2]string]time.Duration, voters []string, leader, from string) time.Duration {
	nearest := time.Duration(-1)
	for _, v := range voters {
		if v == leader {
			continue
		}
		if d := oneWay(matrix, leader, v); nearest < 0 || d < nearest {
			nearest = d
		}
	}
	floor := 2 * max(nearest, 0)
	if from != leader {
		floor += 2 * oneWay(matrix, from, leader)
	}
	return floor
}

// throughputClients is the concurrency of the throughput rows.
const throughputClients = 64

// BenchmarkLinear runs the linearizable tier's latency rows under an
// emulated WAN and its throughput rows beside etcd's; see the comment at
// the top of this file. The wan rows share one cluster; each throughput
// row starts its own. Every cluster stops before the next one starts, so
// that no cluster's background work runs during another's measurement.
func BenchmarkLinear(b *testing.B) {
	httpClient := newHTTPClient(b, throughputClients)
	h2cClient := newH2CClient(b)
	var seq atomic.Uint64 // makes every claimed name and etcd key fresh

	b.Run("wan", func(b *testing.B) {
		cl, err := startLinearCluster(b, wanRegions, wanOneWay, httpClient)
		if err != nil {
			b.Fatal(err)
		}
		leader := cl.leader
		// The leader's rows first, then the followers' in region order.
		order := append([]string{leader}, slices.DeleteFunc(slices.Clone(wanRegions), func(r string) bool { return r == leader })...)
		for _, from := range order {
			role := "follower"
			if from == leader {
				role = "leader"
			}
			floor := latencyFloor(wanOneWay, wanRegions, leader, from)
			client := cl.regions[from].linear
			b.Run(fmt.Sprintf("%s=%s/op=claim", role, from), func(b *testing.B) {
				cl.requireLeader(b, leader)
				measureAgainstFloor(b, floor, claimOp(client, &seq))
			})
			// One register per region, written with the version the previous
			// write returned, so every write succeeds and none contends; the
			// version survives the testing package's rounds.
			key := "bench/cas/" + from
			var version uint64
			b.Run(fmt.Sprintf("%s=%s/op=cas", role, from), func(b *testing.B) {
				cl.requireLeader(b, leader)
				measureAgainstFloor(b, floor, func(ctx context.Context, _, _ int) error {
					res, err := client.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{
						Key:    key,
						Value:  value,
						Expect: &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: version},
					}))
					if err != nil {
						return err
					}
					version = res.Msg.GetVersion()
					return nil
				})
			})
		}
	})

	// Every throughput row gets a fresh cluster, stopped before the next
	// row starts: a row run on a cluster that earlier rows filled would
	// pay for their state (a bigger state machine, Raft snapshots, Pebble
	// compactions), and the rows could not be compared with one another.
	b.Run("throughput", func(b *testing.B) {
		causewayClient := func(codec string, clientFor func(url string) causewayv1connect.LinearServiceClient) {
			b.Run("system=causeway/codec="+codec, func(b *testing.B) {
				cl, err := startLinearCluster(b, wanRegions, nil, httpClient)
				if err != nil {
					b.Fatal(err)
				}
				client := clientFor(cl.regions[cl.leader].url)
				b.Run(fmt.Sprintf("clients=%d", throughputClients), func(b *testing.B) {
					measure(b, throughputClients, claimOp(client, &seq))
				})
			})
		}
		causewayClient("proto", func(url string) causewayv1connect.LinearServiceClient {
			return causewayv1connect.NewLinearServiceClient(httpClient, url)
		})
		// etcd's gateway speaks JSON: this is the row to hold against
		// etcd's codec=json.
		causewayClient("json", func(url string) causewayv1connect.LinearServiceClient {
			return causewayv1connect.NewLinearServiceClient(httpClient, url, connect.WithProtoJSON())
		})
		causewayClient("grpc", func(url string) causewayv1connect.LinearServiceClient {
			return causewayv1connect.NewLinearServiceClient(h2cClient, url, connect.WithGRPC())
		})

		etcdClient := func(codec string, opFor func(*etcdCluster) op) {
			b.Run("system=etcd/codec="+codec, func(b *testing.B) {
				etcd, err := startEtcd(b, 3)
				if err != nil {
					b.Fatal(err)
				}
				do := opFor(etcd)
				b.Run(fmt.Sprintf("clients=%d", throughputClients), func(b *testing.B) {
					measure(b, throughputClients, do)
				})
			})
		}
		etcdClient("json", func(e *etcdCluster) op { return e.putIfAbsentJSON(httpClient, &seq) })
		etcdClient("grpc", func(e *etcdCluster) op { return e.putIfAbsentGRPC(h2cClient, &seq) })
	})
}

// claimOp claims a name never claimed before for owner "bench" and checks
// that the tier granted it.
func claimOp(client causewayv1connect.LinearServiceClient, seq *atomic.Uint64) op {
	return func(ctx context.Context, _, _ int) error {
		name := "n" + strconv.FormatUint(seq.Add(1), 10)
		res, err := client.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{
			Namespace: "bench", Name: name, Owner: "bench",
		}))
		if err != nil {
			return err
		}
		if res.Msg.GetOwner() != "bench" || res.Msg.GetDuplicate() {
			return fmt.Errorf("claim %s: owner %q, duplicate %v; want a new claim for bench", name, res.Msg.GetOwner(), res.Msg.GetDuplicate())
		}
		return nil
	}
}

// measureAgainstFloor runs b.N operations from one client, one after
// another, and reports what measure does plus floor-ms and ratio = p50 /
// floor.
//
// The ratio uses the median on purpose: it is the latency a user of the
// region typically sees, and it is stable with a few dozen samples. The
// 99th percentile of a few dozen samples is one or two operations, and on a
// shared two-core machine those are the ones that met a Go GC pause, a
// Pebble flush or another process; it is reported, but it measures the
// machine more than the protocol.
func measureAgainstFloor(b *testing.B, floor time.Duration, do op) {
	b.Helper()
	b.ResetTimer()
	l, err := drive(context.Background(), b.N, 1, do)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if l.elapsed > 0 {
		b.ReportMetric(float64(l.ops)/l.elapsed.Seconds(), "ops/s")
	}
	p50 := percentile(l.latencies, 50)
	b.ReportMetric(micros(p50), "p50-us")
	b.ReportMetric(micros(percentile(l.latencies, 99)), "p99-us")
	b.ReportMetric(float64(floor)/float64(time.Millisecond), "floor-ms")
	if floor > 0 {
		b.ReportMetric(float64(p50)/float64(floor), "ratio")
	}
}

// linearRegion is one node of a benchmark cluster with the tier on.
type linearRegion struct {
	url    string
	linear causewayv1connect.LinearServiceClient
	admin  causewayv1connect.AdminServiceClient
}

// linearCluster is a set of nodes, one per region, each a voter.
type linearCluster struct {
	regions map[string]*linearRegion
	leader  string // the region that led when the cluster was ready
}

// clusterReadyTimeout bounds the wait for gossip to find every node, the
// leader to add them as voters and every node to agree on the leader. Under
// the WAN matrix that takes a few election timeouts (about 1.5s each).
const clusterReadyTimeout = 90 * time.Second

// startLinearCluster starts one node per region in this process, every
// one a voter of the linearizable tier, with the one-way delays of matrix
// (nil: none) on its links, and waits until every node follows one leader
// with all of them as voters. The nodes stop in b's cleanup.
func startLinearCluster(b *testing.B, regions []string, matrix map[[2]string]time.Duration, httpClient *http.Client) (*linearCluster, error) {
	cl := &linearCluster{regions: map[string]*linearRegion{}}
	cluster := uuid.New()
	var join []string
	for i, name := range regions {
		// Delays are set before Open: the tier derives its Raft timeouts
		// from the largest delay on the node's links when it starts.
		links := link.New(name)
		for _, peer := range regions {
			if peer != name {
				if err := links.Set(peer, link.Link{Delay: oneWay(matrix, name, peer)}); err != nil {
					return nil, err
				}
			}
		}
		cfg := replica.Config{
			Region:    name,
			DataDir:   b.TempDir(),
			ClusterID: cluster,
			Logger:    slog.New(slog.DiscardHandler),
			Links:     links,
		}
		w := process.Wire(&cfg,
			&process.GossipConfig{BindAddr: "127.0.0.1:0", Join: join},
			&process.LinearConfig{Role: linear.RoleVoter, BindAddr: "127.0.0.1:0", Bootstrap: i == 0})
		node, err := replica.Open(cfg)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		// Cleanups run last-registered first: registering the node's Close
		// before serve registers the server's shutdown makes the server
		// stop before the node closes under it.
		b.Cleanup(func() {
			if err := node.Close(); err != nil {
				b.Errorf("close %s: %v", name, err)
			}
		})
		srv := process.NewServer(node, w.Services()...)
		url, err := serve(b, srv.Serve, srv.Shutdown)
		if err != nil {
			return nil, err
		}
		r := &linearRegion{
			url:    url,
			linear: causewayv1connect.NewLinearServiceClient(httpClient, url),
			admin:  causewayv1connect.NewAdminServiceClient(httpClient, url),
		}
		cl.regions[name] = r
		if i == 0 {
			addr, err := r.gossipAddr()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			join = []string{addr}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	leader, err := cl.awaitLeader(ctx)
	if err != nil {
		return nil, err
	}
	cl.leader = leader
	// One claim through every region before any measurement, so that the
	// followers' forwarding connections to the leader exist and no timed
	// operation pays for a connection set up over the emulated WAN.
	var seq atomic.Uint64
	seq.Store(1 << 62)
	for _, name := range slices.Sorted(maps.Keys(cl.regions)) {
		if err := claimOp(cl.regions[name].linear, &seq)(ctx, 0, 0); err != nil {
			return nil, fmt.Errorf("first claim through %s: %w", name, err)
		}
	}
	return cl, nil
}

// gossipAddr is the gossip address the node announces for itself.
func (r *linearRegion) gossipAddr() (string, error) {
	res, err := r.admin.Status(context.Background(), connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		return "", err
	}
	for _, m := range res.Msg.GetMembers() {
		if m.GetRegion() == res.Msg.GetRegion() && m.GetGossipAddress() != "" {
			return m.GetGossipAddress(), nil
		}
	}
	return "", errors.New("gossip has not announced this node's own address")
}

// leaderPoll is how often awaitLeader asks every node for its status.
const leaderPoll = 50 * time.Millisecond

// awaitLeader waits until every node reports the tier available under one
// leader with every region a voter, and returns the leader's region.
func (cl *linearCluster) awaitLeader(ctx context.Context) (string, error) {
	last := "no status yet"
	for {
		leader, why := cl.commonLeader(ctx)
		if why == "" {
			return leader, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the linearizable tier did not become ready: %s", last)
		case <-time.After(leaderPoll):
		}
	}
}

// commonLeader returns the leader every node agrees on, or why there is
// none yet.
func (cl *linearCluster) commonLeader(ctx context.Context) (leader, why string) {
	for _, name := range slices.Sorted(maps.Keys(cl.regions)) {
		res, err := cl.regions[name].admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
		if err != nil {
			return "", fmt.Sprintf("%s: status: %v", name, err)
		}
		st := res.Msg.GetLinear()
		switch {
		case !st.GetAvailable():
			return "", fmt.Sprintf("%s: tier unavailable: %s", name, st.GetReason())
		case len(st.GetVoters()) != len(cl.regions):
			return "", fmt.Sprintf("%s: %d voters of %d", name, len(st.GetVoters()), len(cl.regions))
		case leader != "" && st.GetLeaderRegion() != leader:
			return "", fmt.Sprintf("%s follows %s, another region follows %s", name, st.GetLeaderRegion(), leader)
		}
		leader = st.GetLeaderRegion()
	}
	return leader, ""
}

// requireLeader stops the benchmark if the tier is no longer led from
// leader: the floors were computed for that leader, so figures measured
// under another would be compared with the wrong floor.
func (cl *linearCluster) requireLeader(b *testing.B, leader string) {
	b.Helper()
	got, why := cl.commonLeader(context.Background())
	if why != "" {
		b.Fatalf("linearizable tier not ready: %s", why)
	}
	if got != leader {
		b.Fatalf("leadership moved from %s to %s during the run; the floors assume %s leads", leader, got, leader)
	}
}

// newH2CClient returns a client speaking cleartext HTTP/2 with prior
// knowledge, as gRPC clients do: all callers share one connection per
// server, multiplexing their requests on it.
func newH2CClient(b *testing.B) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	transport := &http.Transport{
		Protocols:   protocols,
		DialContext: (&net.Dialer{}).DialContext,
	}
	b.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

func TestLatencyFloor(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tt := range []struct {
		leader, from string
		want         time.Duration
	}{
		// us-east's nearest voter is eu-west, 40ms away.
		{"us-east", "us-east", ms(80)},
		{"us-east", "eu-west", ms(80 + 80)},
		{"us-east", "ap-southeast", ms(216 + 80)},
		// eu-west's nearest is us-east too.
		{"eu-west", "eu-west", ms(80)},
		{"eu-west", "ap-southeast", ms(238 + 80)},
		// ap-southeast's nearest is us-east, 108ms away.
		{"ap-southeast", "ap-southeast", ms(216)},
		{"ap-southeast", "us-east", ms(216 + 216)},
		{"ap-southeast", "eu-west", ms(238 + 216)},
	} {
		if got := latencyFloor(wanOneWay, wanRegions, tt.leader, tt.from); got != tt.want {
			t.Errorf("floor from %s with %s leading = %v, want %v", tt.from, tt.leader, got, tt.want)
		}
	}
	if got := latencyFloor(nil, wanRegions, "us-east", "eu-west"); got != 0 {
		t.Errorf("floor without delays = %v, want 0", got)
	}
}
