package gossip_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
)

func TestThreeNodesSeeEachOtherAlive(t *testing.T) {
	nodes := cluster(t, nil, "eu-west", "us-east", "ap-south")
	for _, n := range nodes {
		members := n.Members()
		for i := 1; i < len(members); i++ {
			if members[i-1].Meta.Region >= members[i].Meta.Region {
				t.Errorf("%s: members not sorted by region: %s", n.meta.Region, describe(members))
			}
		}
		for _, m := range members {
			if m.Since.IsZero() || m.Since.After(time.Now()) {
				t.Errorf("%s sees %s alive since %v", n.meta.Region, m.Meta.Region, m.Since)
			}
		}
	}
	if got := nodes[0].Timing().ProbeInterval; got != 5*testRoundTrip {
		t.Errorf("ProbeInterval = %v, want 5 * MaxRoundTrip = %v", got, 5*testRoundTrip)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name    string
		edit    func(*gossip.Config)
		wantIs  error
		wantMsg string
	}{
		{"meta over 512 bytes", func(c *gossip.Config) {
			c.Meta.APIAddr = long + ".example:1"
			c.Meta.ReplicationAddr = long + ".example:2"
			c.Meta.RaftAddr = long + ".example:3"
		}, gossip.ErrMetaTooLarge, "at most 512"},
		{"no region", func(c *gossip.Config) { c.Meta.Region = "" }, gossip.ErrInvalidConfig, "Region"},
		{"bad region", func(c *gossip.Config) { c.Meta.Region = "US East" }, clocks.ErrInvalidRegion, "Region"},
		{"no node id", func(c *gossip.Config) { c.Meta.NodeID = "" }, gossip.ErrInvalidConfig, "NodeID"},
		{"node id with slash", func(c *gossip.Config) { c.Meta.NodeID = "a/b" }, gossip.ErrInvalidConfig, "NodeID"},
		{"address without port", func(c *gossip.Config) { c.Meta.APIAddr = "localhost" }, gossip.ErrInvalidConfig, "APIAddr"},
		{"key of 20 bytes", func(c *gossip.Config) { c.SecretKey = make([]byte, 20) }, gossip.ErrInvalidConfig, "16, 24 or 32"},
		{"bind to a host name", func(c *gossip.Config) { c.BindAddr = "localhost:0" }, gossip.ErrInvalidConfig, "IP address"},
		{"advertise without port", func(c *gossip.Config) { c.AdvertiseAddr = "127.0.0.1" }, gossip.ErrInvalidConfig, "AdvertiseAddr"},
		{"negative round trip", func(c *gossip.Config) { c.MaxRoundTrip = -time.Second }, gossip.ErrInvalidConfig, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := gossip.Config{Meta: testMeta("eu-west"), BindAddr: "127.0.0.1:0", Logger: testLogger()}
			tt.edit(&cfg)
			g, err := gossip.New(cfg)
			if err == nil {
				_ = g.Shutdown()
				t.Fatal("New accepted the config")
			}
			if !errors.Is(err, tt.wantIs) || !errors.Is(err, gossip.ErrInvalidConfig) {
				t.Errorf("error %v: want errors.Is %v and ErrInvalidConfig", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestMetaSizeLimit(t *testing.T) {
	m := testMeta("eu-west")
	m.RaftAddr = ":1"
	for m.Size() < gossip.MaxMetaSize {
		m.RaftAddr = "h" + m.RaftAddr
	}
	if got := m.Size(); got != gossip.MaxMetaSize {
		t.Fatalf("test meta is %d bytes, want exactly %d", got, gossip.MaxMetaSize)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("meta of exactly %d bytes rejected: %v", gossip.MaxMetaSize, err)
	}
	m.RaftAddr = "h" + m.RaftAddr
	if err := m.Validate(); !errors.Is(err, gossip.ErrMetaTooLarge) {
		t.Errorf("meta of %d bytes: err = %v, want ErrMetaTooLarge", m.Size(), err)
	}
}

func TestAppliedVectorsAndStableVector(t *testing.T) {
	nodes := cluster(t, nil, "eu-west", "us-east", "ap-south")
	eu, us, ap := nodes[0], nodes[1], nodes[2]
	eu.applied.Set(clocks.Vector{"eu-west": 10, "us-east": 3, "ap-south": 2})
	us.applied.Set(clocks.Vector{"eu-west": 7, "us-east": 5, "ap-south": 2})
	ap.applied.Set(clocks.Vector{"eu-west": 9, "us-east": 1, "ap-south": 6})

	waitFor(t, "applied vectors to reach every node", func() string {
		for _, observer := range nodes {
			for _, n := range nodes {
				m, _ := member(observer, n.meta.Region)
				if want := n.applied.Get(); !m.Applied.Equal(want) {
					return fmt.Sprintf("%s sees %s applied %v, want %v", observer.meta.Region, n.meta.Region, m.Applied, want)
				}
			}
		}
		return ""
	})
	waitFor(t, "the element-wise minimum", func() string {
		return stableIs(clocks.Vector{"eu-west": 7, "us-east": 1, "ap-south": 2}, nodes...)
	})

	// Removal on one node spreads to all; ap-south stops holding back
	// us-east.
	if err := eu.Remove("ap-south"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal to spread", func() string {
		for _, n := range nodes {
			if m, _ := member(n, "ap-south"); !m.Removed {
				return n.meta.Region + " does not see ap-south removed"
			}
		}
		return stableIs(clocks.Vector{"eu-west": 7, "us-east": 3, "ap-south": 2}, nodes...)
	})

	for _, region := range []string{"eu-west", "Not A Region"} {
		if err := eu.Remove(region); !errors.Is(err, gossip.ErrCannotRemove) {
			t.Errorf("Remove(%q) = %v, want ErrCannotRemove", region, err)
		}
	}
}

func TestCrashedMemberGoesSuspectThenDeadAndHoldsBackStableVector(t *testing.T) {
	fast := func(c *gossip.Config) { c.MaxRoundTrip = 20 * time.Millisecond }
	nodes := cluster(t, fast, "eu-west", "us-east", "ap-south")
	eu, us, ap := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		n.applied.Set(clocks.Vector{"eu-west": 5, "us-east": 5, "ap-south": 5})
	}
	waitFor(t, "vectors to spread", func() string {
		return stableIs(clocks.Vector{"eu-west": 5, "us-east": 5, "ap-south": 5}, nodes...)
	})

	crashed := time.Now()
	if err := ap.Shutdown(); err != nil { // no Leave: a crash
		t.Fatal(err)
	}
	survivors := []*node{eu, us}
	waitFor(t, "ap-south to be declared dead, and OnChange to tell", func() string {
		for _, n := range survivors {
			if m, _ := member(n, "ap-south"); m.State != gossip.Dead {
				return fmt.Sprintf("%s sees ap-south %s", n.meta.Region, m.State)
			}
			states := n.changes.states("ap-south")
			if last := states[len(states)-1]; last.State != gossip.Dead {
				return fmt.Sprintf("%s: OnChange last reported ap-south %s", n.meta.Region, last.State)
			}
		}
		return ""
	})
	for _, n := range survivors {
		// OnChange reports every state in order; coalescing could only
		// merge changes closer together than a dispatch, and suspicion
		// lasts at least 30 round trips.
		var seen []string
		var suspectSince, deadSince time.Time
		for _, m := range n.changes.states("ap-south") {
			seen = append(seen, m.State.String())
			switch m.State {
			case gossip.Suspect:
				suspectSince = m.Since
			case gossip.Dead:
				deadSince = m.Since
			}
		}
		if got := strings.Join(seen, ","); !strings.HasSuffix(got, "suspect,dead") {
			t.Errorf("%s saw ap-south go %s, want ...,suspect,dead", n.meta.Region, got)
		}
		// (Under load ap-south may have been suspect before the crash
		// already, so suspectSince is not compared with it.)
		if !deadSince.After(crashed) || !deadSince.After(suspectSince) {
			t.Errorf("%s: crash at %v, suspect since %v, dead since %v: out of order", n.meta.Region, crashed, suspectSince, deadSince)
		}
	}

	// The dead region keeps holding the stable vector back...
	eu.applied.Set(clocks.Vector{"eu-west": 9, "us-east": 9, "ap-south": 5})
	us.applied.Set(clocks.Vector{"eu-west": 9, "us-east": 9, "ap-south": 5})
	waitFor(t, "the survivors' new vectors to spread", func() string {
		for _, observer := range survivors {
			for _, n := range survivors {
				if m, _ := member(observer, n.meta.Region); !m.Applied.Equal(n.applied.Get()) {
					return fmt.Sprintf("%s sees %s applied %v", observer.meta.Region, n.meta.Region, m.Applied)
				}
			}
		}
		return ""
	})
	if problem := stableIs(clocks.Vector{"eu-west": 5, "us-east": 5, "ap-south": 5}, survivors...); problem != "" {
		t.Errorf("a dead region must hold back the stable vector: %s", problem)
	}
	// ...until an operator removes it.
	if err := us.Remove("ap-south"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stable vector to move past the removed region", func() string {
		return stableIs(clocks.Vector{"eu-west": 9, "us-east": 9, "ap-south": 5}, survivors...)
	})
}

func TestLeaveIsReportedAsLeft(t *testing.T) {
	nodes := cluster(t, nil, "eu-west", "us-east")
	if err := nodes[1].Leave(waitTimeout); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "us-east to be seen as left", func() string {
		if m, _ := member(nodes[0], "us-east"); m.State != gossip.Left {
			return "eu-west sees us-east " + m.State.String()
		}
		return ""
	})
	if m, _ := member(nodes[1], "us-east"); m.State != gossip.Left {
		t.Errorf("us-east sees itself %s after Leave, want left", m.State)
	}
	if err := nodes[1].Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].Leave(time.Second); err == nil {
		t.Error("Leave after Shutdown: no error")
	}
}

func TestSecretKey(t *testing.T) {
	key, err := gossip.ParseSecretKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=") // 32 bytes
	if err != nil {
		t.Fatal(err)
	}
	withKey := func(k []byte) func(*gossip.Config) {
		return func(c *gossip.Config) { c.SecretKey = k }
	}
	keyed := cluster(t, withKey(key), "eu-west", "us-east")
	eu, us := keyed[0], keyed[1]

	outsiders := []*node{
		startNode(t, "ap-south", nil),                                // no key
		startNode(t, "sa-east", withKey([]byte("another 16B key!"))), // another key
	}
	for _, o := range outsiders {
		if n, err := o.Join(eu.Addr()); err == nil {
			t.Errorf("%s joined a keyed cluster without its key (contacted %d)", o.meta.Region, n)
		}
	}
	waitFor(t, "the rejected joins to be counted", func() string {
		if got := eu.DroppedPackets(); got < uint64(len(outsiders)) {
			return fmt.Sprintf("eu-west dropped %d, want >= %d", got, len(outsiders))
		}
		return ""
	})

	// Gossip among the keyed members goes on; by the time a new vector
	// has crossed, an outsider that had got in would be listed.
	us.applied.Set(clocks.Vector{"us-east": 42})
	waitFor(t, "us-east's vector to reach eu-west", func() string {
		if m, _ := member(eu, "us-east"); !m.Applied.Equal(clocks.Vector{"us-east": 42}) {
			return fmt.Sprintf("eu-west sees us-east applied %v", m.Applied)
		}
		return ""
	})
	if problem := allAlive(eu, us); problem != "" {
		t.Errorf("keyed members: %s", problem)
	}
	for _, o := range outsiders {
		if members := o.Members(); len(members) != 1 {
			t.Errorf("%s without the key sees %s", o.meta.Region, describe(members))
		}
	}
}

func TestParseSecretKey(t *testing.T) {
	tests := []struct {
		in      string
		wantLen int
	}{
		{"MDEyMzQ1Njc4OWFiY2RlZg==", 16},
		{"MDEyMzQ1Njc4OWFiY2RlZg", 16}, // no padding
		{" MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\n", 24},
		{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", 32},
		{"MDEyMzQ1Njc4OWFiY2RlZjA=", 0}, // 17 bytes
		{"not base64!", 0},
		{"", 0},
	}
	for _, tt := range tests {
		key, err := gossip.ParseSecretKey(tt.in)
		if tt.wantLen == 0 {
			if !errors.Is(err, gossip.ErrInvalidConfig) {
				t.Errorf("ParseSecretKey(%q) = %d bytes, %v; want ErrInvalidConfig", tt.in, len(key), err)
			}
			continue
		}
		if err != nil || len(key) != tt.wantLen {
			t.Errorf("ParseSecretKey(%q) = %d bytes, %v; want %d bytes", tt.in, len(key), err, tt.wantLen)
		}
	}
}

// TestClockReadings: a member's acks carry its clock, so a node measures
// how far the member's clock is from its own, bracketed by the round trip.
func TestClockReadings(t *testing.T) {
	const skew = 3 * time.Second
	var mu sync.Mutex
	var readings []gossip.ClockReading
	record := func(r gossip.ClockReading) {
		mu.Lock()
		defer mu.Unlock()
		readings = append(readings, r)
	}
	a := startNode(t, "us-east", func(c *gossip.Config) { c.OnClockReading = record })
	b := startNode(t, "ap-south", func(c *gossip.Config) { c.Clock = func() time.Time { return time.Now().Add(skew) } })
	join(t, b, a.Addr())
	waitFor(t, "a clock reading of ap-south on us-east", func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(readings) == 0 {
			return "none yet"
		}
		return ""
	})
	mu.Lock()
	r := readings[0]
	mu.Unlock()
	if r.Meta != b.meta {
		t.Errorf("reading of %+v, want %+v", r.Meta, b.meta)
	}
	// The member's clock is skew ahead: us-east is skew behind it, within
	// the round trip. Sent is derived from memberlist's round trip and a
	// clock reading taken when memberlist reports the ack, a moment after
	// it arrived, so on a loaded machine the lower bound can be late by
	// that scheduling delay (a few ms seen); schedulingSlack allows for it.
	const schedulingSlack = 100 * time.Millisecond
	lo, hi := r.Sent.Sub(r.Remote), r.Received.Sub(r.Remote)
	if lo-schedulingSlack > -skew || hi < -skew || hi-lo > time.Second {
		t.Errorf("offset bounds [%v, %v] do not bracket -%v tightly (allowing %v of scheduling delay below)", lo, hi, skew, schedulingSlack)
	}
}
