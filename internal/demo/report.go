package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/internal/campaign"
)

// Report judges what the demo's clients did: it waits (up to 30s) until
// every region applied the same writes, reads every key the clients
// touched in every region (the history's final state), and runs the
// checkers `causeway verify` runs over the history. It writes
// history.jsonl, the checkers' files (linearizability.html for the
// linearizable operations), summary.txt, anomalies.txt and latency.svg
// (every operation's latency over time, fault periods shaded) into dir
// (default: a new directory under the demo's data directory), and returns
// the directory and the summary. The history keeps growing afterwards; a
// later Report judges all of it again.
func (d *Demo) Report(dir string) (string, string, error) {
	if dir == "" {
		dir = filepath.Join(d.cfg.DataDir, "report-"+time.Now().UTC().Format("20060102T150405"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d.recordFinal(ctx)
	if err := d.rec.Flush(); err != nil {
		return "", "", err
	}
	h := d.rec.History()
	f, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return "", "", err
	}
	src, err := os.ReadFile(d.history.Name())
	if err == nil {
		_, err = f.Write(src)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	res := &campaign.Result{
		Regions: d.Regions(), Started: d.started, Ended: time.Now(), Duration: time.Since(d.started).Round(time.Second),
		History: h, Checks: campaign.RunCheckers(h, checkers()), ReportDir: dir,
	}
	if err := res.WriteReport(); err != nil {
		return "", "", err
	}
	plot, err := os.Create(filepath.Join(dir, LatencySVG))
	if err != nil {
		return "", "", err
	}
	err = writeLatencySVG(plot, h)
	if cerr := plot.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	var summary strings.Builder
	res.WriteSummary(&summary)
	if n := res.Anomalies(); n > 0 {
		var first []string
		for _, c := range res.Checks {
			for _, a := range c.Findings.Anomalies {
				if len(first) < 3 {
					first = append(first, a.String())
				}
			}
		}
		return dir, summary.String(), fmt.Errorf("the checkers found %d anomalies (all in %s): %s", n, filepath.Join(dir, "anomalies.txt"), strings.Join(first, "; "))
	}
	return dir, summary.String(), nil
}

// recordFinal records the final state: convergence, then every causal key
// the history names, read in every region.
func (d *Demo) recordFinal(ctx context.Context) {
	var keys []string
	for _, e := range d.rec.History().Events {
		if e.Tier == campaign.TierCausal && e.Key != "" && !slices.Contains(keys, e.Key) {
			keys = append(keys, e.Key)
		}
	}
	start := time.Now()
	vector, err := d.cluster.AwaitConverged(ctx, 30*time.Second)
	ev := campaign.Event{Type: campaign.EventFinal, Tier: campaign.TierCausal, Workload: "demo", F: campaign.FConverge,
		Detail: fmt.Sprintf("applied vector %v in every region after %v", vector, time.Since(start).Round(time.Millisecond))}
	if err != nil {
		ev.Detail, ev.Error = "regions did not converge", err.Error()
	}
	d.rec.Record(ev)
	if len(keys) == 0 {
		return
	}
	for _, region := range d.cfg.Regions {
		e := campaign.Event{Type: campaign.EventFinal, Tier: campaign.TierCausal, Workload: "demo", Region: region, F: campaign.FReadMany}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := d.cluster.KV(region).ReadMany(rctx, connect.NewRequest(&v1.ReadManyRequest{Keys: keys}))
		cancel()
		if err != nil {
			e.Error = err.Error()
		} else {
			for _, r := range res.Msg.GetResults() {
				e.Reads = append(e.Reads, campaign.KeyRead{Key: r.GetKey(), Found: r.GetFound(), Value: string(r.GetValue()), Version: versionOf(r.GetVersion()), HasSiblings: r.GetHasSiblings()})
			}
		}
		d.rec.Record(e)
	}
}

// checkers are the checkers of `causeway verify`, with porcupine's
// visualisation written also for a linearizable history, and without the
// exactly-once checker: it tells writes apart by their values, which the
// campaign's clients make unique and a person at the dashboard does not
// (two puts of "hello" are two writes), and the demo sends every write
// once, without retries, so there is no retry for it to judge.
func checkers() []campaign.Checker {
	var out []campaign.Checker
	for _, c := range campaign.DefaultCheckers() {
		switch c := c.(type) {
		case campaign.ExactlyOnceChecker:
			continue
		case campaign.LinearizableChecker:
			c.Visualize = true
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}
