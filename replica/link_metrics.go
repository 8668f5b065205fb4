package replica

import "github.com/prometheus/client_golang/prometheus"

// linkCollector exports the emulated link to each known region (what
// `causeway status` lists under "link"): bytes that crossed it or were
// dropped, its delay and jitter, and which directions are cut. Read once
// per scrape from the link layer's own counters.
type linkCollector struct {
	n                                  *Node
	sent, received, dropped, queued    *prometheus.Desc
	delay, jitter, cut, corruptedWrite *prometheus.Desc
}

func newLinkCollector(n *Node, labels prometheus.Labels) *linkCollector {
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc("causeway_link_"+name, help, append([]string{"peer"}, extra...), labels)
	}
	return &linkCollector{n: n,
		sent:           desc("sent_bytes_total", "Bytes this node sent to the peer region through the link layer."),
		received:       desc("received_bytes_total", "Bytes this node received from the peer region through the link layer."),
		dropped:        desc("dropped_bytes_total", "Bytes a cut link dropped, by direction (out: sent to the peer; in: received from it).", "direction"),
		queued:         desc("queued_bytes", "Bytes written to the peer and still waiting out the link's emulated delay."),
		delay:          desc("delay_seconds", "The link's emulated one-way delay to the peer."),
		jitter:         desc("jitter_seconds", "The link's emulated jitter to the peer."),
		cut:            desc("cut", "1 while the direction of the link is cut (out: to the peer; in: from it), else 0.", "direction"),
		corruptedWrite: desc("corrupted_writes_total", "Writes to the peer the link layer corrupted on purpose (fault injection)."),
	}
}

func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sent, c.received, c.dropped, c.queued, c.delay, c.jitter, c.cut, c.corruptedWrite} {
		ch <- d
	}
}

func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.n.Links() {
		p := l.Region
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(l.Sent), p)
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(l.Received), p)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(l.DroppedOut), p, "out")
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(l.DroppedIn), p, "in")
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(l.Queued), p)
		ch <- prometheus.MustNewConstMetric(c.delay, prometheus.GaugeValue, l.Delay.Seconds(), p)
		ch <- prometheus.MustNewConstMetric(c.jitter, prometheus.GaugeValue, l.Jitter.Seconds(), p)
		ch <- prometheus.MustNewConstMetric(c.cut, prometheus.GaugeValue, boolFloat(l.CutOut), p, "out")
		ch <- prometheus.MustNewConstMetric(c.cut, prometheus.GaugeValue, boolFloat(l.CutIn), p, "in")
		ch <- prometheus.MustNewConstMetric(c.corruptedWrite, prometheus.CounterValue, float64(l.Corrupted), p)
	}
}
