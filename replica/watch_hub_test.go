package replica

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// awaitSynced waits (bounded) until the hub dispatches to want watchers.
func awaitSynced(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.hub.syncedCount() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the hub dispatches to %d watchers, want %d", n.hub.syncedCount(), want)
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded above
	}
}

// awaitDispatched waits (bounded) until the hub has dispatched every
// durable entry.
func awaitDispatched(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		durable, _, _, _ := n.feed.state()
		n.hub.mu.Lock()
		at := uint64(0)
		if n.hub.last != nil {
			at = n.hub.last.pos
		}
		n.hub.mu.Unlock()
		if at >= durable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub dispatched up to entry %d of %d", at, durable)
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded above
	}
}

// TestWatchHubGivesEachWatcherItsEvents: watchers of different keys and
// options, all handed to the hub, get exactly what their own readers
// would give them: the writes on their keys, filtered and sorted, values
// left out for keys-only, atomic writes whole; and tokens that resume
// after each event, identical to a reader's.
func TestWatchHubGivesEachWatcherItsEvents(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	ctx := context.Background()
	type spec struct {
		r        KeyRange
		keysOnly bool
	}
	specs := []spec{
		{r: KeyRange{Prefix: "w/"}},
		{r: KeyRange{Prefix: "w/"}, keysOnly: true},
		{r: KeyRange{Prefix: "w/a"}},
		{r: KeyRange{Start: "w/b", End: "x/z"}},
		{r: KeyRange{Prefix: "none/"}},
		{r: KeyRange{}}, // every key
	}
	var watches []*testWatch
	for _, s := range specs {
		watches = append(watches, startWatch(t, n, s.r, WatchOptions{KeysOnly: s.keysOnly}, nil))
	}
	put(t, n, "warm-up", "0") // every watcher steps over it, then joins the hub
	awaitSynced(t, n, len(specs))

	val := func(k, v string) causal.Op { return causal.Op{Key: k, Kind: causal.KindValue, Value: []byte(v)} }
	writes := [][]causal.Op{
		{val("w/a1", "1")},
		{val("x/1", "2")},
		{val("w/c", "3"), val("x/y", "4"), val("w/b", "5"), val("w/a2", "6")}, // unsorted, partly outside
		{{Key: "w/a1", Kind: causal.KindTombstone}},
		{val("w/b", "7"), val("w/c", "8")},
		{val("none/x", "9")},
	}
	for _, ops := range writes {
		if len(ops) == 1 && ops[0].Kind == causal.KindTombstone {
			if _, err := n.Delete(ctx, ops[0].Key, "", ""); err != nil {
				t.Fatal(err)
			}
		} else if _, err := n.WriteMany(ctx, ops, "", ""); err != nil {
			t.Fatal(err)
		}
		// One write a round: each is judged whole or not on its own.
		awaitDispatched(t, n)
	}
	for i, s := range specs {
		var want []string
		if s.r.Contains("warm-up") {
			want = append(want, "us-east/1{warm-up=0}")
		}
		for j, ops := range writes {
			var changes []string
			for _, op := range ops {
				switch {
				case !s.r.Contains(op.Key):
				case op.Kind == causal.KindTombstone:
					changes = append(changes, "-"+op.Key)
				case s.keysOnly:
					changes = append(changes, op.Key+"=")
				default:
					changes = append(changes, op.Key+"="+string(op.Value))
				}
			}
			if len(changes) > 0 {
				slices.SortFunc(changes, func(a, b string) int { return strings.Compare(strings.TrimPrefix(a, "-"), strings.TrimPrefix(b, "-")) })
				want = append(want, fmt.Sprintf("us-east/%d{%s}", j+2, strings.Join(changes, ",")))
			}
		}
		got := watches[i].events(t, len(want))
		if describeEvents(got) != strings.Join(want, " ") {
			t.Errorf("watcher of %+v (keys only %v): %s, want %s", s.r, s.keysOnly, describeEvents(got), strings.Join(want, " "))
		}
		if i == 0 {
			// A reader resuming from the first event's token gives the
			// rest, with the very same tokens.
			r := startWatch(t, n, s.r, WatchOptions{Token: got[0].Token}, nil)
			rest := r.events(t, len(got)-1)
			for k := range rest {
				if describeEvents(rest[k:k+1]) != describeEvents(got[k+1:k+2]) || rest[k].Token != got[k+1].Token {
					t.Fatalf("resumed: event %d is %s (token %s), the hub gave %s (token %s)", k, describeEvents(rest[k:k+1]), rest[k].Token, describeEvents(got[k+1:k+2]), got[k+1].Token)
				}
			}
		}
	}
	if got := n.hub.syncedCount(); got < len(specs) {
		t.Errorf("the hub released watchers (%d of %d left): the events above came from their readers", got, len(specs))
	}
}

// hubFixture is a hub over a feed the test fills by hand, without a node's
// goroutines.
type hubFixture struct {
	feed *changeFeed
	hub  *watchHub
	node *Node
	ts   uint64
}

func newHubFixture(buffer int) *hubFixture {
	f := newChangeFeed(0, clocks.Vector{}, 0)
	return &hubFixture{feed: f, hub: newWatchHub(f, uuid.New(), buffer),
		node: &Node{cfg: Config{Feed: FeedConfig{WatchBuffer: buffer, WatchBufferBytes: 1 << 20}}}}
}

// add appends a durable entry: origin's write seq of key, with the
// applied vector after it and the region's clock (seen, in ms; 0: the
// write's timestamp).
func (fx *hubFixture) add(origin string, seq uint64, key string, applied clocks.Vector, seenMs uint64) *feedEntry {
	fx.ts++
	ts := clocks.Timestamp{WallMs: fx.ts, Region: origin}
	seen := ts
	if seenMs > 0 {
		seen = clocks.Timestamp{WallMs: seenMs, Region: "us-east"}
	}
	w := &causal.Write{Timestamp: ts, Seq: seq, Vector: clocks.Vector{origin: seq},
		Ops: []causal.Op{{Key: key, Kind: causal.KindValue, Value: []byte(key)}}}
	e := &feedEntry{pos: fx.feed.next, applied: applied, write: w, seen: seen, shared: &sharedToken{}, size: entrySize(w)}
	fx.feed.next++
	fx.feed.tail.add(e)
	fx.feed.markDurable(e.pos)
	return e
}

func (fx *hubFixture) watcher(prefix string) *watcher {
	b := fx.node.cfg.Feed.WatchBuffer
	return &watcher{n: fx.node, r: KeyRange{Prefix: prefix}, queue: make(chan queued, b), hubIndex: -1, hubExit: make(chan hubExit, 1)}
}

func (fx *hubFixture) dispatch() {
	durable, floorPos, _, _ := fx.feed.state()
	fx.hub.dispatch(durable, floorPos)
}

// queuedKeys drains w's queue: the keys of its events, and the last token.
func queuedKeys(w *watcher) (keys []string, token string) {
	for len(w.queue) > 0 {
		q := <-w.queue
		for _, e := range q.m.Events {
			keys = append(keys, e.Changes[0].Key)
		}
		token = q.m.Token
	}
	return keys, token
}

// TestWatchHubHandsBackWhatItCannotShare: the hub dispatches entries that
// keep its watchers aligned, and hands them back to their readers at the
// last such entry when one does not (a clock behind the write, an applied
// vector that does not grow from the last), when the feed's floor moves,
// and, with resource_exhausted, when a watcher's queue is full.
func TestWatchHubHandsBackWhatItCannotShare(t *testing.T) {
	type step func(fx *hubFixture)
	cases := []struct {
		name     string
		buffer   int
		then     step
		wantKeys []string // events queued after the join
		wantAt   uint64   // the entry the watcher is handed back after
		wantErr  error
	}{
		{
			name: "clock behind a remote write",
			then: func(fx *hubFixture) {
				fx.add("us-east", 2, "k2", clocks.Vector{"us-east": 2}, 0)
				fx.add("eu-west", 1, "k3", clocks.Vector{"us-east": 2, "eu-west": 1}, 1) // seen 1ms: behind
			},
			wantKeys: []string{"k2"}, wantAt: 2,
		},
		{
			name: "applied vector that does not grow",
			then: func(fx *hubFixture) {
				fx.add("eu-west", 1, "k2", clocks.Vector{"us-east": 1, "eu-west": 1}, 0)
				fx.add("eu-west", 2, "k3", clocks.Vector{"eu-west": 2}, 0)
			},
			wantKeys: []string{"k2"}, wantAt: 2,
		},
		{
			name: "floor moved",
			then: func(fx *hubFixture) {
				fx.feed.setFloor(1, clocks.Vector{"us-east": 1})
				fx.add("us-east", 2, "k2", clocks.Vector{"us-east": 2}, 0)
			},
			wantAt: 1,
		},
		{
			name:   "queue full",
			buffer: 2,
			then: func(fx *hubFixture) {
				for seq := uint64(2); seq <= 6; seq++ {
					fx.add("us-east", seq, fmt.Sprintf("k%d", seq), clocks.Vector{"us-east": seq}, 0)
					fx.dispatch() // one message per entry
				}
			},
			wantKeys: []string{"k2", "k3"}, wantErr: errSlowConsumer,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			buffer := tc.buffer
			if buffer == 0 {
				buffer = 16
			}
			fx := newHubFixture(buffer)
			first := fx.add("us-east", 1, "k1", clocks.Vector{"us-east": 1}, 0)
			w := fx.watcher("k")
			if !fx.hub.join(w, first, 0) {
				t.Fatal("the hub refused a watcher at its first entry")
			}
			tc.then(fx)
			fx.dispatch()
			keys, _ := queuedKeys(w)
			if !slices.Equal(keys, tc.wantKeys) {
				t.Errorf("queued events %v, want %v", keys, tc.wantKeys)
			}
			select {
			case x := <-w.hubExit:
				if x.err != tc.wantErr {
					t.Fatalf("handed back with %v, want %v", x.err, tc.wantErr)
				}
				if tc.wantErr == nil && x.at.pos != tc.wantAt {
					t.Fatalf("handed back after entry %d, want %d", x.at.pos, tc.wantAt)
				}
			default:
				t.Fatal("the watcher was not handed back")
			}
			if fx.hub.syncedCount() != 0 {
				t.Fatal("the hub still dispatches to the watcher it handed back")
			}
		})
	}
}

// TestWatchHubTokens: the hub's tokens are the entries' shared tokens, and
// a watcher joins only at the hub's position.
func TestWatchHubTokens(t *testing.T) {
	fx := newHubFixture(16)
	e1 := fx.add("us-east", 1, "k1", clocks.Vector{"us-east": 1}, 0)
	a, b := fx.watcher("k"), fx.watcher("k")
	if !fx.hub.join(a, e1, 0) {
		t.Fatal("refused the first watcher")
	}
	e2 := fx.add("us-east", 2, "k2", clocks.Vector{"us-east": 2}, 0)
	fx.dispatch()
	if fx.hub.join(b, e1, 0) {
		t.Fatal("a watcher joined behind the hub's position")
	}
	if !fx.hub.join(b, e2, 0) {
		t.Fatal("a watcher at the hub's position was refused")
	}
	fx.add("us-east", 3, "k3", clocks.Vector{"us-east": 3}, 0)
	fx.dispatch()
	ka, tokA := queuedKeys(a)
	kb, tokB := queuedKeys(b)
	if !slices.Equal(ka, []string{"k2", "k3"}) || !slices.Equal(kb, []string{"k3"}) {
		t.Fatalf("events %v and %v, want [k2 k3] and [k3]", ka, kb)
	}
	want := clocks.Token{Cluster: fx.hub.cluster, Vector: clocks.Vector{"us-east": 3}, Seen: clocks.Timestamp{WallMs: 3, Region: "us-east"}}.Encode()
	if tokA != want || tokB != want {
		t.Fatalf("tokens %s and %s, want %s", tokA, tokB, want)
	}
	// A watcher that checked its cursor against an older floor (a snapshot
	// merge moved it since) is left to its reader.
	c := fx.watcher("k")
	e3 := fx.hub.last
	fx.feed.setFloor(3, clocks.Vector{"us-east": 3})
	if fx.hub.join(c, e3, 0) {
		t.Fatal("a watcher that checked an older floor joined")
	}
}

// watchMetric is the value of the node's metric name (with the given
// label value, if any) on /metrics; -1 when absent.
func watchMetric(t *testing.T, n *Node, name, label string) float64 {
	t.Helper()
	families, err := n.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestWatchMetrics: /metrics counts the open watches, those the hub feeds,
// the events sent and why streams ended.
func TestWatchMetrics(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	w := startWatch(t, n, KeyRange{Prefix: "m/"}, WatchOptions{}, nil)
	for i := range 3 {
		put(t, n, fmt.Sprintf("m/%d", i), "v")
	}
	w.events(t, 3)
	awaitSynced(t, n, 1)
	if got := watchMetric(t, n, "causeway_watchers", ""); got != 1 {
		t.Errorf("causeway_watchers = %v, want 1", got)
	}
	if got := watchMetric(t, n, "causeway_watchers_dispatched", ""); got != 1 {
		t.Errorf("causeway_watchers_dispatched = %v, want 1", got)
	}
	w.cancel()
	<-w.done
	w.done <- nil // for the cleanup
	// The stream has ended: every count is final.
	if got := watchMetric(t, n, "causeway_watch_events_sent_total", ""); got != 3 {
		t.Errorf("causeway_watch_events_sent_total = %v, want 3", got)
	}
	if got := watchMetric(t, n, "causeway_watch_streams_ended_total", "client"); got != 1 {
		t.Errorf(`causeway_watch_streams_ended_total{reason="client"} = %v, want 1`, got)
	}
	if got := watchMetric(t, n, "causeway_watch_streams_ended_total", "slow_consumer"); got != 0 {
		t.Errorf(`causeway_watch_streams_ended_total{reason="slow_consumer"} = %v, want 0`, got)
	}
	if got := watchMetric(t, n, "causeway_watchers", ""); got != 0 {
		t.Errorf("causeway_watchers = %v after the stream ended, want 0", got)
	}
}
