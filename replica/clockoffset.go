package replica

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/clocks"
)

// Clock offset fence. A node measures its physical clock against its peers'
// (gossip acks carry the member's clock; clocks.OffsetEstimator turns the
// round trips into bounds and a verdict). While a majority of the peers it
// measured (at least two) are certainly more than MaxClockOffset away, the
// node refuses local writes with unavailable: its hybrid timestamps would
// be that far off, win (or lose) last-writer-wins against writes made later
// (earlier) elsewhere, and poison the tokens of every session that reads
// them. Reads go on; replicated writes from other regions are still applied.
//
// Refusing was chosen over clamping the node's timestamps to its peers'
// time: a clamped clock needs a trusted notion of "the peers' time", which
// is the very estimate that may be wrong, and a node whose clock is wrong
// by seconds is broken in ways the timestamps do not cover (TLS, leases,
// logs). Refusing makes the fault visible at once, to the operator and to
// clients, who are told to use another region.
//
// Writes the node stamped before it fenced itself (before it had measured
// two peers) are replicated and applied everywhere as usual: refusing them
// would stop replication for good. Their timestamps are at most the skew
// ahead, so they win last-writer-wins only against writes made within that
// skew of them; once fenced, the node makes no more.

// clockMeasureGrace bounds how long a node that knows at least two peers
// refuses writes while it has not yet measured two of them. A node
// restarted with a clock seconds off would otherwise stamp writes for the
// second or two its first gossip round trips take, and every session that
// read one of them would be refused in the healthy regions until their
// clocks pass it. Past the grace it serves whatever it measured, so a
// gossip fault cannot keep it unavailable for good.
const clockMeasureGrace = 10 * time.Second

// clockRecheck is how stale the fence's last verdict may be on the write
// path before it is recomputed (samples age out even when none arrive).
const clockRecheck = time.Second

// offsetEstimator is what the fence needs of clocks.OffsetEstimator; tests
// swap in broken ones to show their checks catch them.
type offsetEstimator interface {
	Add(clocks.OffsetSample) bool
	Estimate(now time.Time) clocks.OffsetEstimate
}

// clockFence decides whether this node may stamp local writes.
type clockFence struct {
	region string
	now    clocks.PhysicalClock
	log    *slog.Logger

	started time.Time
	// knownPeers counts the other regions' causal replicas gossip knows
	// alive (nil without gossip: nothing to measure against).
	knownPeers atomic.Pointer[func() int]

	mu       sync.Mutex // guards est and the transition log
	est      offsetEstimator
	state    atomic.Pointer[fenceState] // the last verdict; read without mu
	readings atomic.Uint64              // samples accepted
}

// fenceState is one verdict and when it was reached.
type fenceState struct {
	at       time.Time
	estimate clocks.OffsetEstimate
	refusal  error // nil: writes allowed
	// measuring: refused because the node, just started, has not yet
	// measured two of the peers it knows (clockMeasureGrace).
	measuring bool
}

func newClockFence(cfg *Config, log *slog.Logger) *clockFence {
	f := &clockFence{region: cfg.Region, now: cfg.Now, log: log, started: cfg.Now(),
		est: clocks.NewOffsetEstimator(cfg.MaxClockOffset, 0, 0)}
	f.state.Store(&fenceState{at: cfg.Now(), estimate: clocks.OffsetEstimate{MaxOffset: cfg.MaxClockOffset}})
	return f
}

// check returns the error a local write is refused with, or nil. It is on
// every write's path: one atomic load, and a recomputation at most once per
// clockRecheck.
func (f *clockFence) check() error {
	st := f.state.Load()
	now := f.now()
	age := now.Sub(st.at)
	// While a just-started node with gossip has not measured two peers,
	// every write asks again: the peers gossip finds do not trigger a
	// recomputation. Without gossip there is nothing to wait for.
	early := len(st.estimate.Peers) < 2 && now.Sub(f.started) < clockMeasureGrace && f.knownPeers.Load() != nil
	if early || age < 0 || age > clockRecheck {
		st = f.recompute()
	}
	return st.refusal
}

// estimate is the current estimate, recomputed (for Status and metrics).
func (f *clockFence) estimate() *fenceState { return f.recompute() }

// reading records a gossip clock reading of a member. Only causal replicas
// count (members with a replication address): theirs are the clocks whose
// timestamps meet this node's.
func (f *clockFence) reading(r ClockReading) {
	if !r.CausalReplica || r.Region == f.region {
		return
	}
	f.add(clocks.OffsetSample{Peer: r.Region, Sent: r.Sent, Received: r.Received, Remote: r.Remote})
}

func (f *clockFence) add(s clocks.OffsetSample) {
	f.mu.Lock()
	ok := f.est.Add(s)
	f.mu.Unlock()
	if ok {
		f.readings.Add(1)
		f.recompute()
	}
}

// recompute asks the estimator for a verdict, publishes it and logs a
// change of verdict.
func (f *clockFence) recompute() *fenceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	e := f.est.Estimate(now)
	st := &fenceState{at: now, estimate: e}
	if e.Verdict != clocks.OffsetInSync {
		st.refusal = clockOffsetRefusal(f.region, e)
	} else if known := f.knownPeers.Load(); known != nil && len(e.Peers) < 2 && now.Sub(f.started) < clockMeasureGrace {
		if peers := (*known)(); peers >= 2 {
			st.measuring = true
			st.refusal = api.Errorf(api.ErrUnavailable,
				"region %s started %v ago and is still measuring its clock against its peers' (%d of %d measured) before it stamps writes; retry shortly, or use another region",
				f.region, now.Sub(f.started).Round(time.Millisecond), len(e.Peers), peers)
		}
	}
	prev := f.state.Swap(st)
	wasFenced := prev.refusal != nil && !prev.measuring
	fenced := st.refusal != nil && !st.measuring
	switch {
	case prev.measuring && st.refusal == nil:
		f.log.Info("clock offset: measured against its peers; accepting writes", "offset", e.Offset, "peers_measured", len(e.Peers))
	case fenced && !wasFenced:
		f.log.Error("clock offset: this node's clock is too far from its peers'; refusing writes until it is fixed",
			"offset", e.Offset, "verdict", e.Verdict.String(), "max_offset", e.MaxOffset, "peers_beyond", e.Beyond, "peers_measured", len(e.Peers))
	case !fenced && wasFenced:
		f.log.Warn("clock offset: back within the max offset of its peers (or no longer measured); accepting writes again",
			"offset", e.Offset, "max_offset", e.MaxOffset, "peers_measured", len(e.Peers))
	}
	return st
}

// clockOffsetRefusal is what a write is told while the node's clock is
// too far from its peers'.
func clockOffsetRefusal(region string, e clocks.OffsetEstimate) error {
	off, where := e.Offset, "ahead of"
	if e.Verdict == clocks.OffsetBehind {
		off, where = -off, "behind"
	}
	return api.Errorf(api.ErrUnavailable,
		"region %s's clock is %.1fs %s its peers (max offset %v; %d of the %d peers it measured agree): it refuses writes until its clock is fixed (check NTP on its hosts); reads still work; use another region for writes",
		region, off.Seconds(), where, e.MaxOffset, e.Beyond, len(e.Peers))
}

// clockOffsetProto is the fence's state for AdminService/Status.
func (f *clockFence) clockOffsetProto() *v1.ClockOffset {
	st := f.estimate()
	e := st.estimate
	// writes_refused is the offset fence alone; a node just started and
	// still measuring its peers shows that in the causal state instead.
	fenced := st.refusal != nil && !st.measuring
	out := &v1.ClockOffset{Offset: durationpb.New(e.Offset), MaxOffset: durationpb.New(e.MaxOffset), WritesRefused: fenced}
	if fenced {
		out.Reason = st.refusal.Error()
	}
	for _, p := range e.Peers {
		out.Peers = append(out.Peers, &v1.PeerClockOffset{Region: p.Peer, Offset: durationpb.New(p.Offset),
			Min: durationpb.New(p.Min), Max: durationpb.New(p.Max), Samples: uint32(p.Samples)})
	}
	return out
}

// clockCollector exports the fence's state to Prometheus, from one
// estimate per scrape.
type clockCollector struct {
	f                         *clockFence
	skews                     func() uint64
	offset, refused, measured *prometheus.Desc
	readings, skewedApplied   *prometheus.Desc
}

func newClockCollector(n *Node, labels prometheus.Labels) *clockCollector {
	return &clockCollector{f: n.clockFence,
		skews: func() uint64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.causal.ClockSkews()
		},
		offset: prometheus.NewDesc("causeway_clock_offset_seconds",
			"How far this node's physical clock is ahead of the peer's (negative: behind), the middle of the bounds its recent gossip round trips give.",
			[]string{"peer"}, labels),
		refused: prometheus.NewDesc("causeway_clock_offset_writes_refused",
			"1 while this node refuses local writes because its clock is more than --max-clock-offset from a majority of its peers, else 0.",
			nil, labels),
		measured: prometheus.NewDesc("causeway_clock_offset_peers_measured",
			"Peers whose clocks this node measured recently.", nil, labels),
		readings: prometheus.NewDesc("causeway_clock_offset_readings_total",
			"Gossip round trips that measured a peer's clock.", nil, labels),
		skewedApplied: prometheus.NewDesc("causeway_clock_skewed_writes_applied_total",
			"Replicated writes applied although their timestamps were more than --max-clock-offset ahead of this node's clock (stamped by a region before it fenced itself); refusing them would stop replication.",
			nil, labels),
	}
}

func (c *clockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.offset
	ch <- c.refused
	ch <- c.measured
	ch <- c.readings
	ch <- c.skewedApplied
}

func (c *clockCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.estimate()
	for _, p := range st.estimate.Peers {
		ch <- prometheus.MustNewConstMetric(c.offset, prometheus.GaugeValue, p.Offset.Seconds(), p.Peer)
	}
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.GaugeValue, boolFloat(st.refusal != nil && !st.measuring))
	ch <- prometheus.MustNewConstMetric(c.measured, prometheus.GaugeValue, float64(len(st.estimate.Peers)))
	ch <- prometheus.MustNewConstMetric(c.readings, prometheus.CounterValue, float64(c.f.readings.Load()))
	ch <- prometheus.MustNewConstMetric(c.skewedApplied, prometheus.CounterValue, float64(c.skews()))
}

// ClockOffset is this node's clock measured against its peers', and the
// error local writes are refused with (nil while they are accepted).
func (n *Node) ClockOffset() (clocks.OffsetEstimate, error) {
	st := n.clockFence.estimate()
	return st.estimate, st.refusal
}
