package gossip_test

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
)

// testRoundTrip is the MaxRoundTrip of test clusters on loopback: short, so
// tests are quick, but long enough for the race detector on two cores.
const testRoundTrip = 40 * time.Millisecond

// waitTimeout bounds every wait for gossip to converge.
const waitTimeout = 10 * time.Second

// appliedVar is a node's applied vector, settable by the test.
type appliedVar struct {
	mu sync.Mutex
	v  clocks.Vector
}

func (a *appliedVar) Set(v clocks.Vector) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.v = v.Clone()
}

func (a *appliedVar) Get() clocks.Vector {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v.Clone()
}

// changeLog records OnChange calls.
type changeLog struct {
	mu      sync.Mutex
	changes []gossip.Member
}

func (c *changeLog) add(m gossip.Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, m)
}

// states returns the successive states reported for the node of region.
func (c *changeLog) states(region string) []gossip.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []gossip.Member
	for _, m := range c.changes {
		if m.Meta.Region == region && (len(out) == 0 || out[len(out)-1].State != m.State) {
			out = append(out, m)
		}
	}
	return out
}

type node struct {
	*gossip.Gossip
	meta    gossip.Meta
	applied *appliedVar
	changes *changeLog
}

// testLogger discards logs unless GOSSIP_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testMeta(region string) gossip.Meta {
	return gossip.Meta{
		Region:          region,
		NodeID:          "n1",
		APIAddr:         "127.0.0.1:7070",
		ReplicationAddr: "127.0.0.1:7071",
		RaftAddr:        "127.0.0.1:7072",
	}
}

// startNode starts a node of region on 127.0.0.1 with a free port and shuts
// it down at the end of the test. edit, if given, adjusts the config.
func startNode(t *testing.T, region string, edit func(*gossip.Config)) *node {
	t.Helper()
	n := &node{meta: testMeta(region), applied: &appliedVar{}, changes: &changeLog{}}
	cfg := gossip.Config{
		Meta:         n.meta,
		BindAddr:     "127.0.0.1:0",
		MaxRoundTrip: testRoundTrip,
		Applied:      n.applied.Get,
		OnChange:     n.changes.add,
		Logger:       testLogger().With("test", t.Name()),
	}
	if edit != nil {
		edit(&cfg)
	}
	n.meta = cfg.Meta
	g, err := gossip.New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", region, err)
	}
	t.Cleanup(func() {
		if err := g.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", region, err)
		}
	})
	n.Gossip = g
	return n
}

// waitFor polls cond until it returns "" (done) or waitTimeout passes; then
// the test fails with what cond last reported.
func waitFor(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		problem := cond()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", waitTimeout, what, problem)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// member returns n's view of the member with the given region.
func member(n *node, region string) (gossip.Member, bool) {
	for _, m := range n.Members() {
		if m.Meta.Region == region {
			return m, true
		}
	}
	return gossip.Member{}, false
}

// allAlive reports what is missing for every node to see exactly nodes, all
// alive with the right metadata and addresses.
func allAlive(nodes ...*node) string {
	for _, observer := range nodes {
		members := observer.Members()
		if len(members) != len(nodes) {
			return fmt.Sprintf("%s sees %d members, want %d: %s", observer.meta.Region, len(members), len(nodes), describe(members))
		}
		for _, want := range nodes {
			m, ok := member(observer, want.meta.Region)
			switch {
			case !ok:
				return fmt.Sprintf("%s does not see %s", observer.meta.Region, want.meta.Region)
			case m.State != gossip.Alive:
				return fmt.Sprintf("%s sees %s %s", observer.meta.Region, want.meta.Region, m.State)
			case m.Meta != want.meta:
				return fmt.Sprintf("%s sees %s with meta %+v, want %+v", observer.meta.Region, want.meta.Region, m.Meta, want.meta)
			case m.Addr != want.Addr():
				return fmt.Sprintf("%s sees %s at %s, want %s", observer.meta.Region, want.meta.Region, m.Addr, want.Addr())
			}
		}
	}
	return ""
}

func describe(members []gossip.Member) string {
	var parts []string
	for _, m := range members {
		parts = append(parts, fmt.Sprintf("%s/%s:%s%v", m.Meta.Region, m.Meta.NodeID, m.State, m.Applied))
	}
	return strings.Join(parts, " ")
}

// join joins n to the member at addr and fails the test on error.
func join(t *testing.T, n *node, addr string) {
	t.Helper()
	if _, err := n.Join(addr); err != nil {
		t.Fatalf("%s joins %s: %v", n.meta.Region, addr, err)
	}
}

// cluster starts one node per region and joins them all through the first.
func cluster(t *testing.T, edit func(*gossip.Config), regions ...string) []*node {
	t.Helper()
	var nodes []*node
	for i, r := range regions {
		n := startNode(t, r, edit)
		if i > 0 {
			join(t, n, nodes[0].Addr())
		}
		nodes = append(nodes, n)
	}
	waitFor(t, "every node to see every other alive", func() string { return allAlive(nodes...) })
	return nodes
}

// stableIs reports what is missing for every node's stable vector to be want.
func stableIs(want clocks.Vector, nodes ...*node) string {
	for _, n := range nodes {
		if got := n.StableVector(); !got.Equal(want) {
			return fmt.Sprintf("%s: stable vector %v, want %v (members %s)", n.meta.Region, got, want, describe(n.Members()))
		}
	}
	return ""
}
