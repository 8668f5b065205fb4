package gossip_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
	"github.com/causewaydb/causeway/internal/link"
)

// linkNode starts a node whose gossip, streams and packets alike, goes
// through a link emulator, as in a Causeway node with fault injection.
func linkNode(t *testing.T, region string) (*node, *link.Emulator) {
	t.Helper()
	em := link.New(region)
	ln, pc, err := gossip.ListenPair("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := gossip.NewTransport(gossip.TransportConfig{
		Dial:       em.DialContext,
		Listener:   em.Listener(ln),
		PacketConn: em.PacketConn(pc),
		Logger:     testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, region, func(cfg *gossip.Config) {
		cfg.Transport = tr
		record := cfg.OnChange
		cfg.OnChange = func(m gossip.Member) {
			// Dials by address find the peer's link.
			em.Learn(m.Addr, m.Meta.Region)
			record(m)
		}
	})
	return n, em
}

// setLinks sets the link from every emulator to every other region.
func setLinks(t *testing.T, ems map[string]*link.Emulator, l func(from, to string) link.Link) {
	t.Helper()
	for from, em := range ems {
		for to := range ems {
			if to != from {
				if err := em.Set(to, l(from, to)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A region cut off from the others is seen dead on both sides, keeps holding
// back the stable vector, and is back once the links heal.
func TestPartitionThroughLinkEmulation(t *testing.T) {
	eu, emEU := linkNode(t, "eu-west")
	us, emUS := linkNode(t, "us-east")
	ap, emAP := linkNode(t, "ap-south")
	ems := map[string]*link.Emulator{"eu-west": emEU, "us-east": emUS, "ap-south": emAP}
	const delay = 5 * time.Millisecond // one way: a 10 ms round trip
	wan := func(from, to string) link.Link { return link.Link{Delay: delay} }
	setLinks(t, ems, wan)

	join(t, us, eu.Addr())
	join(t, ap, eu.Addr())
	nodes := []*node{eu, us, ap}
	waitFor(t, "the cluster to form over delayed links", func() string { return allAlive(nodes...) })
	for _, n := range nodes {
		n.applied.Set(clocks.Vector{"eu-west": 1, "us-east": 1, "ap-south": 1})
	}
	waitFor(t, "vectors over delayed links", func() string {
		return stableIs(clocks.Vector{"eu-west": 1, "us-east": 1, "ap-south": 1}, nodes...)
	})

	// Cut ap-south off, both directions.
	setLinks(t, ems, func(from, to string) link.Link {
		l := wan(from, to)
		if from == "ap-south" || to == "ap-south" {
			l.CutIn, l.CutOut = true, true
		}
		return l
	})
	majority := []*node{eu, us}
	waitFor(t, "each side to declare the other dead", func() string {
		for _, n := range majority {
			if m, _ := member(n, "ap-south"); m.State != gossip.Dead {
				return fmt.Sprintf("%s sees ap-south %s", n.meta.Region, m.State)
			}
			if m, _ := member(ap, n.meta.Region); m.State != gossip.Dead {
				return fmt.Sprintf("ap-south sees %s %s", n.meta.Region, m.State)
			}
		}
		return ""
	})
	// Both sides go on; the majority's stable vector waits for ap-south.
	for _, n := range majority {
		n.applied.Set(clocks.Vector{"eu-west": 2, "us-east": 2, "ap-south": 1})
	}
	ap.applied.Set(clocks.Vector{"eu-west": 1, "us-east": 1, "ap-south": 2})
	waitFor(t, "the majority to exchange vectors during the partition", func() string {
		for _, n := range majority {
			for _, o := range majority {
				if m, _ := member(n, o.meta.Region); !m.Applied.Equal(o.applied.Get()) {
					return fmt.Sprintf("%s sees %s applied %v", n.meta.Region, o.meta.Region, m.Applied)
				}
			}
		}
		return ""
	})
	if problem := stableIs(clocks.Vector{"eu-west": 1, "us-east": 1, "ap-south": 1}, majority...); problem != "" {
		t.Errorf("during the partition: %s", problem)
	}

	// Heal: everyone is alive again, without anyone calling Join.
	setLinks(t, ems, wan)
	waitFor(t, "the partition to heal", func() string { return allAlive(nodes...) })
	ap.applied.Set(clocks.Vector{"eu-west": 2, "us-east": 2, "ap-south": 2})
	waitFor(t, "the stable vector to move once ap-south catches up", func() string {
		return stableIs(clocks.Vector{"eu-west": 2, "us-east": 2, "ap-south": 1}, nodes...)
	})
}
