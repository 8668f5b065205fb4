package campaign

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/check"
)

// WatchChecker judges what the watchers of WatchWorkload were delivered,
// with internal/check's CheckWatch, the checker the simulator's watchers
// are judged by: each watcher's events, concatenated across every resume
// (in any region), must be a linear extension of happens-before on the
// writes after its starting token, with no write repeated, none lost
// (every write once the watcher caught up with the converged state), every
// atomic write whole (all its keys in one event), and each change's value
// the one written.
//
// The writes made come from the history: an acknowledged put, delete or
// write_many is named by the version it was given, and its causal past is
// the vector of the token it returned (the write's own vector: the
// session's past with the write added). A write whose outcome is unknown
// joins only when a watcher delivered it; it is found by the unique value
// it wrote (a deletion, which has none, is taken as delivered), and its
// past is taken to be its origin's earlier writes only (a past too small
// can hide an order anomaly, never invent one). A delivered write that
// the history shows refused, or never made, is reported.
type WatchChecker struct{}

// Watch checker anomaly kinds besides internal/check's.
const (
	// KindWatchValue: a change carried a value (or deletion) other than
	// the one its write made.
	KindWatchValue = "watch-value"
	// KindWatchIncomplete: a watcher did not catch up with the converged
	// state in the final phase (it never was offered some writes).
	KindWatchIncomplete = "watch-incomplete"
)

// Name implements Checker.
func (WatchChecker) Name() string { return "watch" }

// Tier implements Checker.
func (WatchChecker) Tier() string { return TierCausal }

// Promise implements Checker.
func (WatchChecker) Promise() string {
	return "watch events in causal order, none lost or repeated, atomic writes whole"
}

// watchMade is a write made to the keys, as the history knows it.
type watchMade struct {
	write  check.WatchWrite
	values map[string]KeyWrite // key -> change made
	op     *Operation          // nil for a write only a watcher knows
}

// watchedWriter is one watcher's history.
type watchedWriter struct {
	id        string
	start     clocks.Vector // the first stream's starting token
	delivered []check.WatchWrite
	events    []*Event // the delivered events, for reports
	opens     int
	moves     int // streams opened in another region than the last
	ends      int // streams ended by an error
	done      *Event
	lastOpen  string
}

// Check implements Checker.
func (c WatchChecker) Check(h *History) Findings {
	var f Findings
	watchers, order := watchersOf(h)
	if len(order) == 0 {
		f.Notes = append(f.Notes, "no watch events in the history: nothing to check")
		return f
	}
	made, byValue := watchWritesMade(h)
	report := func(kind string, w *watchedWriter, detail string, args ...any) {
		f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: kind, Session: w.id, Detail: fmt.Sprintf(detail, args...)})
	}
	// Writes whose acknowledgement the history lacks, known from the
	// watchers that delivered them.
	for _, id := range order {
		w := watchers[id]
		for i, e := range w.events {
			v := w.delivered[i]
			key := versionKey{origin: v.Origin, seq: v.Seq}
			if _, ok := made[key]; ok {
				continue
			}
			op := findByValue(byValue, e.Writes)
			if op != nil && op.Outcome() == EventFail {
				report(check.KindWatchUnknown, w, "event %d (%s in %s) delivered %s, a write of op %d, which was refused (%s)",
					i, v.String(), e.Region, formatWrites(e.Writes), op.Invoke.Op, op.Completion.Code)
				continue
			}
			m := &watchMade{write: check.WatchWrite{Origin: v.Origin, Seq: v.Seq, Vector: map[string]uint64{v.Origin: v.Seq}}, op: op}
			if op != nil {
				m.write.Keys, m.values = writtenKeys(op.Invoke)
			} else if allDeletes(e.Writes) {
				m.write.Keys, m.values = writtenKeys(&Event{F: FWriteMany, Writes: e.Writes})
			} else {
				continue // a value no client wrote: reported as unknown below
			}
			made[key] = m
		}
	}
	events, resumes, moves, ends, complete := 0, 0, 0, 0, 0
	for _, id := range order {
		w := watchers[id]
		events += len(w.delivered)
		resumes += max(w.opens-1, 0)
		moves += w.moves
		ends += w.ends
		var mine []check.WatchWrite
		for _, m := range made {
			if w.start.Get(m.write.Origin) < m.write.Seq {
				mine = append(mine, m.write)
			}
		}
		slices.SortFunc(mine, func(a, b check.WatchWrite) int {
			return cmp.Or(cmp.Compare(a.Origin, b.Origin), cmp.Compare(a.Seq, b.Seq))
		})
		caughtUp := w.done != nil && w.done.Error == ""
		switch {
		case caughtUp:
			complete++
		case w.done != nil:
			report(KindWatchIncomplete, w, "%s", w.done.Error)
		default:
			f.Notes = append(f.Notes, fmt.Sprintf("watcher %s never reached the final phase: only the causal past of what it was delivered is required of it", w.id))
		}
		for _, v := range check.CheckWatch(w.delivered, mine, caughtUp) {
			where := ""
			if v.Op >= 0 && v.Op < len(w.events) {
				where = fmt.Sprintf(" (event %d, delivered in %s)", v.Op, w.events[v.Op].Region)
			}
			report(v.Kind, w, "%s%s", v.Detail, where)
		}
		for i, e := range w.events {
			m, ok := made[versionKey{origin: w.delivered[i].Origin, seq: w.delivered[i].Seq}]
			if !ok || m.values == nil {
				continue
			}
			for _, ch := range e.Writes {
				if want, ok := m.values[ch.Key]; ok && (want.Delete != ch.Delete || !want.Delete && want.Value != ch.Value) {
					report(KindWatchValue, w, "event %d (%s in %s) carried %s for %q; the write made %s", i, w.delivered[i].String(), e.Region,
						formatWrites([]KeyWrite{ch}), ch.Key, formatWrites([]KeyWrite{want}))
				}
			}
		}
	}
	f.Notes = append(f.Notes, fmt.Sprintf("%d watchers, %d events checked against %d writes made; %d resumes (%d in another region, %d after the stream failed); %d of %d caught up with the converged state",
		len(order), events, len(made), resumes, moves, ends, complete, len(order)))
	return f
}

// watchersOf gathers each watcher's events, in history order.
func watchersOf(h *History) (map[string]*watchedWriter, []string) {
	out := map[string]*watchedWriter{}
	var order []string
	for i := range h.Events {
		e := &h.Events[i]
		if e.Type != EventWatch {
			continue
		}
		w := out[e.Client]
		if w == nil {
			w = &watchedWriter{id: e.Client, start: clocks.Vector{}}
			out[e.Client] = w
			order = append(order, e.Client)
		}
		switch e.Phase {
		case WatchOpen:
			if w.opens == 0 {
				if tok, err := clocks.InspectToken(e.Token); err == nil {
					w.start = tok.Vector
				}
			} else if e.Region != w.lastOpen {
				w.moves++
			}
			w.opens++
			w.lastOpen = e.Region
		case WatchDeliver:
			ww := check.WatchWrite{}
			if e.Version != nil {
				ww.Origin, ww.Seq = e.Version.Origin, e.Version.Seq
			}
			for _, kw := range e.Writes {
				ww.Keys = append(ww.Keys, kw.Key)
			}
			w.delivered = append(w.delivered, ww)
			w.events = append(w.events, e)
		case WatchEnd:
			if e.Error != "" {
				w.ends++
			}
		case WatchDone:
			w.done = e
		}
	}
	return out, order
}

// watchWritesMade lists the acknowledged writes of the causal tier, and
// indexes every write's values (whatever its outcome) by value.
func watchWritesMade(h *History) (map[versionKey]*watchMade, map[string]*Operation) {
	made := map[versionKey]*watchMade{}
	byValue := map[string]*Operation{}
	ops := h.Operations()
	for i := range ops {
		o := &ops[i]
		inv := o.Invoke
		if inv.Tier != TierCausal || (inv.F != FPut && inv.F != FDelete && inv.F != FWriteMany) {
			continue
		}
		if inv.F == FPut {
			byValue[inv.Value] = o
		}
		for _, kw := range inv.Writes {
			if !kw.Delete {
				byValue[kw.Value] = o
			}
		}
		v := o.Completion.Version
		if o.Outcome() != EventOK || v == nil {
			continue
		}
		vec := map[string]uint64{v.Origin: v.Seq}
		if tok, err := clocks.InspectToken(o.Completion.Token); err == nil && tok.Vector.Get(v.Origin) >= v.Seq {
			vec = tok.Vector
		}
		m := &watchMade{write: check.WatchWrite{Origin: v.Origin, Seq: v.Seq, Vector: vec}, op: o}
		m.write.Keys, m.values = writtenKeys(inv)
		made[versionKey{origin: v.Origin, seq: v.Seq}] = m
	}
	return made, byValue
}

// writtenKeys are the keys an invocation writes, and what it writes to each.
func writtenKeys(inv *Event) ([]string, map[string]KeyWrite) {
	values := map[string]KeyWrite{}
	switch inv.F {
	case FPut:
		values[inv.Key] = KeyWrite{Key: inv.Key, Value: inv.Value}
	case FDelete:
		values[inv.Key] = KeyWrite{Key: inv.Key, Delete: true}
	default:
		for _, kw := range inv.Writes {
			values[kw.Key] = kw
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, values
}

func findByValue(byValue map[string]*Operation, ws []KeyWrite) *Operation {
	for _, kw := range ws {
		if o, ok := byValue[kw.Value]; ok && !kw.Delete {
			return o
		}
	}
	return nil
}

func allDeletes(ws []KeyWrite) bool {
	for _, kw := range ws {
		if !kw.Delete {
			return false
		}
	}
	return len(ws) > 0
}

func formatWrites(ws []KeyWrite) string {
	s := ""
	for i, kw := range ws {
		if i > 0 {
			s += ", "
		}
		if kw.Delete {
			s += kw.Key + " deleted"
		} else {
			s += fmt.Sprintf("%s=%q", kw.Key, kw.Value)
		}
	}
	return s
}
