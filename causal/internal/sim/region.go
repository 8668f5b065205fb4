package sim

import (
	"errors"
	"slices"
	"time"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// region is one simulated region: durable state that survives crashes, and
// a causal.Replica that does not.
type region struct {
	w       *world
	idx     int
	name    string
	skewMs  int64 // physical clock offset from virtual time; redrawn at restart
	fast    bool  // the physical clock runs ahead by more than the max offset
	up      bool
	epoch   int // changes at every crash and restart; messages addressed to an older epoch are lost
	durable durableState
	replica *causal.Replica // nil while down
	clock   *clocks.Clock   // the replica's clock
	join    *causal.Join    // non-nil while joining after a disk loss: no client is served
	// lostWrites: a subscriber proved this region lost writes it had
	// acknowledged (causal.CheckResume); a real region stops writing.
	lostWrites bool
	// draining: taken out of service before it loses its disk
	// (loseSomeDisk); cleared by a crash or restart.
	draining bool

	// What the region has heard since it started (volatile, as in the
	// real node): each subscriber's acknowledgement of this region's
	// writes, each region's applied vector (gossip), and each origin's
	// time when this region last had all its writes.
	acks        map[string]uint64
	peerApplied map[string]clocks.Vector
	caughtUp    map[string]uint64
}

// durableState is what a region's store persists. Each change below is one
// atomic batch, like the real region's Pebble batch: a local write (log
// entry, versions, applied vector, clock) or a remote write (versions,
// applied vector).
type durableState struct {
	applied    clocks.Vector
	data       map[string][]causal.Version // key -> siblings, newest first
	log        []*causal.Write             // this region's own writes; log[i].Seq == logBase+i+1
	logBase    uint64                      // own writes before the log: recovered from snapshots by a join
	lastIssued clocks.Timestamp            // greatest timestamp issued here, restored into the clock
	joining    bool                        // a join is under way: set when the disk is lost, cleared when it ends
	// collected: the tombstone collected for each key that has no version
	// since. A client reads such a key as deleted; the simulator keeps the
	// tombstone to name that answer exactly.
	collected map[string]causal.Version
	// feed is the change feed (watch.go): every write applied since
	// feedFloor, in apply order.
	feed      []feedEntry
	feedFloor clocks.Vector
}

func newDurableState() durableState {
	return durableState{applied: clocks.Vector{}, data: map[string][]causal.Version{}, collected: map[string]causal.Version{}}
}

// head is the sequence number of this region's newest write.
func (d *durableState) head() uint64 { return d.logBase + uint64(len(d.log)) }

// boot starts the region from durable state with a new physical clock
// offset.
func (r *region) boot() {
	maxSkew, maxOffset := r.w.cfg.MaxSkew.Milliseconds(), r.w.cfg.MaxOffset.Milliseconds()
	r.skewMs = r.w.between(-maxSkew, maxSkew)
	if r.fast {
		r.skewMs = r.w.between(maxOffset+1, 2*maxOffset+1)
	}
	r.clock = clocks.NewClock(r.name, r.physical, r.w.cfg.MaxOffset)
	r.clock.Restore(r.durable.lastIssued)
	r.replica = causal.NewReplica(causal.Config{
		Region:                 r.name,
		Clock:                  r.clock,
		Applied:                r.durable.applied.Clone(),
		MaxPending:             r.w.cfg.MaxPending,
		UnsafeSkipDependencies: r.w.cfg.UnsafeSkipDependencies,
	})
	r.acks, r.peerApplied, r.caughtUp = map[string]uint64{}, map[string]clocks.Vector{}, map[string]uint64{}
	r.join = nil
	r.draining = false
	if r.durable.joining {
		// Which snapshots were merged is not durable: a restarted join
		// merges them all again (merging is idempotent).
		r.join = causal.NewJoin(r.name)
	}
	r.up = true
	r.epoch++
}

func (r *region) physical() time.Time {
	return epoch0.Add(time.Duration(r.w.now+r.skewMs) * time.Millisecond)
}

// crash loses everything volatile: the replica and its buffer of pending
// writes, and every message on its way to the region.
func (r *region) crash() {
	r.w.stats.Crashes++
	r.stop()
}

// stop ends the running process: the replica and its buffer go, messages
// on their way to it are lost, and it restarts after a downtime.
func (r *region) stop() {
	r.w.stats.ClockSkews += r.replica.ClockSkews()
	r.replica = nil
	r.up = false
	r.epoch++
	r.w.after(r.w.between(r.w.cfg.MinDowntimeMs, r.w.cfg.MaxDowntimeMs), r.restart)
}

func (r *region) restart() {
	if !r.up {
		r.boot()
	}
}

// canLoseDisk: every write this region holds, its own and other regions',
// is held by another region too, so losing the disk loses no write (see
// Config.DiskLossProb).
func (r *region) canLoseDisk() bool {
	if !r.up || r.join != nil {
		return false
	}
	for origin, seq := range r.durable.applied {
		held := false
		for _, o := range r.w.regions {
			held = held || (o != r && o.durable.applied.Get(origin) >= seq)
		}
		if !held {
			return false
		}
	}
	return true
}

// loseDisk stops the region and empties its durable state; it restarts
// later as the README's recovery says: with no data, joining the cluster.
func (r *region) loseDisk() {
	r.w.stats.DiskLosses++
	r.lostWrites = false
	r.draining = false
	r.durable = newDurableState()
	r.durable.joining = !r.w.cfg.UnsafeRejoinWithoutSnapshot
	r.stop()
}

// serving reports whether the region may serve clients: it is up, not
// joining, and has not lost writes.
func (r *region) serving() bool { return r.up && r.join == nil && !r.lostWrites && !r.draining }

// peers is every other region (none is ever removed in the simulation).
func (r *region) peers() []string {
	out := make([]string, 0, len(r.w.regions)-1)
	for _, o := range r.w.regions {
		if o != r {
			out = append(out, o.name)
		}
	}
	return out
}

// takeSnapshot copies the region's state (sibling slices are replaced, never
// mutated, so sharing them is safe).
func (r *region) takeSnapshot() *snapshot {
	r.w.stats.SnapshotsSent++
	data := make(map[string][]causal.Version, len(r.durable.data))
	for k, v := range r.durable.data {
		data[k] = v
	}
	return &snapshot{applied: r.durable.applied.Clone(), data: data}
}

// mergeSnapshot stores the snapshot of region from, in one batch: each
// version joins its key's siblings as a replicated write does, and the
// applied vector becomes the merge (Replica.Bootstrap). A joining region
// counts the snapshot (causal.Join) and serves once it has every region's.
func (r *region) mergeSnapshot(from int, snap *snapshot) {
	if r.durable.applied.Dominates(snap.applied) && r.join == nil {
		return // nothing new: a duplicate or a stale answer
	}
	r.w.stats.SnapshotsMerged++
	applied := r.durable.applied.Clone()
	for key, versions := range snap.data {
		next, _, _ := causal.MergeSnapshot(r.durable.data[key], applied, versions, snap.applied)
		r.setSiblings(key, next)
	}
	r.durable.applied.MergeInPlace(snap.applied)
	r.replica.Bootstrap(snap.applied)
	r.resetFeed()
	if r.join == nil {
		return
	}
	// While joining the log is empty: the writes of this region's earlier
	// life that survive are in the snapshots, and the next write follows
	// the greatest of them.
	r.durable.logBase = r.durable.applied.Get(r.name)
	for _, versions := range snap.data {
		for _, v := range versions {
			r.durable.lastIssued = later(r.durable.lastIssued, v.Timestamp)
		}
	}
	r.join.Merged(r.w.regions[from].name, snap.applied)
	if r.join.Done(r.peers()) {
		// Its next write orders after every write of its earlier life.
		r.clock.Restore(r.durable.lastIssued)
		r.durable.joining = false
		r.join = nil
		r.w.stats.Joins++
	}
}

// resumeTick asks every other region to resume its stream from what this
// region has applied, as the real replication stream does after a
// reconnect. It is the only repair for lost messages and refused writes.
func (r *region) resumeTick() {
	switch {
	case r.up && r.join != nil:
		for _, name := range r.join.Missing(r.peers()) {
			r.w.send(r.idx, r.w.regionIndex(name), message{snapshotReq: true, applied: r.durable.applied.Clone()})
		}
	case r.up:
		for _, o := range r.w.regions {
			if o != r {
				r.w.send(r.idx, o.idx, message{resumeFrom: r.replica.AppliedSeq(o.name) + 1, applied: r.durable.applied.Clone()})
			}
		}
	}
	r.w.after(r.w.cfg.ResumeEveryMs+r.w.rng.Int64N(r.w.cfg.ResumeEveryMs/2+1), r.resumeTick)
}

// answerResume answers a subscriber asking for this region's writes from
// position from (causal.ResumeAt): a window of the log, "truncated", or
// nothing new; then its head, as the real stream's heartbeat does. The
// request also acknowledges the writes before from.
func (r *region) answerResume(receiver int, from uint64) {
	from = max(from, 1)
	head := r.durable.head()
	sub := r.w.regions[receiver].name
	logFirst := uint64(0)
	if len(r.durable.log) > 0 {
		logFirst = r.durable.logBase + 1
	}
	decision, err := causal.ResumeAt(r.name, head, logFirst, from)
	if decision != causal.ResumeLostWrites {
		r.acks[sub] = max(r.acks[sub], from-1) // not beyond head: checked above
	}
	switch decision {
	case causal.ResumeLostWrites:
		switch {
		case r.join != nil, r.lostWrites:
			// Joining: the snapshots that tell how far its writes went
			// are still coming.
		case r.w.cfg.UnsafeRejoinWithoutSnapshot:
			// Causeway before causal.Join had no such check: the origin
			// waited for its head to reach from and went on writing.
			r.w.stats.LostWritesDetected++
		default:
			// A correct join never lets this happen.
			r.lostWrites = true
			r.w.stats.LostWritesDetected++
			r.w.fail(KindProtocolError, "", "%s: %v", r.name, err)
		}
		return
	case causal.ResumeSnapshot:
		if !r.w.cfg.UnsafeResumeFromLogStart {
			r.w.send(r.idx, receiver, message{truncated: true})
			return
		}
		// The broken variant: answer from the log's start, past the gap
		// (with an empty log, nothing until the next write).
		from = max(logFirst, head+1)
		fallthrough
	case causal.ResumeSend:
		for seq := from; seq < from+uint64(r.w.cfg.WindowEntries) && seq <= head; seq++ {
			r.w.send(r.idx, receiver, message{entry: r.durable.log[seq-r.durable.logBase-1]})
		}
	}
	r.w.send(r.idx, receiver, message{isHead: true, head: head, headSentMs: uint64(r.physical().UnixMilli())})
}

// heardHead records an origin's head report: when this region has applied
// every write the origin had issued, the origin's time then bounds the
// timestamps of every write still to come from it.
func (r *region) heardHead(from int, head, sentMs uint64) {
	origin := r.w.regions[from].name
	if head <= r.durable.applied.Get(origin) {
		r.caughtUp[origin] = max(r.caughtUp[origin], causal.CaughtUpWallMs(sentMs, uint64(r.physical().UnixMilli())))
	}
}

// gcTick truncates the log to what every subscriber acknowledged
// (causal.TruncationPoint) and collects the tombstones every region has
// (causal.Collectable), as the real node's garbage collection does.
func (r *region) gcTick() {
	if r.up && r.join == nil {
		r.truncateLog()
		r.collectTombstones()
		r.truncateFeed()
	}
	r.w.after(r.w.cfg.GCEveryMs, r.gcTick)
}

func (r *region) truncateLog() {
	upTo := causal.TruncationPoint(r.durable.head(), r.peers(), r.acks)
	if r.w.cfg.UnsafeResumeFromLogStart {
		// The broken variant truncates past the slowest subscriber.
		for _, a := range r.acks {
			upTo = max(upTo, min(a, r.durable.head()))
		}
	}
	if upTo > r.durable.logBase {
		r.durable.log = r.durable.log[upTo-r.durable.logBase:]
		r.durable.logBase = upTo
		r.w.stats.LogTruncations++
	}
}

// stable is the element-wise minimum of every region's applied vector as
// this region last heard it (a region not heard from holds it at zero).
func (r *region) stable() clocks.Vector {
	st := r.durable.applied.Clone()
	for _, peer := range r.peers() {
		heard := r.peerApplied[peer]
		for origin, seq := range st {
			st[origin] = min(seq, heard.Get(origin))
		}
	}
	return st
}

func (r *region) collectTombstones() {
	caught := make([]uint64, 0, len(r.w.regions)-1)
	for _, peer := range r.peers() {
		caught = append(caught, r.caughtUp[peer])
	}
	safe := causal.SafeWallMs(uint64(r.physical().UnixMilli()), caught, uint64(r.w.cfg.MaxOffset.Milliseconds()))
	stable := r.stable()
	for _, key := range sortedKeys(r.durable.data) {
		siblings := r.durable.data[key]
		var keep []causal.Version
		for i := range siblings {
			t := &siblings[i]
			collect := causal.Collectable(t, siblings, stable, safe)
			if r.w.cfg.UnsafeCollectUnstable {
				// The broken variant: any lone tombstone, at once.
				collect = len(siblings) == 1 && t.Kind == causal.KindTombstone
			}
			if !collect {
				keep = append(keep, *t)
				continue
			}
			r.w.stats.TombstonesCollected++
			if len(siblings) == 1 {
				r.durable.collected[key] = *t
			}
		}
		if len(keep) == 0 {
			delete(r.durable.data, key)
		} else if len(keep) < len(siblings) {
			r.durable.data[key] = keep
		}
	}
}

// receive hands a replicated write to the replica and persists what became
// applicable.
func (r *region) receive(wr *causal.Write) {
	if wr.Seq > r.replica.AppliedSeq(wr.Origin()) {
		// Decoding is only worth simulating for writes the replica may
		// keep; it ignores the others without retaining them.
		wr = cloneWrite(wr)
	}
	err := r.replica.Receive(wr)
	switch {
	case errors.Is(err, causal.ErrPendingFull):
		r.w.stats.PendingFull++ // dropped; a later resume sends it again
		return
	case err != nil:
		r.w.fail(KindProtocolError, "", "%s refused write %d of %s: %v", r.name, wr.Seq, wr.Origin(), err)
		return
	}
	for _, ready := range r.replica.Ready() {
		origin := ready.Origin()
		if want := r.durable.applied.Get(origin) + 1; ready.Seq != want {
			r.w.fail(KindProtocolError, "", "%s: Ready returned write %d of %s, want write %d", r.name, ready.Seq, origin, want)
			continue
		}
		r.apply(ready)
		r.w.stats.WritesApplied++
	}
}

// persistLocal makes a local write durable: the log entry, its versions,
// the applied vector and the clock, in one batch.
func (r *region) persistLocal(wr *causal.Write) {
	if want := r.durable.head() + 1; wr.Seq != want {
		r.w.fail(KindProtocolError, "", "%s: Local issued write %d, want %d", r.name, wr.Seq, want)
	}
	r.durable.log = append(r.durable.log, wr)
	r.durable.lastIssued = wr.Timestamp
	r.apply(wr)
}

// apply resolves each op of wr into its key's siblings and counts wr as
// applied.
func (r *region) apply(wr *causal.Write) {
	for _, op := range wr.Ops {
		next, _, _ := causal.Resolve(r.durable.data[op.Key], causal.VersionOf(wr, op))
		r.setSiblings(op.Key, next)
	}
	r.durable.applied[wr.Origin()] = wr.Seq
	r.recordFeed(wr)
}

// setSiblings stores a key's sibling set; a key with versions again is no
// longer read as its collected tombstone.
func (r *region) setSiblings(key string, siblings []causal.Version) {
	if len(siblings) == 0 {
		delete(r.durable.data, key)
		return
	}
	r.durable.data[key] = siblings
	delete(r.durable.collected, key)
}

// cloneWrite is what the receiver decodes from the wire: nothing is shared
// with the sender.
func cloneWrite(wr *causal.Write) *causal.Write {
	c := *wr
	c.Vector = wr.Vector.Clone()
	c.Ops = slices.Clone(wr.Ops)
	for i := range c.Ops {
		c.Ops[i].Value = slices.Clone(c.Ops[i].Value)
	}
	return &c
}
