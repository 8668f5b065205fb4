package sim_test

import (
	"flag"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causewaydb/causeway/causal/internal/sim"
	"github.com/causewaydb/causeway/internal/check"
)

var (
	seedFlag  = flag.Int64("seed", 0, "run only this schedule (the seed a failure printed)")
	seedsFlag = flag.Int("seeds", defaultSeeds, "how many schedules TestSimulation runs (seeds 1..N)")
)

// defaultSeeds: 1000 schedules take about 25 s under -race on an idle
// 2-core VM (about 7 s without -race), which leaves room for the other
// packages that go test runs beside this one. Use -seeds for longer soaks.
const defaultSeeds = 1000

// configFor derives a schedule's configuration from its seed, so that the
// seed alone replays it.
func configFor(seed int64) sim.Config {
	cfg := sim.DefaultConfig()
	u := uint64(seed)
	cfg.Regions = 3 + int(u%3)
	cfg.Sessions = 20 + int(u/3%31)
	return cfg
}

func replayCommand(seed int64) string {
	return fmt.Sprintf("go test ./causal/internal/sim -run TestSimulation -seed=%d -v", seed)
}

// TestSimulation runs many seeded schedules and fails with the seed and the
// replay command of every schedule that breaks a guarantee.
func TestSimulation(t *testing.T) {
	seeds := make([]int64, 0, *seedsFlag)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for s := 1; s <= *seedsFlag; s++ {
			seeds = append(seeds, int64(s))
		}
	}
	start := time.Now()
	results := runAll(seeds, configFor)
	var total sim.Stats
	var withDiskLoss, withTruncation, withTombstone int
	for _, res := range results {
		add(&total, res.Stats)
		if res.Stats.DiskLosses > 0 {
			withDiskLoss++
		}
		if res.Stats.LogTruncations > 0 {
			withTruncation++
		}
		if res.Stats.TombstonesCollected > 0 {
			withTombstone++
		}
		if problem := vacuous(res.Stats); problem != "" {
			t.Errorf("seed %d (%d regions) did not exercise faults: %s; stats %+v\nreplay: %s",
				res.Seed, res.Config.Regions, problem, res.Stats, replayCommand(res.Seed))
		}
		if len(res.Violations) > 0 {
			t.Errorf("seed %d (%d regions, %d sessions) broke %d guarantee(s):\n%s\nstats %+v\nreplay: %s",
				res.Seed, res.Config.Regions, res.Config.Sessions, len(res.Violations), describe(res.Violations, 20), res.Stats, replayCommand(res.Seed))
		}
		if len(seeds) == 1 && testing.Verbose() {
			t.Logf("seed %d: %d regions, %d sessions; stats %+v", res.Seed, res.Config.Regions, res.Config.Sessions, res.Stats)
			for i, op := range res.History {
				t.Logf("op %d: %s", i, formatOp(op))
			}
			for _, region := range sim.RegionNames[:res.Config.Regions] {
				t.Logf("final %s: %v", region, res.Final[region])
			}
		}
	}
	// Over the run, the paths that only some schedules take were taken.
	for _, c := range []struct {
		name  string
		count uint64
	}{
		{"writes refused with ErrPendingFull", uint64(total.PendingFull)},
		{"writes with unknown outcome", uint64(total.OpsIndeterminate)},
		{"unavailable operations", uint64(total.OpsFailed)},
		{"remote timestamps too far ahead to observe", total.ClockSkews},
		{"writes refused for a timestamp too far ahead", uint64(total.ClockRefusals)},
		{"disks lost", uint64(total.DiskLosses)},
		{"joins completed after a disk loss", uint64(total.Joins)},
		{"snapshots merged", uint64(total.SnapshotsMerged)},
		{"log truncations", uint64(total.LogTruncations)},
		{"tombstones collected", uint64(total.TombstonesCollected)},
		{"change feeds truncated", uint64(total.FeedTruncations)},
		{"watch events", uint64(total.WatchEvents)},
		{"watchers resumed", uint64(total.WatchResumes)},
		{"watchers re-reading after a truncated feed", uint64(total.WatchRescans)},
	} {
		if c.count == 0 && len(seeds) > 100 {
			t.Errorf("no %s in %d schedules: the simulation no longer exercises that path", c.name, len(seeds))
		}
	}
	// The rare paths every schedule should reach, in stated shares: a disk
	// loss (drained and wiped) nearly always, truncation always, and
	// tombstone collection in some (it needs a key whose newest write is a
	// deletion that every region applied while at rest).
	if len(seeds) >= 100 {
		for _, c := range []struct {
			name      string
			got, want int // schedules, and the least share in percent
		}{
			{"lost a disk", withDiskLoss, 95},
			{"truncated a log", withTruncation, 95},
			{"collected a tombstone", withTombstone, 5},
		} {
			if 100*c.got < c.want*len(seeds) {
				t.Errorf("only %d of %d schedules %s; want at least %d%%", c.got, len(seeds), c.name, c.want)
			}
		}
		t.Logf("schedules that lost a disk: %d, truncated a log: %d, collected a tombstone: %d (of %d)",
			withDiskLoss, withTruncation, withTombstone, len(seeds))
	}
	t.Logf("%d schedules in %v; totals %+v", len(seeds), time.Since(start).Round(time.Millisecond), total)
}

// vacuous says which fault a schedule did not see, if any.
func vacuous(s sim.Stats) string {
	switch {
	case s.MessagesLost == 0:
		return "no message lost"
	case s.MessagesDuplicated == 0:
		return "no message duplicated"
	case s.Crashes == 0:
		return "no crash"
	case s.Partitions == 0:
		return "no partition"
	case s.WritesApplied == 0:
		return "nothing replicated"
	case s.OpsOK == 0:
		return "no operation succeeded"
	}
	return ""
}

func TestSimulationIsDeterministic(t *testing.T) {
	seed := int64(7)
	if *seedFlag != 0 {
		seed = *seedFlag
	}
	a, b := sim.Run(seed, configFor(seed)), sim.Run(seed, configFor(seed))
	if len(a.History) == 0 {
		t.Fatal("empty history")
	}
	if !reflect.DeepEqual(a.History, b.History) {
		for i := range min(len(a.History), len(b.History)) {
			if !reflect.DeepEqual(a.History[i], b.History[i]) {
				t.Fatalf("seed %d: histories differ first at op %d:\n%s\n%s", seed, i, formatOp(a.History[i]), formatOp(b.History[i]))
			}
		}
		t.Fatalf("seed %d: histories of %d and %d ops", seed, len(a.History), len(b.History))
	}
	if !reflect.DeepEqual(a.Final, b.Final) || a.Stats != b.Stats || !reflect.DeepEqual(a.Violations, b.Violations) {
		t.Fatalf("seed %d: same history, different outcome:\n%+v\n%+v", seed, a.Stats, b.Stats)
	}
}

// TestCheckerHasTeeth breaks causality on purpose: replicas apply remote
// writes without waiting for their dependencies. The checker must notice
// within a bounded number of schedules; otherwise TestSimulation passing
// would prove nothing.
func TestCheckerHasTeeth(t *testing.T) {
	const maxSeeds = 200
	causalKinds := []string{check.KindCausalSnapshot, check.KindWritesFollowReads, check.KindMonotonicWrites,
		check.KindMonotonicReads, check.KindReadYourWrites}
	kinds := map[string]int{}
	var firstSeed int64
	var first check.Violation
	for _, res := range runBroken(maxSeeds, func(c *sim.Config) { c.UnsafeSkipDependencies = true }) {
		for _, v := range res.Violations {
			kinds[v.Kind]++
			if firstSeed == 0 && slices.Contains(causalKinds, v.Kind) {
				firstSeed, first = res.Seed, v
			}
		}
	}
	t.Logf("violations by kind over %d schedules with dependencies skipped: %v", maxSeeds, kinds)
	if firstSeed == 0 {
		t.Fatalf("no causal visibility violation in %d schedules with dependencies skipped: the checker or the workload lost its teeth", maxSeeds)
	}
	t.Logf("first caught by the history checker at seed %d: %s", firstSeed, first)
}

// TestCheckerCatchesUnsafeRejoin restarts regions that lost their disk as
// Causeway did before causal.Join: empty, serving at once, numbering their
// writes from 1 again. The checkers must report the acknowledged writes that
// other regions then drop as duplicates; otherwise the join's passing
// schedules would prove nothing.
func TestCheckerCatchesUnsafeRejoin(t *testing.T) {
	const maxSeeds = 30
	kinds := map[string]int{}
	var firstSeed int64
	var first check.Violation
	caught := 0
	for _, res := range runBroken(maxSeeds, func(c *sim.Config) { c.UnsafeRejoinWithoutSnapshot = true }) {
		if res.Stats.DiskLosses == 0 {
			t.Errorf("seed %d lost no disk", res.Seed)
		}
		for _, v := range res.Violations {
			kinds[v.Kind]++
			if firstSeed == 0 && v.Kind == check.KindDuplicateVersion {
				firstSeed, first = res.Seed, v
			}
		}
		if len(res.Violations) > 0 {
			caught++
		}
	}
	t.Logf("unsafe rejoin: %d of %d schedules caught; violations by kind: %v", caught, maxSeeds, kinds)
	if firstSeed == 0 {
		t.Fatalf("no reused sequence number reported in %d schedules whose regions rejoin without a snapshot: the checker or the workload lost its teeth", maxSeeds)
	}
	if kinds[check.KindLostWrite]+kinds[sim.KindNotQuiescent] == 0 {
		t.Errorf("no lost write or lasting divergence reported in %d schedules whose regions rejoin without a snapshot", maxSeeds)
	}
	t.Logf("first caught at seed %d: %s\nreplay: go test ./causal/internal/sim -run TestCheckerCatchesUnsafeRejoin -v (seed %d with UnsafeRejoinWithoutSnapshot)", firstSeed, first, firstSeed)
}

// TestCheckerCatchesBrokenStreamRules runs the simulation with each
// replication-stream rule of package causal broken on purpose: the checkers
// must report anomalies within a bounded number of schedules, so that the
// correct rules passing TestSimulation means something.
func TestCheckerCatchesBrokenStreamRules(t *testing.T) {
	for _, c := range []struct {
		name      string
		breakRule func(*sim.Config)
	}{
		{"tombstones collected before every region applied them", func(c *sim.Config) { c.UnsafeCollectUnstable = true }},
		{"log truncated past the slowest subscriber, resumed past the gap", func(c *sim.Config) { c.UnsafeResumeFromLogStart = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			const maxSeeds = 60
			kinds := map[string]int{}
			caught := 0
			var first string
			for _, res := range runBroken(maxSeeds, c.breakRule) {
				for _, v := range res.Violations {
					kinds[v.Kind]++
				}
				if len(res.Violations) > 0 {
					caught++
					if first == "" {
						first = fmt.Sprintf("seed %d: %s", res.Seed, res.Violations[0])
					}
				}
			}
			t.Logf("%d of %d schedules caught; violations by kind: %v; first: %s", caught, maxSeeds, kinds, first)
			if caught == 0 {
				t.Fatalf("no anomaly in %d schedules with the rule broken: the checkers or the workload lost their teeth", maxSeeds)
			}
		})
	}
}

// runBroken runs schedules 1..maxSeeds with breakRule applied to each
// configuration.
func runBroken(maxSeeds int, breakRule func(*sim.Config)) []sim.Result {
	seeds := make([]int64, maxSeeds)
	for i := range seeds {
		seeds[i] = int64(i + 1)
	}
	return runAll(seeds, func(seed int64) sim.Config {
		cfg := configFor(seed)
		breakRule(&cfg)
		return cfg
	})
}

// runAll runs the schedules on every CPU (each schedule is single-threaded
// and shares nothing) and returns the results in seed order.
func runAll(seeds []int64, config func(int64) sim.Config) []sim.Result {
	results := make([]sim.Result, len(seeds))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				results[i] = sim.Run(seeds[i], config(seeds[i]))
			}
		})
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

func add(total *sim.Stats, s sim.Stats) {
	total.MessagesSent += s.MessagesSent
	total.MessagesLost += s.MessagesLost
	total.MessagesDuplicated += s.MessagesDuplicated
	total.MessagesCut += s.MessagesCut
	total.MessagesToDown += s.MessagesToDown
	total.Crashes += s.Crashes
	total.DiskLosses += s.DiskLosses
	total.Joins += s.Joins
	total.SnapshotsSent += s.SnapshotsSent
	total.SnapshotsMerged += s.SnapshotsMerged
	total.LostWritesDetected += s.LostWritesDetected
	total.DiskLossesAbandoned += s.DiskLossesAbandoned
	total.FeedTruncations += s.FeedTruncations
	total.WatchEvents += s.WatchEvents
	total.WatchResumes += s.WatchResumes
	total.WatchRescans += s.WatchRescans
	total.LogTruncations += s.LogTruncations
	total.TombstonesCollected += s.TombstonesCollected
	total.Partitions += s.Partitions
	total.OpsOK += s.OpsOK
	total.OpsFailed += s.OpsFailed
	total.OpsIndeterminate += s.OpsIndeterminate
	total.WritesApplied += s.WritesApplied
	total.PendingFull += s.PendingFull
	total.ClockSkews += s.ClockSkews
	total.ClockRefusals += s.ClockRefusals
	total.VirtualMs += s.VirtualMs
}

func describe(vs []check.Violation, limit int) string {
	var b strings.Builder
	for i, v := range vs {
		if i == limit {
			fmt.Fprintf(&b, "  ... and %d more\n", len(vs)-limit)
			break
		}
		fmt.Fprintf(&b, "  %s\n", v)
	}
	return b.String()
}

func formatOp(op check.Op) string {
	s := fmt.Sprintf("%s#%d %s at %s", op.Session, op.Index, op.Kind, op.Region)
	switch {
	case op.Kind == check.OpPut:
		s += fmt.Sprintf(" %s=%q", op.Key, op.Value)
	case op.Kind == check.OpDelete:
		s += " " + op.Key
	}
	switch {
	case op.Indeterminate:
		s += " -> indeterminate"
	case !op.OK:
		s += " -> unavailable"
	case op.Kind == check.OpPut || op.Kind == check.OpDelete:
		s += " -> " + op.Written.String()
	default:
		for _, k := range sortedKeys(op.Reads) {
			s += fmt.Sprintf(" %s:%s", k, op.Reads[k])
		}
	}
	return s
}

func sortedKeys(m map[string]check.VersionRef) []string { return slices.Sorted(maps.Keys(m)) }

func TestConfigValidate(t *testing.T) {
	if err := sim.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg := sim.DefaultConfig()
	cfg.Regions = 9
	cfg.LossProb = 1
	cfg.WindowEntries = 0
	err := cfg.Validate()
	for _, want := range []string{"Regions = 9", "LossProb = 1", "WindowEntries = 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// TestWatchCheckerHasTeeth: with remote writes applied before their
// dependencies, a region's feed is no longer a causal order, and the
// watchers' checker must say so within a bounded number of schedules.
func TestWatchCheckerHasTeeth(t *testing.T) {
	const maxSeeds = 200
	kinds := map[string]int{}
	for _, res := range runBroken(maxSeeds, func(c *sim.Config) { c.UnsafeSkipDependencies = true }) {
		for _, v := range res.Violations {
			kinds[v.Kind]++
		}
	}
	if kinds[check.KindWatchOrder] == 0 {
		t.Fatalf("no %s in %d schedules with dependencies skipped (violations by kind: %v): the watch checker lost its teeth", check.KindWatchOrder, maxSeeds, kinds)
	}
	t.Logf("%d %s violations over %d broken schedules", kinds[check.KindWatchOrder], check.KindWatchOrder, maxSeeds)
}
