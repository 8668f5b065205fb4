package replica

import (
	"fmt"
	"time"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
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

// joinRetry is how often an unanswered --join is tried again.
const joinRetry = 2 * time.Second

// startGossip joins the cluster's gossip. Every connection it makes goes
// through the link layer. Members of other regions become replication
// peers when they are alive; removed ones stop being followed.
func (r *replication) startGossip(advertise string) error {
	n, gc := r.n, r.n.cfg.Gossip
	ln, pc, err := gossip.ListenPair(gc.BindAddr)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	tr, err := gossip.NewTransport(gossip.TransportConfig{
		Dial: n.cfg.Links.DialContext, Listener: n.cfg.Links.Listener(ln), PacketConn: n.cfg.Links.PacketConn(pc),
		Logger: n.log.With("component", "gossip"),
	})
	if err != nil {
		ln.Close()
		pc.Close()
		return fmt.Errorf("gossip: %w", err)
	}
	rtt := gc.MaxRoundTrip
	if rtt == 0 {
		rtt = 100 * time.Millisecond
		for _, l := range n.cfg.Links.Links() {
			rtt = max(rtt, 2*(l.Delay+l.Jitter))
		}
	}
	meta := gossip.Meta{Region: n.cfg.Region, NodeID: n.nodeID, APIAddr: advertise, ReplicationAddr: advertise}
	if n.linear != nil {
		meta.RaftAddr = n.linear.RaftAddr()
		meta.RaftID = n.linear.ServerID()
	}
	g, err := gossip.New(gossip.Config{
		Meta:         meta,
		SecretKey:    gc.SecretKey,
		MaxRoundTrip: rtt,
		Transport:    tr,
		Applied: func() clocks.Vector {
			v, _ := n.durableVector()
			return v.Clone()
		},
		OnChange: r.memberChanged,
		Logger:   n.log.With("component", "gossip"),

		// Acks carry this node's clock, and readings of members' clocks
		// feed the clock offset fence (clockoffset.go).
		Clock:          n.cfg.Now,
		OnClockReading: n.clockFence.reading,
	})
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	r.mu.Lock()
	r.gossip = g
	r.mu.Unlock()
	alivePeers := func() int {
		regions := map[string]bool{}
		for _, m := range g.Members() {
			if m.State == gossip.Alive && !m.Removed && m.Meta.ReplicationAddr != "" && m.Meta.Region != n.cfg.Region {
				regions[m.Meta.Region] = true
			}
		}
		return len(regions)
	}
	n.clockFence.knownPeers.Store(&alivePeers)
	n.log.Info("gossip started", "addr", g.Addr(), "join", gc.Join, "encrypted", gc.SecretKey != nil, "max_round_trip", rtt)
	if len(gc.Join) > 0 {
		r.wg.Add(1)
		go r.join(g, gc.Join)
	}
	return nil
}

// join keeps trying the --join addresses until one answers.
func (r *replication) join(g *gossip.Gossip, addrs []string) {
	defer r.wg.Done()
	for {
		if _, err := g.Join(addrs...); err == nil {
			r.gossipJoined.Store(true)
			return
		} else {
			r.n.log.Warn("gossip join failed; retrying", "join", addrs, "err", err)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(joinRetry):
		}
	}
}

// memberChanged follows membership: a live member of another region is
// replicated with, a removed region no longer is.
func (r *replication) memberChanged(m gossip.Member) {
	if m.Meta.Region == r.n.cfg.Region {
		return
	}
	r.n.cfg.Links.Learn(m.Addr, m.Meta.Region)
	switch {
	case m.Removed:
		r.removePeer(m.Meta.Region)
	case m.State == gossip.Alive && m.Meta.ReplicationAddr != "":
		r.addPeer(m.Meta.Region, m.Meta.ReplicationAddr)
	}
}

// removePeer stops following region and stops keeping the log for it.
func (r *replication) removePeer(region string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed[region] {
		return
	}
	r.removed[region] = true
	if p, ok := r.peers[region]; ok {
		p.cancel()
		delete(r.peers, region)
	}
	delete(r.acks, region)
	if err := r.n.store.forgetPeer(region); err != nil {
		r.n.log.Error("forget peer", "peer", region, "err", err)
	}
	r.n.log.Info("region removed: no longer replicated with", "peer", region)
}

// members is the gossip view (nil without gossip).
func (r *replication) members() []gossip.Member {
	r.mu.Lock()
	g := r.gossip
	r.mu.Unlock()
	if g == nil {
		return nil
	}
	return g.Members()
}

func (r *replication) stopGossip() {
	r.mu.Lock()
	g := r.gossip
	r.gossip = nil
	r.mu.Unlock()
	if g != nil {
		_ = g.Leave(time.Second)
		_ = g.Shutdown()
	}
}

func (r *replication) gossipNode() *gossip.Gossip {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gossip
}

// RemoveRegion declares region gone for good (see AdminService.RemoveRegion).
func (n *Node) RemoveRegion(region string) error {
	if err := clocks.ValidateRegion(region); err != nil {
		return api.Errorf(api.ErrInvalidArgument, "%v", err)
	}
	if region == n.cfg.Region {
		return api.Errorf(api.ErrInvalidArgument, "region %s is this node's own; remove it from another region", region)
	}
	known := n.repl.knownRegion(region)
	if g := n.repl.gossipNode(); g != nil {
		for _, m := range g.Members() {
			known = known || m.Meta.Region == region
		}
		if known {
			if err := g.Remove(region); err != nil {
				return api.Errorf(api.ErrInvalidArgument, "%v", err)
			}
		}
	}
	if !known {
		return api.Errorf(api.ErrInvalidArgument, "unknown region %q: this node knows %v", region, n.knownRegions())
	}
	n.repl.removePeer(region)
	return nil
}
