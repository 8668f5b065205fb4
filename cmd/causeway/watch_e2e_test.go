//go:build unix

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/check"
)

// e2eWatcher follows one Watch stream in the background.
type e2eWatcher struct {
	events chan *v1.WatchEvent
	done   chan error
	cancel context.CancelFunc
}

func startE2EWatch(t *testing.T, ctx context.Context, kv causewayv1connect.KVServiceClient, token string) *e2eWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	w := &e2eWatcher{events: make(chan *v1.WatchEvent, 1000), done: make(chan error, 1), cancel: cancel}
	stream, err := kv.Watch(ctx, connect.NewRequest(&v1.WatchRequest{Prefix: "w/", ResumeToken: token}))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// The first message says the watch is established.
	if !stream.Receive() {
		cancel()
		t.Fatalf("watch did not start: %v", stream.Err())
	}
	go func() {
		defer stream.Close()
		for stream.Receive() {
			for _, e := range stream.Msg().Events {
				w.events <- e
			}
		}
		w.done <- stream.Err()
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// take receives n events, failing if the stream ends first.
func (w *e2eWatcher) take(t *testing.T, ctx context.Context, n int) []*v1.WatchEvent {
	t.Helper()
	var out []*v1.WatchEvent
	for len(out) < n {
		select {
		case e := <-w.events:
			out = append(out, e)
		case err := <-w.done:
			w.done <- err
			t.Fatalf("watch ended after %d of %d events: %v", len(out), n, err)
		case <-ctx.Done():
			t.Fatalf("after %d of %d events: %v", len(out), n, ctx.Err())
		}
	}
	return out
}

// TestWatchAcrossRegions: three real regions; writes in two of them, some
// depending on the other region's (a token handed over) and some atomic
// over several keys. A watcher in each region (Connect over HTTP/1.1, and
// gRPC) sees every write once, in a causal order; one of them stops
// mid-stream and resumes in the third region from its last token.
func TestWatchAcrossRegions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newTestCluster(t, ctx)
	a := c.start("us-east")
	b := c.start("eu-west", a)
	cr := c.start("ap-south", a, b)
	c.awaitConverged(a, b, cr)

	grpcClient := c.procs.client(4, true)
	bGRPC := causewayv1connect.NewKVServiceClient(grpcClient, b.url, connect.WithGRPC())
	watchA := startE2EWatch(t, ctx, a.kv, "")
	watchB := startE2EWatch(t, ctx, bGRPC, "")
	watchC := startE2EWatch(t, ctx, cr.kv, "")

	var made []check.WatchWrite
	record := func(token string, v *v1.Version, keys ...string) {
		tok, err := clocks.InspectToken(token)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, check.WatchWrite{Origin: v.GetOriginRegion(), Seq: v.GetOriginSeq(), Vector: tok.Vector, Keys: keys})
	}
	sessions := map[*testRegion]string{}
	const rounds = 30
	for i := range rounds {
		r := []*testRegion{a, b}[i%2]
		if i%5 == 4 {
			// Alice hands her token to Bob: Bob's next write depends on
			// everything Alice wrote in the other region.
			sessions[r] = sessions[[]*testRegion{a, b}[(i+1)%2]]
		}
		rctx, rcancel := rpcContext(ctx)
		if i%7 == 6 {
			res, err := r.kv.WriteMany(rctx, connect.NewRequest(&v1.WriteManyRequest{CausalToken: sessions[r], Ops: []*v1.WriteOp{
				{Key: fmt.Sprintf("w/%d/x", i), Value: []byte("x")}, {Key: fmt.Sprintf("w/%d/y", i), Delete: true},
				{Key: fmt.Sprintf("other/%d", i), Value: []byte("unwatched")},
			}}))
			rcancel()
			if err != nil {
				t.Fatal(err)
			}
			sessions[r] = res.Msg.CausalToken
			record(res.Msg.CausalToken, res.Msg.Version, fmt.Sprintf("w/%d/x", i), fmt.Sprintf("w/%d/y", i))
			continue
		}
		res, err := r.put(rctx, fmt.Sprintf("w/%d", i), r.name, sessions[r])
		rcancel()
		if err != nil {
			t.Fatal(err)
		}
		sessions[r] = res.CausalToken
		record(res.CausalToken, res.Version, fmt.Sprintf("w/%d", i))
		if i%6 == 0 {
			c.mustPut(r, fmt.Sprintf("other/%d", i), "unwatched", "")
		}
	}

	// Region A's watcher stops halfway and resumes in region C.
	first := watchA.take(t, ctx, rounds/2)
	watchA.cancel()
	resumed := startE2EWatch(t, ctx, cr.kv, first[len(first)-1].GetResumeToken())
	rest := resumed.take(t, ctx, rounds-len(first))

	histories := map[string][]*v1.WatchEvent{
		"us-east then ap-south (resumed)": append(first, rest...),
		"eu-west (gRPC)":                  watchB.take(t, ctx, rounds),
		"ap-south":                        watchC.take(t, ctx, rounds),
	}
	c.awaitConverged(a, b, cr)
	for name, events := range histories {
		var delivered []check.WatchWrite
		for _, e := range events {
			var keys []string
			for _, ch := range e.GetChanges() {
				keys = append(keys, ch.GetKey())
			}
			delivered = append(delivered, check.WatchWrite{Origin: e.GetVersion().GetOriginRegion(), Seq: e.GetVersion().GetOriginSeq(), Keys: keys})
		}
		if vs := check.CheckWatch(delivered, made, true); len(vs) > 0 {
			t.Errorf("watcher %s: %d violations, first %v\ndelivered: %s", name, len(vs), vs[0], check.FormatWatch(delivered))
		}
	}
	// Nothing more arrives: no event is repeated after the last.
	for _, w := range []*e2eWatcher{watchB, watchC, resumed} {
		select {
		case e := <-w.events:
			t.Errorf("an extra event after every write was delivered: %v", e)
		default:
		}
	}
}

// TestWatchersConvergeAfterPartition: regions us-east and eu-west are cut
// from each other while both, and ap-south (reachable from both), take
// writes, some depending on the other side's (ap-south relays a session
// from one side to the other). After the heal, the watchers of all three
// regions have seen the same writes, each in a causal order: us-east
// cannot show ap-south's write that depends on eu-west's until eu-west's
// arrive.
func TestWatchersConvergeAfterPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newTestCluster(t, ctx)
	start := func(name string, peers ...*testRegion) *testRegion {
		r := &testRegion{name: name, clusterID: c.id, dataDir: t.TempDir()}
		var named []string
		for _, p := range peers {
			named = append(named, p.name+"="+p.listen)
		}
		r.listen = c.procs.add(name, r.dataDir).Addrs.API
		args := []string{"--cluster-id", c.id, "--linear", "off", "--fault-injection"}
		if len(named) > 0 {
			args = append(args, "--peers", strings.Join(named, ","))
		}
		r.url = c.procs.start(ctx, name, args...)
		r.kv = causewayv1connect.NewKVServiceClient(c.client, r.url)
		r.admin = causewayv1connect.NewAdminServiceClient(c.client, r.url)
		return r
	}
	a := start("us-east")
	b := start("eu-west", a)
	cr := start("ap-south", a, b)
	c.awaitConverged(a, b, cr)
	watchers := map[string]*e2eWatcher{}
	for _, r := range []*testRegion{a, b, cr} {
		watchers[r.name] = startE2EWatch(t, ctx, r.kv, "")
	}
	link := func(cut v1.LinkCut) {
		for _, pair := range [][2]*testRegion{{a, b}, {b, a}} {
			if _, err := pair[0].admin.SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: pair[1].name, Cut: cut})); err != nil {
				t.Fatalf("set link %s→%s: %v", pair[0].name, pair[1].name, err)
			}
		}
	}
	link(v1.LinkCut_LINK_CUT_BOTH)

	var made []check.WatchWrite
	put := func(r *testRegion, key, token string) string {
		t.Helper()
		res, err := r.put(ctx, key, r.name, token)
		if err != nil {
			t.Fatalf("put %s in %s: %v", key, r.name, err)
		}
		tok, err := clocks.InspectToken(res.CausalToken)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, check.WatchWrite{Origin: res.Version.GetOriginRegion(), Seq: res.Version.GetOriginSeq(), Vector: tok.Vector, Keys: []string{key}})
		return res.CausalToken
	}
	var sa, sb string
	for i := range 5 {
		sa = put(a, fmt.Sprintf("w/a%d", i), sa)
		sb = put(b, fmt.Sprintf("w/b%d", i), sb)
	}
	// eu-west's session moves to ap-south (which has eu-west's writes) and
	// writes there: that write depends on eu-west's, which us-east lacks.
	sc := put(cr, "w/c-after-b", sb)
	put(cr, "w/c-after-a", sa)
	put(cr, "w/c-again", sc)
	link(v1.LinkCut_LINK_CUT_UNSPECIFIED)
	c.awaitConverged(a, b, cr)

	for name, w := range watchers {
		var delivered []check.WatchWrite
		for _, e := range w.take(t, ctx, len(made)) {
			delivered = append(delivered, check.WatchWrite{Origin: e.GetVersion().GetOriginRegion(), Seq: e.GetVersion().GetOriginSeq(),
				Keys: []string{e.GetChanges()[0].GetKey()}})
		}
		if vs := check.CheckWatch(delivered, made, true); len(vs) > 0 {
			t.Errorf("watcher in %s: %d violations, first %v\ndelivered: %s", name, len(vs), vs[0], check.FormatWatch(delivered))
		}
	}
}
