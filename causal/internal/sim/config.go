package sim

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the knobs of one simulated schedule. Times are virtual
// milliseconds. DefaultConfig gives values under which a schedule of a few
// hundred operations sees every kind of fault several times.
type Config struct {
	// Regions is the number of regions, 2 to len(RegionNames).
	Regions int
	// Sessions is the number of client sessions. They move between regions
	// and share a small key set, so their writes conflict.
	Sessions int
	// Steps is the number of client operations issued before the network is
	// healed and the simulation runs to quiescence.
	Steps int
	// Keys is the number of ordinary keys, besides "acl" and "photo" (the
	// photo-album pattern). Few keys means many concurrent writes per key.
	Keys int
	// OpGapMs is the mean virtual time between two client operations (over
	// all sessions).
	OpGapMs int64

	// MaxOffset is the hybrid clocks' maximum offset (clocks.NewClock).
	MaxOffset time.Duration
	// MaxSkew bounds each region's physical clock offset from virtual time.
	// A restarted region gets a new offset, so its physical clock may jump
	// back: the hybrid clock must not.
	MaxSkew time.Duration
	// FastClockProb is the probability that one region's physical clock is
	// ahead by more than MaxOffset (up to twice MaxOffset), a misconfigured
	// host. Others then apply its writes without observing their
	// timestamps (Replica.ClockSkews), and refuse writes of sessions that
	// have read them (clocks.ErrClockOffset) until their own clocks catch
	// up.
	FastClockProb float64

	// MinLinkDelayMs and MaxLinkDelayMs bound the base one-way delay of each
	// directed link, drawn once per schedule; JitterMs is added per message,
	// so messages on one link overtake each other.
	MinLinkDelayMs, MaxLinkDelayMs, JitterMs int64
	// LossProb and DupProb are the probabilities that a message is lost, or
	// delivered twice.
	LossProb, DupProb float64
	// ResumeEveryMs is how often a region asks each origin to resume its
	// stream from the region's applied position; WindowEntries is how many
	// log entries the origin sends in answer. Loss is repaired only by the
	// next resume, as in the real replication stream.
	ResumeEveryMs int64
	WindowEntries int
	// GCEveryMs is how often a region truncates its replication log to
	// what every other region acknowledged and collects the tombstones
	// every region has applied (as the real node does every second).
	GCEveryMs int64

	// Every FaultEveryMs, a running region crashes with CrashProb (and
	// restarts after MinDowntimeMs to MaxDowntimeMs), and a partition starts
	// with PartitionProb (healing after MinPartitionMs to MaxPartitionMs).
	// With a non-zero probability a schedule has at least one of each, early
	// on, so no schedule passes without faults.
	FaultEveryMs                   int64
	CrashProb                      float64
	MinDowntimeMs, MaxDowntimeMs   int64
	PartitionProb                  float64
	MinPartitionMs, MaxPartitionMs int64
	// DiskLossProb is the probability, every FaultEveryMs, that a running
	// region loses its data directory: it is drained (serves no client),
	// and once every write it holds is held by another region too, it
	// stops, its durable state is emptied, and it restarts after
	// MinDowntimeMs to MaxDowntimeMs as the README's recovery says, joining
	// again (causal.Join) before it serves. A write whose only copy was on
	// the lost disk would be lost with it, which no protocol can prevent
	// (durability is promised against crashes of processes, and against the
	// loss of a disk once a write has reached a second region). With a
	// non-zero probability a schedule loses at least one disk.
	DiskLossProb float64
	// UnsafeRejoinWithoutSnapshot restarts a region that lost its disk as
	// Causeway did before causal.Join: empty, serving at once, numbering its
	// writes from 1 again. It loses acknowledged writes, to prove the
	// checkers notice.
	UnsafeRejoinWithoutSnapshot bool
	// UnsafeCollectUnstable collects every tombstone that is its key's only
	// version at once, without waiting until every region has applied it
	// or for the safe time; UnsafeResumeFromLogStart truncates the log past
	// the slowest subscriber and answers a request from before the log's
	// start with the log's start, past the gap, instead of "truncated" (a
	// snapshot). Both lose or resurrect writes, to prove the checkers see it.
	UnsafeCollectUnstable    bool
	UnsafeResumeFromLogStart bool
	// IndeterminateProb is the probability that a write's outcome is
	// unknown to its client: the region crashes just before or just after
	// persisting it, or the acknowledgement is lost.
	IndeterminateProb float64
	// MoveProb is the probability that a session moves to another region
	// (chosen at random) before an operation.
	MoveProb float64

	// MaxPending is causal.Config.MaxPending. It is small by default (below
	// (Regions-1)·WindowEntries, what resume can have in flight) so that
	// receivers refuse writes (causal.ErrPendingFull) and rely on resume,
	// and so that a full buffer that refused the very writes it waits for
	// shows up as KindNotQuiescent.
	MaxPending int
	// UnsafeSkipDependencies is causal.Config.UnsafeSkipDependencies: it
	// breaks causality, to prove the checker notices.
	UnsafeSkipDependencies bool

	// QuiesceLimitMs bounds the virtual time from healing to quiescence; a
	// schedule that needs longer is reported (KindNotQuiescent).
	QuiesceLimitMs int64
}

// DefaultConfig returns the configuration TestSimulation varies per seed.
func DefaultConfig() Config {
	return Config{
		Regions:           3,
		Sessions:          30,
		Steps:             300,
		Keys:              4,
		OpGapMs:           5,
		MaxOffset:         500 * time.Millisecond,
		MaxSkew:           100 * time.Millisecond,
		FastClockProb:     0.1,
		MinLinkDelayMs:    5,
		MaxLinkDelayMs:    80,
		JitterMs:          40,
		LossProb:          0.05,
		DupProb:           0.05,
		ResumeEveryMs:     25,
		WindowEntries:     8,
		GCEveryMs:         50,
		FaultEveryMs:      50,
		CrashProb:         0.04,
		MinDowntimeMs:     20,
		MaxDowntimeMs:     300,
		PartitionProb:     0.06,
		MinPartitionMs:    50,
		MaxPartitionMs:    600,
		DiskLossProb:      0.01,
		IndeterminateProb: 0.03,
		MoveProb:          0.15,
		MaxPending:        8,
		QuiesceLimitMs:    60_000,
	}
}

// RegionNames are the regions a schedule uses, in order.
var RegionNames = []string{"us-east", "eu-west", "ap-south", "sa-east", "af-south"}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Regions >= 2 && c.Regions <= len(RegionNames), "Regions = %d, want 2 to %d", c.Regions, len(RegionNames))
	check(c.Sessions >= 1, "Sessions = %d, want at least 1", c.Sessions)
	check(c.Steps >= 0, "Steps = %d, want at least 0", c.Steps)
	check(c.Keys >= 1, "Keys = %d, want at least 1", c.Keys)
	check(c.OpGapMs >= 1, "OpGapMs = %d, want at least 1", c.OpGapMs)
	check(c.MaxOffset >= 0 && c.MaxSkew >= 0, "MaxOffset %v and MaxSkew %v must not be negative", c.MaxOffset, c.MaxSkew)
	check(c.MinLinkDelayMs >= 1 && c.MinLinkDelayMs <= c.MaxLinkDelayMs && c.JitterMs >= 0,
		"link delays %d..%d ms + %d ms jitter: want 1 <= min <= max and jitter >= 0", c.MinLinkDelayMs, c.MaxLinkDelayMs, c.JitterMs)
	for _, p := range []struct {
		name  string
		value float64
	}{{"LossProb", c.LossProb}, {"DupProb", c.DupProb}, {"CrashProb", c.CrashProb},
		{"PartitionProb", c.PartitionProb}, {"IndeterminateProb", c.IndeterminateProb}, {"MoveProb", c.MoveProb},
		{"FastClockProb", c.FastClockProb}, {"DiskLossProb", c.DiskLossProb}} {
		check(p.value >= 0 && p.value <= 1, "%s = %v, want a probability", p.name, p.value)
	}
	check(c.LossProb < 1, "LossProb = 1 would never let a message through")
	check(c.GCEveryMs >= 1, "GCEveryMs = %d, want at least 1", c.GCEveryMs)
	check(c.ResumeEveryMs >= 1 && c.WindowEntries >= 1, "ResumeEveryMs = %d and WindowEntries = %d, want both at least 1", c.ResumeEveryMs, c.WindowEntries)
	check(c.FaultEveryMs >= 1, "FaultEveryMs = %d, want at least 1", c.FaultEveryMs)
	check(c.MinDowntimeMs >= 0 && c.MinDowntimeMs <= c.MaxDowntimeMs, "downtime %d..%d ms: want 0 <= min <= max", c.MinDowntimeMs, c.MaxDowntimeMs)
	check(c.MinPartitionMs >= 0 && c.MinPartitionMs <= c.MaxPartitionMs, "partitions %d..%d ms: want 0 <= min <= max", c.MinPartitionMs, c.MaxPartitionMs)
	check(c.MaxPending >= 1, "MaxPending = %d, want at least 1", c.MaxPending)
	check(c.QuiesceLimitMs >= 1, "QuiesceLimitMs = %d, want at least 1", c.QuiesceLimitMs)
	return errors.Join(errs...)
}
