package clocks_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

func TestTimestampBinaryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := wideTimestampGen().Draw(t, "ts")
		prefix := rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "prefix")
		suffix := rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "suffix")
		enc := clocks.AppendTimestamp(bytes.Clone(prefix), want)
		if !bytes.Equal(enc[:len(prefix)], prefix) {
			t.Fatalf("AppendTimestamp overwrote dst")
		}
		got, rest, err := clocks.ReadTimestamp(append(enc[len(prefix):], suffix...))
		if err != nil || got != want || !bytes.Equal(rest, suffix) {
			t.Fatalf("ReadTimestamp = %#v, rest %x, %v; want %#v, rest %x", got, rest, err, want, suffix)
		}
	})
}

func TestVectorBinaryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := wideVectorGen().Draw(t, "v")
		suffix := rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "suffix")
		enc := clocks.AppendVector(nil, v)
		got, rest, err := clocks.ReadVector(append(enc, suffix...))
		if err != nil || !bytes.Equal(rest, suffix) {
			t.Fatalf("ReadVector(%x) = rest %x, %v", enc, rest, err)
		}
		// Decoded vectors are normalized: structurally equal to the clone.
		if !reflect.DeepEqual(got, v.Clone()) {
			t.Fatalf("ReadVector = %v, want %v", got, v)
		}
	})
}

// vectorBytes builds a vector encoding by hand, including ones AppendVector
// never produces.
func vectorBytes(count uint64, entries ...any) []byte {
	b := binary.AppendUvarint(nil, count)
	for _, e := range entries {
		switch e := e.(type) {
		case string:
			b = binary.AppendUvarint(b, uint64(len(e)))
			b = append(b, e...)
		case uint64:
			b = binary.AppendUvarint(b, e)
		case []byte:
			b = append(b, e...)
		}
	}
	return b
}

func TestReadVectorRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty input", nil, "truncated"},
		{"too many entries", vectorBytes(clocks.MaxRegions + 1), "MaxRegions"},
		{"huge count", vectorBytes(math.MaxUint64), "MaxRegions"},
		{"truncated entries", vectorBytes(2, "eu-west", uint64(1)), "truncated"},
		{"truncated name", vectorBytes(1, []byte{7, 'e', 'u'}), "truncated"},
		{"name too long", vectorBytes(1, strings.Repeat("a", 33), uint64(1)), "more than 32"},
		{"empty name", vectorBytes(1, "", uint64(1)), "empty"},
		{"invalid name", vectorBytes(1, "EU", uint64(1)), "lowercase"},
		{"duplicate region", vectorBytes(2, "eu-west", uint64(1), "eu-west", uint64(2)), "duplicate"},
		{"unsorted regions", vectorBytes(2, "us-east", uint64(1), "eu-west", uint64(2)), "out of order"},
		{"zero sequence number", vectorBytes(1, "eu-west", uint64(0)), "sequence number 0"},
		{"padded varint", []byte{0x81, 0x00, 7, 'e', 'u', '-', 'w', 'e', 's', 't', 1}, "minimally"},
		{"overlong varint", bytes.Repeat([]byte{0xff}, 11), "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, err := clocks.ReadVector(tt.in)
			if !errors.Is(err, clocks.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadVector(%x) = %v, %v; want ErrCorrupt mentioning %q", tt.in, v, err, tt.want)
			}
		})
	}
}

func TestReadTimestampRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty input", nil, "truncated"},
		{"missing logical", []byte{1}, "truncated"},
		{"logical over 32 bits", binary.AppendUvarint([]byte{1}, math.MaxUint32+1), "32 bits"},
		{"missing region", []byte{1, 1}, "truncated"},
		{"truncated region", []byte{1, 1, 3, 'u', 's'}, "truncated"},
		{"invalid region", []byte{1, 1, 2, 'U', 'S'}, "lowercase"},
		{"padded wall", []byte{0x80, 0x00, 0, 0}, "minimally"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, _, err := clocks.ReadTimestamp(tt.in)
			if !errors.Is(err, clocks.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadTimestamp(%x) = %v, %v; want ErrCorrupt mentioning %q", tt.in, ts, err, tt.want)
			}
		})
	}
}

// FuzzReadVector checks the decoder on arbitrary bytes: no panic, and
// whatever it accepts re-encodes to exactly the bytes it consumed.
func FuzzReadVector(f *testing.F) {
	f.Add(clocks.AppendVector(nil, clocks.Vector{"us-east": 12, "eu-west": 3}))
	f.Add([]byte{0})
	f.Add([]byte{0x81, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, rest, err := clocks.ReadVector(in)
		if err != nil {
			return
		}
		consumed := in[:len(in)-len(rest)]
		if enc := clocks.AppendVector(nil, v); !bytes.Equal(enc, consumed) {
			t.Fatalf("ReadVector(%x) = %v, which encodes as %x", consumed, v, enc)
		}
	})
}

// FuzzReadTimestamp is FuzzReadVector for timestamps.
func FuzzReadTimestamp(f *testing.F) {
	f.Add(clocks.AppendTimestamp(nil, ts(1732349923123, 4, "us-east")))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, rest, err := clocks.ReadTimestamp(in)
		if err != nil {
			return
		}
		consumed := in[:len(in)-len(rest)]
		if enc := clocks.AppendTimestamp(nil, got); !bytes.Equal(enc, consumed) {
			t.Fatalf("ReadTimestamp(%x) = %v, which encodes as %x", consumed, got, enc)
		}
	})
}
