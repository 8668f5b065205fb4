package demo

import (
	"time"

	"github.com/causewaydb/causeway/internal/campaign"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// faultKind is the campaign's name for the fault an action injects.
var faultKind = map[string]campaign.FaultKind{
	OpCut: campaign.FaultCut, OpIsolate: campaign.FaultPartition, OpSplit: campaign.FaultPartition,
	OpDelay: campaign.FaultDelay, OpKill: campaign.FaultKill, OpPause: campaign.FaultPause, OpSkew: campaign.FaultSkew,
}

// healthy reports whether nothing is faulted: no link cut, every delay the
// WAN matrix's without jitter, every region running with its clock right.
func (d *Demo) healthy() bool {
	s := d.links
	s.mu.Lock()
	for p, lost := range s.lost {
		if lost || s.jitter[p] != 0 {
			s.mu.Unlock()
			return false
		}
	}
	for p, delay := range s.delay {
		if delay != s.wan.Delay(p[0], p[1]) || s.jitter[p] != 0 {
			s.mu.Unlock()
			return false
		}
	}
	s.mu.Unlock()
	for _, name := range d.cfg.Regions {
		if state, skew := d.cluster.State(name); state != string(supervisor.Running) || skew != 0 {
			return false
		}
	}
	return true
}

// noteFaults records in the history when the cluster stops being healthy
// (a nemesis start event, named after the action that did it) and when it
// is healthy again (its heal), so that the report tells operations during
// faults from the others, as `causeway verify` does. Windows never
// overlap: a second fault while one is active extends the window.
func (d *Demo) noteFaults(a Action) {
	healthy := d.healthy()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !healthy && d.fault == nil:
		kind, ok := faultKind[a.Op]
		if !ok {
			kind = campaign.FaultCut
		}
		d.faultIDs++
		d.fault = &campaign.Fault{ID: d.faultIDs, Kind: kind, Region: a.Region, Peer: a.Peer,
			Delay: campaign.Duration(a.Delay), Jitter: campaign.Duration(a.Jitter), At: campaign.Duration(time.Since(d.started))}
		if kind == campaign.FaultSkew {
			d.fault.Skew, d.fault.Delay = campaign.Duration(a.Delay), 0
		}
		d.rec.Record(campaign.Event{Type: campaign.EventNemesis, Fault: d.fault, Phase: campaign.PhaseStart, Detail: a.String()})
	case healthy && d.fault != nil:
		f := *d.fault
		f.Hold = campaign.Duration(time.Since(d.started)) - f.At
		d.rec.Record(campaign.Event{Type: campaign.EventNemesis, Fault: &f, Phase: campaign.PhaseHeal, Detail: a.String()})
		d.fault = nil
	}
}
