package wanbench

import (
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/supervisor"
)

func TestPresetsAreCompleteAndValid(t *testing.T) {
	for _, name := range PresetNames() {
		m, ok := Preset(name)
		if !ok {
			t.Fatalf("preset %s missing", name)
		}
		if err := m.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
		want := int(name[len(name)-1] - '0')
		if len(m.Regions) != want {
			t.Errorf("preset %s has %d regions, want %d", name, len(m.Regions), want)
		}
		// The serve flag it produces is one ParseWAN accepts, with every pair.
		wan, err := supervisor.ParseWAN(m.WAN())
		if err != nil {
			t.Errorf("preset %s: --wan-latency %q: %v", name, m.WAN(), err)
		}
		if len(wan) != want*(want-1)/2 {
			t.Errorf("preset %s: %d pairs in --wan-latency, want %d", name, len(wan), want*(want-1)/2)
		}
	}
	m, _ := Preset("aws3")
	if got := m.OneWay("us-east", "eu-west"); got != 40250*time.Microsecond {
		t.Errorf("aws3 us-east/eu-west one-way = %v, want half of 80.5ms", got)
	}
	if _, ok := Preset("aws4"); ok {
		t.Error("preset aws4 exists")
	}
}

func TestParseMatrix(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     map[[2]string]time.Duration
		regions  []string
		err      string
	}{
		{name: "ms and durations, comments", in: "# layout\nus-east eu-west 80 # ms\n\nus-east ap-southeast 217ms\neu-west ap-southeast 238.5ms\n",
			regions: []string{"us-east", "eu-west", "ap-southeast"},
			want: map[[2]string]time.Duration{
				{"eu-west", "us-east"}:      80 * time.Millisecond,
				{"ap-southeast", "us-east"}: 217 * time.Millisecond,
				{"ap-southeast", "eu-west"}: 238500 * time.Microsecond,
			}},
		{name: "zero allowed", in: "a b 0\n", regions: []string{"a", "b"}, want: map[[2]string]time.Duration{{"a", "b"}: 0}},
		{name: "missing pair", in: "a b 10\na c 10\n", err: "no round trip given for b/c"},
		{name: "duplicate pair", in: "a b 10\nb a 12\n", err: "line 2: the pair a/b is given twice"},
		{name: "self", in: "a a 10\n", err: "line 1: a region has no round trip to itself"},
		{name: "fields", in: "a b\n", err: "line 1: want \"REGION REGION RTT\""},
		{name: "bad rtt", in: "a b fast\n", err: "line 1: round trip \"fast\""},
		{name: "negative", in: "a b -3\n", err: "negative"},
		{name: "bad region", in: "A b 10\n", err: "line 1:"},
		{name: "one region", in: "# nothing\n", err: "at least 2 regions"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMatrix(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(m.Regions, ",") != strings.Join(tt.regions, ",") {
				t.Errorf("regions %v, want %v", m.Regions, tt.regions)
			}
			for p, d := range tt.want {
				if got := m.RTT[supervisor.PairOf(p[0], p[1])]; got != d {
					t.Errorf("%v = %v, want %v", p, got, d)
				}
			}
		})
	}
}

func TestLoadMatrixNamesPresetsWhenNeitherPresetNorFile(t *testing.T) {
	_, err := LoadMatrix("/nonexistent/aws9")
	if err == nil || !strings.Contains(err.Error(), "neither a preset (aws3, aws5, aws7) nor a file") {
		t.Fatalf("err = %v", err)
	}
}

func TestQuorumFloor(t *testing.T) {
	m3, _ := Preset("aws3")
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	v3 := m3.Regions
	for _, tt := range []struct {
		leader, from string
		want         time.Duration
	}{
		{"us-east", "us-east", ms(80.5)},                                  // nearest voter: eu-west
		{"us-east", "eu-west", ms(80.5 + 80.5)},                           // forward, then the leader's quorum
		{"us-east", "ap-southeast", ms(216.7 + 80.5)},                     //
		{"ap-southeast", "ap-southeast", ms(216.7)},                       // nearest of ap-southeast: us-east
		{"ap-southeast", "eu-west", ms(238.6 + 216.7)},                    //
		{"eu-west", "eu-west", ms(80.5)},                                  //
		{"eu-west", "ap-southeast", ms(238.6 + 80.5)},                     //
		{"us-east", "us-east", QuorumFloor(m3, v3, "us-east", "us-east")}, // stable
	} {
		if got := QuorumFloor(m3, v3, tt.leader, tt.from); got != tt.want {
			t.Errorf("floor from %s, %s leading = %v, want %v", tt.from, tt.leader, got, tt.want)
		}
	}
	// Five voters: the leader needs two others, so the second nearest.
	m5, _ := Preset("aws5")
	// us-east's others: eu-west 80.5, us-west 87.8, ap-northeast 145.3, ap-southeast 216.7.
	if got, want := QuorumFloor(m5, m5.Regions, "us-east", "us-east"), ms(87.8); got != want {
		t.Errorf("5-voter floor from the leader = %v, want %v (round trip to the second nearest)", got, want)
	}
	if got := QuorumFloor(m3.Zero(), v3, "us-east", "eu-west"); got != 0 {
		t.Errorf("floor without delays = %v, want 0", got)
	}
}
