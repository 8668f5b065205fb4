package wanbench

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// ScalePoint is one step of the region sweep (--scale): a cluster of the
// preset's regions, every region writing at once with ScaleClients
// closed-loop Put clients, visibility probed between every pair meanwhile.
type ScalePoint struct {
	Preset  string `json:"preset"`
	Regions int    `json:"regions"`
	// PerRegionOpsPerSec is each region's Put throughput.
	PerRegionOpsPerSec map[string]float64 `json:"per_region_ops_per_s"`
	MeanPerRegion      float64            `json:"mean_per_region_ops_per_s"`
	TotalOpsPerSec     float64            `json:"total_ops_per_s"`
	PutP50ms           float64            `json:"put_p50_ms"`
	// ApplyPerSecByRegion is each region's rate of applying other regions'
	// writes during the row (from the growth of its applied vector), and
	// MeanApplyPerSec its mean over regions.
	ApplyPerSecByRegion map[string]float64 `json:"apply_per_s_by_region"`
	MeanApplyPerSec     float64            `json:"mean_apply_per_s"`
	// VisibilityOverP50ms is the median over pairs of (visibility p50 -
	// one-way delay): what replication adds beyond the network.
	VisibilityOverP50ms float64 `json:"visibility_over_one_way_p50_ms"`
	Error               string  `json:"error,omitempty"`
}

// scaleSweep runs the sweep over matrices, one cluster at a time.
func (b *bench) scaleSweep(ctx context.Context, sweep []Matrix, clients int) []ScalePoint {
	var out []ScalePoint
	for _, m := range sweep {
		pt := ScalePoint{Preset: m.Name, Regions: len(m.Regions), PerRegionOpsPerSec: map[string]float64{}}
		b.prog.step(fmt.Sprintf("region sweep: starting %d regions (%s)", len(m.Regions), m.Name), startEstimate)
		t, err := StartCluster(ctx, ClusterConfig{Command: b.cfg.Command, Matrix: m, DataDir: fmt.Sprintf("%s/scale-%d", b.dir, len(m.Regions)), Secure: !b.cfg.Insecure})
		if err != nil {
			b.keepDir = true
			pt.Error = fmt.Sprintf("the cluster did not start (its data and logs are kept in %s): %v", b.dir, err)
			out = append(out, pt)
			continue
		}
		sb := &bench{cfg: b.cfg, matrix: m, target: t, run: b.run, res: &Results{}, prog: b.prog}
		// The tier is on in every region; let it elect before the load, then warm up.
		if _, err := t.AwaitLeader(ctx, readyTimeout); err != nil {
			t.Close()
			pt.Error = err.Error()
			out = append(out, pt)
			continue
		}
		sb.warmUp(ctx, m.Regions)
		b.prog.step(fmt.Sprintf("region sweep: %d regions writing at once, %d clients each, visibility probed", len(m.Regions), clients), b.cfg.Phase)
		done := make(chan []VisibilityRow, 1)
		before, t0 := t.appliedFromOthers(ctx), time.Now()
		go func() { done <- sb.visibility(ctx, 0, b.cfg.Phase) }()
		sb.phase(ctx, "causeway", "causal", "put", "closed", clients, 0, true)
		after, elapsed := t.appliedFromOthers(ctx), time.Since(t0)
		vis := <-done
		t.Close()
		pt.ApplyPerSecByRegion = map[string]float64{}
		for r, n := range after {
			if n0, ok := before[r]; ok && elapsed > 0 {
				pt.ApplyPerSecByRegion[r] = float64(n-n0) / elapsed.Seconds()
				pt.MeanApplyPerSec += pt.ApplyPerSecByRegion[r] / float64(len(m.Regions))
			}
		}
		var p50s []float64
		for _, r := range sb.res.Rows {
			pt.PerRegionOpsPerSec[r.Region] = r.OpsPerSec
			pt.TotalOpsPerSec += r.OpsPerSec
			p50s = append(p50s, r.P50ms)
		}
		pt.MeanPerRegion = pt.TotalOpsPerSec / float64(len(m.Regions))
		pt.PutP50ms = median(p50s)
		var over []float64
		for _, v := range vis {
			if v.Count > 0 {
				over = append(over, v.P50ms-v.OneWayMs)
			}
		}
		pt.VisibilityOverP50ms = median(over)
		out = append(out, pt)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c[len(c)/2]
}

// scaleTimeEstimate is the planned time of a sweep step.
func (b *bench) scaleTimeEstimate(steps int) time.Duration {
	return time.Duration(steps) * (startEstimate + b.cfg.Phase + min(b.cfg.Phase, 3*time.Second))
}

// appliedFromOthers is, per region, the sum of its applied vector's
// entries for the other regions: how many of their writes it has applied.
// A region whose status cannot be read is left out.
func (t *Target) appliedFromOthers(ctx context.Context) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range t.Regions {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := t.admin(r).Status(sctx, connect.NewRequest(&v1.StatusRequest{}))
		cancel()
		if err != nil {
			continue
		}
		var sum uint64
		for origin, n := range res.Msg.GetVector() {
			if origin != r {
				sum += n
			}
		}
		out[r] = sum
	}
	return out
}
