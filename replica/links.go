package replica

import (
	"sort"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/internal/link"
)

// SetLink changes the emulated link to region (fault injection). The
// region must be one this node knows: a peer, or one named in the static
// latency matrix.
func (n *Node) SetLink(region string, l link.Link) error {
	if !n.cfg.FaultInjection {
		return api.Errorf(api.ErrPermissionDenied,
			"fault injection is off on this node; start it with --fault-injection to change its links")
	}
	if region == n.cfg.Region {
		return api.Errorf(api.ErrInvalidArgument, "region %s is this node's own; a link joins two regions", region)
	}
	if _, set := n.cfg.Links.Links()[region]; !set && !n.repl.knownRegion(region) {
		return api.Errorf(api.ErrInvalidArgument, "unknown region %q: this node knows %v", region, n.knownRegions())
	}
	if err := n.cfg.Links.Set(region, l); err != nil {
		return api.Errorf(api.ErrInvalidArgument, "%v", err)
	}
	n.log.Info("link changed", "peer", region, "delay", l.Delay, "jitter", l.Jitter, "cut_out", l.CutOut, "cut_in", l.CutIn)
	return nil
}

// LinkStatus is one emulated link and its byte counters.
type LinkStatus struct {
	Region string
	link.Link
	link.Counters
}

// Links lists the links to every known region.
func (n *Node) Links() []LinkStatus {
	var out []LinkStatus
	for _, region := range n.knownRegions() {
		out = append(out, LinkStatus{Region: region, Link: n.cfg.Links.Get(region), Counters: n.cfg.Links.Counters(region)})
	}
	return out
}

func (n *Node) knownRegions() []string {
	set := map[string]bool{}
	for region := range n.cfg.Links.Links() {
		set[region] = true
	}
	for _, p := range n.repl.status() {
		set[p.Region] = true
	}
	out := make([]string, 0, len(set))
	for region := range set {
		out = append(out, region)
	}
	sort.Strings(out)
	return out
}
