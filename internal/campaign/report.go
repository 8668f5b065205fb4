package campaign

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
)

// OpCounts counts operations by outcome. Refused counts the failures that
// were the store's answer (Event.Refused: a compare that did not hold, a
// name already claimed); Fail the other failures.
type OpCounts struct {
	Total, OK, Refused, Fail, Info int
}

func (c *OpCounts) add(o *Operation) {
	c.Total++
	switch o.Outcome() {
	case EventOK:
		c.OK++
	case EventFail:
		if o.Completion.Refused {
			c.Refused++
		} else {
			c.Fail++
		}
	default:
		c.Info++
	}
}

// Availability is the share of operations the store served: those that
// succeeded and those it refused for a reason the data gives.
func (c OpCounts) Availability() string {
	if c.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(c.OK+c.Refused)/float64(c.Total))
}

// Summary is what the terminal table shows.
type Summary struct {
	Ops map[string]*OpCounts // tier/f -> counts
	// DuringFaults and Otherwise count operations by tier, split by whether
	// a fault was active when they started.
	DuringFaults, Otherwise map[string]*OpCounts
	// ByFault counts operations by tier and by the kind of the fault active
	// when they started, at the faulted region ([0]) and elsewhere ([1]).
	ByFault map[string]map[FaultKind]*[2]OpCounts
	Faults  map[FaultKind]int
	// Skew describes what happened around each clock-skew fault.
	Skew []string
}

// Summarize counts the history's operations and faults.
func Summarize(h *History) *Summary {
	s := &Summary{Ops: map[string]*OpCounts{}, DuringFaults: map[string]*OpCounts{}, Otherwise: map[string]*OpCounts{},
		ByFault: map[string]map[FaultKind]*[2]OpCounts{}, Faults: map[FaultKind]int{}}
	windows := faultWindows(h)
	get := func(m map[string]*OpCounts, k string) *OpCounts {
		if m[k] == nil {
			m[k] = &OpCounts{}
		}
		return m[k]
	}
	ops := h.Operations()
	for i := range ops {
		o := &ops[i]
		get(s.Ops, o.Invoke.Tier+"/"+o.Invoke.F).add(o)
		if o.Invoke.DuringFault {
			get(s.DuringFaults, o.Invoke.Tier).add(o)
		} else {
			get(s.Otherwise, o.Invoke.Tier).add(o)
		}
		if f := activeFault(windows, o.Invoke.Time); f != nil {
			byKind := s.ByFault[o.Invoke.Tier]
			if byKind == nil {
				byKind = map[FaultKind]*[2]OpCounts{}
				s.ByFault[o.Invoke.Tier] = byKind
			}
			if byKind[f.Kind] == nil {
				byKind[f.Kind] = &[2]OpCounts{}
			}
			where := 1
			if o.Invoke.Region == f.Region || (f.Kind != FaultPartition && o.Invoke.Region == f.Peer) {
				where = 0
			}
			byKind[f.Kind][where].add(o)
		}
	}
	for _, e := range h.Of(EventNemesis) {
		if e.Phase == PhaseStart && e.Fault != nil {
			s.Faults[e.Fault.Kind]++
		}
	}
	s.Skew = observeSkew(h, ops)
	return s
}

// faultWindow is when one fault was active.
type faultWindow struct {
	from, to time.Time
	fault    *Fault
}

// faultWindows lists the faults of the history by start time (faults do
// not overlap).
func faultWindows(h *History) []faultWindow {
	var out []faultWindow
	open := map[int]int{}
	for _, e := range h.Of(EventNemesis) {
		if e.Fault == nil {
			continue
		}
		switch e.Phase {
		case PhaseStart:
			open[e.Fault.ID] = len(out)
			out = append(out, faultWindow{from: e.Time, to: e.Time.Add(time.Hour), fault: e.Fault})
		case PhaseHeal:
			if i, ok := open[e.Fault.ID]; ok {
				out[i].to = e.Time
			}
		}
	}
	return out
}

// activeFault is the fault active at t, or nil.
func activeFault(windows []faultWindow, t time.Time) *Fault {
	i, _ := slices.BinarySearchFunc(windows, t, func(w faultWindow, t time.Time) int { return w.from.Compare(t) })
	// windows[i-1] is the last to start at or before t (or i itself when
	// it starts exactly at t).
	for _, j := range []int{i, i - 1} {
		if j >= 0 && j < len(windows) && !t.Before(windows[j].from) && t.Before(windows[j].to) {
			return windows[j].fault
		}
	}
	return nil
}

// observeSkew reports, for each clock-skew fault, how far ahead of the
// campaign's clock the skewed region's timestamps were, and which causal
// requests
// were refused for a timestamp too far ahead (failed_precondition), in the
// skewed region and elsewhere, while the fault lasted and until the
// campaign's clock caught up with the timestamps it produced.
func observeSkew(h *History, ops []Operation) []string {
	var out []string
	starts := map[int]time.Time{}
	for _, e := range h.Of(EventNemesis) {
		if e.Fault == nil || e.Fault.Kind != FaultSkew {
			continue
		}
		if e.Phase == PhaseStart {
			starts[e.Fault.ID] = e.Time
			continue
		}
		if e.Phase != PhaseHeal {
			continue
		}
		f := e.Fault
		from, to := starts[f.ID], e.Time
		until := to.Add(max(time.Duration(f.Skew), 0))
		var writes int
		var lead, minLead int64
		first := true
		refusedHere, refusedElsewhere, failedHere, okHere := 0, 0, 0, 0
		example := ""
		for i := range ops {
			o := &ops[i]
			at := o.Invoke.Time
			if o.Invoke.Tier != TierCausal || at.Before(from) || at.After(until) {
				continue
			}
			here := o.Invoke.Region == f.Region
			inFault := !at.After(to)
			if o.Outcome() == EventOK && here && inFault {
				okHere++
				if v := o.Completion.Version; v != nil {
					writes++
					d := int64(v.WallMs) - at.UnixMilli()
					if first || d > lead {
						lead = d
					}
					if first || d < minLead {
						minLead = d
					}
					first = false
				}
			}
			if o.Outcome() != EventOK && here && inFault {
				failedHere++
			}
			if o.Completion.Code == connect.CodeFailedPrecondition.String() {
				if here {
					refusedHere++
				} else {
					refusedElsewhere++
				}
				if example == "" {
					example = fmt.Sprintf("%s in %s: %s", o.Invoke.F, o.Invoke.Region, o.Completion.Error)
				}
			}
		}
		line := fmt.Sprintf("fault %d: %s restarted with clock skew %+v for %v: %d causal operations succeeded there, %d failed",
			f.ID, f.Region, time.Duration(f.Skew), to.Sub(from).Round(100*time.Millisecond), okHere, failedHere)
		if writes > 0 {
			line += fmt.Sprintf("; its %d writes carried timestamps %+d to %+d ms from the campaign's clock", writes, minLead, lead)
		}
		untilText := "the heal"
		if f.Skew > 0 {
			untilText = fmt.Sprintf("%v after the heal", time.Duration(f.Skew))
		}
		line += fmt.Sprintf("; from the fault until %s, requests refused for a timestamp too far ahead of the serving region's clock (failed_precondition): %d in %s, %d elsewhere",
			untilText, refusedHere, f.Region, refusedElsewhere)
		if example != "" {
			line += fmt.Sprintf(" (e.g. %s)", example)
		}
		out = append(out, line)
	}
	return out
}

// WriteSummary prints the campaign's summary table.
func (r *Result) WriteSummary(w io.Writer) {
	s := Summarize(r.History)
	fmt.Fprintf(w, "causeway verify: %d regions (%s), %v of clients, seed %d\n", len(r.Regions), strings.Join(r.Regions, ", "), r.Duration, r.Seed)
	if r.UnsafeSwitch {
		confirmed := "NOT confirmed by the regions' logs: the binary may ignore it"
		if r.UnsafeSwitchConfirmed {
			confirmed = "confirmed by every region's log"
		}
		fmt.Fprintf(w, "unsafe switch: remote writes applied without their causal past (%s)\n", confirmed)
	}
	fmt.Fprintf(w, "report: %s\n\n", r.ReportDir)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\ttotal\tok\trefused\tfail\tinfo\t")
	var total OpCounts
	for _, k := range slices.Sorted(maps.Keys(s.Ops)) {
		c := s.Ops[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", k, c.Total, c.OK, c.Refused, c.Fail, c.Info)
		total.Total, total.OK, total.Refused, total.Fail, total.Info = total.Total+c.Total, total.OK+c.OK, total.Refused+c.Refused, total.Fail+c.Fail, total.Info+c.Info
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t%d\t%d\t\n", total.Total, total.OK, total.Refused, total.Fail, total.Info)
	tw.Flush()
	if total.Refused > 0 {
		fmt.Fprintln(w, "(refused: answered, and turned down for a reason the data gives: a compare that did not hold, a name\n claimed by another, a lock held, a stale fencing token; it counts as available)")
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "faults (+%v to +%v)\tcount\t\n", r.FaultWindow[0], r.FaultWindow[1])
	n := 0
	for _, k := range AllFaults {
		if c := s.Faults[k]; c > 0 {
			fmt.Fprintf(tw, "%s\t%d\t\n", k, c)
			n += c
		}
	}
	fmt.Fprintf(tw, "all\t%d\t\n", n)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "availability\tduring faults\totherwise\t")
	tiers := map[string]bool{}
	for k := range s.DuringFaults {
		tiers[k] = true
	}
	for k := range s.Otherwise {
		tiers[k] = true
	}
	for _, tier := range slices.Sorted(maps.Keys(tiers)) {
		d, o := OpCounts{}, OpCounts{}
		if s.DuringFaults[tier] != nil {
			d = *s.DuringFaults[tier]
		}
		if s.Otherwise[tier] != nil {
			o = *s.Otherwise[tier]
		}
		fmt.Fprintf(tw, "%s tier\t%s of %d\t%s of %d\t\n", tier, d.Availability(), d.Total, o.Availability(), o.Total)
	}
	tw.Flush()

	if len(s.ByFault) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "availability during\tat the faulted region(s)\telsewhere\t")
		for _, tier := range slices.Sorted(maps.Keys(s.ByFault)) {
			for _, k := range AllFaults {
				if c := s.ByFault[tier][k]; c != nil {
					fmt.Fprintf(tw, "%s, %s tier\t%s of %d\t%s of %d\t\n", k, tier, c[0].Availability(), c[0].Total, c[1].Availability(), c[1].Total)
				}
			}
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "checker\tanomalies\tpromise")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Checker, len(c.Findings.Anomalies), c.Promise)
		kinds := map[string]int{}
		for _, a := range c.Findings.Anomalies {
			kinds[a.Kind]++
		}
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			fmt.Fprintf(tw, "  %s\t%d\t\n", k, kinds[k])
		}
	}
	tw.Flush()
	for _, c := range r.Checks {
		for _, note := range c.Findings.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", c.Checker, note)
		}
	}
	for _, line := range s.Skew {
		fmt.Fprintf(w, "clock skew: %s\n", line)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "campaign problem: %s\n", p)
	}
	fmt.Fprintln(w)
	if n := r.Anomalies(); n > 0 {
		fmt.Fprintf(w, "FAIL: %d anomalies (first ones below; all in %s)\n", n, filepath.Join(r.ReportDir, "anomalies.txt"))
		shown := 0
		for _, c := range r.Checks {
			for _, a := range c.Findings.Anomalies {
				if shown < 5 {
					fmt.Fprintf(w, "  %s\n", a)
				}
				shown++
			}
		}
	} else {
		fmt.Fprintf(w, "PASS: no anomalies in %d operations over %v\n", len(r.History.Operations()), r.Ended.Sub(r.Started).Round(100*time.Millisecond))
	}
}

// WriteCheckerFiles writes the files the checkers added to their findings
// into dir, and returns what went wrong.
func WriteCheckerFiles(dir string, checks []CheckResult) []string {
	var problems []string
	for _, c := range checks {
		for _, f := range c.Findings.Files {
			if err := f.Write(filepath.Join(dir, f.Name)); err != nil {
				problems = append(problems, fmt.Sprintf("writing %s of checker %s: %v", f.Name, c.Checker, err))
			}
		}
	}
	return problems
}

// WriteReport writes the checkers' files (Findings.Files), summary.txt,
// anomalies.txt and anomalies.jsonl and, for each session an anomaly names,
// sessions/SESSION.jsonl with its events, into the report directory (the
// history and the fault plan are written while the campaign runs).
func (r *Result) WriteReport() error {
	dir := r.ReportDir
	r.Problems = append(r.Problems, WriteCheckerFiles(dir, r.Checks)...)
	var summary strings.Builder
	r.WriteSummary(&summary)
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(summary.String()), 0o644); err != nil {
		return err
	}
	var text, lines strings.Builder
	sessions := map[string]bool{}
	for _, c := range r.Checks {
		for _, a := range c.Findings.Anomalies {
			fmt.Fprintln(&text, a)
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			lines.Write(append(b, '\n'))
			if a.Session != "" {
				sessions[a.Session] = true
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "anomalies.txt"), []byte(text.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "anomalies.jsonl"), []byte(lines.String()), 0o644); err != nil {
		return err
	}
	if len(sessions) == 0 || r.History == nil {
		return nil
	}
	sdir := filepath.Join(dir, "sessions")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return err
	}
	bySession := map[string]*strings.Builder{}
	for s := range sessions {
		bySession[s] = &strings.Builder{}
	}
	for _, e := range r.History.Events {
		if b := bySession[e.Session]; b != nil {
			line, err := json.Marshal(e)
			if err != nil {
				return err
			}
			b.Write(append(line, '\n'))
		}
	}
	for s, b := range bySession {
		if err := os.WriteFile(filepath.Join(sdir, s+".jsonl"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
