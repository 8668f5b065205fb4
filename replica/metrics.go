package replica

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// nodeMetrics is one node's Prometheus registry. It is per node, not global,
// so several nodes in one process (tests) keep separate figures.
type nodeMetrics struct {
	registry     *prometheus.Registry
	latency      *prometheus.HistogramVec
	pending      prometheus.Gauge
	applyLatency prometheus.Histogram
	// applyMessages: replication messages applied together (readahead.go).
	applyMessages prometheus.Histogram
	visibility    *prometheus.HistogramVec
	applied       prometheus.Counter
	lagEntries    *prometheus.GaugeVec
	lagSeconds    *prometheus.GaugeVec
	badFrames     prometheus.Counter
	forgedPeers   prometheus.Counter
	tombstones    prometheus.Counter
	// versionRefusals: replication streams refused for want of a shared
	// protocol version (replication_version.go).
	versionRefusals prometheus.Counter
	// fsyncLatency: a write batch from the WAL to durable (Node.waitDurable).
	fsyncLatency prometheus.Histogram
	watchEvents  prometheus.Counter
	watchEnded   *prometheus.CounterVec
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
		applyMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "causeway", Name: "replication_messages_per_apply", ConstLabels: labels,
			Help:    "Replication messages from one region applied together as one batch (one fsync): more than one when messages arrived during the previous apply.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
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
		forgedPeers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "causeway", Name: "replication_forged_peers_total", ConstLabels: labels,
			Help: "Replication and snapshot requests refused because the caller's node certificate names another region than the one it spoke for.",
		}),
		fsyncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "causeway", Name: "fsync_duration_seconds", ConstLabels: labels,
			Help: "Durable commit of a batch of writes (local or replicated): from its enqueueing into the write-ahead log to the end of the fsync that covers it. " +
				"Batches enqueued during one fsync share the next (group commit); compare the count with causeway_wal_fsyncs_total.",
			Buckets: latencyBuckets,
		}),
		versionRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "causeway", Name: "replication_version_refusals_total", ConstLabels: labels,
			Help: "Replication and snapshot streams refused, by either side, because the two regions share no protocol version (a release more than one apart); the log and Status name the region.",
		}),
		tombstones: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "causeway", Name: "tombstones_collected_total", ConstLabels: labels,
			Help: "Tombstones deleted because every region has them and no write can still lose to them.",
		}),
	}
	m.watchEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "causeway", Name: "watch_events_sent_total", ConstLabels: labels,
		Help: "Change events sent to Watch streams (state events included).",
	})
	m.watchEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "causeway", Name: "watch_streams_ended_total", ConstLabels: labels,
		Help: "Watch streams that ended, by reason: client (the client went away), slow_consumer (resource_exhausted: it read too slowly), feed_truncated (its token is older than the retained feed), node_stopping, error.",
	}, []string{"reason"})
	for _, reason := range []string{"client", "slow_consumer", "feed_truncated", "node_stopping", "error"} {
		m.watchEnded.WithLabelValues(reason) // present at 0 from the start
	}
	m.registry.MustRegister(n.cfg.Metrics...)
	m.registry.MustRegister(
		m.tombstones, m.versionRefusals, m.fsyncLatency, m.watchEvents, m.watchEnded,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "causeway", Name: "wal_fsyncs_total", ConstLabels: labels,
			Help: "fsyncs of the store's write-ahead log; writes per fsync is the rate of durable writes (local and replicated) over the rate of this.",
		}, func() float64 { return float64(n.store.WALFsyncs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "watchers", ConstLabels: labels,
			Help: "Watch streams open on this node.",
		}, func() float64 { return float64(n.feed.watcherCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "watchers_dispatched", ConstLabels: labels,
			Help: "Watch streams caught up with the change feed and fed by the node's one dispatcher (the others read the feed themselves).",
		}, func() float64 { return float64(n.hub.syncedCount()) }),
		m.latency, m.pending, m.applyLatency, m.applyMessages, m.visibility, m.applied, m.lagEntries, m.lagSeconds, m.badFrames, m.forgedPeers,
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
		newClockCollector(n, labels),
		newLinkCollector(n, labels),
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

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
