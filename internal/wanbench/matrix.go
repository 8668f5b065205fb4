package wanbench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// Matrix is a WAN layout: the regions, in start order (the first one forms
// the linearizable tier and normally leads it), and the round-trip time of
// every pair. The emulated links delay each direction by half the round
// trip.
type Matrix struct {
	// Name is the preset's name, or the file the matrix was read from.
	Name    string
	Regions []string
	// RTT holds the round trip of every pair of distinct regions.
	RTT map[supervisor.Pair]time.Duration
	// Source says where the figures come from.
	Source string
}

// OneWay is the one-way delay between a and b: half their round trip.
func (m Matrix) OneWay(a, b string) time.Duration {
	if a == b {
		return 0
	}
	return m.RTT[supervisor.PairOf(a, b)] / 2
}

// WAN is the matrix as `causeway serve --wan-latency` takes it (one-way
// delays).
func (m Matrix) WAN() string {
	var items []string
	for i, a := range m.Regions {
		for _, b := range m.Regions[i+1:] {
			items = append(items, fmt.Sprintf("%s/%s=%s", a, b, m.OneWay(a, b)))
		}
	}
	return strings.Join(items, ",")
}

// Validate reports whether every region name is valid and distinct and
// every pair has a round trip the link layer can emulate.
func (m Matrix) Validate() error {
	if len(m.Regions) < 2 {
		return fmt.Errorf("a WAN matrix needs at least 2 regions, got %d", len(m.Regions))
	}
	seen := map[string]bool{}
	for _, r := range m.Regions {
		if err := clocks.ValidateRegion(r); err != nil {
			return err
		}
		if seen[r] {
			return fmt.Errorf("region %s is named twice", r)
		}
		seen[r] = true
	}
	for i, a := range m.Regions {
		for _, b := range m.Regions[i+1:] {
			rtt, ok := m.RTT[supervisor.PairOf(a, b)]
			if !ok {
				return fmt.Errorf("no round trip given for %s/%s: every pair of regions needs one", a, b)
			}
			if err := (link.Link{Delay: rtt / 2}).Validate(); err != nil {
				return fmt.Errorf("%s/%s: %w", a, b, err)
			}
		}
	}
	for p := range m.RTT {
		if !seen[p[0]] || !seen[p[1]] {
			return fmt.Errorf("round trip given for %s/%s, but the regions are %v", p[0], p[1], m.Regions)
		}
	}
	return nil
}

// Zero is the same layout with every round trip 0: the baseline that
// "writes do not wait for the WAN" is judged against.
func (m Matrix) Zero() Matrix {
	z := m
	z.RTT = map[supervisor.Pair]time.Duration{}
	for p := range m.RTT {
		z.RTT[p] = 0
	}
	return z
}

// awsSource cites the measurements the presets are taken from.
const awsSource = "AWS inter-region round trips, average ms between EC2 instances, " +
	"from the table \"Latency Between AWS Global Regions\" as republished in " +
	"https://acomputerscientistlearnsaws.blogspot.com/2017/04/aws-regions.html (April 2017); " +
	"each pair is the mean of its two directions"

// awsRTTms is the round trip in milliseconds between the AWS regions the
// presets use, named here as Causeway regions: us-east (N. Virginia),
// us-west (Oregon), eu-west (Ireland), eu-central (Frankfurt),
// ap-northeast (Tokyo), ap-southeast (Singapore), au-southeast (Sydney).
// Each is the mean of the table's two directions, rounded to 0.1 ms.
var awsRTTms = map[supervisor.Pair]float64{
	supervisor.PairOf("us-east", "us-west"):           87.8,
	supervisor.PairOf("us-east", "eu-west"):           80.5,
	supervisor.PairOf("us-east", "eu-central"):        88.6,
	supervisor.PairOf("us-east", "ap-northeast"):      145.3,
	supervisor.PairOf("us-east", "ap-southeast"):      216.7,
	supervisor.PairOf("us-east", "au-southeast"):      229.9,
	supervisor.PairOf("us-west", "eu-west"):           137.0,
	supervisor.PairOf("us-west", "eu-central"):        159.5,
	supervisor.PairOf("us-west", "ap-northeast"):      89.1,
	supervisor.PairOf("us-west", "ap-southeast"):      161.4,
	supervisor.PairOf("us-west", "au-southeast"):      162.0,
	supervisor.PairOf("eu-west", "eu-central"):        19.6,
	supervisor.PairOf("eu-west", "ap-northeast"):      212.4,
	supervisor.PairOf("eu-west", "ap-southeast"):      238.6,
	supervisor.PairOf("eu-west", "au-southeast"):      309.6,
	supervisor.PairOf("eu-central", "ap-northeast"):   236.5,
	supervisor.PairOf("eu-central", "ap-southeast"):   325.9,
	supervisor.PairOf("eu-central", "au-southeast"):   323.4,
	supervisor.PairOf("ap-northeast", "ap-southeast"): 73.8,
	supervisor.PairOf("ap-northeast", "au-southeast"): 103.9,
	supervisor.PairOf("ap-southeast", "au-southeast"): 175.4,
}

// presetRegions are the regions of each preset, in start order.
var presetRegions = map[string][]string{
	"aws3": {"us-east", "eu-west", "ap-southeast"},
	"aws5": {"us-east", "eu-west", "ap-southeast", "us-west", "ap-northeast"},
	"aws7": {"us-east", "eu-west", "ap-southeast", "us-west", "ap-northeast", "eu-central", "au-southeast"},
}

// PresetNames lists the presets, smallest first.
func PresetNames() []string { return []string{"aws3", "aws5", "aws7"} }

// Preset returns the named preset matrix.
func Preset(name string) (Matrix, bool) {
	regions, ok := presetRegions[name]
	if !ok {
		return Matrix{}, false
	}
	m := Matrix{Name: name, Regions: slices.Clone(regions), RTT: map[supervisor.Pair]time.Duration{}, Source: awsSource}
	for i, a := range regions {
		for _, b := range regions[i+1:] {
			p := supervisor.PairOf(a, b)
			m.RTT[p] = time.Duration(awsRTTms[p] * float64(time.Millisecond))
		}
	}
	return m, true
}

// errMatrix is wrapped by every error about a --wan value (unexported: callers print it, none branch on it).
var errMatrix = errors.New("bad WAN matrix")

// LoadMatrix returns the preset named spec, or else reads the file spec
// (see ParseMatrix).
func LoadMatrix(spec string) (Matrix, error) {
	if m, ok := Preset(spec); ok {
		return m, nil
	}
	f, err := os.Open(spec)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Matrix{}, fmt.Errorf("%w: %q is neither a preset (%s) nor a file", errMatrix, spec, strings.Join(PresetNames(), ", "))
		}
		return Matrix{}, fmt.Errorf("%w: %v", errMatrix, err)
	}
	defer f.Close()
	m, err := ParseMatrix(f)
	if err != nil {
		return Matrix{}, fmt.Errorf("%w: %s: %w", errMatrix, spec, err)
	}
	m.Name = spec
	return m, nil
}

// ParseMatrix reads a matrix file: one pair of regions per line with
// their round-trip time, as "REGION REGION RTT" where RTT is a Go duration
// ("80ms", "80.5ms") or a bare number of milliseconds. Blank lines and text
// after '#' are ignored. Regions are started in the order they first
// appear, so the first region named forms the linearizable tier. Every pair
// of the regions named must be given, once; 0 is allowed (no delay).
//
//	# my layout: round trips in ms
//	us-east  eu-west       80
//	us-east  ap-southeast  217
//	eu-west  ap-southeast  239
func ParseMatrix(r io.Reader) (Matrix, error) {
	m := Matrix{RTT: map[supervisor.Pair]time.Duration{}, Source: "user-supplied matrix"}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return Matrix{}, fmt.Errorf("line %d: want \"REGION REGION RTT\" (for example \"us-east eu-west 80ms\"), got %q", line, strings.TrimSpace(text))
		}
		a, b := fields[0], fields[1]
		for _, reg := range []string{a, b} {
			if err := clocks.ValidateRegion(reg); err != nil {
				return Matrix{}, fmt.Errorf("line %d: %w", line, err)
			}
		}
		if a == b {
			return Matrix{}, fmt.Errorf("line %d: a region has no round trip to itself", line)
		}
		rtt, err := parseRTT(fields[2])
		if err != nil {
			return Matrix{}, fmt.Errorf("line %d: %w", line, err)
		}
		p := supervisor.PairOf(a, b)
		if _, dup := m.RTT[p]; dup {
			return Matrix{}, fmt.Errorf("line %d: the pair %s/%s is given twice", line, p[0], p[1])
		}
		m.RTT[p] = rtt
		for _, reg := range []string{a, b} {
			if !seen[reg] {
				seen[reg] = true
				m.Regions = append(m.Regions, reg)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Matrix{}, err
	}
	if err := m.Validate(); err != nil {
		return Matrix{}, err
	}
	return m, nil
}

// parseRTT reads a round trip: a Go duration or a number of milliseconds.
func parseRTT(s string) (time.Duration, error) {
	if ms, err := strconv.ParseFloat(s, 64); err == nil {
		if ms < 0 {
			return 0, fmt.Errorf("round trip %q is negative", s)
		}
		return time.Duration(ms * float64(time.Millisecond)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("round trip %q: want a duration such as 80ms or a number of milliseconds", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("round trip %q is negative", s)
	}
	return d, nil
}
