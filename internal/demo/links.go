package demo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/causewaydb/causeway/internal/supervisor"
)

// linkState is what the demo has told the regions about their links: for
// each ordered pair (from, to), whether what from sends to to is lost, and
// the delay and jitter of what from sends. A region's link to a peer is set
// from both directions: it drops what it sends when from->to is cut, and
// what it receives when to->from is cut, so both ends agree and a restart
// of either end can be told again.
type linkState struct {
	mu      sync.Mutex
	regions []string
	wan     supervisor.WAN
	lost    map[[2]string]bool
	delay   map[[2]string]time.Duration
	jitter  map[[2]string]time.Duration
}

// linkSetting is one region's link to one peer.
type linkSetting struct {
	cutOut, cutIn bool
	delay, jitter time.Duration
}

func newLinkState(regions []string, wan supervisor.WAN) *linkState {
	s := &linkState{regions: regions, wan: wan}
	s.reset()
	return s
}

func (s *linkState) reset() {
	s.lost = map[[2]string]bool{}
	s.delay = map[[2]string]time.Duration{}
	s.jitter = map[[2]string]time.Duration{}
	for _, a := range s.regions {
		for _, b := range s.regions {
			if a != b {
				s.delay[[2]string{a, b}] = s.wan.Delay(a, b)
			}
		}
	}
}

// setting is region from's link to region to.
func (s *linkState) setting(from, to string) linkSetting {
	s.mu.Lock()
	defer s.mu.Unlock()
	return linkSetting{
		cutOut: s.lost[[2]string{from, to}], cutIn: s.lost[[2]string{to, from}],
		delay: s.delay[[2]string{from, to}], jitter: s.jitter[[2]string{from, to}],
	}
}

// apply tells region every one of its links, and tells each peer its link
// to region.
func (s *linkState) apply(ctx context.Context, d *Demo, region string) error {
	var errs []error
	for _, peer := range s.regions {
		if peer == region {
			continue
		}
		errs = append(errs, d.setLink(ctx, region, peer, s.setting(region, peer)))
		if state, _ := d.cluster.State(peer); state == "running" {
			errs = append(errs, d.setLink(ctx, peer, region, s.setting(peer, region)))
		}
	}
	return errors.Join(errs...)
}

// update changes the state under its lock.
func (s *linkState) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// doLink cuts, heals or delays links.
func (d *Demo) doLink(ctx context.Context, a Action) (*Result, error) {
	d.faults.Lock()
	defer d.faults.Unlock()
	s := d.links
	pairs := map[[2]string]bool{} // unordered pairs touched, smaller name first
	touch := func(x, y string) { pairs[[2]string{min(x, y), max(x, y)}] = true }
	var text string
	switch a.Op {
	case OpCut:
		s.update(func() {
			if a.Dir != DirIn {
				s.lost[[2]string{a.Region, a.Peer}] = true
			}
			if a.Dir != DirOut {
				s.lost[[2]string{a.Peer, a.Region}] = true
			}
		})
		touch(a.Region, a.Peer)
		switch a.Dir {
		case DirOut:
			text = fmt.Sprintf("cut %s → %s: what %s sends to %s is lost", a.Region, a.Peer, a.Region, a.Peer)
		case DirIn:
			text = fmt.Sprintf("cut %s → %s: what %s sends to %s is lost", a.Peer, a.Region, a.Peer, a.Region)
		default:
			text = fmt.Sprintf("cut %s ⇄ %s in both directions", a.Region, a.Peer)
		}
	case OpHeal:
		s.update(func() {
			delete(s.lost, [2]string{a.Region, a.Peer})
			delete(s.lost, [2]string{a.Peer, a.Region})
		})
		touch(a.Region, a.Peer)
		text = fmt.Sprintf("healed %s ⇄ %s", a.Region, a.Peer)
	case OpDelay:
		if a.Delay < 0 || a.Jitter < 0 || a.Jitter > a.Delay || time.Duration(a.Delay) > time.Minute {
			return nil, fmt.Errorf("delay %v jitter %v: want 0 ≤ jitter ≤ delay ≤ 1m", a.Delay, a.Jitter)
		}
		s.update(func() {
			for _, p := range [][2]string{{a.Region, a.Peer}, {a.Peer, a.Region}} {
				s.delay[p], s.jitter[p] = time.Duration(a.Delay), time.Duration(a.Jitter)
			}
		})
		touch(a.Region, a.Peer)
		text = fmt.Sprintf("%s ⇄ %s one-way delay %v, jitter %v", a.Region, a.Peer, a.Delay, a.Jitter)
	case OpIsolate:
		s.update(func() {
			for _, other := range s.regions {
				if other != a.Region {
					s.lost[[2]string{a.Region, other}], s.lost[[2]string{other, a.Region}] = true, true
					touch(a.Region, other)
				}
			}
		})
		text = fmt.Sprintf("isolated %s from every other region", a.Region)
	case OpSplit:
		side := map[string]int{}
		for i, g := range a.Groups {
			for _, r := range g {
				if _, dup := side[r]; dup {
					return nil, fmt.Errorf("split: %s is on two sides", r)
				}
				side[r] = i
			}
		}
		for _, r := range d.cfg.Regions {
			if _, ok := side[r]; !ok {
				return nil, fmt.Errorf("split: %s is on no side; name every region", r)
			}
		}
		s.update(func() {
			for _, x := range s.regions {
				for _, y := range s.regions {
					if x != y && side[x] != side[y] {
						s.lost[[2]string{x, y}] = true
						touch(x, y)
					}
				}
			}
		})
		var sides []string
		for _, g := range a.Groups {
			sides = append(sides, strings.Join(g, " + "))
		}
		text = "split the cluster: " + strings.Join(sides, "  |  ")
	case OpHealAll:
		s.update(func() {
			for p := range s.lost {
				touch(p[0], p[1])
			}
			for p := range s.jitter {
				touch(p[0], p[1])
			}
			s.reset()
		})
		text = "healed every link; delays back to the WAN matrix"
	}
	var errs []error
	for _, p := range slices.SortedFunc(func(yield func([2]string) bool) {
		for p := range pairs {
			if !yield(p) {
				return
			}
		}
	}, func(x, y [2]string) int { return strings.Compare(x[0]+"/"+x[1], y[0]+"/"+y[1]) }) {
		for _, dir := range [][2]string{{p[0], p[1]}, {p[1], p[0]}} {
			if state, _ := d.cluster.State(dir[0]); state != "running" {
				continue // told again when it restarts or resumes
			}
			errs = append(errs, d.setLink(ctx, dir[0], dir[1], s.setting(dir[0], dir[1])))
		}
	}
	kind := "fault"
	if a.Op == OpHeal || a.Op == OpHealAll {
		kind = "heal"
	}
	d.event(kind, a.Region, text)
	d.poller.kickAll()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Result{OK: true, Text: text}, nil
}
