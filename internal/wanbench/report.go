package wanbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// WriteTable writes the results as markdown tables: every latency row,
// then visibility per pair, then the targets.
func WriteTable(w io.Writer, res *Results) {
	if len(res.Rows) > 0 {
		writeRows(w, res)
	}
	writeRest(w, res)
}

func writeRows(w io.Writer, res *Results) {
	fmt.Fprintf(w, "## Latency per operation and region (ms)\n\n")
	fmt.Fprintf(w, "WAN: %s (%s). Linearizable tier led from %s", res.Matrix.Name, strings.Join(res.Matrix.Regions, ", "), res.Leader)
	if res.EtcdLeader != "" {
		fmt.Fprintf(w, "; etcd %s led from %s", res.EtcdVersion, res.EtcdLeader)
	}
	fmt.Fprintf(w, ". Each row ran %.3gs; all regions at once. %s\n\n", res.PhaseSeconds, Transport(res))
	fmt.Fprintln(w, "| system | tier | op | region | load | p50 | p90 | p99 | p99.9 | ops/s | errors | floor | p50/floor |")
	fmt.Fprintln(w, "|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range res.Rows {
		floor, ratio := "", ""
		if r.FloorMs > 0 {
			floor = fmt.Sprintf("%.1f", r.FloorMs)
			if r.Count > 0 {
				ratio = fmt.Sprintf("%.2f", r.P50ms/r.FloorMs)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %d | %s | %s |\n",
			r.System, r.Tier, r.Op, r.Region, r.Label(), f2(r.P50ms, r.Count), f2(r.P90ms, r.Count), f2(r.P99ms, r.Count), f2(r.P999ms, r.Count),
			r.OpsPerSec, r.Errors, floor, ratio)
	}
}

func writeRest(w io.Writer, res *Results) {
	if len(res.Visibility) > 0 {
		fmt.Fprintf(w, "\n## Visibility latency per pair (ms), beside N closed-loop put clients per region\n\n")
		fmt.Fprintln(w, "| from | to | put clients | one-way | p50 | p90 | p99 | p99.9 | p50 - one-way | p99 - one-way | samples | error bound p50 / max |")
		fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		for _, v := range res.Visibility {
			fmt.Fprintf(w, "| %s | %s | %d | %.1f | %s | %s | %s | %s | %+.1f | %+.1f | %d | %.1f / %.1f |\n",
				v.From, v.To, v.LoadClients, v.OneWayMs, f2(v.P50ms, v.Count), f2(v.P90ms, v.Count), f2(v.P99ms, v.Count), f2(v.P999ms, v.Count),
				v.P50ms-v.OneWayMs, v.P99ms-v.OneWayMs, v.Count, v.ErrorBoundP50Ms, v.ErrorBoundMaxMs)
		}
		writeNodeVisibility(w, res.Visibility)
	}
	if f := res.Faults; f != nil {
		fmt.Fprintf(w, "\n## Through faults (region %s)\n\n| fault | from (s) | to (s) | causal ok/s in %s | causal ok/s per other region | linear ok/s in %s | linear ok/s per other region |\n|---|--:|--:|--:|--:|--:|--:|\n", f.Faulted, f.Faulted, f.Faulted)
		for _, win := range f.Windows {
			cells := []string{}
			for _, tier := range []string{"causal", "linear"} {
				for _, group := range []string{"faulted", "others"} {
					cells = append(cells, fmt.Sprintf("%.1f", f.meanOK(tier, group, win.StartS, win.EndS)))
				}
			}
			fmt.Fprintf(w, "| %s | %.1f | %.1f | %s |\n", win.Fault, win.StartS, win.EndS, strings.Join(cells, " | "))
		}
		writeFaultVisibility(w, f)
		if f.Error != "" {
			fmt.Fprintf(w, "\nError during the timeline: %s\n", f.Error)
		}
	}
	if len(res.Scale) > 0 {
		fmt.Fprintf(w, "\n## Region sweep: every region writing at once\n\n| preset | regions | puts/s per region (mean) | puts/s in all | remote writes applied/s per region (mean) | put p50 (ms) | visibility p50 over one-way (ms, median of pairs) |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, p := range res.Scale {
			if p.Error != "" {
				fmt.Fprintf(w, "| %s | %d | %s | | | | |\n", p.Preset, p.Regions, p.Error)
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f | %.2f | %+.1f |\n", p.Preset, p.Regions, p.MeanPerRegion, p.TotalOpsPerSec, p.MeanApplyPerSec, p.PutP50ms, p.VisibilityOverP50ms)
		}
	}
	if c := res.CatchUp; c != nil {
		fmt.Fprintf(w, "\n## Catch-up after a cut\n\n| writer | cut region | write rate | cut | backlog | catch-up time | catch-up rate | ÷ write rate |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
		if c.Error != "" {
			fmt.Fprintf(w, "| %s | %s | %.0f/s | %.0fs | %d | - | - | - |\n\n%s\n", c.Writer, c.Cut, c.WriteRatePerSec, c.CutSeconds, c.Backlog, c.Error)
		} else {
			fmt.Fprintf(w, "| %s | %s | %.0f/s | %.0fs | %d | %.2fs | %.0f/s | %.1fx |\n", c.Writer, c.Cut, c.WriteRatePerSec, c.CutSeconds, c.Backlog, c.CatchUpSeconds, c.CatchUpPerSec, c.Ratio)
		}
	}
	fmt.Fprintf(w, "\n## Targets\n\n| target | status | figures |\n|---|---|---|\n")
	for _, t := range res.Targets {
		fmt.Fprintf(w, "| %s | **%s** | %s |\n", t.Name, t.Status, strings.TrimSpace(t.Detail))
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(w, "\nSkipped:\n\n")
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "- %s\n", s)
		}
	}
	var errs []string
	for _, r := range res.Rows {
		if r.LastError != "" {
			errs = append(errs, fmt.Sprintf("%s %s %s %s: %d errors, last: %s", r.System, r.Op, r.Region, r.Label(), r.Errors, r.LastError))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors:\n\n")
		for _, e := range errs {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

func f2(v float64, n int) string {
	if n == 0 {
		return "-"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// WriteDir writes results.json, report.md and the plots (SVG) into dir.
// notes, if not empty, is written at the top of report.md (the machine,
// the command).
func WriteDir(dir string, res *Results, notes string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	plots, err := WritePlots(dir, res)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# causeway bench: %s\n\n", res.Matrix.Name)
	if notes != "" {
		fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(notes))
	}
	fmt.Fprintf(&b, "Started %s, finished %s (UTC). Round trips: %s.\n\n", res.Started.Format("2006-01-02 15:04:05"), res.Finished.Format("15:04:05"), res.Matrix.Source)
	var pairs []string
	for p, v := range res.Matrix.RTTms {
		pairs = append(pairs, fmt.Sprintf("%s %.1f", p, v))
	}
	slices.Sort(pairs)
	fmt.Fprintf(&b, "Round trip per pair (ms): %s.\n\n", strings.Join(pairs, ", "))
	fmt.Fprintf(&b, "%s\n\n", Transport(res))
	for _, p := range plots {
		fmt.Fprintf(&b, "![%s](%s)\n\n", strings.TrimSuffix(p, ".svg"), p)
	}
	fmt.Fprint(&b, methodNotes)
	WriteTable(&b, res)
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

// Transport is a sentence saying whether the run spoke TLS, Causeway's
// and etcd's.
func Transport(res *Results) string {
	causeway := "Causeway: plain HTTP (no TLS)"
	if res.TLS {
		causeway = "Causeway: TLS (clients present a client certificate"
		if res.Embedded {
			causeway += "; nodes talk mutual TLS"
		}
		causeway += ")"
	}
	etcd := ""
	switch {
	case res.EtcdVersion == "":
	case res.EtcdTLS:
		etcd = "; etcd: client and peer TLS, client certificates required"
	default:
		etcd = "; etcd: plain HTTP"
	}
	return "Transport: " + causeway + etcd + "."
}

// methodNotes explains how to read the report.
const methodNotes = `## How it is measured

- Every region's clients talk to their own region's node over loopback; the emulated WAN (Causeway's link layer: each node delays what it sends to a region by half that pair's round trip) lies between the nodes only. etcd's members talk through delay proxies built on the same link layer, with the same delays.
- Closed loop: N clients per region, each sending its next request when the previous answer arrives; latency from send to answer. Open loop: requests arrive at a fixed rate per region whatever the latency, and each one's latency is measured from the moment it was scheduled to be sent, so that waiting for a free client counts (no coordinated omission).
- Percentiles are exact (nearest rank over every sample of the row). With few samples (a 1-client row of a ~400 ms operation) p99 and p99.9 are the slowest sample.
- Floors: a causal write has none beyond the node (writes do not wait for the WAN). A linearizable operation (and a unique-guarded Put, which claims through the tier) cannot beat the quorum round trip from the leader (the round trip to the voter that completes a majority), plus the round trip to the leader from a follower's region; etcd's floor is the same formula with its own leader, which the benchmark moves (etcd's MoveLeader) to the region that leads Causeway's tier, so that both systems have the same floor from every region. A read after a session moves regions waits for its write to arrive: its floor is the one-way delay from where it wrote.
- Visibility: a probe per ordered pair writes a fresh key in the origin, notes the acknowledgement time, and polls the other region every 1 ms (from 10 ms before the one-way delay has passed) until the key is there; the sample is when the finding read returned minus the acknowledgement. One process's monotonic clock times both ends. The sample overstates the truth by at most the window between the last read that missed and the one that found; that bound is reported per pair.

`

// writeFaultVisibility is the table of visibility latency of the writes
// acknowledged in each fault window, per pair group.
func writeFaultVisibility(w io.Writer, f *FaultRun) {
	if len(f.Windows) == 0 || len(f.Windows[0].Visibility) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Visibility through faults (ms; writes acknowledged during each fault; p50 / max; writes never seen or that failed)\n\n| fault |")
	for _, v := range f.Windows[0].Visibility {
		fmt.Fprintf(w, " %s |", pairsLabel(v.Pairs, f.Faulted))
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("--:|", len(f.Windows[0].Visibility)))
	for _, win := range f.Windows {
		fmt.Fprintf(w, "| %s |", win.Fault)
		for _, v := range win.Visibility {
			cell := "-"
			if v.Samples > 0 {
				cell = fmt.Sprintf("%s / %s", f2(v.P50ms, v.Samples), f2(v.MaxMs, v.Samples))
			}
			if v.Unseen > 0 {
				cell += fmt.Sprintf(", %d never seen", v.Unseen)
			}
			if v.WriteErrors > 0 {
				cell += fmt.Sprintf(", %d writes failed", v.WriteErrors)
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
}
