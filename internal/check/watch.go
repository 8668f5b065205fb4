package check

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Watch histories. A watcher's history is the sequence of events it was
// delivered, concatenated across every resume (in any region), each event
// naming its write (origin, sequence number), the write's causal past as a
// vector (origin -> sequence number, the write included) and the keys it
// carried. CheckWatch judges it against the writes that touched the
// watched keys. The vector is the write's own, as the store reports it
// (a Version's origin and sequence plus the dependency vector its region
// assigned), so happens-before between writes is exact: x happens before
// y iff y.Vector[x.Origin] >= x.Seq and x != y.

// Watch violation kinds.
const (
	// KindWatchRepeat: a write was delivered twice.
	KindWatchRepeat = "watch-repeat"
	// KindWatchLoss: a write to the watched keys was never delivered,
	// or an event was delivered after a later write of its causal
	// future had been.
	KindWatchLoss = "watch-loss"
	// KindWatchOrder: an event was delivered before a write in its causal
	// past that touches the watched keys.
	KindWatchOrder = "watch-order"
	// KindWatchAtomicity: an event did not carry exactly the write's keys
	// in the watched range (an atomic write split, or keys invented).
	KindWatchAtomicity = "watch-atomicity"
	// KindWatchUnknown: an event names a write that was never made.
	KindWatchUnknown = "watch-unknown-write"
)

// WatchWrite is one write as a watcher sees it, or as it was made.
type WatchWrite struct {
	Origin string
	Seq    uint64
	Vector map[string]uint64 // the write's causal past, itself included
	Keys   []string          // the write's keys in the watched range
}

func (w *WatchWrite) id() versionID { return versionID{origin: w.Origin, seq: w.Seq} }

func (w *WatchWrite) String() string { return fmt.Sprintf("%s/%d", w.Origin, w.Seq) }

// dependsOn reports whether x is in w's causal past.
func (w *WatchWrite) dependsOn(x *WatchWrite) bool {
	return w.id() != x.id() && w.Vector[x.Origin] >= x.Seq
}

// CheckWatch checks delivered, a watcher's whole history, against made,
// every write that touched the watched keys (with its keys in the range).
// With complete, the watcher ran until every write in made had reached
// the regions it watched, so every one must have been delivered; without,
// only the writes in the causal past of a delivered event must have been.
//
// It reports repeats, losses, events before their causal past
// (a delivered sequence must be a linear extension of happens-before
// restricted to the watched keys), split or altered atomic writes, and
// events of writes never made. Time O(d·R·log m + m·log m) for d
// delivered events, m writes made and R regions.
func CheckWatch(delivered, made []WatchWrite, complete bool) []Violation {
	var out []Violation
	report := func(kind string, at int, format string, args ...any) {
		out = append(out, Violation{Kind: kind, Op: at, Detail: fmt.Sprintf(format, args...)})
	}
	byID := make(map[versionID]*WatchWrite, len(made))
	for i := range made {
		byID[made[i].id()] = &made[i]
	}
	position := map[versionID]int{}
	for i := range delivered {
		e := &delivered[i]
		w, ok := byID[e.id()]
		if !ok {
			report(KindWatchUnknown, i, "event %s names no write made to the watched keys", e)
			continue
		}
		if first, dup := position[e.id()]; dup {
			report(KindWatchRepeat, i, "write %s delivered again (first as event %d)", e, first)
			continue
		}
		position[e.id()] = i
		if !sameKeys(e.Keys, w.Keys) {
			report(KindWatchAtomicity, i, "event %s carried keys %q; the write changed %q in the watched range", e, e.Keys, w.Keys)
		}
	}
	// Causal order and no gap: every write made that a delivered event
	// depends on was delivered before it. The writes of each origin are
	// sorted by sequence number with prefix summaries (latest position,
	// writes never delivered), so an event is checked in O(R log m) for R
	// origins in its vector; only a prefix that breaks the rule is
	// scanned, to name the writes that do.
	type originWrites struct {
		writes  []*WatchWrite // by sequence number
		maxPos  []int         // prefix: latest position delivered
		missing []int         // prefix: writes never delivered
	}
	byOrigin := map[string]*originWrites{}
	for i := range made {
		o := byOrigin[made[i].Origin]
		if o == nil {
			o = &originWrites{}
			byOrigin[made[i].Origin] = o
		}
		o.writes = append(o.writes, &made[i])
	}
	for _, o := range byOrigin {
		slices.SortFunc(o.writes, func(a, b *WatchWrite) int { return cmp.Compare(a.Seq, b.Seq) })
		o.maxPos, o.missing = make([]int, len(o.writes)), make([]int, len(o.writes))
		maxPos, missing := -1, 0
		for k, x := range o.writes {
			if p, got := position[x.id()]; got {
				maxPos = max(maxPos, p)
			} else {
				missing++
			}
			o.maxPos[k], o.missing[k] = maxPos, missing
		}
	}
	for i := range delivered {
		e, ok := byID[delivered[i].id()]
		if !ok || position[e.id()] != i {
			continue
		}
		origins := make([]string, 0, len(e.Vector))
		for origin := range e.Vector {
			origins = append(origins, origin)
		}
		slices.Sort(origins)
		for _, origin := range origins {
			o := byOrigin[origin]
			if o == nil {
				continue
			}
			upTo := e.Vector[origin]
			k, _ := slices.BinarySearchFunc(o.writes, upTo+1, func(x *WatchWrite, seq uint64) int { return cmp.Compare(x.Seq, seq) })
			// e itself is delivered at i: a later position is another's.
			if k == 0 || o.missing[k-1] == 0 && o.maxPos[k-1] <= i {
				continue
			}
			for _, x := range o.writes[:k] {
				if !e.dependsOn(x) {
					continue
				}
				px, got := position[x.id()]
				switch {
				case !got:
					report(KindWatchLoss, i, "event %s was delivered but %s, in its causal past, never was", e, x)
				case px > i:
					report(KindWatchOrder, i, "event %s was delivered before %s (event %d), which it depends on", e, x, px)
				}
			}
		}
	}
	if complete {
		for i := range made {
			if _, got := position[made[i].id()]; !got {
				report(KindWatchLoss, -1, "write %s to %q was never delivered", &made[i], made[i].Keys)
			}
		}
	}
	return out
}

func sameKeys(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// FormatWatch renders a delivered sequence on one line, for failure
// messages.
func FormatWatch(ws []WatchWrite) string {
	parts := make([]string, len(ws))
	for i := range ws {
		parts[i] = ws[i].String()
	}
	return strings.Join(parts, " ")
}
