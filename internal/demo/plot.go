package demo

import (
	"fmt"
	"html"
	"io"
	"math"
	"time"

	"github.com/causewaydb/causeway/internal/campaign"
)

// LatencySVG is the file Report writes the latency plot to.
const LatencySVG = "latency.svg"

// writeLatencySVG plots every completed operation of h: when it started
// (x, seconds since the first event) against how long it took (y, in
// milliseconds, on a log scale, since a WAN round trip and a bounded wait
// for a causal past differ by two orders of magnitude). Causal operations
// are blue, linearizable ones purple; a refusal or failure is a red cross.
// The periods when a fault was active (the history's nemesis events) are
// shaded. Plain SVG, so a browser shows it with nothing else.
func writeLatencySVG(w io.Writer, h *campaign.History) error {
	const (
		width, height         = 900, 360
		left, right, top, bot = 60, 20, 30, 40
	)
	if len(h.Events) == 0 {
		_, err := fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="60"><text x="10" y="30">no operations recorded</text></svg>`+"\n", width)
		return err
	}
	t0 := h.Events[0].Time
	end := h.Events[len(h.Events)-1].Time
	span := math.Max(end.Sub(t0).Seconds(), 1)
	const minMs, maxMs = 1.0, 10000.0
	x := func(t time.Time) float64 { return left + (t.Sub(t0).Seconds()/span)*(width-left-right) }
	y := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, minMs), maxMs)
		return top + (1-math.Log10(ms/minMs)/math.Log10(maxMs/minMs))*(height-top-bot)
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	p(`<text x="%d" y="18" font-size="13" font-weight="bold">Latency of the demo's operations (shaded: a fault was active)</text>`+"\n", left)
	// Fault periods.
	var open *time.Time
	for _, e := range h.Of(campaign.EventNemesis) {
		switch e.Phase {
		case campaign.PhaseStart:
			t := e.Time
			open = &t
		case campaign.PhaseHeal:
			if open != nil {
				p(`<rect class="fault" x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4c7c3" fill-opacity="0.6"><title>%s</title></rect>`+"\n",
					x(*open), top, math.Max(x(e.Time)-x(*open), 1), height-top-bot, html.EscapeString(e.Detail))
				open = nil
			}
		}
	}
	if open != nil {
		p(`<rect class="fault" x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4c7c3" fill-opacity="0.6"/>`+"\n", x(*open), top, math.Max(x(end)-x(*open), 1), height-top-bot)
	}
	// Axes: log grid lines at 1, 10, 100, 1000, 10000 ms.
	for ms := minMs; ms <= maxMs; ms *= 10 {
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g ms</text>`+"\n",
			left, width-right, y(ms), y(ms), left-4, y(ms)+4, ms)
	}
	p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, width-right, height-bot, height-bot)
	step := math.Max(math.Ceil(span/10), 1)
	for s := 0.0; s <= span; s += step {
		xs := left + (s/span)*(width-left-right)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%gs</text>`+"\n", xs, height-bot+14, s)
	}
	p(`<text x="%d" y="%d" text-anchor="middle">seconds since the demo started</text>`+"\n", (width+left)/2, height-6)
	// Operations.
	for _, o := range h.Operations() {
		if o.Completion.Type == "" {
			continue
		}
		ms := float64(o.Completion.Time.Sub(o.Invoke.Time).Microseconds()) / 1000
		cx, cy := x(o.Invoke.Time), y(ms)
		what := html.EscapeString(fmt.Sprintf("%s %s in %s: %s after %.1f ms", o.Invoke.F, o.Invoke.Key, o.Invoke.Region, o.Outcome(), ms))
		if o.Outcome() != campaign.EventOK {
			p(`<path class="op fail" d="M%.1f %.1f l6 6 m0 -6 l-6 6" stroke="#b42318" stroke-width="2"><title>%s</title></path>`+"\n", cx-3, cy-3, what)
			continue
		}
		color := "#2354c7"
		if o.Invoke.Tier == campaign.TierLinear {
			color = "#7a3fc4"
		}
		p(`<circle class="op" cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s</title></circle>`+"\n", cx, cy, color, what)
	}
	// Legend.
	lx := width - right - 330
	p(`<circle cx="%d" cy="14" r="4" fill="#2354c7"/><text x="%d" y="18">causal</text>`, lx, lx+8)
	p(`<circle cx="%d" cy="14" r="4" fill="#7a3fc4"/><text x="%d" y="18">linearizable</text>`, lx+60, lx+68)
	p(`<path d="M%d 10 l8 8 m0 -8 l-8 8" stroke="#b42318" stroke-width="2"/><text x="%d" y="18">refused / failed</text>`, lx+145, lx+157)
	p(`<rect x="%d" y="9" width="12" height="10" fill="#f4c7c3"/><text x="%d" y="18">fault</text>`+"\n", lx+260, lx+276)
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}
