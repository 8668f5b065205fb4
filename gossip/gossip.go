package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/causewaydb/causeway/clocks"
)

// ErrCannotRemove is returned by Remove for a region it cannot remove.
var ErrCannotRemove = errors.New("cannot remove region")

// Gossip is this node's membership in the cluster. It is safe for concurrent
// use.
type Gossip struct {
	cfg        Config
	timing     Timing
	name       string // memberlist node name: region/node-id
	metaBytes  []byte
	generation uint64
	log        *slog.Logger
	bridge     *logBridge
	dropped    atomic.Uint64
	adapter    *Transport // cfg.Transport when it is one of ours
	numNodes   atomic.Int64
	ml         *memberlist.Memberlist
	queue      *memberlist.TransmitLimitedQueue
	addr       string

	mu        sync.Mutex
	entries   map[string]*entry // by memberlist node name, this node's included
	removed   map[string]bool   // regions an operator removed
	counter   uint64            // heartbeats sent in this generation
	pending   map[string]bool   // members with a change not yet passed to OnChange
	left      bool
	warnedBig bool

	lifeMu sync.Mutex // orders Leave and Shutdown
	closed bool       // Shutdown was called; guarded by lifeMu

	notify       chan struct{} // wakes the dispatcher; capacity 1
	stop         chan struct{}
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error
}

// entry is what this node knows about one node.
type entry struct {
	known     bool // memberlist reported the node: meta and addr are set
	meta      Meta
	addr      string
	state     State
	since     time.Time
	lastHeard time.Time // when the newest heartbeat (or the join) arrived
	hb        heartbeat // newest heartbeat; zero generation and counter: none yet
}

// New starts gossip for this node. It does not contact anyone: call Join
// with the address of any live member (none for the first node). The caller
// must call Shutdown. Gossip owns cfg.Transport from here on: Shutdown shuts
// it down, and so does New if it fails.
func New(cfg Config) (*Gossip, error) {
	g, err := newGossip(cfg)
	if err != nil && cfg.Transport != nil {
		_ = cfg.Transport.Shutdown()
	}
	return g, err
}

func newGossip(cfg Config) (*Gossip, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	g := &Gossip{
		cfg:       cfg,
		timing:    TimingFor(cfg.MaxRoundTrip),
		name:      cfg.Meta.name(),
		metaBytes: appendMeta(nil, cfg.Meta),
		// A restart of the same node starts a larger generation, so its
		// heartbeats supersede those of its previous life. Members never
		// accept an older heartbeat, so applied vectors never appear to
		// go back; the price is that if the clock steps back by more
		// than the downtime across a restart, members ignore the new
		// life's heartbeats (it shows Suspect and its vector stays at
		// the old, smaller value, which is safe) until it restarts
		// again. Resetting on rejoin was rejected: after a healed
		// partition it lets old heartbeats still in circulation roll
		// vectors back.
		generation: uint64(now.UnixNano()),
		log:        cfg.Logger.With("node", cfg.Meta.name()),
		entries:    make(map[string]*entry),
		removed:    make(map[string]bool),
		pending:    make(map[string]bool),
		notify:     make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	g.bridge = &logBridge{logger: g.log, dropped: &g.dropped}
	g.adapter, _ = cfg.Transport.(*Transport)
	g.entries[g.name] = &entry{known: true, meta: cfg.Meta, state: Alive, since: now, lastHeard: now}
	g.numNodes.Store(1)

	mc := memberlist.DefaultWANConfig()
	mc.Name = g.name
	g.timing.apply(mc)
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		host, port, _ := splitIPPort(cfg.BindAddr) // validated
		mc.BindAddr, mc.BindPort = host, port
	}
	if cfg.AdvertiseAddr != "" {
		host, port, _ := splitIPPort(cfg.AdvertiseAddr) // validated
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = slices.Clone(cfg.SecretKey)
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	d := &delegate{g: g}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	mc.Ping = &pingDelegate{g: g}
	mc.Logger = log.New(g.bridge.writer(), "", 0)
	g.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(g.numNodes.Load()) },
		RetransmitMult: mc.RetransmitMult,
	}

	// The first heartbeat is ready before anyone can ask for state.
	g.beat(now)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start memberlist as %s: %w", g.name, err)
	}
	g.ml = ml
	local := ml.LocalNode()
	g.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	g.mu.Lock()
	g.entries[g.name].addr = g.addr
	g.mu.Unlock()

	g.wg.Add(2)
	go g.heartbeatLoop()
	go g.reconnectLoop()
	if cfg.OnChange != nil {
		g.wg.Add(1)
		go g.dispatchLoop()
	}
	g.log.Info("gossip: started", "addr", g.addr, "encrypted", len(cfg.SecretKey) > 0,
		"max_round_trip", cfg.MaxRoundTrip, "probe_interval", g.timing.ProbeInterval,
		"suspect_after", g.timing.SuspectAfter)
	return g, nil
}

// Join contacts the members at addrs (host:port; any live member will do),
// exchanges full state with each, and returns how many it reached. It fails
// only if none was reached.
func (g *Gossip) Join(addrs ...string) (int, error) {
	n, err := g.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip: join %v: %w (are they up, and do they use the same secret key?)", addrs, err)
	}
	return n, nil
}

// Addr is the gossip address this node advertises (host:port), the one
// others pass to Join. With BindAddr port 0 it carries the port picked.
func (g *Gossip) Addr() string { return g.addr }

// Timing is the timing in use (see TimingFor).
func (g *Gossip) Timing() Timing { return g.timing }

// Members returns every node this node has heard of, itself included,
// sorted by region then node id, whatever their state: dead and departed
// members stay listed (after memberlist itself has reaped them), and members
// of removed regions stay listed with Removed set. A member is forgotten only
// when this process ends, so the stable vector never moves past a region just
// because memberlist stopped tracking its node.
func (g *Gossip) Members() []Member {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.scanLocked(now)
	out := make([]Member, 0, len(g.entries))
	for _, e := range g.entries {
		if e.known {
			out = append(out, g.memberLocked(e))
		}
	}
	slices.SortFunc(out, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.Meta.Region, b.Meta.Region), cmp.Compare(a.Meta.NodeID, b.Meta.NodeID))
	})
	return out
}

// StableVector is StableVector(g.Members()): what every region not removed
// has applied, as far as this node has heard.
func (g *Gossip) StableVector() clocks.Vector { return StableVector(g.Members()) }

// Remove declares region permanently gone: its members stop holding back the
// stable vector, on this node at once and on the others as the removal
// spreads by gossip. It cannot be undone; a region that comes back must
// rejoin under a new name, since the cluster may have discarded log entries
// it never applied. A node cannot remove its own region.
func (g *Gossip) Remove(region string) error {
	if err := clocks.ValidateRegion(region); err != nil {
		return fmt.Errorf("%w: %w", ErrCannotRemove, err)
	}
	if region == g.cfg.Meta.Region {
		return fmt.Errorf("%w %q: it is this node's own region", ErrCannotRemove, region)
	}
	g.mu.Lock()
	added, err := g.addRemovedLocked(region)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if added {
		g.log.Warn("gossip: region removed by operator; it no longer holds back the stable vector", "region", region)
	}
	g.queueRemoved(region)
	return nil
}

// DroppedPackets counts inbound gossip dropped because it failed to decrypt
// or decode: packets and streams memberlist rejected (wrong or missing key,
// garbage, another protocol), Causeway messages that did not decode, and
// empty packets. See logbridge.go for how memberlist's rejections are
// counted.
func (g *Gossip) DroppedPackets() uint64 {
	n := g.dropped.Load()
	if g.adapter != nil {
		n += g.adapter.Dropped()
	}
	return n
}

// Leave announces this node's departure and waits up to timeout for the
// announcement to go out. Others then see it Left rather than Dead (a member
// that the announcement does not reach before Shutdown sees it Dead). Call
// Shutdown afterwards.
func (g *Gossip) Leave(timeout time.Duration) error {
	// memberlist panics on Leave after Shutdown; lifeMu keeps the two apart.
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.closed {
		return errors.New("gossip: leave after shutdown")
	}
	g.mu.Lock()
	var msg []byte
	if !g.left {
		// A last heartbeat, flagged, tells members that the departure
		// memberlist is about to announce is not a failure. It is queued
		// before memberlist's own announcement, which Leave waits for,
		// and so goes out with or before it.
		g.left = true
		g.counter++
		self := g.entries[g.name]
		self.hb.counter = g.counter
		self.hb.leaving = true
		msg = g.heartbeatMsgLocked(self.hb)
	}
	g.mu.Unlock()
	if msg != nil {
		g.queue.QueueBroadcast(&broadcast{name: "hb/" + g.name, msg: msg})
	}
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip without announcing it (others will detect the
// failure unless Leave was called first), closes the transport and waits for
// this package's goroutines. It is idempotent.
func (g *Gossip) Shutdown() error {
	g.shutdownOnce.Do(func() {
		g.lifeMu.Lock()
		g.closed = true
		g.lifeMu.Unlock()
		close(g.stop)
		if err := g.ml.Shutdown(); err != nil {
			g.shutdownErr = fmt.Errorf("gossip: shutdown: %w", err)
		}
		g.wg.Wait()
	})
	return g.shutdownErr
}

func (g *Gossip) heartbeatLoop() {
	defer g.wg.Done()
	ticker := time.NewTicker(g.timing.HeartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-g.stop:
			return
		case now := <-ticker.C:
			g.beat(now)
		}
	}
}

// reconnectLoop periodically rejoins dead members, so that the two sides of
// a healed partition find each other again (see Timing.ReconnectInterval).
func (g *Gossip) reconnectLoop() {
	defer g.wg.Done()
	ticker := time.NewTicker(g.timing.ReconnectInterval)
	defer ticker.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-ticker.C:
		}
		g.mu.Lock()
		var addrs []string
		for name, e := range g.entries {
			if name != g.name && e.known && e.state == Dead && !g.removed[e.meta.Region] && e.addr != "" {
				addrs = append(addrs, e.addr)
			}
		}
		left := g.left
		g.mu.Unlock()
		if left {
			continue
		}
		for _, addr := range addrs {
			select {
			case <-g.stop:
				return
			default:
			}
			// One at a time: each costs a TCP push/pull, and a member
			// still unreachable costs up to TCPTimeout.
			if _, err := g.ml.Join([]string{addr}); err != nil {
				g.log.Debug("gossip: dead member still unreachable", "addr", addr, "err", err)
			} else {
				g.log.Info("gossip: reached a dead member again", "addr", addr)
			}
		}
	}
}

// beat publishes this node's heartbeat and applied vector, and turns members
// without a recent heartbeat Suspect.
func (g *Gossip) beat(now time.Time) {
	applied := clocks.Vector{}
	if g.cfg.Applied != nil {
		applied = g.cfg.Applied().Clone()
	}
	g.mu.Lock()
	g.scanLocked(now)
	if g.left {
		g.mu.Unlock()
		return
	}
	self := g.entries[g.name]
	if err := applied.Validate(); err != nil {
		// Peers would reject the heartbeat; keep the last good vector
		// and say why.
		g.log.Error("gossip: applied vector is invalid; gossiping the previous one", "err", err)
		applied = self.hb.applied
	}
	g.counter++
	hb := heartbeat{name: g.name, generation: g.generation, counter: g.counter, applied: applied, hasApplied: true}
	if !self.hb.applied.Equal(applied) || self.hb.counter == 0 {
		g.markLocked(g.name)
	}
	self.hb = hb
	self.lastHeard = now
	msg := g.heartbeatMsgLocked(hb)
	g.mu.Unlock()
	// Never call the queue with g.mu held: the queue calls NumNodes under
	// its own lock.
	g.queue.QueueBroadcast(&broadcast{name: "hb/" + g.name, msg: msg})
}

// heartbeatMsgLocked encodes this node's heartbeat for a broadcast, without
// the vector if it would not fit in a gossip packet.
func (g *Gossip) heartbeatMsgLocked(hb heartbeat) []byte {
	msg := appendHeartbeatMsg(nil, hb)
	if len(msg) <= maxHeartbeatBytes {
		return msg
	}
	if !g.warnedBig {
		g.warnedBig = true
		g.log.Warn("gossip: applied vector too large for a gossip packet; it spreads by push/pull only, every PushPullInterval",
			"bytes", len(msg), "limit", maxHeartbeatBytes, "push_pull_interval", g.timing.PushPullInterval)
	}
	hb.applied, hb.hasApplied = nil, false
	return appendHeartbeatMsg(nil, hb)
}

// scanLocked turns alive members with no heartbeat for SuspectAfter Suspect.
func (g *Gossip) scanLocked(now time.Time) {
	for name, e := range g.entries {
		if name == g.name || !e.known || e.state != Alive {
			continue
		}
		if deadline := e.lastHeard.Add(g.timing.SuspectAfter); now.After(deadline) {
			e.state, e.since = Suspect, deadline
			g.markLocked(name)
		}
	}
}

// mergeHeartbeatLocked records h if it is newer than what is known of its
// node, and reports whether it was.
func (g *Gossip) mergeHeartbeatLocked(h heartbeat, now time.Time) bool {
	if h.name == g.name {
		return false // our own, relayed back
	}
	e := g.entries[h.name]
	if e == nil {
		if len(g.entries) >= maxEntries {
			return false
		}
		e = &entry{}
		g.entries[h.name] = e
	}
	if !h.newerThan(e.hb) {
		return false
	}
	if !h.hasApplied {
		// Sent without its vector (too large for a packet): keep the
		// vector known from earlier.
		h.applied, h.hasApplied = e.hb.applied, e.hb.hasApplied
	}
	changed := h.hasApplied && (!e.hb.hasApplied || !e.hb.applied.Equal(h.applied))
	e.hb = h
	e.lastHeard = now
	switch {
	case e.known && e.state == Suspect:
		e.state, e.since = Alive, now
		changed = true
	case e.known && e.state == Dead && h.leaving:
		// memberlist's announcement of the departure came first.
		e.state = Left
		changed = true
	}
	if changed && e.known {
		g.markLocked(h.name)
	}
	return true
}

// addRemovedLocked records a removed region; it reports whether it is new.
func (g *Gossip) addRemovedLocked(region string) (bool, error) {
	if g.removed[region] {
		return false, nil
	}
	if len(g.removed) >= maxRemoved {
		return false, fmt.Errorf("%w %q: %d regions are already removed, the most this node remembers", ErrCannotRemove, region, maxRemoved)
	}
	g.removed[region] = true
	for name, e := range g.entries {
		if e.known && e.meta.Region == region {
			g.markLocked(name)
		}
	}
	return true, nil
}

// applyMessage merges a decoded message. Heartbeats that arrived as
// broadcasts (relay) and newly learnt removals are passed on, so that
// information spreads epidemically even where memberlist's random fan-out
// missed a member.
func (g *Gossip) applyMessage(msg message, relay bool) {
	now := time.Now()
	var relayHB []heartbeat
	var newRemoved []string
	g.mu.Lock()
	for _, h := range msg.heartbeats {
		if g.mergeHeartbeatLocked(h, now) && relay {
			relayHB = append(relayHB, h)
		}
	}
	for _, r := range msg.removed {
		added, err := g.addRemovedLocked(r)
		if err != nil {
			g.log.Warn("gossip: ignoring removal", "err", err)
			continue
		}
		if added {
			newRemoved = append(newRemoved, r)
		}
		if added && r == g.cfg.Meta.Region {
			// Removed from elsewhere: the other regions may now
			// discard log entries this one has not applied, so it
			// must be rebuilt rather than rejoin.
			g.log.Error("gossip: an operator removed this node's own region; other regions may discard log entries it has not applied",
				"region", r)
		}
	}
	g.mu.Unlock()
	for _, h := range relayHB {
		g.queue.QueueBroadcast(&broadcast{name: "hb/" + h.name, msg: appendHeartbeatMsg(nil, h)})
	}
	for _, r := range newRemoved {
		g.log.Warn("gossip: learnt that an operator removed a region; it no longer holds back the stable vector", "region", r)
		g.queueRemoved(r)
	}
}

func (g *Gossip) queueRemoved(region string) {
	g.queue.QueueBroadcast(&broadcast{name: "rm/" + region, msg: appendRemovedMsg(nil, []string{region})})
}

// localState is the full state sent in a push/pull.
func (g *Gossip) localState() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	var hs []heartbeat
	for _, e := range g.entries {
		if e.hb.counter != 0 || e.hb.generation != 0 {
			hs = append(hs, e.hb)
		}
	}
	slices.SortFunc(hs, func(a, b heartbeat) int { return cmp.Compare(a.name, b.name) })
	removed := make([]string, 0, len(g.removed))
	for r := range g.removed {
		removed = append(removed, r)
	}
	slices.Sort(removed)
	return appendStateMsg(nil, hs, removed)
}

// rejectInput counts and logs a Causeway message that did not decode.
func (g *Gossip) rejectInput(what string, err error) {
	g.bridge.reject(fmt.Sprintf("%s: %v", what, err))
}

// markLocked queues a notification of name's current state for OnChange.
func (g *Gossip) markLocked(name string) {
	if g.cfg.OnChange == nil {
		return
	}
	g.pending[name] = true
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

func (g *Gossip) dispatchLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.notify:
		}
		g.mu.Lock()
		names := make([]string, 0, len(g.pending))
		for name := range g.pending {
			names = append(names, name)
		}
		clear(g.pending)
		slices.Sort(names)
		members := make([]Member, 0, len(names))
		for _, name := range names {
			if e := g.entries[name]; e != nil && e.known {
				members = append(members, g.memberLocked(e))
			}
		}
		g.mu.Unlock()
		for _, m := range members {
			g.cfg.OnChange(m)
		}
	}
}

func (g *Gossip) memberLocked(e *entry) Member {
	m := Member{
		Meta:    e.meta,
		Addr:    e.addr,
		State:   e.state,
		Since:   e.since,
		Removed: g.removed[e.meta.Region],
	}
	if e.hb.hasApplied {
		m.Applied = e.hb.applied.Clone()
	}
	return m
}

// recountLocked updates the member count the broadcast queue scales
// retransmissions by.
func (g *Gossip) recountLocked() {
	n := 0
	for _, e := range g.entries {
		if e.known && (e.state == Alive || e.state == Suspect) {
			n++
		}
	}
	g.numNodes.Store(int64(n))
}

// broadcast is a message for memberlist's broadcast queue. Broadcasts with
// the same name replace each other, so the queue holds at most one heartbeat
// per node and one removal per region.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	nb, ok := o.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}
