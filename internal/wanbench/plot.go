package wanbench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The plots, each an SVG file of WriteDir's directory:
//
//	latency-by-region.svg  per region, p50 and p99 of causal Put, linear
//	                       Claim and etcd Put (1 client), with each linear
//	                       operation's physical floor drawn: the CAP
//	                       trade-off in one picture
//	cdf-causal.svg         latency CDF of every causal operation (64
//	                       clients, the first region)
//	cdf-linear.svg         the same for the linearizable tier and etcd
//	visibility.svg         visibility latency p50 and p99 against the
//	                       one-way delay per pair, with the line y = x
//	faults-*.svg           (--faults) throughput, latency and visibility
//	                       latency over time, fault periods shaded
//	scale-*.svg            (--scale) throughput and visibility per region
//	                       count
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{174, 199, 232, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{255, 152, 150, 255},
	color.RGBA{44, 160, 44, 255}, color.RGBA{152, 223, 138, 255},
	color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
}

// WritePlots renders the plots into dir and returns their file names.
func WritePlots(dir string, res *Results) ([]string, error) {
	var names []string
	for _, f := range []struct {
		name string
		make func(*Results) (*plot.Plot, bool)
	}{
		{"latency-by-region.svg", barPlot},
		{"cdf-causal.svg", func(r *Results) (*plot.Plot, bool) { return cdfPlot(r, "causal") }},
		{"cdf-linear.svg", func(r *Results) (*plot.Plot, bool) { return cdfPlot(r, "linear") }},
		{"visibility.svg", visibilityPlot},
		{"faults-throughput.svg", func(r *Results) (*plot.Plot, bool) { return faultPlot(r, false) }},
		{"faults-latency.svg", func(r *Results) (*plot.Plot, bool) { return faultPlot(r, true) }},
		{"faults-visibility.svg", faultVisibilityPlot},
		{"scale-throughput.svg", func(r *Results) (*plot.Plot, bool) { return scalePlot(r, false) }},
		{"scale-visibility.svg", func(r *Results) (*plot.Plot, bool) { return scalePlot(r, true) }},
	} {
		p, ok := f.make(res)
		if !ok {
			continue
		}
		if err := p.Save(plotWidth, plotHeight, filepath.Join(dir, f.name)); err != nil {
			return nil, fmt.Errorf("plot %s: %w", f.name, err)
		}
		names = append(names, f.name)
	}
	return names, nil
}

// barSeries are the bars of latency-by-region.svg.
var barSeries = []struct{ system, tier, op, label string }{
	{"causeway", "causal", "put", "causal Put"},
	{"causeway", "linear", "claim", "linear Claim"},
	{"etcd", "etcd", "put", "etcd Put"},
}

// newPlot is a plot whose linear axes are marked with plainTicks; a plot
// with another scale sets its own marker.
func newPlot() *plot.Plot {
	p := plot.New()
	p.X.Tick.Marker = plainTicks{}
	p.Y.Tick.Marker = plainTicks{}
	return p
}

func barPlot(res *Results) (*plot.Plot, bool) {
	p := newPlot()
	p.Title.Text = "Latency by region, 1 client (" + res.Matrix.Name + "): p50 and p99, with the consensus floor"
	p.Y.Label.Text = "latency (ms)"
	regions := res.Matrix.Regions
	const groups = 6 // bars per region
	width := vg.Points(11)
	any := false
	for si, s := range barSeries {
		for qi, q := range []string{"p50", "p99"} {
			vals := make(plotter.Values, len(regions))
			found := false
			for i, region := range regions {
				r, ok := find(res.Rows, func(r Row) bool {
					return r.System == s.system && r.Tier == s.tier && r.Op == s.op && r.Region == region && r.Mode == "closed" && r.Clients == 1 && r.WAN
				})
				if !ok || r.Count == 0 {
					continue
				}
				found = true
				vals[i] = r.P50ms
				if q == "p99" {
					vals[i] = r.P99ms
				}
			}
			if !found {
				continue
			}
			any = true
			bars, err := plotter.NewBarChart(vals, width)
			if err != nil {
				return nil, false
			}
			k := si*2 + qi
			bars.Offset = width * vg.Length(k-groups/2)
			bars.Color = palette[k]
			bars.LineStyle.Width = 0
			p.Add(bars)
			p.Legend.Add(s.label+" "+q, bars)
		}
	}
	// The floor of the linearizable tier (and etcd's, when its leader is
	// elsewhere) from each region, as a short horizontal line over the
	// region's bars.
	for _, s := range []struct{ tier, op, label string }{{"linear", "claim", "Claim floor"}, {"etcd", "put", "etcd floor"}} {
		added := false
		for i, region := range regions {
			r, ok := find(res.Rows, func(r Row) bool {
				return r.Tier == s.tier && r.Op == s.op && r.Region == region && r.Mode == "closed" && r.Clients == 1 && r.FloorMs > 0
			})
			if !ok {
				continue
			}
			half := 0.42
			line, err := plotter.NewLine(plotter.XYs{{X: float64(i) - half, Y: r.FloorMs}, {X: float64(i) + half, Y: r.FloorMs}})
			if err != nil {
				continue
			}
			line.Width = vg.Points(2)
			line.Color = color.Black
			if s.tier == "etcd" {
				line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(line)
			if !added {
				p.Legend.Add(s.label, line)
				added = true
			}
		}
	}
	p.NominalX(regions...)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	// Room above the tallest bar for the legend.
	top := 0.0
	for _, r := range res.Rows {
		if r.Mode == "closed" && r.Clients == 1 && r.WAN && (r.Op == "put" || r.Op == "claim") {
			top = max(top, r.P99ms, r.FloorMs)
		}
	}
	p.Y.Max = top * 1.45
	return p, any
}

func cdfPlot(res *Results, tier string) (*plot.Plot, bool) {
	p := newPlot()
	region := res.Matrix.Regions[0]
	clients := 0
	for _, r := range res.Rows {
		if r.Mode == "closed" {
			clients = max(clients, r.Clients)
		}
	}
	if tier == "causal" {
		p.Title.Text = fmt.Sprintf("Causal tier latency CDF, %d clients in %s", clients, region)
	} else {
		p.Title.Text = fmt.Sprintf("Linearizable tier and etcd latency CDF, %d clients in %s", clients, region)
	}
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of operations"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
	n := 0
	for _, r := range res.Rows {
		if r.Region != region || r.Mode != "closed" || r.Clients != clients || !r.WAN || len(r.CDF) == 0 {
			continue
		}
		if (tier == "causal") != (r.Tier == "causal") {
			continue
		}
		var xys plotter.XYs
		for _, pt := range r.CDF {
			if pt[0] > 0 {
				xys = append(xys, plotter.XY{X: pt[0], Y: pt[1]})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			continue
		}
		line.Color = palette[n%len(palette)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		label := r.Op
		if r.System == "etcd" {
			label = "etcd " + r.Op
		}
		p.Legend.Add(label, line)
		n++
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	return p, n > 0
}

func visibilityPlot(res *Results) (*plot.Plot, bool) {
	if len(res.Visibility) == 0 {
		return nil, false
	}
	p := newPlot()
	p.Title.Text = "Visibility latency vs one-way delay, per region pair"
	p.X.Label.Text = "one-way delay (ms)"
	p.Y.Label.Text = "visibility latency (ms)"
	load, light := 0, 1<<30
	for _, v := range res.Visibility {
		load, light = max(load, v.LoadClients), min(light, v.LoadClients)
	}
	var p50, p99, p50light plotter.XYs
	maxV := 0.0
	for _, v := range res.Visibility {
		if v.Count == 0 {
			continue
		}
		maxV = max(maxV, v.OneWayMs, v.P99ms)
		if v.LoadClients == load {
			p50 = append(p50, plotter.XY{X: v.OneWayMs, Y: v.P50ms})
			p99 = append(p99, plotter.XY{X: v.OneWayMs, Y: v.P99ms})
		} else if v.LoadClients == light {
			p50light = append(p50light, plotter.XY{X: v.OneWayMs, Y: v.P50ms})
		}
	}
	if len(p50) == 0 {
		return nil, false
	}
	ident, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: maxV * 1.05, Y: maxV * 1.05}})
	ident.Color = color.Gray{Y: 120}
	ident.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(ident)
	p.Legend.Add("y = x (the one-way delay)", ident)
	for i, s := range []struct {
		xys   plotter.XYs
		label string
		shape draw.GlyphDrawer
	}{
		{p50, fmt.Sprintf("p50, %d put clients per region", load), draw.CircleGlyph{}},
		{p99, fmt.Sprintf("p99, %d put clients per region", load), draw.TriangleGlyph{}},
		{p50light, fmt.Sprintf("p50, %d put client(s) per region", light), draw.BoxGlyph{}},
	} {
		if len(s.xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.xys)
		if err != nil {
			return nil, false
		}
		sc.GlyphStyle.Color = palette[i*2%len(palette)]
		sc.GlyphStyle.Shape = s.shape
		sc.GlyphStyle.Radius = vg.Points(4)
		p.Add(sc)
		p.Legend.Add(s.label, sc)
	}
	p.X.Min, p.Y.Min = 0, 0
	p.Legend.Top = false // below y = x: every point lies above it
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p, true
}

// scalePlot draws the region sweep: Put throughput (per region and in
// all) or visibility beyond the one-way delay, against the region count.
func scalePlot(res *Results, visibility bool) (*plot.Plot, bool) {
	var perRegion, total, vis plotter.XYs
	for _, pt := range res.Scale {
		if pt.Error != "" {
			continue
		}
		x := float64(pt.Regions)
		perRegion = append(perRegion, plotter.XY{X: x, Y: pt.MeanPerRegion})
		total = append(total, plotter.XY{X: x, Y: pt.TotalOpsPerSec})
		vis = append(vis, plotter.XY{X: x, Y: pt.VisibilityOverP50ms})
	}
	if len(perRegion) == 0 {
		return nil, false
	}
	p := newPlot()
	p.X.Label.Text = "regions"
	series := []struct {
		xys   plotter.XYs
		label string
	}{{perRegion, "puts/s per region (mean)"}, {total, "puts/s, all regions"}}
	p.Title.Text = "Region sweep: Put throughput with every region writing at once"
	p.Y.Label.Text = "puts per second"
	if visibility {
		series = series[:0]
		series = append(series, struct {
			xys   plotter.XYs
			label string
		}{vis, "visibility p50 - one-way delay (median of pairs)"})
		p.Title.Text = "Region sweep: visibility latency beyond the one-way delay"
		p.Y.Label.Text = "ms"
	}
	for i, s := range series {
		line, points, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return nil, false
		}
		line.Color = palette[i*2]
		points.Color = palette[i*2]
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
	}
	p.X.Min, p.Y.Min = 2, 0
	top := 0.0
	for _, s := range series {
		for _, xy := range s.xys {
			top = max(top, xy.Y)
		}
	}
	p.Y.Max = max(top*1.3, 1)
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p, true
}

// faultPlot draws the fault timeline: successful operations per second
// per region (or p50 latency) of each tier, in the faulted region and in
// the others, over time, with each fault's period shaded.
func faultPlot(res *Results, latency bool) (*plot.Plot, bool) {
	f := res.Faults
	if f == nil || len(f.Series) == 0 {
		return nil, false
	}
	p := newPlot()
	p.X.Label.Text = "time (s)"
	if latency {
		// Log scale: a causal Put (milliseconds) and a linear Claim across
		// the WAN (hundreds) are both readable.
		p.Title.Text = "Latency through the faults (p50 per second; gaps: nothing succeeded)"
		p.Y.Label.Text = "p50 latency (ms, log scale)"
	} else {
		p.Title.Text = "Throughput through the faults (successful operations per second per region)"
		p.Y.Label.Text = "ops/s per region"
	}
	top, lo := 0.0, 0.0
	for _, s := range f.Series {
		for _, b := range s.Bins {
			if latency {
				top = max(top, b.P50ms)
				if b.OK > 0 && b.P50ms > 0 && (lo == 0 || b.P50ms < lo) {
					lo = b.P50ms
				}
			} else {
				top = max(top, b.PerRegion)
			}
		}
	}
	dataTop := max(top, 1)
	// y is the value itself, or on the latency plot log10 of it, drawn on
	// a linear axis labelled in ms (exponentTicks), as the visibility plot.
	bottom, gridTop, y := 0.0, dataTop, func(v float64) float64 { return v }
	if latency && lo > 0 {
		p.Y.Tick.Marker = exponentTicks{upTo: dataTop}
		bottom, gridTop = math.Log10(lo/2), math.Log10(logTickAtOrAbove(dataTop))
		y = func(v float64) float64 { return max(math.Log10(v), bottom) }
	}
	top = gridTop + (gridTop - bottom) // a first guess; fitLegend sets it
	p.X.Tick.Marker = secondTicks{}
	shades := shadeFaults(p, f, bottom, top)
	for i, s := range f.Series {
		// Runs of seconds with a value; a second in which nothing
		// succeeded has no latency and breaks the line.
		var runs []plotter.XYs
		var cur plotter.XYs
		for _, b := range s.Bins {
			v := b.PerRegion
			if latency {
				if b.OK == 0 {
					if len(cur) > 0 {
						runs, cur = append(runs, cur), nil
					}
					continue
				}
				v = b.P50ms
			}
			cur = append(cur, plotter.XY{X: b.T + 0.5, Y: y(v)})
		}
		if len(cur) > 0 {
			runs = append(runs, cur)
		}
		var first *plotter.Line
		for _, xys := range runs {
			line, err := plotter.NewLine(xys)
			if err != nil {
				continue
			}
			line.Color = palette[i*2%len(palette)]
			line.Width = vg.Points(1.5)
			line.StepStyle = plotter.MidStep
			if s.Regions == "others" {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(line)
			if first == nil {
				first = line
			}
		}
		if first == nil {
			continue
		}
		who := f.Faulted
		if s.Regions == "others" {
			who = "other regions"
		}
		p.Legend.Add(fmt.Sprintf("%s, %s", s.Tier, who), first)
	}
	p.Y.Min, p.Y.Max = bottom, top
	p.X.Min = 0
	p.Legend.Top = true
	// Room for the legend above the lines.
	fitLegend(p, len(f.Windows)+len(f.Series), func(share float64) {
		p.Y.Max = (gridTop - share*bottom) / (1 - share)
		shades.reach(p.Y.Max)
	})
	return p, true
}

// plotWidth and plotHeight are the size every plot is saved at.
const (
	plotWidth  = 9 * vg.Inch
	plotHeight = 5 * vg.Inch
)

// legendInset is the room kept between a legend and the edges of the data
// area (and under the legend, between it and the highest line).
const legendInset = 6 // points

// fitLegend gives a legend at the top right of p's data area the room it
// needs: setTop(share) must set the y axis's top so that the lines and
// gridlines stay in the lower 1 - share of the data's height (entries is
// the legend's number of entries, or a bound on it), and
// fitLegend finds the share from the legend's height and the data area's,
// which depends a little on the range (on a log axis gonum places the y
// label's box by the range's arithmetic middle). It then moves the legend
// to the data area's top right corner, inset: gonum draws a legend from
// the top of the area under the title, which is higher than the data's
// when the y label's box pushes the data down.
func fitLegend(p *plot.Plot, entries int, setTop func(share float64)) {
	c := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: plotWidth, Y: plotHeight}}}
	line := p.Legend.TextStyle.FontExtents().Height
	legend := vg.Length(entries)*(line+p.Legend.Padding) + 2*vg.Points(legendInset)
	share := 0.3
	for range 3 {
		setTop(share)
		data := p.DataCanvas(c)
		share = min(float64(legend/(data.Max.Y-data.Min.Y)), 0.6)
	}
	setTop(share)
	data := p.DataCanvas(c)
	under := c.Max.Y
	if p.Title.Text != "" {
		under -= p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
	}
	p.Legend.YOffs = data.Max.Y - under - vg.Points(legendInset)
	p.Legend.XOffs = data.Max.X - c.Max.X - vg.Points(legendInset)
}

// faultShades are the fault windows' colours, translucent.
var faultShades = []color.Color{color.NRGBA{255, 170, 60, 70}, color.NRGBA{170, 90, 255, 55}, color.NRGBA{60, 170, 255, 55}}

// shadeFaults shades each fault window of f from y = bottom to top, with a
// legend entry.
func shadeFaults(p *plot.Plot, f *FaultRun, bottom, top float64) shades {
	var out shades
	for i, w := range f.Windows {
		poly, err := plotter.NewPolygon(plotter.XYs{{X: w.StartS, Y: bottom}, {X: w.EndS, Y: bottom}, {X: w.EndS, Y: top}, {X: w.StartS, Y: top}})
		if err != nil {
			continue
		}
		poly.Color = faultShades[i%len(faultShades)]
		poly.LineStyle.Width = 0
		p.Add(poly)
		p.Legend.Add(fmt.Sprintf("%s: %s", w.Fault, w.Region), poly)
		out = append(out, poly)
	}
	return out
}

// shades are the fault windows' polygons.
type shades []*plotter.Polygon

// reach extends the shades up to top (the axis's top, once known).
func (s shades) reach(top float64) {
	for _, poly := range s {
		ring := poly.XYs[0]
		ring[2].Y, ring[3].Y = top, top
	}
}

// faultVisibilityPlot draws visibility latency through the fault
// timeline: per pair group, the p50 (solid) and p99 (dashed) of the writes
// acknowledged in each second, on a log scale (a write made during a
// partition waits seconds for the heal; one made in steady state tens of
// milliseconds beyond the one-way delay), fault periods shaded. A second
// without a sample breaks the line.
func faultVisibilityPlot(res *Results) (*plot.Plot, bool) {
	f := res.Faults
	if f == nil || len(f.Visibility) == 0 {
		return nil, false
	}
	lo, hi := 0.0, 0.0
	for _, s := range f.Visibility {
		for _, b := range s.Bins {
			if b.Samples == 0 {
				continue
			}
			if lo == 0 || b.P50ms < lo {
				lo = b.P50ms
			}
			hi = max(hi, b.P99ms)
		}
	}
	if hi <= 0 || lo <= 0 {
		return nil, false
	}
	p := newPlot()
	p.Title.Text = "Visibility latency through the faults (writes acknowledged each second; p50 solid, p99 dashed)"
	p.X.Label.Text = "time the write was acknowledged (s)"
	p.Y.Label.Text = "visibility latency (ms, log scale)"
	// The y axis is linear in log10(ms), labelled in ms (exponentTicks):
	// gridlines and labels up to the first tick above the highest line,
	// and above it room for the legend.
	p.Y.Tick.Marker = exponentTicks{upTo: hi}
	p.X.Tick.Marker = secondTicks{}
	bottom := math.Log10(lo / 2)
	gridTop := math.Log10(logTickAtOrAbove(hi))
	top := gridTop + 1 // a first guess; fitLegend sets it
	shades := shadeFaults(p, f, bottom, top)
	for i, s := range f.Visibility {
		for _, q := range []string{"p50", "p99"} {
			var runs []plotter.XYs
			var cur plotter.XYs
			for _, b := range s.Bins {
				if b.Samples == 0 {
					if len(cur) > 0 {
						runs, cur = append(runs, cur), nil
					}
					continue
				}
				y := b.P50ms
				if q == "p99" {
					y = b.P99ms
				}
				cur = append(cur, plotter.XY{X: b.T + 0.5, Y: max(math.Log10(y), bottom)})
			}
			if len(cur) > 0 {
				runs = append(runs, cur)
			}
			var first *plotter.Line
			for _, xys := range runs {
				line, err := plotter.NewLine(xys)
				if err != nil {
					continue
				}
				line.Color = palette[i*2%len(palette)]
				line.Width = vg.Points(1.5)
				line.StepStyle = plotter.MidStep
				if q == "p99" {
					line.Width = vg.Points(1)
					line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				}
				p.Add(line)
				if first == nil {
					first = line
				}
			}
			if first != nil && q == "p50" { // one entry per group: the title says which line is which
				p.Legend.Add(pairsLabel(s.Pairs, f.Faulted), first)
			}
		}
	}
	p.Y.Min, p.Y.Max = bottom, top
	p.X.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	fitLegend(p, len(f.Windows)+len(f.Visibility), func(share float64) {
		p.Y.Max = (gridTop - share*bottom) / (1 - share)
		shades.reach(p.Y.Max)
	})
	return p, true
}
