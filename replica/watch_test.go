package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// testWatch is a watch running in the background of a test.
type testWatch struct {
	pending []WatchEvent // received, not yet taken by events
	msgs    chan WatchMessage
	done    chan error
	cancel  context.CancelFunc
}

// startWatch runs n.Watch; gate, if not nil, is received from before each
// send (a consumer that reads only when the test lets it).
func startWatch(t *testing.T, n *Node, r KeyRange, o WatchOptions, gate chan struct{}) *testWatch {
	t.Helper()
	// The deadline only keeps a broken build from hanging the test run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	w := &testWatch{msgs: make(chan WatchMessage, 10000), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- n.Watch(ctx, r, o, func(m WatchMessage) error {
			if gate != nil {
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			w.msgs <- m
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	// The first message says the watch is established.
	w.next(t)
	return w
}

func (w *testWatch) next(t *testing.T) WatchMessage {
	t.Helper()
	select {
	case m := <-w.msgs:
		return m
	case err := <-w.done:
		w.done <- err
		t.Fatalf("watch ended: %v", err)
	}
	return WatchMessage{}
}

// events takes the next count events (a message may carry several; the
// rest wait for the next call).
func (w *testWatch) events(t *testing.T, count int) []WatchEvent {
	t.Helper()
	for len(w.pending) < count {
		m := w.next(t)
		w.pending = append(w.pending, m.Events...)
	}
	out := w.pending[:count:count]
	w.pending = w.pending[count:]
	return out
}

func describeEvents(es []WatchEvent) string {
	parts := make([]string, len(es))
	for i, e := range es {
		var keys []string
		for _, c := range e.Changes {
			if c.Kind == causal.KindTombstone {
				keys = append(keys, "-"+c.Key)
			} else {
				keys = append(keys, c.Key+"="+string(c.Value))
			}
		}
		parts[i] = fmt.Sprintf("%s/%d{%s}", e.Version.Timestamp.Region, e.Version.Seq, strings.Join(keys, ","))
	}
	return strings.Join(parts, " ")
}

func put(t *testing.T, n *Node, key, value string) WriteResult {
	t.Helper()
	res, err := n.Put(context.Background(), key, []byte(value), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWatchDeliversEachWriteOnceInOrder(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	ctx := context.Background()
	w := startWatch(t, n, KeyRange{Prefix: "w/"}, WatchOptions{}, nil)

	put(t, n, "w/a", "1")
	put(t, n, "x/ignored", "1")
	if _, err := n.WriteMany(ctx, []causal.Op{
		{Key: "w/c", Kind: causal.KindValue, Value: []byte("3")},
		{Key: "x/y", Kind: causal.KindValue, Value: []byte("0")},
		{Key: "w/b", Kind: causal.KindValue, Value: []byte("2")},
	}, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Delete(ctx, "w/a", "", ""); err != nil {
		t.Fatal(err)
	}
	got := w.events(t, 3)
	if want := "us-east/1{w/a=1} us-east/3{w/b=2,w/c=3} us-east/4{-w/a}"; describeEvents(got) != want {
		t.Fatalf("events %s, want %s", describeEvents(got), want)
	}

	// Resuming from the first event's token delivers the rest, once.
	r := startWatch(t, n, KeyRange{Prefix: "w/"}, WatchOptions{Token: got[0].Token}, nil)
	rest := r.events(t, 2)
	if describeEvents(rest) != describeEvents(got[1:]) {
		t.Fatalf("resumed watch gave %s, want %s", describeEvents(rest), describeEvents(got[1:]))
	}
	// A write's token resumes after it too: the session's own token.
	res := put(t, n, "w/d", "4")
	put(t, n, "w/e", "5")
	s := startWatch(t, n, KeyRange{Prefix: "w/"}, WatchOptions{Token: res.Token}, nil)
	if got := describeEvents(s.events(t, 1)); got != "us-east/6{w/e=5}" {
		t.Fatalf("watch from a write's token: %s, want us-east/6{w/e=5}", got)
	}
}

func TestWatchWithStateThenChanges(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	put(t, n, "s/a", "1")
	put(t, n, "s/b", "2")
	if _, err := n.Delete(context.Background(), "s/b", "", ""); err != nil {
		t.Fatal(err)
	}
	put(t, n, "s/c", "3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := make(chan WatchMessage, 100)
	done := make(chan error, 1)
	go func() {
		done <- n.Watch(ctx, KeyRange{Prefix: "s/"}, WatchOptions{Start: WatchWithState}, func(m WatchMessage) error {
			msgs <- m
			return nil
		})
	}()
	var state []WatchEvent
	for m := range msgs {
		state = append(state, m.Events...)
		if len(m.Events) == 0 {
			break // the progress message that ends the state
		}
	}
	var keys []string
	for _, e := range state {
		if !e.State {
			t.Fatalf("event %v of the state is not marked state", e)
		}
		keys = append(keys, e.Changes[0].Key)
	}
	if !slices.Equal(keys, []string{"s/a", "s/c"}) {
		t.Fatalf("state %q, want the live keys s/a, s/c", keys)
	}
	put(t, n, "s/d", "4")
	m := <-msgs
	if len(m.Events) != 1 || m.Events[0].State || m.Events[0].Changes[0].Key != "s/d" {
		t.Fatalf("after the state: %s, want the change to s/d", describeEvents(m.Events))
	}
	cancel()
	<-done
}

// A watcher moves between regions that applied the same writes in
// different orders: from any token, every write reaches it exactly once,
// and never before its causal past.
func TestWatchResumesInAnotherRegion(t *testing.T) {
	cluster := uuid.New()
	a := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Region = "us-east"; c.ClusterID = cluster })
	b := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Region = "ap-south"; c.ClusterID = cluster })
	op := func(k string) causal.Op { return causal.Op{Key: k, Kind: causal.KindValue, Value: []byte(k)} }
	// eu-west 1 and 2 are concurrent with us-west 1; us-west 2 depends on
	// eu-west 1.
	e1 := remoteWrite("eu-west", 1, 10, nil, op("k/e1"))
	e2 := remoteWrite("eu-west", 2, 11, nil, op("k/e2"))
	w1 := remoteWrite("us-west", 1, 12, nil, op("k/w1"))
	w2 := remoteWrite("us-west", 2, 13, clocks.Vector{"eu-west": 1}, op("k/w2"))
	for _, batch := range [][]*causal.Write{{w1}, {e1}, {w2}, {e2}} {
		if err := a.applyRemote(batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, batch := range [][]*causal.Write{{e1}, {e2}, {w1}, {w2}} {
		if err := b.applyRemote(batch); err != nil {
			t.Fatal(err)
		}
	}
	for cut := 0; cut <= 4; cut++ {
		t.Run(fmt.Sprintf("after %d events", cut), func(t *testing.T) {
			var first []WatchEvent
			token := ""
			if cut > 0 {
				wa := startWatch(t, a, KeyRange{Prefix: "k/"}, WatchOptions{Token: emptyToken(a)}, nil)
				first = wa.events(t, cut)
				token = first[cut-1].Token
			} else {
				token = emptyToken(a)
			}
			wb := startWatch(t, b, KeyRange{Prefix: "k/"}, WatchOptions{Token: token}, nil)
			rest := wb.events(t, 4-cut)
			all := append(first, rest...)
			seen := map[string]int{}
			for i, e := range all {
				id := fmt.Sprintf("%s/%d", e.Version.Timestamp.Region, e.Version.Seq)
				if _, dup := seen[id]; dup {
					t.Fatalf("%s delivered twice: %s", id, describeEvents(all))
				}
				seen[id] = i
			}
			if len(seen) != 4 {
				t.Fatalf("delivered %s, want each of the 4 writes", describeEvents(all))
			}
			if seen["eu-west/1"] > seen["us-west/2"] || seen["us-west/1"] > seen["us-west/2"] || seen["eu-west/1"] > seen["eu-west/2"] {
				t.Fatalf("delivered out of causal order: %s", describeEvents(all))
			}
		})
	}
}

// emptyToken is a token that has seen nothing, for watching from the
// beginning of the feed.
func emptyToken(n *Node) string {
	return clocks.Token{Cluster: n.cluster, Vector: clocks.Vector{"nobody": 0}}.Encode()
}

func TestWatchFromTruncatedFeedFails(t *testing.T) {
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Feed.MaxEntries = 2 })
	first := put(t, n, "t/a", "1")
	for i := range 4 {
		put(t, n, fmt.Sprintf("t/%d", i), "x")
	}
	if err := n.truncateFeedOnce(); err != nil {
		t.Fatal(err)
	}
	err := n.Watch(context.Background(), KeyRange{Prefix: "t/"}, WatchOptions{Token: first.Token}, func(WatchMessage) error { return nil })
	if api.Code(err) != connect.CodeFailedPrecondition || !errors.Is(err, causal.ErrFeedTruncated) && !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("watch from a truncated token: %v, want failed_precondition (feed truncated)", err)
	}
	var ce *connect.Error
	if !errors.As(api.ConnectError(err), &ce) || len(ce.Details()) == 0 {
		t.Fatalf("error %v carries no FeedTruncated detail", err)
	}
	d, derr := ce.Details()[0].Value()
	if ft, ok := d.(*v1.FeedTruncated); derr != nil || !ok || ft.GetRetainedFrom()["us-east"] != 3 {
		t.Fatalf("detail %v (%v), want FeedTruncated retained_from us-east 3", d, derr)
	}
	// A token that covers the floor still resumes, and a scan's token does.
	sc, err := n.Scan(context.Background(), KeyRange{Prefix: "t/"}, "", ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, n, KeyRange{Prefix: "t/"}, WatchOptions{Token: sc.Token}, nil)
	put(t, n, "t/new", "y")
	if got := describeEvents(w.events(t, 1)); got != "us-east/6{t/new=y}" {
		t.Fatalf("watch from the scan's token: %s", got)
	}
}

// A consumer that stops reading is cut off once its bounded queue is full,
// with the token of the last message it was sent; it resumes from there
// and loses nothing.
func TestSlowWatcherEndsWithResumeToken(t *testing.T) {
	readerEnded := make(chan error, 1)
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Feed.WatchBuffer = 4 })
	n.onWatchReaderExit = func(err error) { readerEnded <- err }
	gate := make(chan struct{}, 100)
	gate <- struct{}{} // the first message (the watch is established)
	w := startWatch(t, n, KeyRange{Prefix: "s/"}, WatchOptions{}, gate)
	gate <- struct{}{} // one event; then the consumer stops reading
	const writes = 20
	for i := range writes {
		put(t, n, fmt.Sprintf("s/%02d", i), "v")
	}
	if err := <-readerEnded; !errors.Is(err, errSlowConsumer) {
		t.Fatalf("reader ended with %v, want a slow consumer", err)
	}
	close(gate) // the consumer reads again
	var got []WatchEvent
	var err error
	for err == nil {
		select {
		case m := <-w.msgs:
			got = append(got, m.Events...)
		case err = <-w.done:
			w.done <- err
		}
	}
	for len(w.msgs) > 0 {
		got = append(got, (<-w.msgs).Events...)
	}
	if api.Code(err) != connect.CodeResourceExhausted {
		t.Fatalf("slow watch ended with %v, want resource_exhausted", err)
	}
	if len(got) == 0 || len(got) >= writes {
		t.Fatalf("slow watcher got %d of %d events before it was cut off", len(got), writes)
	}
	var ce *connect.Error
	if !errors.As(api.ConnectError(err), &ce) || len(ce.Details()) == 0 {
		t.Fatalf("error %v carries no resume token", err)
	}
	d, _ := ce.Details()[0].Value()
	token := d.(*v1.WatchResumeToken).GetResumeToken()
	if token != got[len(got)-1].Token {
		t.Fatal("the resume token is not the last event's")
	}
	n.onWatchReaderExit = nil
	r := startWatch(t, n, KeyRange{Prefix: "s/"}, WatchOptions{Token: token}, nil)
	rest := r.events(t, writes-len(got))
	all := append(got, rest...)
	for i, e := range all {
		if want := fmt.Sprintf("s/%02d", i); e.Changes[0].Key != want {
			t.Fatalf("event %d is %s, want %s: %s", i, e.Changes[0].Key, want, describeEvents(all))
		}
	}
}

func TestWatchRefusesBadInput(t *testing.T) {
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Feed.MaxWatchers = 1 })
	nop := func(WatchMessage) error { return nil }
	ctx := context.Background()
	if err := n.Watch(ctx, KeyRange{Prefix: "a", End: "b"}, WatchOptions{}, nop); api.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("prefix and end: %v, want invalid_argument", err)
	}
	if err := n.Watch(ctx, KeyRange{}, WatchOptions{Token: "junk"}, nop); api.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("bad token: %v, want invalid_argument", err)
	}
	startWatch(t, n, KeyRange{}, WatchOptions{}, nil)
	if err := n.Watch(ctx, KeyRange{}, WatchOptions{}, nop); api.Code(err) != connect.CodeResourceExhausted {
		t.Errorf("watch beyond MaxWatchers: %v, want resource_exhausted", err)
	}
}
