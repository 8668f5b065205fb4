package causal_test

import (
	"errors"
	"flag"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/check"
)

var feedSeed = flag.Uint64("feed-seed", 0, "run only this feed schedule (the seed a failure printed)")

// feedWorld is a seeded simulation of regions that write, replicate in
// random orders and keep a change feed, and of watchers that follow the
// feeds and move between regions with their tokens.
type feedWorld struct {
	rng     *rand.Rand
	regions []*feedRegion
	made    []*causal.Write
	// brokenResume makes a moving watcher resume from the new region's
	// applied vector at the point it would start, forgetting what it had
	// seen: the mistake the token's vector exists to prevent.
	brokenResume bool
	afterResume  int // events delivered after a resume, over all watchers
}

type feedRegion struct {
	name    string
	replica *causal.Replica
	feed    []feedEntry
	inbox   []*causal.Write // replicated writes not yet received
}

type feedEntry struct {
	w       *causal.Write
	applied clocks.Vector
}

func newFeedWorld(seed uint64, unsafe bool) *feedWorld {
	fw := &feedWorld{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	var wall int64
	now := func() time.Time { wall++; return time.UnixMilli(1_700_000_000_000 + wall) }
	for _, name := range []string{"ap-south", "eu-west", "us-east"} {
		fw.regions = append(fw.regions, &feedRegion{name: name, replica: causal.NewReplica(causal.Config{
			Region: name, Clock: clocks.NewClock(name, now, time.Hour), UnsafeSkipDependencies: unsafe,
		})})
	}
	return fw
}

var feedKeys = []string{"a/1", "a/2", "a/3", "b/1", "b/2"}

// inRange is the watched range: prefix "a/".
func inRange(key string) bool { return strings.HasPrefix(key, "a/") }

// write makes a local write in r with session token tok; returns the new
// token.
func (fw *feedWorld) write(r *feedRegion, tok clocks.Token) clocks.Token {
	if !r.replica.Applied().Dominates(tok.Vector) {
		return tok // the session would wait; it writes elsewhere later
	}
	var ops []causal.Op
	for _, k := range feedKeys {
		if fw.rng.IntN(3) == 0 {
			ops = append(ops, causal.Op{Key: k, Kind: causal.KindValue, Value: []byte("v")})
		}
	}
	if len(ops) == 0 {
		ops = append(ops, causal.Op{Key: feedKeys[fw.rng.IntN(len(feedKeys))], Kind: causal.KindTombstone})
	}
	w, err := r.replica.Local(tok, ops, [16]byte{})
	if err != nil {
		panic(err)
	}
	r.feed = append(r.feed, feedEntry{w: w, applied: r.replica.Applied()})
	fw.made = append(fw.made, w)
	for _, o := range fw.regions {
		if o != r {
			o.inbox = append(o.inbox, w)
		}
	}
	return clocks.Token{Vector: w.Vector, Seen: w.Timestamp}
}

// deliver hands r some of its inbox, in a random order (the receiver
// buffers what cannot apply yet), and records what it applies.
func (fw *feedWorld) deliver(r *feedRegion, all bool) {
	fw.rng.Shuffle(len(r.inbox), func(i, j int) { r.inbox[i], r.inbox[j] = r.inbox[j], r.inbox[i] })
	n := len(r.inbox)
	if !all {
		n = fw.rng.IntN(len(r.inbox) + 1)
	}
	for _, w := range r.inbox[:n] {
		if err := r.replica.Receive(w); err != nil {
			panic(err)
		}
		for _, ready := range r.replica.Ready() {
			r.feed = append(r.feed, fw.appliedEntry(r, ready))
		}
	}
	r.inbox = r.inbox[n:]
}

// appliedEntry records ready as applied in r. Ready returns writes in
// order and counts them applied at once; the vector after each is
// rebuilt from the previous entry.
func (fw *feedWorld) appliedEntry(r *feedRegion, w *causal.Write) feedEntry {
	prev := clocks.Vector{}
	if len(r.feed) > 0 {
		prev = r.feed[len(r.feed)-1].applied
	}
	after := prev.Clone()
	after[w.Origin()] = w.Seq
	return feedEntry{w: w, applied: after}
}

// watcher follows one region's feed at a time.
type feedWatcher struct {
	token     clocks.Vector
	region    *feedRegion
	cursor    *causal.FeedCursor
	pos       int
	delivered []check.WatchWrite
	resumed   bool // moved once with a token that had seen writes
	// afterResume counts events delivered after such a move: the
	// schedules must reach the path the guarantees are about.
	afterResume int
}

func (fw *feedWorld) moveWatcher(wt *feedWatcher, to *feedRegion) {
	resume := wt.token
	start := 0
	if fw.brokenResume {
		// Starts where the new region's feed is now, as if the token were
		// a position: whatever the token had not seen before is lost.
		resume = to.replica.Applied()
		start = len(to.feed)
	}
	c, err := causal.NewFeedCursor(resume, clocks.Vector{})
	if err != nil {
		panic(err)
	}
	if !fw.brokenResume {
		// Binary search for the start, as the node does.
		start = sort.Search(len(to.feed), func(i int) bool { return !c.Skippable(to.feed[i].applied) })
	}
	if len(wt.delivered) > 0 {
		wt.resumed = true
	}
	wt.region, wt.cursor, wt.pos = to, c, start
}

// follow steps the watcher over up to n entries of its region's feed.
func (wt *feedWatcher) follow(n int) {
	for ; n > 0 && wt.pos < len(wt.region.feed); n-- {
		e := wt.region.feed[wt.pos]
		wt.pos++
		if !wt.cursor.Step(e.w.Origin(), e.w.Seq, e.applied) {
			continue
		}
		if ev := watchWrite(e.w); len(ev.Keys) > 0 {
			wt.delivered = append(wt.delivered, ev)
			if wt.resumed {
				wt.afterResume++
			}
		}
	}
	wt.token = wt.cursor.Token()
}

func watchWrite(w *causal.Write) check.WatchWrite {
	out := check.WatchWrite{Origin: w.Origin(), Seq: w.Seq, Vector: w.Vector}
	for _, op := range w.Ops {
		if inRange(op.Key) {
			out.Keys = append(out.Keys, op.Key)
		}
	}
	return out
}

// run plays one schedule and returns the checker's verdict.
func (fw *feedWorld) run() []check.Violation {
	sessions := make([]clocks.Token, 4)
	watchers := make([]*feedWatcher, 2)
	for i := range watchers {
		watchers[i] = &feedWatcher{token: clocks.Vector{}}
		fw.moveWatcher(watchers[i], fw.regions[fw.rng.IntN(len(fw.regions))])
	}
	for step := 0; step < 300; step++ {
		switch k := fw.rng.IntN(10); {
		case k < 4:
			s := fw.rng.IntN(len(sessions))
			sessions[s] = fw.write(fw.regions[fw.rng.IntN(len(fw.regions))], sessions[s])
		case k < 7:
			fw.deliver(fw.regions[fw.rng.IntN(len(fw.regions))], false)
		case k < 9:
			watchers[fw.rng.IntN(len(watchers))].follow(1 + fw.rng.IntN(5))
		default:
			wt := watchers[fw.rng.IntN(len(watchers))]
			fw.moveWatcher(wt, fw.regions[fw.rng.IntN(len(fw.regions))])
		}
	}
	// Heal: every region gets every write; watchers drain.
	for _, r := range fw.regions {
		fw.deliver(r, true)
	}
	var made []check.WatchWrite
	for _, w := range fw.made {
		if ev := watchWrite(w); len(ev.Keys) > 0 {
			made = append(made, ev)
		}
	}
	var out []check.Violation
	for _, wt := range watchers {
		defer func() { fw.afterResume += wt.afterResume }()
		wt.follow(1 << 30)
		out = append(out, check.CheckWatch(wt.delivered, made, true)...)
	}
	return out
}

const feedSeeds = 300

// TestFeedSimulation: across seeded schedules (random writes, replication
// in random orders, watchers moving between regions with their tokens),
// every watcher's delivered sequence is a linear extension of
// happens-before on its keys, without gap or repeat.
func TestFeedSimulation(t *testing.T) {
	seeds := []uint64{}
	if *feedSeed != 0 {
		seeds = append(seeds, *feedSeed)
	} else {
		for s := uint64(1); s <= feedSeeds; s++ {
			seeds = append(seeds, s)
		}
	}
	afterResume := 0
	for _, seed := range seeds {
		fw := newFeedWorld(seed, false)
		if vs := fw.run(); len(vs) > 0 {
			t.Fatalf("seed %d: %d violations, first: %v\nreplay: go test ./causal -run TestFeedSimulation -feed-seed=%d", seed, len(vs), vs[0], seed)
		}
		afterResume += fw.afterResume
	}
	if *feedSeed == 0 && afterResume < feedSeeds {
		t.Fatalf("only %d events were delivered after a resume in %d schedules: the schedules miss the path under test", afterResume, feedSeeds)
	}
	t.Logf("%d events delivered after a resume", afterResume)
}

// The checker must catch broken feeds: regions that apply remote writes
// before their dependencies (their feeds are not causal orders), and
// watchers that resume from a position instead of their token.
func TestFeedSimulationCatchesBrokenFeeds(t *testing.T) {
	for _, c := range []struct {
		name   string
		unsafe bool
		resume bool
		want   string
	}{
		{"apply before dependencies", true, false, check.KindWatchOrder},
		{"resume from a position", false, true, check.KindWatchLoss},
	} {
		t.Run(c.name, func(t *testing.T) {
			kinds := map[string]int{}
			for seed := uint64(1); seed <= feedSeeds; seed++ {
				fw := newFeedWorld(seed, c.unsafe)
				fw.brokenResume = c.resume
				for _, v := range fw.run() {
					kinds[v.Kind]++
				}
			}
			if kinds[c.want] == 0 {
				t.Fatalf("over %d schedules the checker found %v, never %s", feedSeeds, kinds, c.want)
			}
		})
	}
}

func TestFeedCursorRefusesATokenBehindTheFloor(t *testing.T) {
	floor := clocks.Vector{"us-east": 5, "eu-west": 2}
	if _, err := causal.NewFeedCursor(clocks.Vector{"us-east": 5, "eu-west": 1}, floor); !errors.Is(err, causal.ErrFeedTruncated) {
		t.Fatalf("token behind the floor: %v, want ErrFeedTruncated", err)
	}
	c, err := causal.NewFeedCursor(clocks.Vector{"us-east": 6, "eu-west": 2}, floor)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFloor(clocks.Vector{"us-east": 7}); !errors.Is(err, causal.ErrFeedTruncated) {
		t.Fatalf("floor moved past the cursor: %v, want ErrFeedTruncated", err)
	}
	// Step: a write the token has seen is not delivered; the token covers
	// every entry stepped over.
	if c.Step("us-east", 6, clocks.Vector{"us-east": 6, "eu-west": 2}) {
		t.Fatal("delivered us-east 6, which the token had seen")
	}
	if !c.Step("eu-west", 3, clocks.Vector{"us-east": 6, "eu-west": 3}) {
		t.Fatal("did not deliver eu-west 3, which the token had not seen")
	}
	if got := c.Token(); !got.Equal(clocks.Vector{"us-east": 6, "eu-west": 3}) {
		t.Fatalf("token %v after the steps", got)
	}
}
