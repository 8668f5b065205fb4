package clocks_test

import (
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

func BenchmarkTokenEncode(b *testing.B) {
	for _, n := range []int{1, 3} {
		tok := benchToken(n)
		b.Run(regionsName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchStringSink = tok.Encode()
			}
		})
	}
}

func BenchmarkDecodeToken(b *testing.B) {
	for _, n := range []int{1, 3} {
		s := benchToken(n).Encode()
		b.Run(regionsName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tok, err := clocks.DecodeToken(s, testCluster)
				if err != nil {
					b.Fatal(err)
				}
				benchTokenSink = tok
			}
		})
	}
}

func BenchmarkAppendVector(b *testing.B) {
	for _, n := range []int{1, 3} {
		v := benchToken(n).Vector
		buf := make([]byte, 0, 128)
		b.Run(regionsName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = clocks.AppendVector(buf[:0], v)
			}
			benchBytesSink = buf
		})
	}
}

func BenchmarkReadVector(b *testing.B) {
	for _, n := range []int{1, 3} {
		src := clocks.AppendVector(nil, benchToken(n).Vector)
		b.Run(regionsName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, _, err := clocks.ReadVector(src)
				if err != nil {
					b.Fatal(err)
				}
				benchVectorSink = v
			}
		})
	}
}

func regionsName(n int) string {
	if n == 1 {
		return "1region"
	}
	return string(rune('0'+n)) + "regions"
}

func BenchmarkVectorClone(b *testing.B) {
	for _, n := range []int{1, 3} {
		v := benchToken(n).Vector
		b.Run(regionsName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchVectorSink = v.Clone()
			}
		})
	}
}

// BenchmarkVectorMerge merges a write's vector into a session's that lacks
// one of its regions, as when a session first writes in a region.
func BenchmarkVectorMerge(b *testing.B) {
	for _, n := range []int{1, 3} {
		v := benchToken(n).Vector
		w := clocks.Vector{"us-west": 7, "us-east": 2_000_000}
		b.Run(regionsName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchVectorSink = v.Merge(w)
			}
		})
	}
}
