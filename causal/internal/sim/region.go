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
}

// durableState is what a region's store persists. Each change below is one
// atomic batch, like the real region's Pebble batch: a local write (log
// entry, versions, applied vector, clock) or a remote write (versions,
// applied vector).
type durableState struct {
	applied    clocks.Vector
	data       map[string][]causal.Version // key -> siblings, newest first
	log        []*causal.Write             // this region's own writes; log[i].Seq == i+1
	lastIssued clocks.Timestamp            // greatest timestamp issued here, restored into the clock
}

// boot starts the region from durable state with a new physical clock
// offset.
func (r *region) boot() {
	maxSkew, maxOffset := r.w.cfg.MaxSkew.Milliseconds(), r.w.cfg.MaxOffset.Milliseconds()
	r.skewMs = r.w.between(-maxSkew, maxSkew)
	if r.fast {
		r.skewMs = r.w.between(maxOffset+1, 2*maxOffset+1)
	}
	clock := clocks.NewClock(r.name, r.physical, r.w.cfg.MaxOffset)
	clock.Restore(r.durable.lastIssued)
	r.replica = causal.NewReplica(causal.Config{
		Region:                 r.name,
		Clock:                  clock,
		Applied:                r.durable.applied.Clone(),
		MaxPending:             r.w.cfg.MaxPending,
		UnsafeSkipDependencies: r.w.cfg.UnsafeSkipDependencies,
	})
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

// resumeTick asks every other region to resume its stream from what this
// region has applied, as the real replication stream does after a
// reconnect. It is the only repair for lost messages and refused writes.
func (r *region) resumeTick() {
	if r.up {
		for _, o := range r.w.regions {
			if o != r {
				r.w.send(r.idx, o.idx, message{resumeFrom: r.replica.AppliedSeq(o.name) + 1})
			}
		}
	}
	r.w.after(r.w.cfg.ResumeEveryMs+r.w.rng.Int64N(r.w.cfg.ResumeEveryMs/2+1), r.resumeTick)
}

// answerResume sends to receiver a window of this region's log from
// position from.
func (r *region) answerResume(receiver int, from uint64) {
	for seq := max(from, 1); seq < from+uint64(r.w.cfg.WindowEntries) && seq <= uint64(len(r.durable.log)); seq++ {
		r.w.send(r.idx, receiver, message{entry: r.durable.log[seq-1]})
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
	if want := uint64(len(r.durable.log)) + 1; wr.Seq != want {
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
		r.durable.data[op.Key] = next
	}
	r.durable.applied[wr.Origin()] = wr.Seq
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
