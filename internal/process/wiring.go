package process

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/linear"
	"github.com/causewaydb/causeway/replica"
)

// GossipConfig turns on membership by gossip (package gossip): regions find
// each other from one address (Join), replication follows membership, and
// failure detection and the stable vector become visible in Status.
type GossipConfig struct {
	// BindAddr is the host:port gossip listens on, TCP and UDP.
	BindAddr string
	// Join lists members to join through (any live one will do); empty for
	// the first node of a cluster.
	Join []string
	// SecretKey encrypts gossip (16, 24 or 32 bytes); nil for plaintext.
	SecretKey []byte
	// MaxRoundTrip is the longest round trip expected between regions; zero
	// means twice the largest emulated delay plus jitter, at least 100ms.
	MaxRoundTrip time.Duration
}

// LinearConfig turns on the linearizable tier on this node (package
// linear). Its state lives in DataDir/linear; a voter's Raft server id
// (region/suffix, created with that state) is also recorded in the node's
// store, so that losing DataDir/linear alone is caught at start.
type LinearConfig struct {
	// Role: linear.RoleVoter (default) or linear.RoleForwarder.
	Role linear.Role
	// BindAddr is the Raft transport's listen address (voters).
	BindAddr string
	// Advertise is the Raft address other voters dial; default BindAddr.
	Advertise string
	// Bootstrap forms the group with this voter alone if it has no Raft
	// state yet: the first node of a cluster only.
	Bootstrap bool
	// TLS, when set, runs the Raft transport over mutual TLS between nodes
	// of the cluster (Open sets it from Config.Security).
	TLS *pki.Certs
	// Voters names the regions the leader may add as voters (serve
	// --voters; linear.Config.Voters). Empty: any node of the cluster.
	Voters []string
}

// joinRetry is how often an unanswered --join is tried again.
const joinRetry = 2 * time.Second

// Wiring connects gossip and the linearizable tier to one replica.Node:
// each learns of the other through it (gossip advertises the voter's Raft
// address; the tier finds its peers in gossip's members), and it adapts
// both to replica's interfaces.
type Wiring struct {
	gossip atomic.Pointer[gossip.Gossip] // nil until membership starts
	linear atomic.Pointer[linear.Node]   // nil until the tier opens
}

// Wire sets cfg.Membership and cfg.Linear from gc and lc (nil leaves the
// neighbour off), and adds their metrics to cfg.Metrics.
func Wire(cfg *replica.Config, gc *GossipConfig, lc *LinearConfig) *Wiring {
	w := &Wiring{}
	cfg.Metrics = append(cfg.Metrics, w.collectors(cfg.Region)...)
	if gc != nil {
		cfg.Membership = w.startGossip(*gc)
	}
	if lc != nil {
		cfg.Linear = w.openLinear(*lc)
	}
	return w
}

// Services are the services the wired neighbours serve beside the node's
// (the linearizable tier's LinearService, once the tier is open), for
// NewServer.
func (w *Wiring) Services() []replica.Service {
	l := w.linear.Load()
	if l == nil {
		return nil
	}
	return []replica.Service{{Name: causewayv1connect.LinearServiceName, Mount: l.Handler}}
}

// openLinear opens the node's part of the linearizable tier.
func (w *Wiring) openLinear(lc LinearConfig) replica.OpenLinear {
	return func(env replica.Env) (replica.LinearTier, error) {
		l, err := linear.Open(linear.Config{
			Region:     env.Region,
			Role:       lc.Role,
			Dir:        filepath.Join(env.DataDir, "linear"),
			BindAddr:   lc.BindAddr,
			Advertise:  lc.Advertise,
			Bootstrap:  lc.Bootstrap,
			Voters:     lc.Voters,
			Links:      env.Links,
			Peers:      w.linearPeers,
			HTTPClient: env.HTTPClient,
			Now:        env.Now,
			Logger:     env.Logger,
			Identity:   env.Identity,
			TLS:        lc.TLS,
		})
		if err != nil {
			return nil, err
		}
		w.linear.Store(l)
		return l, nil
	}
}

// linearPeers is gossip's view in the linearizable tier's terms.
func (w *Wiring) linearPeers() []linear.Peer {
	g := w.gossip.Load()
	if g == nil {
		return nil
	}
	members := g.Members()
	out := make([]linear.Peer, 0, len(members))
	for _, m := range members {
		out = append(out, linear.Peer{
			Region:   m.Meta.Region,
			APIAddr:  m.Meta.APIAddr,
			RaftAddr: m.Meta.RaftAddr,
			RaftID:   m.Meta.RaftID,
			Alive:    m.State == gossip.Alive,
			Removed:  m.Removed,
		})
	}
	return out
}

// startGossip joins the cluster's gossip. Every connection it makes goes
// through the node's link layer.
func (w *Wiring) startGossip(gc GossipConfig) replica.StartMembership {
	return func(env replica.Env, events replica.MemberEvents) (replica.Membership, error) {
		ln, pc, err := gossip.ListenPair(gc.BindAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip: %w", err)
		}
		log := env.Logger.With("component", "gossip")
		tr, err := gossip.NewTransport(gossip.TransportConfig{
			Dial: env.Links.DialContext, Listener: env.Links.Listener(ln), PacketConn: env.Links.PacketConn(pc),
			Logger: log,
		})
		if err != nil {
			ln.Close()
			pc.Close()
			return nil, fmt.Errorf("gossip: %w", err)
		}
		rtt := gc.MaxRoundTrip
		if rtt == 0 {
			rtt = 100 * time.Millisecond
			for _, l := range env.Links.Links() {
				rtt = max(rtt, 2*(l.Delay+l.Jitter))
			}
		}
		meta := gossip.Meta{Region: env.Region, NodeID: env.NodeID, APIAddr: env.Advertise, ReplicationAddr: env.Advertise}
		if l := w.linear.Load(); l != nil {
			meta.RaftAddr = l.RaftAddr()
			meta.RaftID = l.ServerID()
		}
		g, err := gossip.New(gossip.Config{
			Meta:         meta,
			SecretKey:    gc.SecretKey,
			MaxRoundTrip: rtt,
			Transport:    tr,
			Applied:      events.AppliedVector,
			OnChange:     func(m gossip.Member) { events.MemberChanged(member(m)) },
			Logger:       log,

			// Acks carry this node's clock, and readings of members' clocks
			// feed the node's clock offset fence.
			Clock: env.Now,
			OnClockReading: func(r gossip.ClockReading) {
				events.ClockReading(replica.ClockReading{
					Region: r.Meta.Region, CausalReplica: r.Meta.ReplicationAddr != "",
					Sent: r.Sent, Received: r.Received, Remote: r.Remote,
				})
			},
		})
		if err != nil {
			return nil, fmt.Errorf("gossip: %w", err)
		}
		w.gossip.Store(g)
		ctx, cancel := context.WithCancel(context.Background())
		m := &membership{g: g, cancel: cancel}
		env.Logger.Info("gossip started", "addr", g.Addr(), "join", gc.Join, "encrypted", gc.SecretKey != nil, "max_round_trip", rtt)
		if len(gc.Join) > 0 {
			m.wg.Add(1)
			go m.join(ctx, env, gc.Join)
		}
		return m, nil
	}
}

// membership adapts *gossip.Gossip to replica.Membership.
type membership struct {
	g      *gossip.Gossip
	joined atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ replica.Membership = (*membership)(nil)

// join keeps trying the --join addresses until one answers.
func (m *membership) join(ctx context.Context, env replica.Env, addrs []string) {
	defer m.wg.Done()
	for {
		if _, err := m.g.Join(addrs...); err == nil {
			m.joined.Store(true)
			return
		} else {
			env.Logger.Warn("gossip join failed; retrying", "join", addrs, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(joinRetry):
		}
	}
}

func (m *membership) Members() []replica.Member {
	members := m.g.Members()
	out := make([]replica.Member, len(members))
	for i, mem := range members {
		out[i] = member(mem)
	}
	return out
}

func (m *membership) StableVector() clocks.Vector { return m.g.StableVector() }
func (m *membership) Joined() bool                { return m.joined.Load() }
func (m *membership) Remove(region string) error  { return m.g.Remove(region) }

// Close leaves the cluster (bounded by a second), shuts gossip down and
// stops the join loop.
func (m *membership) Close() error {
	_ = m.g.Leave(time.Second)
	err := m.g.Shutdown()
	m.cancel()
	m.wg.Wait()
	return err
}

func member(m gossip.Member) replica.Member {
	return replica.Member{
		Region: m.Meta.Region, NodeID: m.Meta.NodeID, GossipAddr: m.Addr,
		APIAddr: m.Meta.APIAddr, ReplicationAddr: m.Meta.ReplicationAddr,
		State: m.State.String(), Alive: m.State == gossip.Alive, Since: m.Since,
		Applied: m.Applied, Removed: m.Removed,
	}
}
