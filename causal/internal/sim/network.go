package sim

import (
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// message is a resume request (receiver to origin), one log entry (origin
// to receiver), the origin's answer that its log no longer holds what was
// asked (truncated), a request for a snapshot, or a snapshot.
type message struct {
	resumeFrom  uint64        // non-zero: resume the stream from this sequence number
	entry       *causal.Write // one replicated write
	truncated   bool          // the origin's log starts after what was asked: take its snapshot
	snapshotReq bool          // send me your snapshot
	snapshot    *snapshot     // a consistent copy of a region
	// applied rides on resume and snapshot requests: the sender's applied
	// vector, as gossip spreads it (for the stable vector).
	applied clocks.Vector
	// head, with headSentMs: the origin's newest write and its physical
	// time when it said so (a heartbeat, after every answer to a resume).
	head       uint64
	headSentMs uint64
	isHead     bool
}

// snapshot is a consistent copy of a region's state: the writes its vector
// names, as the versions they left (what ReplicationService.Snapshot sends).
type snapshot struct {
	applied clocks.Vector
	data    map[string][]causal.Version
}

// send hands m to the link from -> to: it may be cut, lose m, delay it by
// the link's delay plus jitter (so messages overtake each other), or
// deliver it twice.
func (w *world) send(from, to int, m message) {
	w.stats.MessagesSent++
	switch {
	case w.cut[from][to] > 0:
		w.stats.MessagesCut++
		return
	case w.chance(w.cfg.LossProb):
		w.stats.MessagesLost++
		return
	}
	copies := 1
	if w.chance(w.cfg.DupProb) {
		w.stats.MessagesDuplicated++
		copies = 2
	}
	epoch := w.regions[to].epoch
	for range copies {
		w.after(w.linkMs[from][to]+w.rng.Int64N(w.cfg.JitterMs+1), func() { w.deliver(from, to, epoch, m) })
	}
}

func (w *world) deliver(from, to, epoch int, m message) {
	r := w.regions[to]
	switch {
	case !r.up || r.epoch != epoch:
		w.stats.MessagesToDown++
	case w.cut[from][to] > 0: // the connection broke while m was in flight
		w.stats.MessagesCut++
	case m.entry != nil:
		r.receive(m.entry)
	case m.truncated:
		w.send(to, from, message{snapshotReq: true, applied: r.durable.applied.Clone()})
	case m.isHead:
		r.heardHead(from, m.head, m.headSentMs)
	case m.snapshotReq:
		r.peerApplied[w.regions[from].name] = m.applied
		w.send(to, from, message{snapshot: r.takeSnapshot()})
	case m.snapshot != nil:
		r.mergeSnapshot(from, m.snapshot)
	default:
		r.peerApplied[w.regions[from].name] = m.applied
		r.answerResume(from, m.resumeFrom)
	}
}

// partition is a set of cut directed links, healed together.
type partition struct {
	links  [][2]int
	active bool
}

// startPartition cuts links: one region from all others, one link both
// ways, or one link one way (asymmetric partitions happen: a firewall rule,
// a half-open connection). It heals later on its own.
func (w *world) startPartition() {
	if w.healing {
		return
	}
	n := len(w.regions)
	a := w.rng.IntN(n)
	b := (a + 1 + w.rng.IntN(n-1)) % n
	p := &partition{active: true}
	switch w.rng.IntN(3) {
	case 0:
		for o := range n {
			if o != a {
				p.links = append(p.links, [2]int{a, o}, [2]int{o, a})
			}
		}
	case 1:
		p.links = [][2]int{{a, b}, {b, a}}
	default:
		p.links = [][2]int{{a, b}}
	}
	for _, l := range p.links {
		w.cut[l[0]][l[1]]++
	}
	w.partitions = append(w.partitions, p)
	w.stats.Partitions++
	w.after(w.between(w.cfg.MinPartitionMs, w.cfg.MaxPartitionMs), func() { w.healPartition(p) })
}

func (w *world) healPartition(p *partition) {
	if !p.active {
		return
	}
	p.active = false
	for _, l := range p.links {
		w.cut[l[0]][l[1]]--
	}
}
