package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// State is what the dashboard shows: every region's process state and
// status, the links, and the newest events.
type State struct {
	Time      time.Time     `json:"time"`
	ClusterID string        `json:"cluster_id"`
	Regions   []RegionState `json:"regions"`
	// Links lists every ordered pair of regions.
	Links  []LinkState `json:"links"`
	Events []Event     `json:"events"`
}

// RegionState is one region as the dashboard shows it.
type RegionState struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Process is running, paused or down (the supervisor's view).
	Process string `json:"process"`
	// Skew is the clock skew the region was started with.
	Skew Duration `json:"skew"`
	// Status is AdminService/Status of the region, in the JSON that
	// `causeway status --json` prints; null until it first answers. When
	// the region does not answer, it is the last answer (Stale true).
	Status      json.RawMessage `json:"status"`
	Stale       bool            `json:"stale"`
	StatusError string          `json:"status_error,omitempty"`
	// StatusAge is how old Status is.
	StatusAge Duration `json:"status_age"`
	// Lag is, per other region, how far behind this region is.
	Lag []Lag `json:"lag"`
	// Causal and Linear say whether each tier serves clients here, in
	// words when it does not.
	Causal Availability `json:"causal"`
	Linear Availability `json:"linear"`
}

// Lag is how far one region is behind another's writes.
type Lag struct {
	Origin string `json:"origin"`
	// Writes are the origin's writes received-or-known but not applied
	// here (PeerStatus.lag_writes).
	Writes uint64 `json:"writes"`
	// BehindFor is how long Writes has been above zero, as the demo
	// measured it (0 when caught up).
	BehindFor Duration `json:"behind_for"`
	// Visibility is how long the newest demo write from the origin took to
	// become visible here, as the demo measured it (0: none measured).
	Visibility Duration `json:"visibility"`
}

// Availability is whether a tier serves here, and why not.
type Availability struct {
	Serves bool   `json:"serves"`
	Text   string `json:"text"`
}

// LinkState is one direction of a link: what From sends to To.
type LinkState struct {
	From   string   `json:"from"`
	To     string   `json:"to"`
	Delay  Duration `json:"delay"`
	Jitter Duration `json:"jitter"`
	// Cut is true when what From sends to To is lost.
	Cut bool `json:"cut"`
	// Bytes is what From's link layer sent to To (its status), and
	// Dropped what it dropped because the link is cut.
	Bytes   uint64 `json:"bytes"`
	Dropped uint64 `json:"dropped"`
}

// statusJSON is the encoding `causeway status --json` uses.
var statusJSON = protojson.MarshalOptions{EmitUnpopulated: true}

// regionPoll is what the poller knows of one region.
type regionPoll struct {
	status   *v1.StatusResponse
	at       time.Time
	err      string
	behind   map[string]time.Time // origin -> when lag_writes went above 0
	visible  map[string]time.Duration
	kick     chan struct{}
	prevDesc map[string]said // what the last status said, for events
}

// visibility is a demo write waiting to be seen by every other region.
type visibility struct {
	origin string
	seq    uint64
	at     time.Time
	seen   map[string]bool
}

// poller polls every region on its own and publishes the State.
type poller struct {
	d      *Demo
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	regions map[string]*regionPoll
	pending []*visibility
	// notify is closed (and replaced) when the state may have changed.
	notify chan struct{}
}

const pollEvery = 200 * time.Millisecond

func newPoller(d *Demo) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{d: d, ctx: ctx, cancel: cancel, regions: map[string]*regionPoll{}, notify: make(chan struct{})}
	for _, name := range d.cfg.Regions {
		rp := &regionPoll{behind: map[string]time.Time{}, visible: map[string]time.Duration{}, kick: make(chan struct{}, 1)}
		p.regions[name] = rp
		p.wg.Go(func() { p.loop(name, rp) })
	}
	return p
}

func (p *poller) close() {
	p.cancel()
	p.wg.Wait()
}

// changed wakes every page waiting for a new state.
func (p *poller) changed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.notify)
	p.notify = make(chan struct{})
}

// wait returns a channel closed at the next change.
func (p *poller) wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

// kick polls a region now.
func (p *poller) kick(name string) {
	if rp := p.regions[name]; rp != nil {
		select {
		case rp.kick <- struct{}{}:
		default:
		}
	}
}

func (p *poller) kickAll() {
	for name := range p.regions {
		p.kick(name)
	}
}

// wrote tracks a demo write until every other region applied it.
func (p *poller) wrote(origin string, seq uint64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) >= maxVisibility {
		p.pending = slices.Delete(p.pending, 0, 1)
	}
	p.pending = append(p.pending, &visibility{origin: origin, seq: seq, at: at, seen: map[string]bool{origin: true}})
}

func (p *poller) loop(name string, rp *regionPoll) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if state, _ := p.d.cluster.State(name); state == "running" {
			ctx, cancel := context.WithTimeout(p.ctx, time.Second)
			st, err := p.d.cluster.Status(ctx, name)
			cancel()
			if p.ctx.Err() != nil {
				return
			}
			p.observe(name, rp, st, err)
		}
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		case <-rp.kick:
		}
	}
}

// observe stores a region's status, measures lag and visibility, and adds
// events for what changed.
func (p *poller) observe(name string, rp *regionPoll, st *v1.StatusResponse, err error) {
	now := time.Now()
	var events []Event
	p.mu.Lock()
	if err != nil {
		if rp.err == "" {
			events = append(events, Event{Kind: "process", Region: name, Text: fmt.Sprintf("%s does not answer: %s", name, errorText(err))})
		}
		rp.err = errorText(err)
		p.mu.Unlock()
		p.emit(events)
		return
	}
	rp.status, rp.at, rp.err = st, now, ""
	for _, peer := range st.GetPeers() {
		origin := peer.GetRegion()
		if peer.GetLagWrites() == 0 {
			delete(rp.behind, origin)
		} else if _, ok := rp.behind[origin]; !ok {
			rp.behind[origin] = now
		}
	}
	vector := st.GetVector()
	kept := p.pending[:0]
	for _, v := range p.pending {
		if !v.seen[name] && vector[v.origin] >= v.seq {
			v.seen[name] = true
			took := now.Sub(v.at)
			rp.visible[v.origin] = took
			events = append(events, Event{Kind: "replicated", Region: name,
				Text: fmt.Sprintf("%s's write %s/%d visible in %s after %v", v.origin, v.origin, v.seq, name, took.Round(time.Millisecond))})
		}
		if len(v.seen) < len(p.regions) {
			kept = append(kept, v)
		}
	}
	clear(p.pending[len(kept):])
	p.pending = kept
	desc := describe(st)
	for _, k := range slices.Sorted(maps.Keys(desc)) {
		if old, ok := rp.prevDesc[k]; ok && old.what != desc[k].what {
			kind, _, _ := strings.Cut(k, ":")
			events = append(events, Event{Kind: kind, Region: name, Text: name + ": " + desc[k].text})
		}
	}
	rp.prevDesc = desc
	p.mu.Unlock()
	p.emit(events)
	p.changed()
}

func (p *poller) emit(events []Event) {
	for _, e := range events {
		e.Time = time.Now()
		p.d.events.add(e)
	}
}

// said is one part of a status: what changes make an event (what), and
// the event's text. Reasons carry changing figures ("started 2.1s ago"),
// so they are told, not compared.
type said struct{ what, text string }

// describe says, in words, the parts of a status whose changes are events.
func describe(st *v1.StatusResponse) map[string]said {
	out := map[string]said{}
	for _, m := range st.GetMembers() {
		if m.GetRegion() != st.GetRegion() {
			out["gossip:"+m.GetRegion()] = said{m.GetState(), fmt.Sprintf("gossip sees %s %s", m.GetRegion(), m.GetState())}
		}
	}
	if lin := st.GetLinear(); lin.GetEnabled() {
		if lin.GetAvailable() {
			out["linear:"] = said{"available " + lin.GetLeaderRegion(), fmt.Sprintf("linearizable tier available (leader %s, term %d)", lin.GetLeaderRegion(), lin.GetTerm())}
		} else {
			out["linear:"] = said{"refuses", "linearizable tier refuses: " + lin.GetReason()}
		}
	}
	text := "causal tier " + st.GetCausalState()
	if r := st.GetCausalStateReason(); r != "" {
		text += ": " + r
	}
	out["causal:"] = said{st.GetCausalState(), text}
	return out
}

// State builds the dashboard's state now.
func (d *Demo) State() *State {
	p := d.poller
	now := time.Now()
	s := &State{Time: now, ClusterID: d.cfg.ClusterID, Events: d.events.last(60)}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range d.cfg.Regions {
		rp := p.regions[name]
		process, skew := d.cluster.State(name)
		rs := RegionState{Name: name, URL: d.URL(name), Process: process, Skew: Duration(skew), StatusError: rp.err}
		st := rp.status
		if st != nil {
			b, err := statusJSON.Marshal(st)
			if err == nil {
				rs.Status = b
			}
			rs.StatusAge = Duration(now.Sub(rp.at).Round(time.Millisecond))
			rs.Stale = process != "running" || rp.err != "" || now.Sub(rp.at) > 2*time.Second
			for _, peer := range st.GetPeers() {
				l := Lag{Origin: peer.GetRegion(), Writes: peer.GetLagWrites(), Visibility: Duration(rp.visible[peer.GetRegion()].Round(time.Millisecond))}
				if since, ok := rp.behind[peer.GetRegion()]; ok {
					l.BehindFor = Duration(now.Sub(since).Round(100 * time.Millisecond))
				}
				rs.Lag = append(rs.Lag, l)
			}
		}
		rs.Causal, rs.Linear = availability(process, rs.Stale, rp.err, st)
		s.Regions = append(s.Regions, rs)
	}
	for _, from := range d.cfg.Regions {
		for _, to := range d.cfg.Regions {
			if from == to {
				continue
			}
			set := d.links.setting(from, to)
			l := LinkState{From: from, To: to, Delay: Duration(set.delay), Jitter: Duration(set.jitter), Cut: set.cutOut}
			if st := p.regions[from].status; st != nil {
				for _, ls := range st.GetLinks() {
					if ls.GetRegion() == to {
						l.Bytes, l.Dropped = ls.GetBytesSent(), ls.GetBytesDroppedOutgoing()
					}
				}
			}
			s.Links = append(s.Links, l)
		}
	}
	return s
}

// availability says whether each tier serves clients in a region.
func availability(process string, stale bool, statusErr string, st *v1.StatusResponse) (causal, linear Availability) {
	switch {
	case process == "down":
		return Availability{Text: "process killed: nothing answers"}, Availability{Text: "process killed: nothing answers"}
	case process == "paused":
		return Availability{Text: "process paused (SIGSTOP): requests hang"}, Availability{Text: "process paused (SIGSTOP): requests hang"}
	case st == nil || stale:
		why := "no status yet"
		if statusErr != "" {
			why = "does not answer: " + statusErr
		}
		return Availability{Text: why}, Availability{Text: why}
	}
	switch st.GetCausalState() {
	case "serving":
		causal = Availability{Serves: true, Text: "serves reads and writes"}
	case "clock-fenced":
		causal = Availability{Text: "reads only: " + st.GetCausalStateReason()}
	default:
		causal = Availability{Text: st.GetCausalState() + ": " + st.GetCausalStateReason()}
	}
	lin := st.GetLinear()
	switch {
	case !lin.GetEnabled():
		linear = Availability{Text: "off in this region"}
	case lin.GetAvailable():
		linear = Availability{Serves: true, Text: fmt.Sprintf("serves (leader %s, %d of %d voters reachable)", lin.GetLeaderRegion(), lin.GetReachableVoters(), len(lin.GetVoters()))}
	default:
		linear = Availability{Text: "refuses: " + lin.GetReason()}
	}
	return causal, linear
}
