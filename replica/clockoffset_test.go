package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	dto "github.com/prometheus/client_model/go"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/clocks"
)

// measure feeds the node's fence one round trip to each peer: this node's
// clock is ahead of each peer's by the offset given, and the request and
// the answer each take oneWay.
func measure(n *Node, clock *fakeClock, oneWay time.Duration, peers map[string]time.Duration) {
	for peer, ahead := range peers {
		sent := clock.Now()
		clock.Advance(oneWay)
		remote := clock.Now().Add(-ahead)
		clock.Advance(oneWay)
		n.clockFence.add(clocks.OffsetSample{Peer: peer, Sent: sent, Received: clock.Now(), Remote: remote})
	}
}

func openClockNode(t *testing.T) (*Node, *fakeClock) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	return openMemNode(t, vfs.NewMem(), func(c *Config) { c.Now = clock.Now }), clock
}

// skewedNodeIsRefused checks what a node 3s ahead of both its peers must
// do: refuse local writes with an unavailable error that says why, write
// nothing, keep serving reads, and report it.
func skewedNodeIsRefused(n *Node, clock *fakeClock) error {
	ctx := context.Background()
	if _, err := n.Put(ctx, "k", []byte("before"), "", ""); err != nil {
		return fmt.Errorf("a write before any measurement: %w", err)
	}
	before := n.Status().Vector.Get("us-east")
	measure(n, clock, 2*time.Millisecond, map[string]time.Duration{"eu-west": 3 * time.Second, "ap-south": 3 * time.Second})
	_, err := n.Put(ctx, "k", []byte("after"), "", "")
	switch {
	case err == nil:
		return errors.New("a node 3s ahead of both its peers accepted a write")
	case api.Code(err).String() != "unavailable" || !errors.Is(err, api.ErrUnavailable) || errors.Is(err, clocks.ErrClockOffset):
		return fmt.Errorf("refusal %v has code %v, want unavailable", err, api.Code(err))
	}
	for _, want := range []string{"region us-east's clock is 3.0s ahead of its peers", "max offset 500ms", "2 of the 2 peers", "use another region"} {
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if got := n.Status().Vector.Get("us-east"); got != before {
		return fmt.Errorf("a refused write was applied: vector at %d, was %d", got, before)
	}
	if got, err := nodeGet(n, ctx, "k", ""); err != nil || string(got.Record.Value) != "before" {
		return fmt.Errorf("a read on the fenced node: %+v, %v", got, err)
	}
	est, refusal := n.ClockOffset()
	if refusal == nil || est.Verdict != clocks.OffsetAhead || len(est.Peers) != 2 {
		return fmt.Errorf("ClockOffset = %+v, %v; want ahead of 2 peers and a refusal", est, refusal)
	}
	if p := n.clockFence.clockOffsetProto(); !p.WritesRefused || p.Reason != err.Error() || len(p.Peers) != 2 {
		return fmt.Errorf("status reports %v", p)
	}
	return nil
}

func TestClockOffsetFenceRefusesWritesOfASkewedNode(t *testing.T) {
	n, clock := openClockNode(t)
	if err := skewedNodeIsRefused(n, clock); err != nil {
		t.Fatal(err)
	}
	m := gatherMetrics(t, n)
	if got := m["causeway_clock_offset_writes_refused"]; got != 1 {
		t.Errorf("causeway_clock_offset_writes_refused = %v, want 1", got)
	}
	for _, peer := range []string{"eu-west", "ap-south"} {
		if got := m["causeway_clock_offset_seconds{peer="+peer+"}"]; got < 2.99 || got > 3.01 {
			t.Errorf("causeway_clock_offset_seconds{peer=%s} = %v, want 3", peer, got)
		}
	}

	// The operator fixes the clock: it steps back 3s. Every sample now
	// reads as taken in the future and is forgotten, so the node serves
	// again and measures afresh.
	clock.Advance(-3 * time.Second)
	if _, err := n.Put(context.Background(), "k", []byte("fixed"), "", ""); err != nil {
		t.Fatalf("a write once the clock is fixed: %v", err)
	}
	measure(n, clock, 2*time.Millisecond, map[string]time.Duration{"eu-west": 0, "ap-south": 0})
	if _, err := n.Put(context.Background(), "k", []byte("fixed"), "", ""); err != nil {
		t.Fatalf("a write once the clock is fixed and measured: %v", err)
	}
	if got := gatherMetrics(t, n)["causeway_clock_offset_writes_refused"]; got != 0 {
		t.Errorf("causeway_clock_offset_writes_refused = %v after the fix, want 0", got)
	}
}

func TestClockOffsetFenceRefusesANodeBehind(t *testing.T) {
	n, clock := openClockNode(t)
	measure(n, clock, time.Millisecond, map[string]time.Duration{"eu-west": -3 * time.Second, "ap-south": -4 * time.Second, "us-west": 0})
	_, err := n.Put(context.Background(), "k", []byte("v"), "", "")
	if api.Code(err).String() != "unavailable" || !strings.Contains(err.Error(), "3.0s behind its peers") {
		t.Fatalf("a node 3s behind two of three peers: %v, want unavailable and behind", err)
	}
}

func TestClockOffsetFenceKeepsServing(t *testing.T) {
	for name, tt := range map[string]struct {
		oneWay time.Duration
		peers  map[string]time.Duration
	}{
		"no peer measured":                     {time.Millisecond, nil},
		"one peer only":                        {time.Millisecond, map[string]time.Duration{"eu-west": 3 * time.Second}},
		"peers within the max offset":          {time.Millisecond, map[string]time.Duration{"eu-west": 400 * time.Millisecond, "ap-south": -400 * time.Millisecond}},
		"2s of WAN delay each way":             {2 * time.Second, map[string]time.Duration{"eu-west": 0, "ap-south": 0}},
		"one of two peers is the skewed one":   {time.Millisecond, map[string]time.Duration{"eu-west": 0, "ap-south": -3 * time.Second}},
		"two of five peers are the skewed one": {time.Millisecond, map[string]time.Duration{"a": 0, "b": 0, "c": 0, "d": -3 * time.Second, "e": -3 * time.Second}},
	} {
		t.Run(name, func(t *testing.T) {
			n, clock := openClockNode(t)
			measure(n, clock, tt.oneWay, tt.peers)
			if _, err := n.Put(context.Background(), "k", []byte("v"), "", ""); err != nil {
				t.Fatalf("write refused: %v", err)
			}
		})
	}
}

// TestClockOffsetFenceStopsWhenSamplesAge: a node that stops measuring its
// peers (they left, gossip is cut) keeps serving once its samples are old.
func TestClockOffsetFenceStopsWhenSamplesAge(t *testing.T) {
	n, clock := openClockNode(t)
	measure(n, clock, time.Millisecond, map[string]time.Duration{"eu-west": 3 * time.Second, "ap-south": 3 * time.Second})
	if _, err := n.Put(context.Background(), "k", []byte("v"), "", ""); err == nil {
		t.Fatal("a skewed node accepted a write")
	}
	clock.Advance(clocks.DefaultOffsetMaxAge + time.Second)
	if _, err := n.Put(context.Background(), "k", []byte("v"), "", ""); err != nil {
		t.Fatalf("with no recent measurement: %v", err)
	}
}

// brokenEstimator wraps the real estimator with a bug.
type brokenEstimator struct {
	*clocks.OffsetEstimator
	bug func(clocks.OffsetEstimate) clocks.OffsetEstimate
}

func (b brokenEstimator) Estimate(now time.Time) clocks.OffsetEstimate {
	return b.bug(b.OffsetEstimator.Estimate(now))
}

// TestSkewedNodeCheckCatchesBrokenEstimators shows that skewedNodeIsRefused
// fails when the estimator is wrong: one that never finds a node out of
// sync, and one that reads the offset with the wrong sign.
func TestSkewedNodeCheckCatchesBrokenEstimators(t *testing.T) {
	for name, bug := range map[string]func(clocks.OffsetEstimate) clocks.OffsetEstimate{
		"never out of sync": func(e clocks.OffsetEstimate) clocks.OffsetEstimate {
			e.Verdict, e.Beyond = clocks.OffsetInSync, 0
			return e
		},
		"sign flipped": func(e clocks.OffsetEstimate) clocks.OffsetEstimate {
			e.Offset = -e.Offset
			switch e.Verdict {
			case clocks.OffsetAhead:
				e.Verdict = clocks.OffsetBehind
			case clocks.OffsetBehind:
				e.Verdict = clocks.OffsetAhead
			}
			return e
		},
	} {
		t.Run(name, func(t *testing.T) {
			n, clock := openClockNode(t)
			n.clockFence.est = brokenEstimator{clocks.NewOffsetEstimator(n.cfg.MaxClockOffset, 0, 0), bug}
			err := skewedNodeIsRefused(n, clock)
			if err == nil {
				t.Fatal("the check passed a broken estimator")
			}
			t.Logf("caught as expected: %v", err)
		})
	}
}

// gatherMetrics reads the node's registry into name{label=value,...} →
// value, without the constant region label.
func gatherMetrics(t *testing.T, n *Node) map[string]float64 {
	t.Helper()
	families, err := n.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "region" {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = metricValue(m)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}
