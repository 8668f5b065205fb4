package clocks

import (
	"fmt"
	"math"
	"time"
)

// PhysicalClock returns wall-clock time. It is injected so that tests and the
// deterministic simulator control time; production passes time.Now.
type PhysicalClock func() time.Time

// Clock is the hybrid logical clock of one region. It issues timestamps for
// the region's writes (Now), advances past timestamps received from other
// regions (Observe), and resumes after a restart without going backwards
// (Restore).
//
// A Clock is not safe for concurrent use: in Causeway one state machine owns
// it and the loop that drives that state machine serializes all calls. A
// mutex here would hide a second writer instead of exposing it.
type Clock struct {
	region    string
	physical  PhysicalClock
	maxOffset time.Duration
	// last is the greatest timestamp issued, observed or restored. Every
	// invariant of the clock is stated in terms of it: the next Now is
	// strictly greater than last.
	last Timestamp
}

// NewClock returns a clock for region that reads physical time from physical
// and accepts remote timestamps at most maxOffset ahead of it (see Observe).
// A maxOffset of 0 tolerates no skew at all; something like 500ms suits
// NTP-synchronized hosts.
//
// NewClock panics if region is invalid, physical is nil or maxOffset is
// negative: these come from configuration that was validated earlier, so a
// bad value here is a programming error.
func NewClock(region string, physical PhysicalClock, maxOffset time.Duration) *Clock {
	if err := ValidateRegion(region); err != nil {
		panic("clocks.NewClock: " + err.Error())
	}
	if physical == nil {
		panic("clocks.NewClock: nil PhysicalClock")
	}
	if maxOffset < 0 {
		panic(fmt.Sprintf("clocks.NewClock: negative max offset %v", maxOffset))
	}
	return &Clock{region: region, physical: physical, maxOffset: maxOffset}
}

// Region returns the region this clock issues timestamps for.
func (c *Clock) Region() string { return c.region }

// MaxOffset returns how far ahead of local physical time a remote timestamp
// may be and still be observed.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Last returns the greatest timestamp this clock issued, observed or restored
// (the zero Timestamp for a fresh clock). Callers persist it so that Restore
// can resume from it after a restart.
func (c *Clock) Last() Timestamp { return c.last }

// Now issues a timestamp for a local event (a write). It is strictly greater
// than every timestamp Now returned before and every timestamp passed to
// Observe or Restore.
//
// WallMs is max(physical time, last WallMs): it follows the physical clock
// while that clock is ahead, and stands still (Logical counts up instead)
// while the physical clock lags behind a timestamp already seen or goes
// backwards (NTP step, VM migration). If Logical would overflow, WallMs
// borrows one millisecond from the future instead; that needs 2^32 events
// within one millisecond, so the drift it causes is theoretical.
func (c *Clock) Now() Timestamp {
	physicalMs := c.physicalMs()
	switch {
	case physicalMs > c.last.WallMs:
		c.last = Timestamp{WallMs: physicalMs, Region: c.region}
	case c.last.Logical < math.MaxUint32:
		c.last = Timestamp{WallMs: c.last.WallMs, Logical: c.last.Logical + 1, Region: c.region}
	default:
		if c.last.WallMs == math.MaxUint64 {
			// Only reachable by restoring or observing a timestamp ~584
			// million years in the future; continuing would wrap around and
			// break monotonicity, which is worse than stopping.
			panic("clocks: hybrid clock exhausted: last timestamp is " + c.last.String())
		}
		c.last = Timestamp{WallMs: c.last.WallMs + 1, Region: c.region}
	}
	return c.last
}

// Observe records a timestamp received from another region (observe on
// receive), so that the next Now is greater than remote. Together with Now
// this gives Lamport's clock condition: if a write happened before another,
// its timestamp is smaller.
//
// If remote.WallMs is more than MaxOffset ahead of local physical time,
// Observe returns an error wrapping ErrClockOffset and leaves the clock
// unchanged. Accepting it would drag this region's timestamps, and through
// them every region's, towards a faulty clock. Clamping the remote timestamp
// was rejected: every region must see the same timestamp for a write or
// last-writer-wins stops converging. The caller reports the error and retries
// later; once local physical time catches up the timestamp is accepted.
//
// Observe does not issue a timestamp itself: receiving a write creates no new
// version, and only the next local write has to order after it.
func (c *Clock) Observe(remote Timestamp) error {
	physicalMs := c.physicalMs()
	maxOffsetMs := uint64(c.maxOffset.Milliseconds())
	limit := physicalMs + maxOffsetMs
	if limit < physicalMs { // overflow: no timestamp can exceed the limit
		limit = math.MaxUint64
	}
	if remote.WallMs > limit {
		return fmt.Errorf("%w: timestamp %s from region %q is %d ms ahead of the physical clock in region %q, more than the max offset of %d ms; check time synchronization (NTP) on both regions",
			ErrClockOffset, remote, remote.Region, remote.WallMs-physicalMs, c.region, maxOffsetMs)
	}
	c.last = maxTimestamp(c.last, remote)
	return nil
}

// Restore makes sure the clock never goes backwards across a restart: after
// it, the next Now is greater than ts. Callers pass the greatest timestamp
// they persisted (for instance Last before shutdown, or the newest version in
// storage). Unlike Observe there is no offset check: ts was issued or accepted
// by this region before, so refusing it could only make the clock go back.
func (c *Clock) Restore(ts Timestamp) {
	c.last = maxTimestamp(c.last, ts)
}

// physicalMs reads the physical clock in milliseconds since the epoch. Times
// before 1970 read as 0: monotonicity then comes from the logical counter, and
// an unsigned wall time keeps the encoding and comparison simple.
func (c *Clock) physicalMs() uint64 {
	ms := c.physical().UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}
