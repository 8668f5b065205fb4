package clocks_test

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

// epoch is "true" time zero of every scenario.
var epoch = time.Unix(1_700_000_000, 0)

// roundTrip is one round trip to a peer in true time: the request leaves at
// start, takes out to reach the peer (who reads its clock then) and back to
// come back.
type roundTrip struct {
	start     time.Duration // true time since epoch
	out, back time.Duration
}

// sampleOf is the sample this node takes in rt when its clock is ahead of
// true time by local and the peer's by remote.
func sampleOf(peer string, local, remote time.Duration, rt roundTrip) clocks.OffsetSample {
	sent := epoch.Add(rt.start)
	atPeer := sent.Add(rt.out)
	return clocks.OffsetSample{
		Peer:     peer,
		Sent:     sent.Add(local),
		Remote:   atPeer.Add(remote),
		Received: atPeer.Add(rt.back).Add(local),
	}
}

// scenario is this node's clock offset from true time and its peers'.
type scenario struct {
	local time.Duration
	peers map[string]time.Duration
	trips []roundTrip // every peer is sampled in each
}

// samples lists the samples of s, peer by peer.
func (s scenario) samples() []clocks.OffsetSample {
	var out []clocks.OffsetSample
	for _, rt := range s.trips {
		for peer, remote := range s.peers {
			out = append(out, sampleOf(peer, s.local, remote, rt))
		}
	}
	return out
}

// now is this node's clock just after the last round trip.
func (s scenario) now() time.Time {
	var end time.Duration
	for _, rt := range s.trips {
		end = max(end, rt.start+rt.out+rt.back)
	}
	return epoch.Add(end + s.local)
}

func estimate(maxOffset time.Duration, samples []clocks.OffsetSample, now time.Time) clocks.OffsetEstimate {
	e := clocks.NewOffsetEstimator(maxOffset, time.Minute, 0)
	for _, s := range samples {
		e.Add(s)
	}
	return e.Estimate(now)
}

func TestOffsetEstimator(t *testing.T) {
	const max = 500 * time.Millisecond
	lan := []roundTrip{{start: 0, out: 5 * time.Millisecond, back: 5 * time.Millisecond}, {start: time.Second, out: 3 * time.Millisecond, back: 4 * time.Millisecond}}
	tests := []struct {
		name    string
		s       scenario
		verdict clocks.OffsetVerdict
		offset  time.Duration // median, to within 10ms
	}{
		{"alone", scenario{trips: lan}, clocks.OffsetInSync, 0},
		{"in sync", scenario{peers: map[string]time.Duration{"a": 10 * time.Millisecond, "b": -20 * time.Millisecond}, trips: lan}, clocks.OffsetInSync, 5 * time.Millisecond},
		{"3s ahead of both peers", scenario{local: 3 * time.Second, peers: map[string]time.Duration{"a": 0, "b": 0}, trips: lan}, clocks.OffsetAhead, 3 * time.Second},
		{"3s behind both peers", scenario{local: -3 * time.Second, peers: map[string]time.Duration{"a": 0, "b": 0}, trips: lan}, clocks.OffsetBehind, -3 * time.Second},
		{"one peer only: cannot tell whose clock is wrong", scenario{local: 3 * time.Second, peers: map[string]time.Duration{"a": 0}, trips: lan}, clocks.OffsetInSync, 3 * time.Second},
		{"one peer 3s ahead of this node and another", scenario{peers: map[string]time.Duration{"a": 0, "x": 3 * time.Second}, trips: lan}, clocks.OffsetInSync, -1500 * time.Millisecond},
		{"minority of five beyond", scenario{local: 3 * time.Second, peers: map[string]time.Duration{"a": 3 * time.Second, "b": 3 * time.Second, "c": 3 * time.Second, "d": 0, "e": 0}, trips: lan}, clocks.OffsetInSync, 0},
		{"majority of five beyond", scenario{local: 3 * time.Second, peers: map[string]time.Duration{"a": 3 * time.Second, "b": 3 * time.Second, "c": 0, "d": 0, "e": 0}, trips: lan}, clocks.OffsetAhead, 3 * time.Second},
		{"2s each way of WAN delay is not offset", scenario{peers: map[string]time.Duration{"a": 0, "b": 0},
			trips: []roundTrip{{out: 2 * time.Second, back: 2 * time.Second}}}, clocks.OffsetInSync, 0},
		{"lopsided WAN delay is not offset", scenario{peers: map[string]time.Duration{"a": 0, "b": 0},
			trips: []roundTrip{{out: 0, back: 3 * time.Second}}}, clocks.OffsetInSync, 1500 * time.Millisecond},
		{"700ms ahead with a 400ms round trip is not certain", scenario{local: 700 * time.Millisecond, peers: map[string]time.Duration{"a": 0, "b": 0},
			trips: []roundTrip{{out: 200 * time.Millisecond, back: 200 * time.Millisecond}}}, clocks.OffsetInSync, 700 * time.Millisecond},
		{"700ms ahead, a later fast round trip makes it certain", scenario{local: 700 * time.Millisecond, peers: map[string]time.Duration{"a": 0, "b": 0},
			trips: []roundTrip{{out: 200 * time.Millisecond, back: 200 * time.Millisecond}, {start: time.Second, out: 10 * time.Millisecond, back: 10 * time.Millisecond}}}, clocks.OffsetAhead, 700 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := estimate(max, tt.s.samples(), tt.s.now())
			if got.Verdict != tt.verdict {
				t.Errorf("verdict %v (beyond: %d), want %v; peers %+v", got.Verdict, got.Beyond, tt.verdict, got.Peers)
			}
			if d := got.Offset - tt.offset; d < -10*time.Millisecond || d > 10*time.Millisecond {
				t.Errorf("offset %v, want %v", got.Offset, tt.offset)
			}
			if len(got.Peers) != len(tt.s.peers) {
				t.Errorf("%d peers measured, want %d", len(got.Peers), len(tt.s.peers))
			}
			for _, p := range got.Peers {
				truth := tt.s.local - tt.s.peers[p.Peer]
				if truth < p.Min || truth > p.Max {
					t.Errorf("peer %s: [%v, %v] does not contain the true offset %v", p.Peer, p.Min, p.Max, truth)
				}
			}
		})
	}
}

func TestOffsetEstimatorIntersectsSamples(t *testing.T) {
	e := clocks.NewOffsetEstimator(500*time.Millisecond, time.Minute, 0)
	s1 := clocks.OffsetSample{Peer: "a", Sent: epoch, Remote: epoch.Add(-3 * time.Second), Received: epoch.Add(200 * time.Millisecond)}
	s2 := clocks.OffsetSample{Peer: "a", Sent: epoch.Add(time.Second + 100*time.Millisecond), Remote: epoch.Add(-2 * time.Second), Received: epoch.Add(time.Second + 400*time.Millisecond)}
	e.Add(s1)
	e.Add(s2)
	got := e.Estimate(epoch.Add(2 * time.Second)).Peers
	want := clocks.PeerOffset{Peer: "a", Min: 3100 * time.Millisecond, Max: 3200 * time.Millisecond, Offset: 3150 * time.Millisecond, Samples: 2, Newest: s2.Received}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("peers %+v, want [%+v]", got, want)
	}
}

func TestOffsetEstimatorForgets(t *testing.T) {
	const max = 500 * time.Millisecond
	ahead := scenario{local: 3 * time.Second, peers: map[string]time.Duration{"a": 0, "b": 0},
		trips: []roundTrip{{out: time.Millisecond, back: time.Millisecond}}}
	newEstimator := func() *clocks.OffsetEstimator {
		e := clocks.NewOffsetEstimator(max, time.Minute, 3)
		for _, s := range ahead.samples() {
			e.Add(s)
		}
		if v := e.Estimate(ahead.now()).Verdict; v != clocks.OffsetAhead {
			t.Fatalf("verdict %v before, want ahead", v)
		}
		return e
	}

	t.Run("samples older than the max age", func(t *testing.T) {
		e := newEstimator()
		if got := e.Estimate(ahead.now().Add(time.Minute + time.Second)); got.Verdict != clocks.OffsetInSync || len(got.Peers) != 0 {
			t.Fatalf("a minute later: %+v, want in sync with no peers", got)
		}
	})
	t.Run("this node's clock stepped back", func(t *testing.T) {
		// The operator fixes the clock: it goes back 3s, so every sample
		// was "received in the future" and none is believed.
		e := newEstimator()
		if got := e.Estimate(ahead.now().Add(-3 * time.Second)); got.Verdict != clocks.OffsetInSync || len(got.Peers) != 0 {
			t.Fatalf("after the step: %+v, want in sync with no peers", got)
		}
	})
	t.Run("a new sample contradicts the old ones", func(t *testing.T) {
		e := newEstimator()
		fixed := scenario{peers: ahead.peers, trips: []roundTrip{{start: 10 * time.Second, out: time.Millisecond, back: time.Millisecond}}}
		for _, s := range fixed.samples() {
			e.Add(s)
		}
		got := e.Estimate(fixed.now())
		if got.Verdict != clocks.OffsetInSync || got.Peers[0].Samples != 1 {
			t.Fatalf("after the fix: %+v, want in sync from the newest sample alone", got)
		}
	})
	t.Run("only the last samples per peer", func(t *testing.T) {
		e := newEstimator()
		fixed := scenario{peers: ahead.peers, trips: []roundTrip{{start: 10 * time.Second, out: time.Millisecond, back: time.Millisecond}}}
		for range 3 {
			for _, s := range fixed.samples() {
				e.Add(s)
			}
		}
		if got := e.Estimate(fixed.now()); got.Peers[0].Samples != 3 {
			t.Fatalf("%+v: want 3 samples kept", got.Peers[0])
		}
	})
	t.Run("a departed peer", func(t *testing.T) {
		e := newEstimator()
		e.Forget("a")
		if got := e.Estimate(ahead.now()); got.Verdict != clocks.OffsetInSync || len(got.Peers) != 1 {
			t.Fatalf("%+v: want in sync, one peer left", got)
		}
	})
	t.Run("a round trip that ends before it starts", func(t *testing.T) {
		e := clocks.NewOffsetEstimator(max, 0, 0)
		if e.Add(clocks.OffsetSample{Peer: "a", Sent: epoch, Received: epoch.Add(-time.Millisecond)}) {
			t.Fatal("Add accepted a negative round trip")
		}
		if e.Add(clocks.OffsetSample{Sent: epoch, Received: epoch}) {
			t.Fatal("Add accepted a sample without a peer")
		}
	})
}

// verdictFunc is the decision under test: real estimator or a broken one.
type verdictFunc func(maxOffset time.Duration, samples []clocks.OffsetSample, now time.Time) clocks.OffsetVerdict

func estimatorVerdict(maxOffset time.Duration, samples []clocks.OffsetSample, now time.Time) clocks.OffsetVerdict {
	return estimate(maxOffset, samples, now).Verdict
}

// delayIsNotOffset checks the property of the estimator that matters most:
// clocks within maxOffset of each other are never judged out of sync,
// whatever the network delays (one-way delays up to 10s, lopsided, varying
// per round trip).
func delayIsNotOffset(decide verdictFunc, maxOffset time.Duration, s scenario) error {
	if v := decide(maxOffset, s.samples(), s.now()); v != clocks.OffsetInSync {
		return fmt.Errorf("clocks within %v of each other judged %v: local %v, peers %v, round trips %+v", maxOffset, v, s.local, s.peers, s.trips)
	}
	return nil
}

func drawScenario(t *rapid.T, local time.Duration, peerOffset *rapid.Generator[time.Duration]) scenario {
	s := scenario{local: local, peers: map[string]time.Duration{}}
	for i := range rapid.IntRange(0, 7).Draw(t, "peers") {
		s.peers[fmt.Sprintf("p%d", i)] = peerOffset.Draw(t, "peer offset")
	}
	delay := rapid.Int64Range(0, int64(10*time.Second)).AsAny()
	var at time.Duration
	for range rapid.IntRange(1, 10).Draw(t, "round trips") {
		at += time.Duration(rapid.Int64Range(0, int64(5*time.Second)).Draw(t, "gap"))
		s.trips = append(s.trips, roundTrip{start: at, out: time.Duration(delay.Draw(t, "out").(int64)), back: time.Duration(delay.Draw(t, "back").(int64))})
	}
	return s
}

func TestPropertyDelayIsNotOffset(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxOffset := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(2*time.Second)).Draw(t, "max offset"))
		local := time.Duration(rapid.Int64Range(-int64(maxOffset)/2, int64(maxOffset)/2).Draw(t, "local"))
		// Every peer within maxOffset of this node's clock.
		peer := rapid.Custom(func(t *rapid.T) time.Duration {
			return local + time.Duration(rapid.Int64Range(-int64(maxOffset), int64(maxOffset)).Draw(t, "from local"))
		})
		s := drawScenario(t, local, peer)
		if err := delayIsNotOffset(estimatorVerdict, maxOffset, s); err != nil {
			t.Fatal(err)
		}
		for _, p := range estimate(maxOffset, s.samples(), s.now()).Peers {
			if truth := local - s.peers[p.Peer]; truth < p.Min || truth > p.Max {
				t.Fatalf("peer %s: [%v, %v] excludes the true offset %v", p.Peer, p.Min, p.Max, truth)
			}
		}
	})
}

// TestPropertySkewedNodeIsCaught: a node whose clock is further from a
// majority of its peers than maxOffset plus the slowest round trip is
// judged ahead or behind, whatever the delays.
func TestPropertySkewedNodeIsCaught(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxOffset := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(2*time.Second)).Draw(t, "max offset"))
		// Round trips of at most 20s (10s each way), so 20s beyond the max
		// offset is certain.
		skew := maxOffset + 20*time.Second + time.Duration(rapid.Int64Range(1, int64(time.Hour)).Draw(t, "skew beyond"))
		want := clocks.OffsetAhead
		if rapid.Bool().Draw(t, "behind") {
			skew, want = -skew, clocks.OffsetBehind
		}
		s := drawScenario(t, skew, rapid.Just(time.Duration(0)))
		if len(s.peers) < 2 {
			return
		}
		// A minority of the peers share the node's wrong clock.
		for i := range (len(s.peers) - 1) / 2 {
			s.peers[fmt.Sprintf("p%d", i)] = skew
		}
		if got := estimate(maxOffset, s.samples(), s.now()); got.Verdict != want {
			t.Fatalf("node %v off, peers %v: verdict %v (beyond %d), want %v", skew, s.peers, got.Verdict, got.Beyond, want)
		}
	})
}

// TestDelayPropertyCatchesANaiveEstimator shows the property above has
// teeth: an estimator that judges by Cristian's midpoint alone (remote minus
// the middle of the round trip) reads a lopsided delay as offset, and
// delayIsNotOffset says so.
func TestDelayPropertyCatchesANaiveEstimator(t *testing.T) {
	naive := func(maxOffset time.Duration, samples []clocks.OffsetSample, now time.Time) clocks.OffsetVerdict {
		ahead, behind := 0, 0
		for _, s := range samples {
			mid := s.Sent.Add(s.Received.Sub(s.Sent) / 2)
			switch off := mid.Sub(s.Remote); {
			case off > maxOffset:
				ahead++
			case off < -maxOffset:
				behind++
			}
		}
		switch {
		case ahead > len(samples)/2:
			return clocks.OffsetAhead
		case behind > len(samples)/2:
			return clocks.OffsetBehind
		}
		return clocks.OffsetInSync
	}
	s := scenario{peers: map[string]time.Duration{"a": 0, "b": 0}, trips: []roundTrip{{out: 0, back: 3 * time.Second}}}
	if err := delayIsNotOffset(naive, 500*time.Millisecond, s); err == nil {
		t.Fatal("the property passed a naive estimator that reads a 3s one-way delay as 1.5s of offset")
	} else {
		t.Logf("caught as expected: %v", err)
	}
	if err := delayIsNotOffset(estimatorVerdict, 500*time.Millisecond, s); err != nil {
		t.Fatal(err)
	}
}
