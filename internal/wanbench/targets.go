package wanbench

import (
	"fmt"
	"slices"
)

// TargetResult is one target of the benchmark's issue, judged on a run.
type TargetResult struct {
	Name string `json:"name"`
	// Status is "met", "missed" or "not measured".
	Status string `json:"status"`
	// Detail gives the figures behind the status, per region or pair.
	Detail string `json:"detail"`
}

func find(rows []Row, pred func(Row) bool) (Row, bool) {
	for _, r := range rows {
		if pred(r) {
			return r, true
		}
	}
	return Row{}, false
}

// evaluate judges the targets on res.
func evaluate(res *Results) []TargetResult {
	var out []TargetResult
	status := func(ok, measured bool) string {
		switch {
		case !measured:
			return "not measured"
		case ok:
			return "met"
		}
		return "missed"
	}

	// 1. Causal Put p50 within 1.1x of no-WAN, every region (1 client).
	{
		ok, measured, detail := true, false, ""
		for _, region := range res.Matrix.Regions {
			wan, ok1 := find(res.Rows, func(r Row) bool {
				return r.Tier == "causal" && r.Op == "put" && r.Region == region && r.Mode == "closed" && r.Clients == 1 && r.WAN
			})
			base, ok2 := find(res.Rows, func(r Row) bool {
				return r.Tier == "causal" && r.Op == "put" && r.Region == region && !r.WAN
			})
			if !ok1 || !ok2 || base.P50ms == 0 || wan.Count == 0 {
				continue
			}
			measured = true
			ratio := wan.P50ms / base.P50ms
			ok = ok && ratio <= 1.1
			detail += fmt.Sprintf("%s %.2f/%.2f ms = %.2fx; ", region, wan.P50ms, base.P50ms, ratio)
		}
		out = append(out, TargetResult{"causal Put p50 (1 client) within 1.1x of its no-WAN p50 in every region", status(ok, measured), detail})
	}

	// 2. Visibility p50 <= one-way + 5ms, p99 <= one-way + 25ms.
	{
		ok, measured, detail := true, false, ""
		worst50, worst99 := -1e9, -1e9
		load := 0
		for _, v := range res.Visibility {
			load = max(load, v.LoadClients)
		}
		for _, v := range res.Visibility {
			if v.LoadClients != load {
				continue
			}
			if v.Count == 0 {
				ok = false
				detail += fmt.Sprintf("%s->%s: no sample; ", v.From, v.To)
				continue
			}
			measured = true
			d50, d99 := v.P50ms-v.OneWayMs, v.P99ms-v.OneWayMs
			worst50, worst99 = max(worst50, d50), max(worst99, d99)
			if d50 > 5 || d99 > 25 {
				ok = false
				detail += fmt.Sprintf("%s->%s p50 %+.1f ms, p99 %+.1f ms; ", v.From, v.To, d50, d99)
			}
		}
		if measured {
			detail = fmt.Sprintf("worst pair: p50 %+.1f ms, p99 %+.1f ms above the one-way delay. ", worst50, worst99) + detail
			// For context, the same at the lightest load measured.
			light := load
			for _, v := range res.Visibility {
				light = min(light, v.LoadClients)
			}
			if light < load {
				l50, l99 := -1e9, -1e9
				for _, v := range res.Visibility {
					if v.LoadClients == light && v.Count > 0 {
						l50, l99 = max(l50, v.P50ms-v.OneWayMs), max(l99, v.P99ms-v.OneWayMs)
					}
				}
				detail += fmt.Sprintf("(At %d put client(s) per region, for comparison: worst pair p50 %+.1f ms, p99 %+.1f ms.)", light, l50, l99)
			}
		}
		out = append(out, TargetResult{fmt.Sprintf("visibility p50 <= one-way + 5 ms and p99 <= one-way + 25 ms, every pair, %d put clients per region", load), status(ok, measured), detail})
	}

	// 3. Claim p50 within 1.15x of its floor, and no slower than etcd's
	// put-if-absent from the same region.
	{
		ok, measured, detail := true, false, ""
		for _, region := range res.Matrix.Regions {
			c, found := find(res.Rows, func(r Row) bool {
				return r.Tier == "linear" && r.Op == "claim" && r.Region == region && r.Mode == "closed" && r.Clients == 1
			})
			if !found || c.Count == 0 || c.FloorMs == 0 {
				continue
			}
			measured = true
			ratio := c.P50ms / c.FloorMs
			ok = ok && ratio <= 1.15
			detail += fmt.Sprintf("%s %.1f/%.1f ms = %.2fx; ", region, c.P50ms, c.FloorMs, ratio)
		}
		out = append(out, TargetResult{"linear Claim p50 (1 client) within 1.15x of its floor from every region", status(ok, measured), detail})

		ok, measured, detail = true, false, ""
		for _, region := range res.Matrix.Regions {
			c, f1 := find(res.Rows, func(r Row) bool {
				return r.Tier == "linear" && r.Op == "claim" && r.Region == region && r.Mode == "closed" && r.Clients == 1
			})
			e, f2 := find(res.Rows, func(r Row) bool {
				return r.Tier == "etcd" && r.Op == "put-if-absent" && r.Region == region && r.Mode == "closed" && r.Clients == 1
			})
			if !f1 || !f2 || c.Count == 0 || e.Count == 0 {
				continue
			}
			measured = true
			ok = ok && c.P50ms <= e.P50ms
			detail += fmt.Sprintf("%s claim %.1f ms vs etcd %.1f ms; ", region, c.P50ms, e.P50ms)
		}
		out = append(out, TargetResult{"linear Claim p50 no slower than etcd's put-if-absent from the same region (1 client)", status(ok, measured), detail})
	}

	flat := TargetResult{Name: "throughput per region and visibility flat within 10% from 3 to 7 regions", Status: "not measured",
		Detail: "measured by the region sweep, `causeway bench --scale`"}
	if len(res.Scale) > 0 {
		lo, hi, measured := 0.0, 0.0, false
		flat.Detail = ""
		for _, p := range res.Scale {
			if p.Error != "" {
				flat.Detail += fmt.Sprintf("%d regions: %s; ", p.Regions, p.Error)
				continue
			}
			if !measured {
				lo, hi = p.MeanPerRegion, p.MeanPerRegion
			}
			measured = true
			lo, hi = min(lo, p.MeanPerRegion), max(hi, p.MeanPerRegion)
			flat.Detail += fmt.Sprintf("%d regions: %.0f puts/s per region (%.0f in all), visibility p50 %+.1f ms over the one-way delay; ", p.Regions, p.MeanPerRegion, p.TotalOpsPerSec, p.VisibilityOverP50ms)
		}
		if measured {
			flat.Status = status(lo >= 0.9*hi, true)
			flat.Detail = fmt.Sprintf("lowest per-region throughput %.0f%% of the highest. ", 100*lo/hi) + flat.Detail
		}
	}
	out = append(out, flat)
	cu := TargetResult{Name: "catch-up at least 10x the write rate", Status: "not measured"}
	if c := res.CatchUp; c != nil {
		if c.Error != "" {
			cu.Status, cu.Detail = "missed", c.Error
		} else {
			cu.Status = status(c.Ratio >= 10, true)
			cu.Detail = fmt.Sprintf("%s cut off %.0fs while %s wrote %.0f/s: backlog %d writes caught up in %.2fs = %.0f/s = %.1fx the write rate",
				c.Cut, c.CutSeconds, c.Writer, c.WriteRatePerSec, c.Backlog, c.CatchUpSeconds, c.CatchUpPerSec, c.Ratio)
		}
	}
	out = append(out, cu)
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
