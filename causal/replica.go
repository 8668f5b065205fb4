package causal

import (
	"errors"
	"fmt"
	"slices"

	"github.com/causewaydb/causeway/clocks"
)

// Errors of the state machine.
var (
	// ErrPendingFull: the buffer of remote writes waiting for their causal
	// past is full; the sender must resend later (streams resume from the
	// receiver's applied position, so nothing is lost).
	ErrPendingFull = errors.New("dependency buffer full")
	// ErrInvalidWrite: a remote write that can never be applied (from this
	// region, without a sequence number, or with a vector that contradicts
	// its own position).
	ErrInvalidWrite = errors.New("invalid replicated write")
	// ErrNotCaughtUp: a local write whose token names writes this region
	// has not applied. The caller waits for them first; writing anyway would
	// let the write overtake its own causal past.
	ErrNotCaughtUp = errors.New("causal past of the token not applied here")
)

// Config configures a Replica.
type Config struct {
	// Region is the region this replica serves.
	Region string
	// Clock is the region's hybrid clock. The Replica owns it: callers must
	// not use it concurrently with the Replica.
	Clock *clocks.Clock
	// Applied is the vector restored from durable state (empty for a new
	// region).
	Applied clocks.Vector
	// MaxPending bounds the remote writes buffered while they wait for their
	// causal past, over all origins. Default 65536. Past it, Receive refuses
	// writes with ErrPendingFull instead of growing without bound.
	MaxPending int
	// UnsafeSkipDependencies applies a remote write as soon as its origin's
	// previous write is applied, ignoring its dependencies on other regions.
	// It breaks causal consistency and exists only so tests can prove their
	// checkers detect that.
	UnsafeSkipDependencies bool
}

// DefaultMaxPending is the default bound on buffered remote writes.
const DefaultMaxPending = 1 << 16

// Replica is the causal protocol of one region as a deterministic state
// machine: no goroutines, no I/O, no clock reads except through the
// injected hybrid clock.
//
// Local writes get their timestamp, sequence number and dependency vector
// from Local. Remote writes enter through Receive and leave through Ready,
// in an order that respects causality: a write from origin o with sequence
// number n is ready when the region has applied o's write n-1 and, for every
// other region r, at least Vector[r] of r's writes. The caller persists what
// Ready returns, in order.
type Replica struct {
	cfg          Config
	clock        *clocks.Clock
	applied      clocks.Vector
	pending      map[string][]*Write // by origin, sorted by Seq, no duplicates
	pendingCount int
	clockSkews   uint64
}

// NewReplica returns the state machine for cfg.Region, resuming at
// cfg.Applied.
func NewReplica(cfg Config) *Replica {
	if cfg.Clock == nil || cfg.Clock.Region() != cfg.Region {
		panic("causal: Config.Clock must be the clock of Config.Region")
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	return &Replica{
		cfg:     cfg,
		clock:   cfg.Clock,
		applied: cfg.Applied.Clone(),
		pending: map[string][]*Write{},
	}
}

// Region is the replica's region.
func (r *Replica) Region() string { return r.cfg.Region }

// Applied is the vector of writes applied here (a copy).
func (r *Replica) Applied() clocks.Vector { return r.applied.Clone() }

// AppliedSeq is the number of origin's writes applied here.
func (r *Replica) AppliedSeq(origin string) uint64 { return r.applied.Get(origin) }

// Pending is the number of remote writes waiting for their causal past.
func (r *Replica) Pending() int { return r.pendingCount }

// ClockSkews counts remote writes whose timestamps were too far ahead of the
// local clock to be observed (they are applied all the same: refusing them
// would stop replication).
func (r *Replica) ClockSkews() uint64 { return r.clockSkews }

// Local assigns a new local write its timestamp, sequence number and
// vector, and counts it as applied. The session's token contributes its
// dependencies (Vector) and the greatest timestamp it has seen (Seen), so
// the write orders after everything the session read, in any region.
//
// The token's past must be applied here (else ErrNotCaughtUp: the caller
// waits first), and the caller must persist the write before acknowledging
// it. A token whose Seen is too
// far ahead of the local clock is refused (clocks.ErrClockOffset) and
// nothing changes.
func (r *Replica) Local(tok clocks.Token, ops []Op, requestID [16]byte) (*Write, error) {
	if !r.applied.Dominates(tok.Vector) {
		return nil, fmt.Errorf("%w: token needs %v, applied %v", ErrNotCaughtUp, tok.Vector, r.applied)
	}
	if err := r.clock.Observe(tok.Seen); err != nil {
		return nil, err
	}
	seq := r.applied.Get(r.cfg.Region) + 1
	vec := tok.Vector.Clone()
	vec[r.cfg.Region] = seq
	w := &Write{Timestamp: r.clock.Now(), Seq: seq, Vector: vec, RequestID: requestID, Ops: ops}
	r.applied[r.cfg.Region] = seq
	return w, nil
}

// Receive offers a write replicated from another region. Duplicates and
// writes already applied are ignored (nil error); writes that cannot be
// applied yet are buffered until Ready can return them.
func (r *Replica) Receive(w *Write) error {
	origin := w.Origin()
	switch {
	case origin == r.cfg.Region:
		return fmt.Errorf("%w: write %d of %s received by %s itself", ErrInvalidWrite, w.Seq, origin, origin)
	case w.Seq == 0 || w.Vector.Get(origin) != w.Seq:
		return fmt.Errorf("%w: write %d of %s carries vector %v", ErrInvalidWrite, w.Seq, origin, w.Vector)
	case w.Seq <= r.applied.Get(origin):
		return nil // already applied: a resent or duplicated frame
	}
	queue := r.pending[origin]
	i, found := slices.BinarySearchFunc(queue, w.Seq, func(p *Write, seq uint64) int {
		switch {
		case p.Seq < seq:
			return -1
		case p.Seq > seq:
			return 1
		}
		return 0
	})
	if found {
		return nil // duplicate of a buffered write
	}
	// A write that is applicable now never waits, so a full buffer cannot
	// block the very writes that would drain it.
	if r.pendingCount >= r.cfg.MaxPending && !r.applicable(w) {
		return fmt.Errorf("%w: %d writes wait for their causal past", ErrPendingFull, r.pendingCount)
	}
	r.pending[origin] = slices.Insert(queue, i, w)
	r.pendingCount++
	return nil
}

// Ready removes and returns, in a causal order, every buffered write whose
// causal past is now applied, and counts them as applied. The caller must
// persist them in the order given.
func (r *Replica) Ready() []*Write {
	var out []*Write
	for progress := true; progress; {
		progress = false
		for _, origin := range r.origins() {
			queue := r.pending[origin]
			n := 0
			for n < len(queue) && r.applicable(queue[n]) {
				w := queue[n]
				r.applied[origin] = w.Seq
				if err := r.clock.Observe(w.Timestamp); err != nil {
					r.clockSkews++
				}
				out = append(out, w)
				n++
			}
			if n > 0 {
				progress = true
				r.pendingCount -= n
				if n == len(queue) {
					delete(r.pending, origin)
				} else {
					r.pending[origin] = slices.Delete(queue, 0, n)
				}
			}
		}
	}
	return out
}

// applicable: the origin's previous write is applied, and so is the rest of
// the write's causal past.
func (r *Replica) applicable(w *Write) bool {
	origin := w.Origin()
	if r.applied.Get(origin) != w.Seq-1 {
		return false
	}
	if r.cfg.UnsafeSkipDependencies {
		return true
	}
	for region, seq := range w.Vector {
		if region != origin && r.applied.Get(region) < seq {
			return false
		}
	}
	return true
}

// Waiting describes, per origin, the first buffered write and what it waits
// for; for metrics and error messages.
func (r *Replica) Waiting() map[string][]clocks.Gap {
	out := map[string][]clocks.Gap{}
	for origin, queue := range r.pending {
		if len(queue) == 0 {
			continue
		}
		need := queue[0].Vector.Clone()
		need[origin] = queue[0].Seq - 1
		if gaps := r.applied.Missing(need); len(gaps) > 0 {
			out[origin] = gaps
		}
	}
	return out
}

// origins lists the origins with pending writes in a fixed order, so Ready
// is deterministic.
func (r *Replica) origins() []string {
	out := make([]string, 0, len(r.pending))
	for o := range r.pending {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// Bootstrap counts the writes of a snapshot as applied: the applied vector
// becomes its merge with v, and buffered writes that v covers are dropped.
// The caller has stored the snapshot's data.
func (r *Replica) Bootstrap(v clocks.Vector) {
	r.applied.MergeInPlace(v)
	for origin, queue := range r.pending {
		n := 0
		for n < len(queue) && queue[n].Seq <= r.applied.Get(origin) {
			n++
		}
		r.pendingCount -= n
		if n == len(queue) {
			delete(r.pending, origin)
		} else {
			r.pending[origin] = slices.Delete(queue, 0, n)
		}
	}
}
