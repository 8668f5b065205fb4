//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// rejoinCluster is three gossip-joined regions with emulated WAN delays,
// each restartable on its own API address, the way an operator runs them.
type rejoinCluster struct {
	t       *testing.T
	ctx     context.Context
	id      string
	client  *http.Client
	regions map[string]*rejoinRegion
	procs   *serveRegions
}

type rejoinRegion struct {
	gossipRegion
	dataDir string
}

const rejoinWAN = "us-east/eu-west=10ms,us-east/ap-south=25ms,eu-west/ap-south=25ms"

func newRejoinCluster(t *testing.T, ctx context.Context) *rejoinCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	c := &rejoinCluster{t: t, ctx: ctx, id: uuid.NewString(), client: client, regions: map[string]*rejoinRegion{}, procs: newServeRegions(t)}
	c.start("us-east", "")
	seed := c.gossipAddr("us-east")
	c.start("eu-west", seed)
	c.start("ap-south", seed)
	c.awaitServing(30*time.Second, "us-east", "eu-west", "ap-south")
	return c
}

// start runs region (on a new data directory at its first start, on the
// same one and the same addresses after), joining through join unless it
// is empty.
func (c *rejoinCluster) start(name, join string) *rejoinRegion {
	c.t.Helper()
	r := c.regions[name]
	if r == nil {
		r = &rejoinRegion{gossipRegion: gossipRegion{name: name}, dataDir: c.t.TempDir()}
		c.procs.add(name, r.dataDir)
		c.regions[name] = r
	}
	// The same addresses at every start, gossip's too: under emulated WAN
	// delay the other regions' gossip answers to a restarted region reach it
	// (internal/link delivers what was written before a connection closed).
	args := []string{"--cluster-id", c.id, "--fault-injection", "--wan-latency", rejoinWAN, "--linear", "off"}
	if join != "" {
		args = append(args, "--join", join)
	}
	c.client.CloseIdleConnections()
	r.url = c.procs.start(c.ctx, name, args...)
	r.kv = causewayv1connect.NewKVServiceClient(c.client, r.url)
	r.admin = causewayv1connect.NewAdminServiceClient(c.client, r.url)
	return r
}

func (c *rejoinCluster) gossipAddr(name string) string {
	c.t.Helper()
	r := c.regions[name]
	for _, m := range r.status(c.t).GetMembers() {
		if m.GetRegion() == name && m.GetState() == "alive" {
			return m.GetGossipAddress()
		}
	}
	c.t.Fatalf("region %s does not list itself alive", name)
	return ""
}

func (c *rejoinCluster) awaitServing(limit time.Duration, names ...string) {
	c.t.Helper()
	pollUntil(c.t, limit, fmt.Sprintf("regions %v serving", names), func() bool {
		for _, name := range names {
			if c.regions[name].status(c.t).GetCausalState() != "serving" {
				return false
			}
		}
		return true
	})
}

// awaitConverged waits until every region reports the same vector and
// nothing pending, and returns it.
func (c *rejoinCluster) awaitConverged(limit time.Duration) map[string]uint64 {
	c.t.Helper()
	var vector map[string]uint64
	var summary []string
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		vector, summary = nil, nil
		same := true
		for _, name := range []string{"us-east", "eu-west", "ap-south"} {
			st := c.regions[name].status(c.t)
			summary = append(summary, fmt.Sprintf("%s: %s vector %v pending %d", name, st.GetCausalState(), st.GetVector(), st.GetPendingWrites()))
			if vector == nil {
				vector = st.GetVector()
			}
			same = same && st.GetPendingWrites() == 0 && maps.Equal(st.GetVector(), vector)
		}
		if same {
			return vector
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no convergence within %v:\n%s", limit, strings.Join(summary, "\n"))
		}
		<-tick.C
	}
}

// putChain writes n keys in region as one session and returns the keys with
// their values, and the session's token.
func (c *rejoinCluster) putChain(region, prefix string, n int, token string) (map[string]string, string) {
	c.t.Helper()
	written := map[string]string{}
	r := c.regions[region]
	for i := range n {
		key, value := fmt.Sprintf("%s/%03d", prefix, i), fmt.Sprintf("%s value %d", prefix, i)
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		res, err := r.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value), CausalToken: token}))
		cancel()
		if err != nil {
			c.t.Fatalf("put %s in %s: %v", key, region, err)
		}
		token = res.Msg.GetCausalToken()
		written[key] = value
	}
	return written, token
}

// checkHeld reads every key in every region with token and reports each one
// not holding its acknowledged value.
func (c *rejoinCluster) checkHeld(written map[string]string, token string) {
	c.t.Helper()
	missing := 0
	for _, name := range []string{"us-east", "eu-west", "ap-south"} {
		r := c.regions[name]
		for key, want := range written {
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			res, err := r.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token}))
			cancel()
			switch {
			case err != nil:
				c.t.Errorf("get %s in %s: %v", key, name, err)
			case !res.Msg.GetFound() || string(res.Msg.GetValue()) != want:
				missing++
				if missing <= 10 {
					c.t.Errorf("region %s holds found=%v %q for %s; want the acknowledged %q", name, res.Msg.GetFound(), res.Msg.GetValue(), key, want)
				}
			}
		}
	}
	if missing > 10 {
		c.t.Errorf("... %d acknowledged writes missing in all", missing)
	}
}

// TestRegionRejoinsAfterLosingItsData follows the README's recovery for a
// region whose data directory is gone: kill it, delete the directory, start
// it again with the same flags and --join, with clients writing to it the
// moment it is back. Every write acknowledged before or after must reach
// every region, the region's new writes must continue its sequence (not
// reuse numbers the others hold), a token from the reborn region must read
// its writes elsewhere, and the regions must converge.
func TestRegionRejoinsAfterLosingItsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := newRejoinCluster(t, ctx)

	before, _ := c.putChain("ap-south", "old", 150, "")
	fromUS, _ := c.putChain("us-east", "us", 20, "")
	maps.Copy(before, fromUS)
	vec := c.awaitConverged(30 * time.Second)
	if vec["ap-south"] != 150 {
		t.Fatalf("converged vector %v; want 150 writes of ap-south", vec)
	}

	// The disk is lost.
	ap := c.regions["ap-south"]
	c.procs.kill("ap-south")
	if err := os.RemoveAll(ap.dataDir); err != nil {
		t.Fatal(err)
	}
	c.start("ap-south", c.gossipAddr("us-east"))

	// Clients write to it from the moment it answers: each write is either
	// refused (it is joining) or acknowledged, and every acknowledged one
	// must survive.
	var (
		mu       sync.Mutex
		hammered = map[string]string{}
		refused  int
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	// A failing wait below ends the test: the writers stop first, so none
	// reports after it.
	defer halt()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, value := fmt.Sprintf("hammer/%d/%04d", w, i), fmt.Sprintf("hammer %d %d", w, i)
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := ap.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value)}))
				rcancel()
				mu.Lock()
				switch {
				case err == nil:
					hammered[key] = value
				case connect.CodeOf(err) == connect.CodeUnavailable:
					refused++
					mu.Unlock()
					// A client backs off before retrying a refused write.
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					continue
				default:
					t.Errorf("put %s in the rejoining region: %v", key, err)
				}
				done := len(hammered) >= 40
				mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	c.awaitServing(60*time.Second, "ap-south")
	wg.Wait() // each writer stops after 40 acknowledged writes
	halt()
	t.Logf("while ap-south rejoined: %d writes refused, then %d acknowledged", refused, len(hammered))
	if refused == 0 {
		t.Log("no write arrived while ap-south was joining (it joined before the first one)")
	}

	after, token := c.putChain("ap-south", "new", 150, "")
	vec = c.awaitConverged(60 * time.Second)
	if want := uint64(150 + len(hammered) + 150); vec["ap-south"] != want {
		t.Errorf("converged vector %v; want ap-south's writes to continue its sequence: %d", vec, want)
	}
	all := map[string]string{}
	maps.Copy(all, before)
	maps.Copy(all, hammered)
	maps.Copy(all, after)
	c.checkHeld(all, "")

	// A token of the reborn region reads its session's writes elsewhere.
	for _, name := range []string{"us-east", "eu-west"} {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := c.regions[name].kv.Get(rctx, connect.NewRequest(&v1.GetRequest{Key: "new/149", CausalToken: token}))
		rcancel()
		if err != nil || string(res.Msg.GetValue()) != after["new/149"] {
			t.Errorf("region %s, with the token of ap-south's session: %v, %v; want %q", name, res, err, after["new/149"])
		}
	}
}

// TestRegionThatLostWritesStopsAndSaysSo starts a region whose data
// directory was lost the unsafe way, without --join: the other regions still
// hold its earlier writes, and as soon as one of them asks it for the writes
// after those, it must stop serving and name the repair.
func TestRegionThatLostWritesStopsAndSaysSo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := newRejoinCluster(t, ctx)
	c.putChain("ap-south", "old", 30, "")
	c.awaitConverged(30 * time.Second)

	ap := c.regions["ap-south"]
	c.procs.kill("ap-south")
	if err := os.RemoveAll(ap.dataDir); err != nil {
		t.Fatal(err)
	}
	c.start("ap-south", "") // the unsafe way: no --join

	var st *v1.StatusResponse
	pollUntil(t, 30*time.Second, "ap-south to find that it lost writes", func() bool {
		st = ap.status(t)
		return st.GetCausalState() == "lost-writes"
	})
	if !strings.Contains(st.GetCausalStateReason(), "--join") {
		t.Errorf("status reason %q does not name the repair (--join)", st.GetCausalStateReason())
	}
	// The CLI's status says so too, with the repair.
	if r := runCLI("", "status", "--addr", ap.url); !strings.Contains(r.stdout, "causal tier      lost-writes: ") || !strings.Contains(r.stdout, "--join") {
		t.Errorf("causeway status of a region that lost writes does not say so with the repair:\n%v", r)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := ap.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: "after", Value: []byte("x")}))
	rcancel()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable || !strings.Contains(ce.Message(), "empty its data directory") {
		t.Errorf("put in a region that lost writes: %v; want unavailable naming the repair", err)
	}
}

// TestRejoinWaitsForEveryRegionAndRepairsTheOneBehind wipes a region while
// another region lacks its newest writes and cannot reach it: the rejoining
// region must wait for that region's snapshot (serving nothing meanwhile),
// take the writes of its earlier life from the region that has them, and
// the region that was behind must catch up from the rejoined region's
// snapshot (a merge into a region with data of its own), so that every
// acknowledged write is everywhere and the regions converge.
func TestRejoinWaitsForEveryRegionAndRepairsTheOneBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := newRejoinCluster(t, ctx)
	first, _ := c.putChain("ap-south", "first", 40, "")
	c.awaitConverged(30 * time.Second)

	// eu-west stops hearing from ap-south; us-east still does.
	setLink := func(on, peer string, cut v1.LinkCut) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		if _, err := c.regions[on].admin.SetLink(rctx, connect.NewRequest(&v1.SetLinkRequest{Region: peer, Cut: cut})); err != nil {
			t.Fatal(err)
		}
	}
	setLink("eu-west", "ap-south", v1.LinkCut_LINK_CUT_BOTH)
	second, _ := c.putChain("ap-south", "second", 40, "")
	pollUntil(t, 30*time.Second, "us-east to hold all 80 writes of ap-south", func() bool {
		return c.regions["us-east"].status(t).GetVector()["ap-south"] == 80
	})
	if got := c.regions["eu-west"].status(t).GetVector()["ap-south"]; got != 40 {
		t.Fatalf("eu-west holds %d writes of ap-south behind the cut; want 40", got)
	}

	ap := c.regions["ap-south"]
	c.procs.kill("ap-south")
	if err := os.RemoveAll(ap.dataDir); err != nil {
		t.Fatal(err)
	}
	c.start("ap-south", c.gossipAddr("us-east"))

	// eu-west cannot be reached: the join waits for it, naming it.
	pollUntil(t, 30*time.Second, "ap-south to wait for eu-west alone", func() bool {
		st := ap.status(t)
		return st.GetCausalState() == "joining" && strings.Contains(st.GetCausalStateReason(), "waiting for eu-west)")
	})
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := ap.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: "early", Value: []byte("x")}))
	rcancel()
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("put in a joining region: %v; want unavailable", err)
	}

	setLink("eu-west", "ap-south", v1.LinkCut_LINK_CUT_UNSPECIFIED)
	c.awaitServing(60*time.Second, "ap-south")
	third, _ := c.putChain("ap-south", "third", 20, "")
	vec := c.awaitConverged(60 * time.Second)
	if vec["ap-south"] != 100 {
		t.Errorf("converged vector %v; want ap-south's 100 writes (80, then 20 continuing the sequence)", vec)
	}
	if !strings.Contains(c.procs.stderrOf("eu-west"), "merged a snapshot") {
		t.Errorf("eu-west converged without logging a merged snapshot; the test did not exercise the merge")
	}
	all := map[string]string{}
	for _, m := range []map[string]string{first, second, third} {
		maps.Copy(all, m)
	}
	c.checkHeld(all, "")
}
