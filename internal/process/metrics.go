package process

import (
	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/gossip"
)

// collectors are the figures of gossip and the linearizable tier, labelled
// with the node's region like the node's own. The gossip counter is there
// (at 0) without gossip, as it always was.
func (w *Wiring) collectors(region string) []prometheus.Collector {
	labels := prometheus.Labels{"region": region}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "causeway", Name: "gossip_dropped_packets_total", ConstLabels: labels,
			Help: "Gossip packets and streams dropped because they failed to decrypt or decode.",
		}, func() float64 {
			if g := w.gossip.Load(); g != nil {
				return float64(g.DroppedPackets())
			}
			return 0
		}),
		newLinearCollector(w, labels),
		newMembersCollector(w, labels),
	}
}

// membersCollector reports gossip membership as this node sees it: the
// members (nodes, itself included) in each state, every state present (at
// 0 when none is in it) so that an alert on dead members has a series to
// watch. Members of a removed region count as removed whatever their
// state. Nothing without gossip.
type membersCollector struct {
	w    *Wiring
	desc *prometheus.Desc
}

// memberStates are the values of the state label, in gossip.State order,
// then removed.
var memberStates = []string{
	gossip.Alive.String(), gossip.Suspect.String(), gossip.Dead.String(), gossip.Left.String(), "removed",
}

func newMembersCollector(w *Wiring, labels prometheus.Labels) *membersCollector {
	return &membersCollector{w: w, desc: prometheus.NewDesc("causeway_gossip_members",
		"Members of the cluster (nodes, this one included) by state as this node's gossip sees them: alive, suspect, dead, left (departed gracefully) or removed (its region removed).",
		[]string{"state"}, labels)}
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.w.gossip.Load()
	if g == nil {
		return
	}
	counts := make(map[string]int, len(memberStates))
	for _, m := range g.Members() {
		state := m.State.String()
		if m.Removed {
			state = "removed"
		}
		counts[state]++
	}
	for _, state := range memberStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[state]), state)
	}
}

// linearCollector reports the linearizable tier's status figures, all from
// one Status call per scrape; it reports nothing on a node without the tier.
type linearCollector struct {
	w       *Wiring
	figures []linearFigure
}

type linearFigure struct {
	desc  *prometheus.Desc
	value func(*v1.LinearStatus) float64
}

func newLinearCollector(w *Wiring, labels prometheus.Labels) *linearCollector {
	figure := func(name, help string, value func(*v1.LinearStatus) float64) linearFigure {
		return linearFigure{desc: prometheus.NewDesc("causeway_"+name, help, nil, labels), value: value}
	}
	return &linearCollector{w: w, figures: []linearFigure{
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
	l := c.w.linear.Load()
	if l == nil {
		return
	}
	st := l.Status()
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
