package gossip

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. It is a separate type so that
// the callbacks are not part of Gossip's API.
//
// memberlist calls the EventDelegate and AliveDelegate methods with its node
// lock held: they touch only Gossip's own state and never call back into
// memberlist.
type delegate struct{ g *Gossip }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
)

// NodeMeta implements memberlist.Delegate. New checked that the metadata
// fits in MaxMetaSize, memberlist's limit.
func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.g.metaBytes) > limit {
		// Unreachable while limit is memberlist.MetaMaxSize; an empty
		// meta makes peers ignore this node rather than memberlist
		// panic.
		d.g.log.Error("gossip: node metadata exceeds memberlist's limit", "bytes", len(d.g.metaBytes), "limit", limit)
		return nil
	}
	return d.g.metaBytes
}

// NotifyMsg implements memberlist.Delegate: a broadcast arrived.
func (d *delegate) NotifyMsg(b []byte) {
	msg, err := decodeMessage(b)
	if err != nil {
		d.g.rejectInput("gossip broadcast", err)
		return
	}
	if msg.kind == kindState {
		d.g.rejectInput("gossip broadcast", fmt.Errorf("%w: full state arrived as a broadcast", errCorrupt))
		return
	}
	d.g.applyMessage(msg, true)
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.g.queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: every heartbeat this node knows
// and the removed regions, for a push/pull.
func (d *delegate) LocalState(join bool) []byte { return d.g.localState() }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState(b []byte, join bool) {
	if len(b) == 0 {
		return // a peer with nothing to say (memberlist sends no state then)
	}
	msg, err := decodeMessage(b)
	if err != nil {
		d.g.rejectInput("gossip push/pull state", err)
		return
	}
	d.g.applyMessage(msg, false)
}

// NotifyAlive implements memberlist.AliveDelegate: a node whose metadata is
// not Causeway's (or not this version's), or does not match its name, is
// never taken in as a peer.
func (d *delegate) NotifyAlive(peer *memberlist.Node) error {
	meta, err := decodeMeta(peer.Meta)
	if err != nil {
		return err
	}
	if meta.name() != peer.Name {
		return fmt.Errorf("%w: node %q carries metadata of %q", errCorrupt, peer.Name, meta.name())
	}
	return nil
}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.g.nodeAlive(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.g.nodeAlive(n) }

// NotifyLeave implements memberlist.EventDelegate: n failed or left.
// memberlist does not say which (the Node it passes always reads
// StateAlive), so a node that calls Leave says so in its last heartbeat.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	g := d.g
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[n.Name]
	if e == nil || !e.known {
		return
	}
	state := Dead
	if e.hb.leaving || (n.Name == g.name && g.left) {
		state = Left
	}
	if e.state == state {
		return
	}
	e.state, e.since = state, now
	g.recountLocked()
	g.markLocked(n.Name)
	if state == Dead {
		// The start of an outage (or a partition) as this node sees it;
		// "gossip: member alive" is its end.
		g.log.Warn("gossip: member dead: unreachable from this region (the causal tier keeps serving; the linearizable tier needs a quorum)",
			"member", n.Name, "region", e.meta.Region)
		return
	}
	g.log.Info("gossip: member "+state.String(), "member", n.Name, "region", e.meta.Region)
}

// nodeAlive records that memberlist considers n alive, with its current
// metadata (a join, a rejoin, or a metadata update).
func (g *Gossip) nodeAlive(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		// NotifyAlive lets no such node in; memberlist's own local node
		// and push/pull merges take the same path, so this is a bug.
		g.log.Error("gossip: member with undecodable metadata", "member", n.Name, "err", err)
		return
	}
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[n.Name]
	if e == nil {
		if len(g.entries) >= maxEntries {
			g.log.Error("gossip: too many members; ignoring one", "member", n.Name, "limit", maxEntries)
			return
		}
		e = &entry{}
		g.entries[n.Name] = e
	}
	changed := !e.known || e.meta != meta || e.addr != addr
	if !e.known || e.state == Dead || e.state == Left {
		// Back from the dead (a healed partition, a restart): its
		// next failure is not a departure unless it says so again.
		e.hb.leaving = false
		e.state, e.since, e.lastHeard = Alive, now, now
		changed = true
		g.log.Info("gossip: member alive", "member", n.Name, "addr", addr)
	}
	e.known, e.meta, e.addr = true, meta, addr
	g.recountLocked()
	if changed {
		g.markLocked(n.Name)
	}
}
