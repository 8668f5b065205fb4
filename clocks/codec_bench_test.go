package clocks_test

import (
	"fmt"
	"testing"

	"github.com/causewaydb/causeway/clocks"
)

// Every request decodes one token and encodes one, and every write encodes
// and decodes a vector, so these benchmarks measure the per-request cost of
// the codec. Sinks keep the compiler from dropping the work.
var (
	benchTokenSink  clocks.Token
	benchStringSink string
	benchBytesSink  []byte
	benchVectorSink clocks.Vector
)

// benchToken is a typical token: a session that has seen writes from
// regions regions.
func benchToken(regions int) clocks.Token {
	v := clocks.Vector{}
	for _, r := range []string{"us-east", "eu-west", "ap-south"}[:regions] {
		v[r] = 1_000_000 + uint64(len(v))
	}
	return clocks.Token{Cluster: testCluster, Vector: v, Seen: ts(1732349923123, 4, "us-east")}
}

// eachTokenSize runs bench as sub-benchmarks 1region and 3regions, with
// allocations reported. setup runs before the timer with that size's token
// and returns the operation to time.
func eachTokenSize(b *testing.B, setup func(tok clocks.Token) func(b *testing.B)) {
	for _, n := range []int{1, 3} {
		name := fmt.Sprintf("%dregions", n)
		if n == 1 {
			name = "1region"
		}
		op := setup(benchToken(n))
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				op(b)
			}
		})
	}
}

func BenchmarkTokenEncode(b *testing.B) {
	eachTokenSize(b, func(tok clocks.Token) func(*testing.B) {
		return func(*testing.B) { benchStringSink = tok.Encode() }
	})
}

func BenchmarkDecodeToken(b *testing.B) {
	eachTokenSize(b, func(tok clocks.Token) func(*testing.B) {
		s := tok.Encode()
		return func(b *testing.B) {
			t, err := clocks.DecodeToken(s, testCluster)
			if err != nil {
				b.Fatal(err)
			}
			benchTokenSink = t
		}
	})
}

func BenchmarkAppendVector(b *testing.B) {
	eachTokenSize(b, func(tok clocks.Token) func(*testing.B) {
		buf := make([]byte, 0, 128)
		return func(*testing.B) {
			buf = clocks.AppendVector(buf[:0], tok.Vector)
			benchBytesSink = buf
		}
	})
}

func BenchmarkReadVector(b *testing.B) {
	eachTokenSize(b, func(tok clocks.Token) func(*testing.B) {
		src := clocks.AppendVector(nil, tok.Vector)
		return func(b *testing.B) {
			v, _, err := clocks.ReadVector(src)
			if err != nil {
				b.Fatal(err)
			}
			benchVectorSink = v
		}
	})
}

func BenchmarkVectorClone(b *testing.B) {
	eachTokenSize(b, func(tok clocks.Token) func(*testing.B) {
		return func(*testing.B) { benchVectorSink = tok.Vector.Clone() }
	})
}

// BenchmarkVectorMerge merges a write's vector into a session's that lacks
// one of its regions, as when a session first writes in a region.
func BenchmarkVectorMerge(b *testing.B) {
	w := clocks.Vector{"us-west": 7, "us-east": 2_000_000}
	eachTokenSize(b, func(tok clocks.Token) func(*testing.B) {
		return func(*testing.B) { benchVectorSink = tok.Vector.Merge(w) }
	})
}
