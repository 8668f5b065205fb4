package clocks_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

// manualClock is a physical clock the test sets by hand.
type manualClock struct{ ms int64 }

func (m *manualClock) now() time.Time { return time.UnixMilli(m.ms) }

func ts(wall uint64, logical uint32, region string) clocks.Timestamp {
	return clocks.Timestamp{WallMs: wall, Logical: logical, Region: region}
}

func TestClockNow(t *testing.T) {
	tests := []struct {
		name     string
		physical []int64 // physical time before each call to Now
		want     []clocks.Timestamp
	}{
		{
			name:     "physical clock stands still",
			physical: []int64{1000, 1000, 1000},
			want:     []clocks.Timestamp{ts(1000, 0, "us-east"), ts(1000, 1, "us-east"), ts(1000, 2, "us-east")},
		},
		{
			name:     "physical clock advances",
			physical: []int64{1000, 1001, 1005},
			want:     []clocks.Timestamp{ts(1000, 0, "us-east"), ts(1001, 0, "us-east"), ts(1005, 0, "us-east")},
		},
		{
			name:     "physical clock goes backwards",
			physical: []int64{1000, 1000, 900, 999, 1001},
			want: []clocks.Timestamp{
				ts(1000, 0, "us-east"), ts(1000, 1, "us-east"), ts(1000, 2, "us-east"),
				ts(1000, 3, "us-east"), ts(1001, 0, "us-east"),
			},
		},
		{
			name:     "physical clock before the epoch",
			physical: []int64{-5000, -4000, 2},
			want:     []clocks.Timestamp{ts(0, 1, "us-east"), ts(0, 2, "us-east"), ts(2, 0, "us-east")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			physical := &manualClock{}
			c := clocks.NewClock("us-east", physical.now, time.Second)
			for i, ms := range tt.physical {
				physical.ms = ms
				got := c.Now()
				if got != tt.want[i] {
					t.Fatalf("Now #%d at physical %d = %v, want %v", i, ms, got, tt.want[i])
				}
				if c.Last() != got {
					t.Fatalf("Last after Now #%d = %v, want %v", i, c.Last(), got)
				}
			}
		})
	}
}

func TestClockObserve(t *testing.T) {
	const physicalMs = 10_000
	const maxOffset = 500 * time.Millisecond
	tests := []struct {
		name     string
		before   clocks.Timestamp // restored before observing
		remote   clocks.Timestamp
		wantErr  bool
		wantLast clocks.Timestamp
		wantNow  clocks.Timestamp
	}{
		{
			name:     "remote behind",
			before:   ts(10_000, 3, "us-east"),
			remote:   ts(9_000, 7, "eu-west"),
			wantLast: ts(10_000, 3, "us-east"),
			wantNow:  ts(10_000, 4, "us-east"),
		},
		{
			name:     "remote ahead within max offset",
			remote:   ts(10_200, 5, "eu-west"),
			wantLast: ts(10_200, 5, "eu-west"),
			wantNow:  ts(10_200, 6, "us-east"),
		},
		{
			name:     "remote ahead by exactly max offset",
			remote:   ts(10_500, 0, "eu-west"),
			wantLast: ts(10_500, 0, "eu-west"),
			wantNow:  ts(10_500, 1, "us-east"),
		},
		{
			name:     "remote ties on wall and logical, wins on region",
			before:   ts(10_000, 4, "ap-south"),
			remote:   ts(10_000, 4, "eu-west"),
			wantLast: ts(10_000, 4, "eu-west"),
			wantNow:  ts(10_000, 5, "us-east"),
		},
		{
			name:     "remote ahead beyond max offset",
			before:   ts(10_000, 3, "us-east"),
			remote:   ts(10_501, 0, "eu-west"),
			wantErr:  true,
			wantLast: ts(10_000, 3, "us-east"),
			wantNow:  ts(10_000, 4, "us-east"),
		},
		{
			name:     "remote at the maximum wall time",
			remote:   ts(math.MaxUint64, 0, "eu-west"),
			wantErr:  true,
			wantLast: clocks.Timestamp{},
			wantNow:  ts(10_000, 0, "us-east"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			physical := &manualClock{ms: physicalMs}
			c := clocks.NewClock("us-east", physical.now, maxOffset)
			c.Restore(tt.before)
			err := c.Observe(tt.remote)
			if tt.wantErr {
				if !errors.Is(err, clocks.ErrClockOffset) {
					t.Fatalf("Observe(%v) error = %v, want ErrClockOffset", tt.remote, err)
				}
			} else if err != nil {
				t.Fatalf("Observe(%v) = %v, want nil", tt.remote, err)
			}
			if got := c.Last(); got != tt.wantLast {
				t.Fatalf("Last after Observe(%v) = %v, want %v", tt.remote, got, tt.wantLast)
			}
			if got := c.Now(); got != tt.wantNow {
				t.Fatalf("Now after Observe(%v) = %v, want %v", tt.remote, got, tt.wantNow)
			}
		})
	}
}

func TestClockObserveErrorMessage(t *testing.T) {
	physical := &manualClock{ms: 10_000}
	c := clocks.NewClock("us-east", physical.now, 500*time.Millisecond)
	err := c.Observe(ts(12_345, 0, "eu-west"))
	if !errors.Is(err, clocks.ErrClockOffset) {
		t.Fatalf("Observe error = %v, want ErrClockOffset", err)
	}
	// The operator reading this must learn which region, by how much, and
	// what the limit is.
	for _, want := range []string{"eu-west", "2345 ms ahead", "500 ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestClockLogicalOverflow(t *testing.T) {
	physical := &manualClock{ms: 1000}
	c := clocks.NewClock("us-east", physical.now, time.Second)
	c.Restore(ts(1000, math.MaxUint32-1, "us-east"))
	want := []clocks.Timestamp{
		ts(1000, math.MaxUint32, "us-east"),
		ts(1001, 0, "us-east"), // borrowed a millisecond
		ts(1001, 1, "us-east"), // physical time is still behind
	}
	for i, w := range want {
		if got := c.Now(); got != w {
			t.Fatalf("Now #%d = %v, want %v", i, got, w)
		}
	}
	physical.ms = 1002
	if got, w := c.Now(), ts(1002, 0, "us-east"); got != w {
		t.Fatalf("Now after physical time caught up = %v, want %v", got, w)
	}
}

func TestClockRestore(t *testing.T) {
	tests := []struct {
		name     string
		physical int64
		restore  clocks.Timestamp
		wantNow  clocks.Timestamp
	}{
		{"restored ahead of physical time", 1000, ts(5000, 2, "us-east"), ts(5000, 3, "us-east")},
		{"restored from another region", 1000, ts(5000, 2, "eu-west"), ts(5000, 3, "us-east")},
		{"restored far ahead, no offset check", 1000, ts(1<<40, 0, "us-east"), ts(1<<40, 1, "us-east")},
		{"restored behind physical time", 9000, ts(5000, 2, "us-east"), ts(9000, 0, "us-east")},
		{"restored zero", 9000, clocks.Timestamp{}, ts(9000, 0, "us-east")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			physical := &manualClock{ms: tt.physical}
			c := clocks.NewClock("us-east", physical.now, time.Second)
			c.Restore(tt.restore)
			if got := c.Now(); got != tt.wantNow {
				t.Fatalf("Now after Restore(%v) = %v, want %v", tt.restore, got, tt.wantNow)
			}
			// A later, smaller Restore must not move the clock back.
			before := c.Last()
			c.Restore(ts(1, 0, "us-east"))
			if c.Last() != before {
				t.Fatalf("Restore of an older timestamp moved Last from %v to %v", before, c.Last())
			}
		})
	}
}

func TestNewClockPanics(t *testing.T) {
	physical := &manualClock{}
	tests := []struct {
		name string
		new  func()
	}{
		{"invalid region", func() { clocks.NewClock("US-East", physical.now, time.Second) }},
		{"nil physical clock", func() { clocks.NewClock("us-east", nil, time.Second) }},
		{"negative max offset", func() { clocks.NewClock("us-east", physical.now, -time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("NewClock did not panic")
				}
			}()
			tt.new()
		})
	}
}

func TestClockAccessors(t *testing.T) {
	physical := &manualClock{}
	c := clocks.NewClock("ap-south", physical.now, 250*time.Millisecond)
	if c.Region() != "ap-south" || c.MaxOffset() != 250*time.Millisecond || !c.Last().IsZero() {
		t.Fatalf("NewClock: region %q, max offset %v, last %v", c.Region(), c.MaxOffset(), c.Last())
	}
}

// TestClockProperties drives a clock with random physical-clock steps
// (forwards, backwards, standing still) and random Observe and Restore calls,
// and checks it against a model: the greatest timestamp it has issued or
// accepted.
func TestClockProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const maxOffsetMs = 100
		physical := &manualClock{ms: rapid.Int64Range(0, 1<<41).Draw(t, "start")}
		c := clocks.NewClock("us-east", physical.now, maxOffsetMs*time.Millisecond)
		var high clocks.Timestamp // model of Last
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for range steps {
			physical.ms += rapid.Int64Range(-50, 50).Draw(t, "physical step")
			physicalMs := uint64(max(physical.ms, 0))
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				got := c.Now()
				if !high.Less(got) {
					t.Fatalf("Now = %v, not greater than %v", got, high)
				}
				if got.Region != "us-east" {
					t.Fatalf("Now = %v, issued for the wrong region", got)
				}
				// Hybrid: Now follows physical time whenever it is ahead.
				if physicalMs > high.WallMs && got != ts(physicalMs, 0, "us-east") {
					t.Fatalf("Now = %v at physical %d > last %v", got, physicalMs, high)
				}
				high = got
			case 2:
				remote := clocks.Timestamp{
					WallMs:  uint64(max(int64(physicalMs)+rapid.Int64Range(-200, 200).Draw(t, "remote offset"), 0)),
					Logical: rapid.Uint32Range(0, 3).Draw(t, "remote logical"),
					Region:  rapid.SampledFrom(regionPool).Draw(t, "remote region"),
				}
				err := c.Observe(remote)
				tooFar := remote.WallMs > physicalMs+maxOffsetMs
				if tooFar != errors.Is(err, clocks.ErrClockOffset) || (!tooFar && err != nil) {
					t.Fatalf("Observe(%v) at physical %d = %v, too far ahead: %v", remote, physicalMs, err, tooFar)
				}
				if err == nil && high.Less(remote) {
					high = remote
				}
			case 3:
				restored := ts(rapid.Uint64Range(0, physicalMs+1000).Draw(t, "restored wall"), 0, "us-east")
				c.Restore(restored)
				if high.Less(restored) {
					high = restored
				}
			}
			if c.Last() != high {
				t.Fatalf("Last = %v, want %v", c.Last(), high)
			}
		}
	})
}
