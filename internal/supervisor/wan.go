package supervisor

import (
	"fmt"
	"strings"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/link"
)

// Pair is an unordered pair of regions, the smaller name first.
type Pair [2]string

// PairOf returns the pair of a and b in its canonical order.
func PairOf(a, b string) Pair { return Pair{min(a, b), max(a, b)} }

// Other returns the region of the pair that is not region, and whether
// region is in the pair.
func (p Pair) Other(region string) (string, bool) {
	switch region {
	case p[0]:
		return p[1], true
	case p[1]:
		return p[0], true
	}
	return "", false
}

// WAN is a latency matrix: the one-way delay between two regions, the same
// in both directions.
type WAN map[Pair]time.Duration

// Delay is the delay between a and b (0 when the matrix names none).
func (w WAN) Delay(a, b string) time.Duration { return w[PairOf(a, b)] }

// ParseWAN reads a --wan-latency value, "a/b=40ms,a/c=108ms". Region
// names must be valid region names, a pair may appear once, a region has no
// link to itself, and a delay must be one the link layer accepts. The empty
// string is the empty matrix.
func ParseWAN(s string) (WAN, error) {
	out := WAN{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		pair, delay, ok := strings.Cut(item, "=")
		a, b, ok2 := strings.Cut(pair, "/")
		if !ok || !ok2 || a == "" || b == "" {
			return nil, fmt.Errorf("%q: want region/region=duration, for example us-east/eu-west=40ms", item)
		}
		if a == b {
			return nil, fmt.Errorf("%q: a region has no link to itself", item)
		}
		for _, r := range []string{a, b} {
			if err := clocks.ValidateRegion(r); err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
		}
		d, err := time.ParseDuration(delay)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		if err := (link.Link{Delay: d}).Validate(); err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		key := PairOf(a, b)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%q: the pair %s/%s is given twice", item, key[0], key[1])
		}
		out[key] = d
	}
	return out, nil
}
