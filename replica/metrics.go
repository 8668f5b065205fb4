package replica

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// nodeMetrics is one node's Prometheus registry. It is per node, not global,
// so several nodes in one process (tests) keep separate figures.
type nodeMetrics struct {
	registry     *prometheus.Registry
	latency      *prometheus.HistogramVec
	pending      prometheus.Gauge
	applyLatency prometheus.Histogram
	visibility   *prometheus.HistogramVec
	applied      prometheus.Counter
	lagEntries   *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	badFrames    prometheus.Counter
	tombstones   prometheus.Counter
}

// latencyBuckets span 100µs to ~13s: local reads at the bottom, fsynced
// writes in the middle, causal waits and WAN visibility near the top.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 18)

func newNodeMetrics(n *Node) *nodeMetrics {
	labels := prometheus.Labels{"region": n.Region()}
	m := &nodeMetrics{
		registry: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "causeway", Name: "request_duration_seconds", ConstLabels: labels,
			Help:    "Latency of API requests handled by this node, by procedure and Connect code.",
			Buckets: latencyBuckets,
		}, []string{"procedure", "code"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "dependency_wait_writes", ConstLabels: labels,
			Help: "Remote writes received but waiting for their causal past.",
		}),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "causeway", Name: "apply_duration_seconds", ConstLabels: labels,
			Help:    "Time to durably apply one batch of replicated writes.",
			Buckets: latencyBuckets,
		}),
		visibility: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "causeway", Name: "visibility_latency_seconds", ConstLabels: labels,
			Help:    "From a write's commit in its origin region (its hybrid timestamp) to its visibility here, by origin.",
			Buckets: latencyBuckets,
		}, []string{"origin"}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "causeway", Name: "replicated_writes_applied_total", ConstLabels: labels,
			Help: "Writes from other regions applied here.",
		}),
		lagEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "replication_lag_writes", ConstLabels: labels,
			Help: "Writes of the origin region not yet applied here (as of the origin's last message).",
		}, []string{"origin"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "replication_lag_seconds", ConstLabels: labels,
			Help: "Seconds since this region last had every write of the origin (0 when caught up).",
		}, []string{"origin"}),
		badFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "causeway", Name: "replication_corrupt_frames_total", ConstLabels: labels,
			Help: "Replication frames refused because their checksum or structure was wrong.",
		}),
		tombstones: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "causeway", Name: "tombstones_collected_total", ConstLabels: labels,
			Help: "Tombstones deleted because every region has them and no write can still lose to them.",
		}),
	}
	m.registry.MustRegister(
		m.tombstones,
		m.latency, m.pending, m.applyLatency, m.visibility, m.applied, m.lagEntries, m.lagSeconds, m.badFrames,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "store_size_bytes", ConstLabels: labels,
			Help: "Disk space used by the node's Pebble store.",
		}, func() float64 { return float64(n.store.DiskUsage()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "local_writes_durable", ConstLabels: labels,
			Help: "Sequence number of the last durable write accepted by this region.",
		}, func() float64 { return float64(n.durableSeq(n.Region())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "causeway", Name: "gossip_dropped_packets_total", ConstLabels: labels,
			Help: "Gossip packets and streams dropped because they failed to decrypt or decode.",
		}, func() float64 {
			if g := n.repl.gossipNode(); g != nil {
				return float64(g.DroppedPackets())
			}
			return 0
		}),
		newLinearCollector(n, labels),
		newClockCollector(n, labels),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "uptime_seconds", ConstLabels: labels,
			Help: "Seconds since the node opened its store.",
		}, func() float64 { return n.cfg.Now().Sub(n.started).Seconds() }),
	)
	return m
}

// interceptor records the latency and outcome of every unary request.
func (m *nodeMetrics) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			res, err := next(ctx, req)
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			m.latency.WithLabelValues(req.Spec().Procedure, code).Observe(time.Since(start).Seconds())
			return res, err
		}
	}
}

// linearCollector reports the linearizable tier's status figures, all from
// one Status call per scrape; it reports nothing on a node without the tier.
type linearCollector struct {
	n       *Node
	figures []linearFigure
}

type linearFigure struct {
	desc  *prometheus.Desc
	value func(*v1.LinearStatus) float64
}

func newLinearCollector(n *Node, labels prometheus.Labels) *linearCollector {
	figure := func(name, help string, value func(*v1.LinearStatus) float64) linearFigure {
		return linearFigure{desc: prometheus.NewDesc("causeway_"+name, help, nil, labels), value: value}
	}
	return &linearCollector{n: n, figures: []linearFigure{
		figure("linear_available", "1 when this node can serve linearizable requests now (it knows a leader followed by a quorum), else 0; absent without the tier.",
			func(st *v1.LinearStatus) float64 { return boolFloat(st.Available) }),
		figure("linear_leader", "1 when this node leads the linearizable tier's Raft group, else 0.",
			func(st *v1.LinearStatus) float64 {
				return boolFloat(st.Voter && st.LeaderId != "" && st.LeaderId == st.ServerId)
			}),
		figure("linear_term", "Raft term of this voter.",
			func(st *v1.LinearStatus) float64 { return float64(st.Term) }),
		figure("linear_applied_index", "Raft log index this voter's state machine has applied.",
			func(st *v1.LinearStatus) float64 { return float64(st.AppliedIndex) }),
		figure("linear_reachable_voters", "Voters of the linearizable tier this node reaches (itself included).",
			func(st *v1.LinearStatus) float64 { return float64(st.ReachableVoters) }),
	}}
}

func (c *linearCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.figures {
		ch <- f.desc
	}
}

func (c *linearCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.linear == nil {
		return
	}
	st := c.n.linear.Status()
	for _, f := range c.figures {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, f.value(st))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
