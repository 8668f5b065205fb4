package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/check"
)

// Violation kinds the simulator reports itself, besides those of
// check.Check.
const (
	// KindNotQuiescent: after healing, the regions did not converge on the
	// same applied vector within Config.QuiesceLimitMs.
	KindNotQuiescent = "not-quiescent"
	// KindProtocolError: the state machine refused or misordered writes the
	// simulated regions produced (ErrInvalidWrite, Ready out of order, a
	// replica whose applied vector differs from durable state).
	KindProtocolError = "protocol-error"
	// KindSiblingDivergence: after quiescence, regions hold different sibling
	// sets for a key (the winners may still agree).
	KindSiblingDivergence = "sibling-divergence"
)

// Stats counts what a schedule did, so tests can check that the faults
// actually happened.
type Stats struct {
	MessagesSent        int // resume requests and log entries handed to the network
	MessagesLost        int // dropped by random loss
	MessagesDuplicated  int // delivered twice
	MessagesCut         int // dropped by a partition, when sent or on arrival
	MessagesToDown      int // arrived at a crashed region, or sent before its restart
	Crashes             int
	DiskLosses          int // regions that lost their durable state and rejoined
	DiskLossesAbandoned int // drained regions whose writes did not reach another region in time
	Joins               int // joins completed (causal.Join)
	SnapshotsSent       int // snapshots taken for a joining region or a subscriber behind a truncated log
	SnapshotsMerged     int
	LostWritesDetected  int // subscribers that proved an origin had lost writes (causal.CheckResume)
	LogTruncations      int // times a region truncated its replication log (causal.TruncationPoint)
	TombstonesCollected int // tombstones deleted for good (causal.Collectable)
	FeedTruncations     int // times a region cut its change feed
	WatchEvents         int // events delivered to watchers
	WatchResumes        int // watcher ticks that resumed past the start of a feed or after events
	WatchRescans        int // watchers refused for a token behind a feed's floor (they re-read)
	Partitions          int
	OpsOK               int
	OpsFailed           int    // unavailable: region down or the session's causal past not applied there
	OpsIndeterminate    int    // writes whose outcome the client never learned
	WritesApplied       int    // remote writes applied through Replica.Ready
	PendingFull         int    // writes refused with causal.ErrPendingFull
	ClockSkews          uint64 // remote timestamps too far ahead to observe (Replica.ClockSkews)
	ClockRefusals       int    // local writes refused with clocks.ErrClockOffset (counted in OpsFailed too)
	VirtualMs           int64  // virtual time at quiescence
}

// Result is the outcome of one schedule.
type Result struct {
	Seed       int64
	Config     Config
	History    []check.Op
	Final      check.Final
	Violations []check.Violation
	Stats      Stats
}

// Run simulates one schedule: cfg.Steps client operations against
// cfg.Regions regions under faults drawn from seed, then heals everything,
// runs to quiescence and checks the history. The same seed and cfg give the
// same Result. Run panics if cfg is invalid.
func Run(seed int64, cfg Config) Result {
	if err := cfg.Validate(); err != nil {
		panic("sim: invalid config: " + err.Error())
	}
	w := newWorld(seed, cfg)
	w.start()
	for w.opsIssued < cfg.Steps && w.events.Len() > 0 {
		w.step()
	}
	w.heal()
	deadline := w.now + cfg.QuiesceLimitMs
	for !w.quiescent() {
		if w.now > deadline || w.events.Len() == 0 {
			w.fail(KindNotQuiescent, "", "no quiescence %d ms after healing: %s", cfg.QuiesceLimitMs, w.describeProgress())
			break
		}
		w.step()
	}
	// Garbage collection runs on after quiescence, as it does in a real
	// region at rest: logs are truncated and the deletions every region
	// holds are collected, and the regions must still agree.
	for settle := w.now + settleMs; w.now < settle && w.events.Len() > 0; {
		w.step()
	}
	w.stats.VirtualMs = w.now
	w.checkWatchers()
	final := w.final()
	w.checkConvergedSiblings()
	for _, r := range w.regions {
		if r.replica != nil {
			w.stats.ClockSkews += r.replica.ClockSkews()
		}
	}
	violations := append(w.violations, check.Check(w.history, final)...)
	return Result{Seed: seed, Config: cfg, History: w.history, Final: final, Violations: violations, Stats: w.stats}
}

// settleMs is how long a schedule runs on after quiescence, so that log
// truncation and tombstone collection happen at rest too.
const settleMs = 1500

// epoch0 is virtual time 0 on the regions' physical clocks.
var epoch0 = time.UnixMilli(1_700_000_000_000)

type world struct {
	cfg        Config
	rng        *rand.Rand
	now        int64 // virtual ms
	events     eventQueue
	eventSeq   uint64
	regions    []*region
	sessions   []*session
	linkMs     [][]int64 // base delay of each directed link
	partitions []*partition
	cut        [][]int // cut[from][to]: active partitions cutting the link
	history    []check.Op
	violations []check.Violation
	stats      Stats
	opsIssued  int
	values     int    // puts so far, for unique values
	requests   uint64 // writes so far, for request ids
	healing    bool
	watchers   []*watcher      // change feed clients (watch.go)
	made       []*causal.Write // every write made, for the watch checker
}

func newWorld(seed int64, cfg Config) *world {
	w := &world{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))}
	n := cfg.Regions
	w.linkMs = make([][]int64, n)
	w.cut = make([][]int, n)
	for i := range n {
		w.linkMs[i] = make([]int64, n)
		w.cut[i] = make([]int, n)
		for j := range n {
			w.linkMs[i][j] = cfg.MinLinkDelayMs + w.rng.Int64N(cfg.MaxLinkDelayMs-cfg.MinLinkDelayMs+1)
		}
	}
	fast := -1
	if w.chance(cfg.FastClockProb) {
		fast = w.rng.IntN(n)
	}
	for i := range n {
		r := &region{w: w, idx: i, name: RegionNames[i], fast: i == fast, durable: newDurableState()}
		w.regions = append(w.regions, r)
		r.boot()
	}
	for i := range cfg.Sessions {
		w.sessions = append(w.sessions, &session{
			name:   fmt.Sprintf("s%02d", i),
			region: w.rng.IntN(n),
			token:  clocks.Token{Vector: clocks.Vector{}},
		})
	}
	return w
}

// start schedules the recurring events and the first faults.
func (w *world) start() {
	w.startWatchers()
	for _, r := range w.regions {
		w.after(w.rng.Int64N(w.cfg.ResumeEveryMs), r.resumeTick)
		w.after(w.rng.Int64N(w.cfg.GCEveryMs), r.gcTick)
	}
	w.after(0, w.clientTick)
	w.after(w.cfg.FaultEveryMs, w.faultTick)
	// One crash and one partition early in every schedule that allows them,
	// so that no schedule passes without them.
	planned := int64(w.cfg.Steps) * w.cfg.OpGapMs
	if w.cfg.CrashProb > 0 {
		w.after(w.rng.Int64N(planned/2+1), w.crashSomeRegion)
	}
	if w.cfg.PartitionProb > 0 {
		w.after(w.rng.Int64N(planned/2+1), w.startPartition)
	}
	if w.cfg.DiskLossProb > 0 {
		w.after(w.rng.Int64N(planned/2+1), w.loseSomeDisk)
	}
}

// maxDiskLossTries bounds how long (in OpGapMs steps) a disk loss waits
// for its drained region's writes to reach another region.
const maxDiskLossTries = 400

// loseSomeDisk drains a random running region (it serves no client, as a
// region whose disk is failing is taken out of service) until every write
// it holds is held by another region too, then empties its durable state
// (Config.DiskLossProb). A region still not ready after maxDiskLossTries
// steps is put back in service.
func (w *world) loseSomeDisk() {
	if w.healing {
		return
	}
	var candidates []*region
	for _, r := range w.regions {
		if r.up && r.join == nil && !r.draining {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return
	}
	r := candidates[w.rng.IntN(len(candidates))]
	r.draining = true
	epoch := r.epoch
	var try func(left int)
	try = func(left int) {
		switch {
		case !r.draining || r.epoch != epoch:
			// It crashed meanwhile (and is no longer drained): another
			// region, or the same once it is back, loses its disk instead.
			if left > 0 {
				w.after(w.cfg.OpGapMs, w.loseSomeDisk)
			}
		case r.canLoseDisk():
			r.loseDisk()
		case left == 0 || w.healing:
			r.draining = false
			w.stats.DiskLossesAbandoned++
		default:
			w.after(w.cfg.OpGapMs, func() { try(left - 1) })
		}
	}
	try(maxDiskLossTries)
}

func (w *world) regionIndex(name string) int {
	for i, r := range w.regions {
		if r.name == name {
			return i
		}
	}
	panic("sim: unknown region " + name)
}

// step runs the next event.
func (w *world) step() {
	e := heap.Pop(&w.events).(event)
	w.now = e.at
	e.fn()
}

func (w *world) after(delayMs int64, fn func()) {
	w.eventSeq++
	heap.Push(&w.events, event{at: w.now + delayMs, seq: w.eventSeq, fn: fn})
}

func (w *world) between(minMs, maxMs int64) int64 { return minMs + w.rng.Int64N(maxMs-minMs+1) }

func (w *world) chance(p float64) bool { return p > 0 && w.rng.Float64() < p }

func (w *world) fail(kind, key, format string, args ...any) {
	w.violations = append(w.violations, check.Violation{Kind: kind, Op: -1, Key: key, Detail: fmt.Sprintf(format, args...)})
}

func (w *world) faultTick() {
	if w.healing {
		return
	}
	if w.chance(w.cfg.CrashProb) {
		w.crashSomeRegion()
	}
	if w.chance(w.cfg.DiskLossProb) {
		w.loseSomeDisk()
	}
	if w.chance(w.cfg.PartitionProb) {
		w.startPartition()
	}
	w.after(w.cfg.FaultEveryMs, w.faultTick)
}

func (w *world) crashSomeRegion() {
	if w.healing {
		return
	}
	var up []*region
	for _, r := range w.regions {
		if r.up {
			up = append(up, r)
		}
	}
	if len(up) > 0 {
		up[w.rng.IntN(len(up))].crash()
	}
}

// heal ends the workload: no more operations or faults, every partition
// healed, every crashed region restarted. Loss and duplication go on; the
// resume protocol has to cope with them.
func (w *world) heal() {
	w.healing = true
	for _, p := range w.partitions {
		w.healPartition(p)
	}
	for _, r := range w.regions {
		if !r.up {
			r.restart()
		}
	}
}

// quiescent: every region is up, has applied every write of every region,
// and buffers nothing.
func (w *world) quiescent() bool {
	for _, r := range w.regions {
		if !r.up || r.join != nil || r.replica.Pending() > 0 {
			return false
		}
		for _, o := range w.regions {
			if r.durable.applied.Get(o.name) != o.durable.head() {
				return false
			}
		}
	}
	return true
}

func (w *world) describeProgress() string {
	s := ""
	for _, r := range w.regions {
		pending := -1
		if r.replica != nil {
			pending = r.replica.Pending()
		}
		s += fmt.Sprintf("%s applied %v head %d pending %d joining %v lost-writes %v; ", r.name, r.durable.applied, r.durable.head(), pending, r.join != nil, r.lostWrites)
	}
	return s
}

// final is each region's winning version of every key. A key whose
// tombstone a region collected reads there as that deletion; a key a region
// holds nothing for while another collected its tombstone reads as the
// newest such deletion (the region collected it too, or lost it with a disk
// and never saw it again, which a client cannot tell apart: both read as
// deleted).
func (w *world) final() check.Final {
	collected := map[string]causal.Version{}
	for _, r := range w.regions {
		for key, t := range r.durable.collected {
			if c, ok := collected[key]; !ok || c.Timestamp.Less(t.Timestamp) {
				collected[key] = t
			}
		}
	}
	final := check.Final{}
	for _, r := range w.regions {
		state := map[string]check.VersionRef{}
		for key, siblings := range r.durable.data {
			state[key] = versionRef(siblings[0])
		}
		for key, t := range collected {
			if _, ok := state[key]; !ok {
				state[key] = versionRef(t)
			}
		}
		final[r.name] = state
	}
	return final
}

// checkConvergedSiblings compares whole sibling sets, which the history
// checker cannot see, and each replica against its durable state.
func (w *world) checkConvergedSiblings() {
	keys := map[string]bool{}
	for _, r := range w.regions {
		for k := range r.durable.data {
			keys[k] = true
		}
		if r.replica != nil && !r.replica.Applied().Equal(r.durable.applied) {
			w.fail(KindProtocolError, "", "%s: replica applied %v, durable applied %v", r.name, r.replica.Applied(), r.durable.applied)
		}
	}
	ref := w.regions[0]
	for _, k := range sortedKeys(keys) {
		for _, r := range w.regions[1:] {
			if !sameSiblings(uncollected(ref.durable.data[k]), uncollected(r.durable.data[k])) {
				w.fail(KindSiblingDivergence, k, "%s holds siblings %s, %s holds %s",
					ref.name, describeSiblings(ref.durable.data[k]), r.name, describeSiblings(r.durable.data[k]))
			}
		}
	}
}

// uncollected is a sibling set as it compares across regions: a lone
// tombstone equals no version at all, since one region may have collected
// it while another has not yet.
func uncollected(siblings []causal.Version) []causal.Version {
	if len(siblings) == 1 && siblings[0].Kind == causal.KindTombstone {
		return nil
	}
	return siblings
}

func sameSiblings(a, b []causal.Version) bool {
	return slices.EqualFunc(a, b, func(x, y causal.Version) bool { return x.Same(&y) })
}

func describeSiblings(vs []causal.Version) string {
	s := "["
	for i, v := range vs {
		if i > 0 {
			s += " "
		}
		s += versionRef(v).String()
	}
	return s + "]"
}

func versionRef(v causal.Version) check.VersionRef {
	return check.VersionRef{
		Origin:    v.Timestamp.Region,
		Seq:       v.Seq,
		WallMs:    v.Timestamp.WallMs,
		Logical:   v.Timestamp.Logical,
		Tombstone: v.Kind == causal.KindTombstone,
		Value:     string(v.Value),
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// event is something that happens at a virtual time; seq orders events
// scheduled for the same millisecond by when they were scheduled, so runs
// are deterministic.
type event struct {
	at  int64
	seq uint64
	fn  func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
