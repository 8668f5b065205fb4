package linear

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/link"
)

// testVoter is one in-process voter with its API served over h2c.
type testVoter struct {
	region string
	dir    string
	raft   string
	id     string // Raft server id, as gossip would announce it
	links  *link.Emulator
	node   *Node
	srv    *http.Server
	api    string
	client causewayv1connect.LinearServiceClient
}

// testGroup is a set of in-process voters whose membership view is a
// shared table (standing in for gossip).
type testGroup struct {
	t       *testing.T
	mu      sync.Mutex
	voters  []*testVoter
	alive   map[string]bool
	removed map[string]bool
}

func newH2C(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p, DialContext: dial}}
}

func (g *testGroup) peers() []Peer {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Peer
	for _, v := range g.voters {
		if v.api == "" {
			continue
		}
		out = append(out, Peer{Region: v.region, APIAddr: v.api, RaftAddr: v.raft, RaftID: v.id, Alive: g.alive[v.region], Removed: g.removed[v.region]})
	}
	return out
}

// start opens (or reopens) v and serves its API.
func (g *testGroup) start(v *testVoter, bootstrap bool) {
	g.t.Helper()
	if v.links == nil {
		v.links = link.New(v.region)
	}
	n, err := Open(Config{
		Region: v.region, Dir: v.dir, BindAddr: v.raft, Bootstrap: bootstrap, Links: v.links,
		Peers: g.peers, HTTPClient: newH2C(v.links.DialContext),
	})
	if err != nil {
		g.t.Fatalf("open %s: %v", v.region, err)
	}
	v.node = n
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.t.Fatal(err)
	}
	if v.api != "" { // restart on the same address
		ln.Close()
		if ln, err = net.Listen("tcp", v.api); err != nil {
			g.t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(n.Handler())
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	v.srv = &http.Server{Handler: mux, Protocols: p}
	go v.srv.Serve(v.links.Listener(ln))
	g.mu.Lock()
	v.raft = n.RaftAddr()
	v.id = n.ServerID()
	v.api = ln.Addr().String()
	g.alive[v.region] = true
	g.mu.Unlock()
	v.client = causewayv1connect.NewLinearServiceClient(newH2C((&net.Dialer{}).DialContext), "http://"+v.api)
}

func (g *testGroup) stop(v *testVoter) {
	v.srv.Close()
	if err := v.node.Close(); err != nil {
		g.t.Errorf("close %s: %v", v.region, err)
	}
}

func newTestGroup(t *testing.T, regions ...string) *testGroup {
	g := &testGroup{t: t, alive: map[string]bool{}, removed: map[string]bool{}}
	for i, r := range regions {
		v := &testVoter{region: r, dir: t.TempDir(), raft: "127.0.0.1:0"}
		g.mu.Lock()
		g.voters = append(g.voters, v)
		g.mu.Unlock()
		g.start(v, i == 0)
	}
	t.Cleanup(func() {
		for _, v := range g.voters {
			if v.node != nil {
				g.stop(v)
			}
		}
	})
	return g
}

// awaitLeader waits until every voter sees the same leader and the group
// has all its voters; it returns the leader.
func (g *testGroup) awaitLeader(limit time.Duration) *testVoter {
	g.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var leader string
		ok := true
		for _, v := range g.voters {
			st := v.node.Status()
			if st.LeaderRegion == "" || (leader != "" && st.LeaderRegion != leader) || len(st.Voters) != len(g.voters) {
				ok = false
				break
			}
			leader = st.LeaderRegion
		}
		if ok {
			for _, v := range g.voters {
				if v.region == leader {
					return v
				}
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no common leader with %d voters after %v", len(g.voters), limit)
		}
		<-time.After(20 * time.Millisecond) // poll interval
	}
}

func claim(ctx context.Context, c causewayv1connect.LinearServiceClient, name, owner, rid string) (*v1.ClaimResponse, error) {
	res, err := c.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: "users", Name: name, Owner: owner, RequestId: rid}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// TestFollowersForwardAndRetriesApplyOnce: every voter answers (followers
// forward to the leader); a claim retried with its request id, on another
// region and after the group restarted, returns the original outcome.
func TestFollowersForwardAndRetriesApplyOnce(t *testing.T) {
	g := newTestGroup(t, "us-east", "eu-west", "ap-south")
	leader := g.awaitLeader(20 * time.Second)
	var follower *testVoter
	for _, v := range g.voters {
		if v != leader {
			follower = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, err := claim(ctx, follower.client, "alice", "a1", "5b0c1c44-4e5e-4a44-9a53-52a0a4f1b2c1")
	if err != nil {
		t.Fatalf("claim through a follower: %v", err)
	}
	if _, err := claim(ctx, leader.client, "alice", "a2", ""); api.Code(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), "a1") {
		t.Fatalf("second owner's claim: %v, want already_exists naming a1", err)
	}

	for _, v := range g.voters {
		g.stop(v)
		v.node = nil
	}
	for _, v := range g.voters {
		g.start(v, false)
	}
	g.awaitLeader(20 * time.Second)
	again, err := claim(ctx, g.voters[2].client, "alice", "a1", "5b0c1c44-4e5e-4a44-9a53-52a0a4f1b2c1")
	if err != nil {
		t.Fatalf("retry after restart: %v", err)
	}
	if !again.Duplicate || again.Version != first.Version {
		t.Fatalf("retry returned %+v, want the original outcome %+v marked duplicate", again, first)
	}
}

// TestMinorityFailsFastWithReason: a voter cut off from the others refuses
// at once, with `unavailable` and how many voters it reaches — from its
// first refusal on, while gossip still reports the others alive — and the
// majority keeps serving.
func TestMinorityFailsFastWithReason(t *testing.T) {
	g := newTestGroup(t, "us-east", "eu-west", "ap-south")
	g.awaitLeader(20 * time.Second)
	isolated := g.voters[2]
	for _, v := range g.voters[:2] {
		if err := v.links.Set(isolated.region, link.Link{CutOut: true, CutIn: true}); err != nil {
			t.Fatal(err)
		}
		if err := isolated.links.Set(v.region, link.Link{CutOut: true, CutIn: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Gossip has not noticed the cut (this group's gossip view is g.alive).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callTimeout := isolated.node.CallTimeout()
	deadline := time.Now().Add(10 * callTimeout)
	for {
		start := time.Now()
		_, err := claim(ctx, isolated.client, "bob", "b", "")
		took := time.Since(start)
		if err == nil {
			if time.Now().After(deadline) {
				t.Fatal("the isolated voter kept serving linearizable claims")
			}
			continue // it had not noticed yet (it led, or its leader's lease held)
		}
		if api.Code(err) != connect.CodeUnavailable {
			t.Fatalf("isolated voter: %v, want unavailable", err)
		}
		if !strings.Contains(err.Error(), "1 of 3 voters reachable") || !strings.Contains(err.Error(), "causal reads and writes still available") {
			t.Fatalf("refusal does not say why: %v", err)
		}
		if took > callTimeout+time.Second {
			t.Fatalf("refusal took %v; a request waits at most %v", took, callTimeout)
		}
		if strings.Contains(err.Error(), "no leader") {
			break // settled: refused at once, without waiting
		}
		if time.Now().After(deadline) {
			t.Fatalf("isolated voter still not settled into refusing at once: %v", err)
		}
	}
	if _, err := claim(ctx, g.voters[0].client, "carol", "c", ""); err != nil {
		t.Fatalf("majority side: %v", err)
	}
}

// TestRemovedRegionLeavesTheGroup: a region removed from the cluster
// (gossip reports it removed) is removed from the Raft configuration by the
// leader, so it no longer counts towards the quorum.
func TestRemovedRegionLeavesTheGroup(t *testing.T) {
	g := newTestGroup(t, "us-east", "eu-west", "ap-south")
	leader := g.awaitLeader(20 * time.Second)
	var gone *testVoter
	for _, v := range g.voters {
		if v != leader {
			gone = v
		}
	}
	g.mu.Lock()
	g.removed[gone.region] = true
	g.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := leader.node.Status()
		if len(st.Voters) == 2 && st.Quorum == 2 {
			for _, v := range st.Voters {
				if v.Region == gone.region {
					t.Fatalf("removed region %s still a voter", gone.region)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader still has voters %v after the removal of %s", st.Voters, gone.region)
		}
		<-time.After(20 * time.Millisecond) // poll interval
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := claim(ctx, leader.client, "dan", "d", ""); err != nil {
		t.Fatalf("claim after the removal: %v", err)
	}
}

func TestTimingScalesWithRoundTrip(t *testing.T) {
	lan, wan := timingFor(10*time.Millisecond), timingFor(238*time.Millisecond)
	if wan.heartbeat < lan.heartbeat+4*228*time.Millisecond {
		t.Fatalf("heartbeat timeout %v on a 238ms round trip; want it 4 round trips above the LAN's %v", wan.heartbeat, lan.heartbeat)
	}
	for _, tm := range []timing{lan, wan} {
		if tm.lease > tm.heartbeat || tm.call < 2*tm.heartbeat {
			t.Fatalf("timing %+v: lease must not exceed the heartbeat timeout, and a call waits two election timeouts", tm)
		}
	}
}

// TestForwarderSendsRequestsToVoters: a node that runs no Raft (a region
// that does not vote) answers through a voter, which forwards to the
// leader: two hops.
func TestForwarderSendsRequestsToVoters(t *testing.T) {
	g := newTestGroup(t, "us-east", "eu-west", "ap-south")
	g.awaitLeader(20 * time.Second)
	links := link.New("sa-east")
	fw, err := Open(Config{Region: "sa-east", Role: RoleForwarder, Links: links, Peers: g.peers, HTTPClient: newH2C(links.DialContext)})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if fw.Voter() || fw.RaftAddr() != "" {
		t.Fatalf("forwarder reports voter=%v raft=%q", fw.Voter(), fw.RaftAddr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(fw.Handler())
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: p}
	go srv.Serve(ln)
	defer srv.Close()
	client := causewayv1connect.NewLinearServiceClient(newH2C((&net.Dialer{}).DialContext), "http://"+ln.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := claim(ctx, client, "erin", "e", "")
	if err != nil {
		t.Fatalf("claim through a forwarder: %v", err)
	}
	if got.Owner != "e" || got.Version == 0 {
		t.Fatalf("claim through a forwarder returned %+v", got)
	}
	if st := fw.Status(); st.Voter || !st.Available || st.ReachableVoters != 3 {
		t.Fatalf("forwarder status %+v: want a non-voter that reaches 3 voters", st)
	}
	// With no voter reachable it refuses at once, saying so.
	g.mu.Lock()
	for r := range g.alive {
		g.alive[r] = false
	}
	g.mu.Unlock()
	if _, err := claim(ctx, client, "frank", "f", ""); api.Code(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "no voter reachable") {
		t.Fatalf("forwarder without voters: %v, want unavailable naming the reason", err)
	}
}
