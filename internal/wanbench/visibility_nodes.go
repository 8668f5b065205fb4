package wanbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The probes time a few hundred writes per pair from the outside. The nodes
// time every write themselves: causeway_visibility_latency_seconds, by
// origin, observed when a replicated write becomes visible in a region,
// from the write's hybrid timestamp in its origin (taken when it was
// committed there, before its fsync). The benchmark reads that histogram
// from every region before and after the visibility phase and reports the
// difference beside the probes: every write of the phase, the load's as
// well as the probes'. On one machine every node reads the same clock, so
// no skew enters; against --addr, the regions' clock offsets do. Only the
// mean is reported: it is exact, while a percentile interpolated inside
// buckets each twice as wide as the one below would be off by tens of
// milliseconds at WAN delays. It includes the origin's commit (timestamp
// to fsync), which the probes, timed from the acknowledgement, leave out.

const nodeVisibilityMetric = "causeway_visibility_latency_seconds"

// nodeHist is one region's count and sum of the visibility latencies
// (seconds) of the writes from one origin.
type nodeHist struct {
	count uint64
	sum   float64
}

// scrapeVisibility reads every region's visibility histogram, keyed by
// {origin, region}.
func (b *bench) scrapeVisibility(ctx context.Context) (map[[2]string]nodeHist, error) {
	out := map[[2]string]nodeHist{}
	for _, r := range b.target.Regions {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		hs, err := scrapeRegion(ctx, b.target.HTTP, b.target.URLs[r]+"/metrics")
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r, err)
		}
		for origin, h := range hs {
			out[[2]string{origin, r}] = h
		}
	}
	return out, nil
}

func scrapeRegion(ctx context.Context, client *http.Client, url string) (map[string]nodeHist, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, body)
	}
	return parseVisibility(io.LimitReader(resp.Body, 64<<20))
}

// parseVisibility reads the visibility histograms, by origin, from a
// /metrics page.
func parseVisibility(r io.Reader) (map[string]nodeHist, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]nodeHist{}
	fam, ok := fams[nodeVisibilityMetric]
	if !ok {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		origin := label(m, "origin")
		h := m.GetHistogram()
		if origin == "" || h == nil {
			continue
		}
		out[origin] = nodeHist{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	}
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// minus is what h counted since before (the same histogram, earlier).
func (h nodeHist) minus(before nodeHist) nodeHist {
	return nodeHist{count: h.count - before.count, sum: h.sum - before.sum}
}

// addNodeVisibility fills the rows' node figures from the histograms read
// before and after the phase.
func addNodeVisibility(rows []VisibilityRow, before, after map[[2]string]nodeHist) {
	for i := range rows {
		k := [2]string{rows[i].From, rows[i].To}
		a, ok := after[k]
		if !ok {
			continue
		}
		b := before[k]
		if a.count < b.count {
			continue // the region restarted during the phase: its counts began again
		}
		d := a.minus(b)
		if d.count == 0 {
			continue
		}
		rows[i].NodeWrites = d.count
		rows[i].NodeMeanMs = 1000 * d.sum / float64(d.count)
	}
}

// writeNodeVisibility is the report's table of the nodes' own figures.
func writeNodeVisibility(w io.Writer, rows []VisibilityRow) {
	counted := false
	for _, v := range rows {
		counted = counted || v.NodeWrites > 0
	}
	if !counted {
		return
	}
	fmt.Fprintf(w, "\nThe same phases as the nodes saw them (`%s`: every write of the phase, from its timestamp in the origin, before its fsync there, to its visibility; only the mean, since the histogram's buckets are too wide for percentiles):\n\n", nodeVisibilityMetric)
	fmt.Fprintln(w, "| from | to | put clients | one-way | writes | mean | mean - one-way |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|")
	for _, v := range rows {
		if v.NodeWrites == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.1f | %d | %.1f | %+.1f |\n",
			v.From, v.To, v.LoadClients, v.OneWayMs, v.NodeWrites, v.NodeMeanMs, v.NodeMeanMs-v.OneWayMs)
	}
}
