package clocks_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

func TestValidateRegion(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // "" for valid; otherwise a fragment of the message
	}{
		{"us-east", ""},
		{"a", ""},
		{"eu-west-2", ""},
		{strings.Repeat("a", clocks.MaxRegionLen), ""},
		{"", "empty"},
		{strings.Repeat("a", clocks.MaxRegionLen+1), "33 bytes"},
		{"1east", "start with a lowercase letter"},
		{"-east", "start with a lowercase letter"},
		{"US-east", "start with a lowercase letter"},
		{"us_east", "byte 2"},
		{"us east", "byte 2"},
		{"us-éast", "byte 3"},
		{"us/east", "byte 2"},
	}
	for _, tt := range tests {
		err := clocks.ValidateRegion(tt.name)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateRegion(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, clocks.ErrInvalidRegion) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ValidateRegion(%q) = %v, want ErrInvalidRegion mentioning %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestTimestampString(t *testing.T) {
	tests := []struct {
		ts   clocks.Timestamp
		want string
	}{
		{clocks.Timestamp{}, "0"},
		{ts(1732349923123, 4, "us-east"), "1732349923123.4@us-east"},
		{ts(5, 0, ""), "5.0"},
		{ts(0, 0, "ap-south"), "0.0@ap-south"},
		{ts(math.MaxUint64, math.MaxUint32, "z"), "18446744073709551615.4294967295@z"},
	}
	for _, tt := range tests {
		if got := tt.ts.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.ts, got, tt.want)
		}
		got, err := clocks.ParseTimestamp(tt.want)
		if err != nil || got != tt.ts {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %#v", tt.want, got, err, tt.ts)
		}
	}
}

func TestParseTimestampErrors(t *testing.T) {
	tests := []struct {
		in         string
		wantRegion bool // the error wraps ErrInvalidRegion
	}{
		{"", false},
		{"12", false},
		{"12.3.4", false},
		{"-1.0@us-east", false},
		{"1.-1@us-east", false},
		{"1.4294967296@us-east", false},
		{"18446744073709551616.0@us-east", false},
		{"x.0@us-east", false},
		{"1.0@", true},
		{"1.0@US", true},
		{"1.0@us@east", true},
	}
	for _, tt := range tests {
		got, err := clocks.ParseTimestamp(tt.in)
		if err == nil {
			t.Errorf("ParseTimestamp(%q) = %v, want an error", tt.in, got)
			continue
		}
		if errors.Is(err, clocks.ErrInvalidRegion) != tt.wantRegion {
			t.Errorf("ParseTimestamp(%q) error %v: wraps ErrInvalidRegion = %v, want %v", tt.in, err, !tt.wantRegion, tt.wantRegion)
		}
	}
}

func TestTimestampTotalOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := smallTimestampGen().Draw(t, "a")
		b := smallTimestampGen().Draw(t, "b")
		c := smallTimestampGen().Draw(t, "c")
		ab, ba := a.Compare(b), b.Compare(a)
		if ab != -ba || ab < -1 || ab > 1 {
			t.Fatalf("Compare not antisymmetric: %v vs %v: %d and %d", a, b, ab, ba)
		}
		if (ab == 0) != (a == b) {
			t.Fatalf("Compare(%v, %v) = %d but equality is %v", a, b, ab, a == b)
		}
		if a.Less(b) != (ab < 0) {
			t.Fatalf("Less(%v, %v) = %v, Compare = %d", a, b, a.Less(b), ab)
		}
		if a.Compare(b) <= 0 && b.Compare(c) <= 0 && a.Compare(c) > 0 {
			t.Fatalf("Compare not transitive: %v <= %v <= %v but %v > %v", a, b, c, a, c)
		}
		// Lexicographic: the wall clock decides first, then the counter,
		// then the region.
		want := 0
		switch {
		case a.WallMs != b.WallMs:
			want = cmpUint(a.WallMs, b.WallMs)
		case a.Logical != b.Logical:
			want = cmpUint(uint64(a.Logical), uint64(b.Logical))
		default:
			want = strings.Compare(a.Region, b.Region)
		}
		if ab != want {
			t.Fatalf("Compare(%v, %v) = %d, want %d", a, b, ab, want)
		}
		if a.IsZero() != (a == clocks.Timestamp{}) {
			t.Fatalf("IsZero(%#v) = %v", a, a.IsZero())
		}
		if a.IsZero() && !a.Less(b) && a != b {
			t.Fatalf("zero timestamp does not order before %v", b)
		}
	})
}

func cmpUint(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

func TestTimestampStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := wideTimestampGen().Draw(t, "ts")
		got, err := clocks.ParseTimestamp(want.String())
		if err != nil || got != want {
			t.Fatalf("ParseTimestamp(%q) = %#v, %v; want %#v", want.String(), got, err, want)
		}
	})
}
