package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// FaultKind names a kind of fault the nemesis injects.
type FaultKind string

// The faults. Link faults go through AdminService/SetLink (the nodes run
// with --fault-injection); process faults through signals.
const (
	// FaultPartition isolates one region: its links to every other region
	// are cut in both directions.
	FaultPartition FaultKind = "partition"
	// FaultCut cuts one direction of one link: Region stops sending to
	// Peer, while Peer's writes still reach Region.
	FaultCut FaultKind = "cut"
	// FaultDelay adds one-way delay and jitter to one link, both ways.
	FaultDelay FaultKind = "delay"
	// FaultKill sends SIGKILL to a region and restarts it on its data
	// directory when the fault heals.
	FaultKill FaultKind = "kill"
	// FaultPause stops a region with SIGSTOP and continues it with SIGCONT.
	FaultPause FaultKind = "pause"
	// FaultSkew restarts a region with its physical clock offset
	// (serve --clock-skew), and restarts it without the offset when the
	// fault heals.
	FaultSkew FaultKind = "skew"
	// FaultWipe loses a region's data directory, once its writes all live
	// in other regions too (Cluster.Wipe), and brings it back when the fault
	// heals as the README's recovery says: the same flags and --join. It
	// rejoins (copies every other region) before it serves again.
	FaultWipe FaultKind = "wipe"
)

// AllFaults lists every fault kind.
var AllFaults = []FaultKind{FaultPartition, FaultCut, FaultDelay, FaultKill, FaultPause, FaultSkew, FaultWipe}

// ParseFaults reads a comma-separated list of fault kinds; "all" means
// every kind, "none" or "" none.
func ParseFaults(s string) ([]FaultKind, error) {
	var out []FaultKind
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "" || item == "none":
		case item == "all":
			out = append(out, AllFaults...)
		case slices.Contains(AllFaults, FaultKind(item)):
			out = append(out, FaultKind(item))
		default:
			return nil, fmt.Errorf("unknown fault %q (known: %v, all, none)", item, AllFaults)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Duration is a time.Duration that reads and writes JSON as "1.5s".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Fault is one planned fault: what, where, when (At, after the campaign's
// start) and for how long (Hold).
type Fault struct {
	ID     int       `json:"id"`
	Kind   FaultKind `json:"kind"`
	Region string    `json:"region"`
	Peer   string    `json:"peer,omitempty"`
	Delay  Duration  `json:"delay,omitempty"`
	Jitter Duration  `json:"jitter,omitempty"`
	Skew   Duration  `json:"skew,omitempty"`
	At     Duration  `json:"at"`
	Hold   Duration  `json:"hold"`
}

func (f Fault) String() string {
	switch f.Kind {
	case FaultPartition:
		return fmt.Sprintf("partition %s from every region", f.Region)
	case FaultCut:
		return fmt.Sprintf("cut %s->%s", f.Region, f.Peer)
	case FaultDelay:
		return fmt.Sprintf("delay %s<->%s %v±%v", f.Region, f.Peer, f.Delay, f.Jitter)
	case FaultKill:
		return fmt.Sprintf("SIGKILL %s, restart", f.Region)
	case FaultPause:
		return fmt.Sprintf("SIGSTOP %s, SIGCONT", f.Region)
	case FaultSkew:
		return fmt.Sprintf("restart %s with clock skew %+v", f.Region, time.Duration(f.Skew))
	case FaultWipe:
		return fmt.Sprintf("wipe %s's data directory, restart it with --join", f.Region)
	}
	return string(f.Kind)
}

// PlanConfig shapes a fault schedule.
type PlanConfig struct {
	Seed    uint64
	Regions []string
	Kinds   []FaultKind
	// Start and End bound the window in which faults are active, as
	// offsets from the campaign's start; every fault heals by End.
	Start, End time.Duration
	// MaxSkew bounds a clock skew (default 10s); skews are drawn from
	// ±[max(MaxSkew/10, 1s), MaxSkew], beyond serve's default
	// --max-clock-offset (500ms), so the skewed region fences itself.
	MaxSkew time.Duration
	// MinHold and MaxHold bound how long a fault lasts. Defaults: 1s, and
	// an eighth of the window between 2s and 30s, so that a short campaign
	// still sees every kind of fault and a long one sees partitions long
	// enough for gossip to declare a region dead.
	MinHold, MaxHold time.Duration
	// MaxGap bounds the quiet time between faults (default 1s).
	MaxGap time.Duration
}

// Plan draws a fault schedule from cfg.Seed: the same seed and
// configuration always give the same plan. Faults come one after another,
// with quiet gaps between them, their kinds dealt from a shuffled deck of
// cfg.Kinds (every kind once before any twice); a fault that would not
// heal by cfg.End is not planned. A clock skew holds at least 3s (or
// MaxHold if shorter), so the skewed region serves for a while.
func Plan(cfg PlanConfig) []Fault {
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 10 * time.Second
	}
	if cfg.MinHold == 0 {
		cfg.MinHold = time.Second
	}
	if cfg.MaxHold == 0 {
		cfg.MaxHold = min(max((cfg.End-cfg.Start)/8, 2*time.Second), 30*time.Second)
	}
	cfg.MaxHold = max(cfg.MaxHold, cfg.MinHold)
	if cfg.MaxGap == 0 {
		cfg.MaxGap = time.Second
	}
	kinds := cfg.Kinds
	if len(cfg.Regions) < 2 {
		// One region has no link to fault.
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k FaultKind) bool {
			return k == FaultPartition || k == FaultCut || k == FaultDelay
		})
	}
	if len(kinds) == 0 || len(cfg.Regions) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6e656d65736973)) // "nemesis"
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	var deck []FaultKind
	var plan []Fault
	for at := cfg.Start; ; {
		if len(deck) == 0 {
			deck = slices.Clone(kinds)
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		f := Fault{ID: len(plan) + 1, Kind: deck[0], At: Duration(at)}
		deck = deck[1:]
		f.Region = cfg.Regions[rng.IntN(len(cfg.Regions))]
		hold := between(cfg.MinHold, cfg.MaxHold)
		switch f.Kind {
		case FaultCut, FaultDelay:
			peers := slices.DeleteFunc(slices.Clone(cfg.Regions), func(r string) bool { return r == f.Region })
			f.Peer = peers[rng.IntN(len(peers))]
			if f.Kind == FaultDelay {
				f.Delay = Duration(between(50*time.Millisecond, 500*time.Millisecond).Truncate(time.Millisecond))
				f.Jitter = Duration(between(0, time.Duration(f.Delay)/2).Truncate(time.Millisecond))
			}
		case FaultSkew:
			mag := between(max(cfg.MaxSkew/10, time.Second), max(cfg.MaxSkew, time.Second)).Truncate(100 * time.Millisecond)
			if rng.IntN(2) == 0 {
				mag = -mag
			}
			f.Skew = Duration(mag)
			hold = max(hold, min(3*time.Second, cfg.MaxHold))
		}
		f.Hold = Duration(hold.Truncate(time.Millisecond))
		if at+hold > cfg.End {
			return plan
		}
		plan = append(plan, f)
		at += hold + between(cfg.MaxGap/5, cfg.MaxGap)
	}
}

// Nemesis carries out a fault plan against a cluster and records every
// fault in the history.
type Nemesis struct {
	cluster *Cluster
	rec     *Recorder
	plan    []Fault
	active  atomic.Int32
	log     func(format string, args ...any)

	mu       sync.Mutex
	failures []string // faults that could not be applied or healed as planned
}

// NewNemesis prepares plan against cluster; logf receives progress lines
// (nil: none).
func NewNemesis(cluster *Cluster, rec *Recorder, plan []Fault, logf func(string, ...any)) *Nemesis {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Nemesis{cluster: cluster, rec: rec, plan: plan, log: logf}
}

// Active reports whether a fault is in effect.
func (n *Nemesis) Active() bool { return n.active.Load() > 0 }

// Failures lists what the nemesis could not do as planned.
func (n *Nemesis) Failures() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.failures)
}

func (n *Nemesis) fail(f *Fault, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.mu.Lock()
	n.failures = append(n.failures, fmt.Sprintf("fault %d (%s): %s", f.ID, f, msg))
	n.mu.Unlock()
	n.rec.Record(Event{Type: EventNemesis, Phase: PhaseObserve, Fault: f, Error: msg})
	n.log("nemesis: fault %d (%s): %s", f.ID, f, msg)
}

// Run carries out the plan, start being the campaign's start time: each
// fault begins at its offset (or as soon as the previous one healed, when
// restarts made the nemesis late) and is healed after its hold time. A
// fault that could no longer heal by end is shortened to fit, or skipped
// when less than a second is left. Run returns when the plan is done or
// ctx is cancelled; either way every fault it began is healed.
func (n *Nemesis) Run(ctx context.Context, start, end time.Time) {
	for i := range n.plan {
		f := &n.plan[i]
		if !waitUntil(ctx, start.Add(time.Duration(f.At))) {
			return
		}
		hold := time.Duration(f.Hold)
		if left := time.Until(end); hold > left {
			// Restarts made the nemesis late: a shorter fault is better
			// than none, but one too short to matter is skipped.
			if left < time.Second {
				n.rec.Record(Event{Type: EventNemesis, Phase: PhaseObserve, Fault: f, Detail: "skipped: the nemesis ran late and the fault would not heal before the fault window ends"})
				n.log("nemesis: fault %d (%s) skipped: running late", f.ID, f)
				continue
			}
			hold = left.Truncate(time.Millisecond)
		}
		n.active.Add(1)
		detail := f.String()
		if hold != time.Duration(f.Hold) {
			detail += fmt.Sprintf(" (held %v instead of %v: the nemesis ran late)", hold, f.Hold)
		}
		n.rec.Record(Event{Type: EventNemesis, Phase: PhaseStart, Fault: f, Detail: detail})
		n.log("nemesis: +%v fault %d: %s for %v", time.Since(start).Round(100*time.Millisecond), f.ID, f, hold)
		n.apply(ctx, f)
		waitUntil(ctx, time.Now().Add(hold))
		// Healing must happen even when ctx is done: heal on a context of
		// its own.
		n.heal(context.WithoutCancel(ctx), f)
		n.rec.Record(Event{Type: EventNemesis, Phase: PhaseHeal, Fault: f, Detail: f.String()})
		n.active.Add(-1)
	}
}

// waitUntil waits until t; false when ctx ended first.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (n *Nemesis) others(region string) []string {
	return slices.DeleteFunc(n.cluster.Regions(), func(r string) bool { return r == region })
}

func (n *Nemesis) apply(ctx context.Context, f *Fault) {
	c := n.cluster
	switch f.Kind {
	case FaultPartition:
		for _, peer := range n.others(f.Region) {
			if err := c.SetLink(ctx, f.Region, peer, Link{Delay: c.BaseDelay(f.Region, peer), Cut: v1.LinkCut_LINK_CUT_BOTH}); err != nil {
				n.fail(f, "%v", err)
			}
		}
	case FaultCut:
		if err := c.SetLink(ctx, f.Region, f.Peer, Link{Delay: c.BaseDelay(f.Region, f.Peer), Cut: v1.LinkCut_LINK_CUT_OUTGOING}); err != nil {
			n.fail(f, "%v", err)
		}
	case FaultDelay:
		for _, pair := range [][2]string{{f.Region, f.Peer}, {f.Peer, f.Region}} {
			l := Link{Delay: c.BaseDelay(pair[0], pair[1]) + time.Duration(f.Delay), Jitter: time.Duration(f.Jitter)}
			if err := c.SetLink(ctx, pair[0], pair[1], l); err != nil {
				n.fail(f, "%v", err)
			}
		}
	case FaultKill:
		if err := c.Kill(f.Region); err != nil {
			n.fail(f, "%v", err)
		}
	case FaultPause:
		if err := c.Pause(f.Region); err != nil {
			n.fail(f, "%v", err)
		}
	case FaultSkew:
		if err := c.Kill(f.Region); err != nil {
			n.fail(f, "%v", err)
		}
		if err := c.Start(ctx, f.Region, time.Duration(f.Skew)); err != nil {
			n.fail(f, "restart with skew: %v", err)
		}
	case FaultWipe:
		if err := c.Wipe(ctx, f.Region, wipeCatchUp); err != nil {
			n.fail(f, "%v", err)
		}
	}
}

// wipeCatchUp bounds how long a wipe waits for the other regions to hold
// the drained region's writes.
const wipeCatchUp = 15 * time.Second

func (n *Nemesis) heal(ctx context.Context, f *Fault) {
	c := n.cluster
	switch f.Kind {
	case FaultPartition, FaultCut, FaultDelay:
		for _, peer := range n.others(f.Region) {
			if f.Peer != "" && peer != f.Peer {
				continue
			}
			for _, pair := range [][2]string{{f.Region, peer}, {peer, f.Region}} {
				if err := c.SetLink(ctx, pair[0], pair[1], Link{Delay: c.BaseDelay(pair[0], pair[1])}); err != nil {
					n.fail(f, "heal: %v", err)
				}
			}
		}
	case FaultKill:
		if err := c.Start(ctx, f.Region, 0); err != nil {
			n.fail(f, "restart: %v", err)
		}
	case FaultWipe:
		if state, _ := c.State(f.Region); state != stateDown {
			// The wipe did not happen (see its failure): lift the drain.
			if err := c.setDrain(ctx, f.Region, false); err != nil {
				n.fail(f, "%v", err)
			}
			return
		}
		if err := c.Start(ctx, f.Region, 0); err != nil {
			n.fail(f, "restart after the wipe: %v", err)
		}
	case FaultPause:
		if err := c.Resume(f.Region); err != nil {
			n.fail(f, "%v", err)
		}
	case FaultSkew:
		if err := c.Kill(f.Region); err != nil {
			n.fail(f, "%v", err)
		}
		if err := c.Start(ctx, f.Region, 0); err != nil {
			n.fail(f, "restart without skew: %v", err)
		}
	}
}

// HealAll brings every region back to a clean state whatever the plan did:
// continued, running, without clock skew, and every link at its base delay
// with no cut. It is the barrier before the final phase.
func (n *Nemesis) HealAll(ctx context.Context) error {
	c := n.cluster
	var errs []error
	for _, name := range c.Regions() {
		state, skew := c.State(name)
		if state == statePaused {
			if err := c.Resume(name); err != nil {
				errs = append(errs, err)
			}
		}
		if skew != 0 {
			if err := c.Kill(name); err != nil {
				errs = append(errs, err)
			}
			state = stateDown
		}
		if state == stateDown {
			if err := c.Start(ctx, name, 0); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, a := range c.Regions() {
		for _, b := range n.others(a) {
			if err := c.SetLink(ctx, a, b, Link{Delay: c.BaseDelay(a, b)}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	n.rec.Record(Event{Type: EventNemesis, Phase: PhaseHeal, Detail: "every fault healed: all regions running without skew, every link clear"})
	return errors.Join(errs...)
}
