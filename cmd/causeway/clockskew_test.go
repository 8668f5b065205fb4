//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// TestClockSkewedRegionFencesItself runs three real regions joined by
// gossip, one of them (ap-south) with its clock 3s ahead (--clock-skew 3s,
// beyond the default 500ms --max-clock-offset). The region whose clock is
// wrong must be the one that stops: ap-south measures its offset against
// its peers, refuses local writes with an unavailable error that says why,
// and reports the offset in /metrics and Status, while the healthy regions
// go on serving their own sessions (read-then-write included) and a later
// write in a healthy region is not beaten by a far-ahead stamp.
//
// Before the fix, ap-south accepted writes stamped 3s ahead: they won
// last-writer-wins against later writes, and sessions in the healthy
// regions that read them were refused (failed_precondition) because their
// tokens carried ap-south's timestamps.
func TestClockSkewedRegionFencesItself(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cluster := uuid.NewString()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	procs := newServeRegions(t)
	start := func(name, join string, extra ...string) *gossipRegion {
		procs.add(name, t.TempDir())
		args := []string{"--cluster-id", cluster, "--linear", "off"}
		if join != "" {
			args = append(args, "--join", join)
		}
		url := procs.start(ctx, name, append(args, extra...)...)
		return &gossipRegion{name: name, url: url,
			kv:    causewayv1connect.NewKVServiceClient(client, url),
			admin: causewayv1connect.NewAdminServiceClient(client, url)}
	}
	east := start("us-east", "")
	seed := east.status(t).Members[0].GossipAddress
	west := start("eu-west", seed)
	skewed := start("ap-south", seed, "--fault-injection", "--clock-skew", "3s")
	regions := []*gossipRegion{east, west, skewed}
	pollUntil(t, 30*time.Second, "every region alive everywhere", func() bool {
		for _, r := range regions {
			for _, other := range regions {
				if r.stateOf(t, other.name) != "alive" {
					return false
				}
			}
		}
		return true
	})
	put := func(r *gossipRegion, key, value, token string) (*v1.PutResponse, error) {
		ctx, cancel := rpcContext(ctx)
		defer cancel()
		res, err := r.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value), CausalToken: token}))
		if err != nil {
			return nil, fmt.Errorf("put %s in %s: %w", key, r.name, err)
		}
		return res.Msg, nil
	}
	get := func(r *gossipRegion, key, token string) (*v1.GetResponse, error) {
		ctx, cancel := rpcContext(ctx)
		defer cancel()
		res, err := r.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token}))
		if err != nil {
			return nil, fmt.Errorf("get %s in %s: %w", key, r.name, err)
		}
		return res.Msg, nil
	}

	// 1. The skewed region fences itself: its writes are refused with an
	// unavailable error a person can act on. (It may accept writes until it
	// has measured its peers; none are made before this point.)
	var refusal error
	accepted := 0
	fenced := pollFor(30*time.Second, func() bool {
		_, err := put(skewed, "fence-probe", "x", "")
		if err == nil {
			accepted++
		}
		if connect.CodeOf(err) == connect.CodeUnavailable && strings.Contains(err.Error(), "ahead of its peers") {
			refusal = err
			return true
		}
		return false
	})
	if !fenced {
		t.Errorf("ap-south, 3s ahead with a 500ms max offset, still accepts writes after 30s")
	} else {
		t.Logf("ap-south refuses writes (after accepting %d probes while it had not yet measured two peers): %v", accepted, refusal)
		for _, want := range []string{"ap-south", "500ms", "use another region"} {
			if !strings.Contains(refusal.Error(), want) {
				t.Errorf("refusal %q does not mention %q", refusal, want)
			}
		}
		// The offset is measured from gossip round trips, whose halves a
		// loaded machine makes unequal: 3s within half a second.
		if !regexp.MustCompile(`\b(2\.[5-9]|3\.[0-5])s ahead`).MatchString(refusal.Error()) {
			t.Errorf("refusal %q does not say the clock is about 3s ahead", refusal)
		}
	}

	// 2. It reports the offset: per peer and as refusing writes. The healthy
	// regions report no refusal.
	for _, r := range regions {
		m := scrapeMetrics(t, client, r.url)
		refusing, ok := m[`causeway_clock_offset_writes_refused{region="`+r.name+`"}`]
		want := 0.0
		if r == skewed {
			want = 1
		}
		if !ok || refusing != want {
			t.Errorf("%s: causeway_clock_offset_writes_refused = %v (reported: %v), want %v", r.name, refusing, ok, want)
		}
	}
	m := scrapeMetrics(t, client, skewed.url)
	for _, peer := range []string{"us-east", "eu-west"} {
		name := `causeway_clock_offset_seconds{peer="` + peer + `",region="ap-south"}`
		if off, ok := m[name]; !ok || off < 2.5 || off > 3.5 {
			t.Errorf("ap-south: %s = %v (reported: %v), want about 3", name, off, ok)
		}
	}
	for _, r := range regions {
		co := r.status(t).GetClockOffset()
		t.Logf("%s: clock offset %v from its peers, writes refused: %v, peers %v", r.name, co.GetOffset().AsDuration(), co.GetWritesRefused(), co.GetPeers())
		if co.GetWritesRefused() != (r == skewed) {
			t.Errorf("%s: Status says writes refused = %v", r.name, co.GetWritesRefused())
		}
		if r != skewed {
			continue
		}
		if off := co.GetOffset().AsDuration(); off < 2500*time.Millisecond || off > 3500*time.Millisecond || len(co.GetPeers()) != 2 {
			t.Errorf("ap-south: Status reports an offset of %v from %d peers, want about 3s from 2", off, len(co.GetPeers()))
		}
		if fenced && (co.GetReason() == "" || !strings.Contains(refusal.Error(), co.GetReason())) {
			t.Errorf("ap-south: Status gives the reason %q, writes were refused with %q", co.GetReason(), refusal)
		}
	}

	// A region just started refuses writes until it has measured two of
	// its peers' clocks (at most 10s); the healthy regions get there too.
	pollUntil(t, 15*time.Second, "the healthy regions serving writes", func() bool {
		return east.status(t).GetCausalState() == "serving" && west.status(t).GetCausalState() == "serving"
	})

	// 3. Last-writer-wins: a write in a healthy region made after the
	// skewed region's attempt wins everywhere.
	var skewedToken string
	if res, err := put(skewed, "race", "from-ap-south", ""); err == nil {
		t.Errorf("ap-south accepted a write stamped %v while its clock is 3s ahead", res.GetVersion().GetTimestamp())
		skewedToken = res.CausalToken
	}
	healthy, err := put(east, "race", "from-us-east", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		if skewedToken != "" { // wait for the skewed write to reach r too
			if _, err := get(r, "race", skewedToken); err != nil {
				t.Fatal(err)
			}
		}
		got, err := get(r, "race", healthy.CausalToken)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Value) != "from-us-east" {
			t.Errorf("%s: race = %q (version %v), want the later write from us-east", r.name, got.Value, got.GetVersion().GetTimestamp())
		}
	}

	// 4. Sessions in the healthy regions keep working with their own tokens:
	// read (what may have come from the skewed region), then write.
	failures := 0
	for i := range 20 {
		r := regions[i%2]
		read, err := get(r, "race", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := put(r, fmt.Sprintf("session-%d", i), "v", read.CausalToken); err != nil {
			failures++
			t.Logf("read-then-write session %d in %s: %v", i, r.name, err)
		}
	}
	if failures > 0 {
		t.Errorf("%d of 20 read-then-write sessions failed in the healthy regions", failures)
	}
	// Tokens move between the healthy regions as before.
	res, err := put(east, "moving", "1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put(west, "moving", "2", res.CausalToken); err != nil {
		t.Errorf("a us-east token in eu-west: %v", err)
	}
	// The skewed region still serves reads.
	if got, err := get(skewed, "race", healthy.CausalToken); err != nil || string(got.Value) != "from-us-east" {
		t.Errorf("a read in ap-south: %v, %v", got, err)
	}
}

// pollFor checks cond every 50ms until it holds (true) or limit passes
// (false); unlike pollUntil it lets the test go on and report more.
func pollFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// scrapeMetrics reads a node's /metrics into a map from a sample's name
// with its labels (as printed, e.g. `x{a="b"}`) to its value.
func scrapeMetrics(t *testing.T, client *http.Client, addr string) map[string]float64 {
	t.Helper()
	res, err := client.Get(addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
