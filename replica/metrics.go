package replica

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics is one node's Prometheus registry. It is per node, not global, so
// several nodes in one process (tests, the simulator) keep separate figures.
type metrics struct {
	registry *prometheus.Registry
	latency  *prometheus.HistogramVec
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "causeway",
			Name:      "request_duration_seconds",
			Help:      "Latency of API requests handled by this node, by procedure and Connect code.",
			// 100µs to ~13s: local reads sit at the bottom, fsynced writes in
			// the middle, causal waits near the top.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"procedure", "code"}),
	}
	labels := prometheus.Labels{"region": n.Region()}
	m.registry.MustRegister(
		m.latency,
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
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "causeway", Name: "uptime_seconds", ConstLabels: labels,
			Help: "Seconds since the node opened its store.",
		}, func() float64 { return n.cfg.Now().Sub(n.started).Seconds() }),
	)
	return m
}

// interceptor records the latency and outcome of every unary request.
func (m *metrics) interceptor() connect.UnaryInterceptorFunc {
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
