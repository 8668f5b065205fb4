package replica

import (
	"bytes"
	"testing"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// FuzzDecodeVersion: snapshot chunks carry stored versions from another
// region. No input panics the decoder, and what it accepts re-encodes to
// the same bytes (one spelling per version; the checksum covers it).
func FuzzDecodeVersion(f *testing.F) {
	f.Add(encodeVersion(nil, &causal.Version{Kind: causal.KindValue, Timestamp: clocks.Timestamp{WallMs: 1796300000000, Logical: 2, Region: "us-east"},
		Seq: 7, Vector: clocks.Vector{"us-east": 7, "eu-west": 3}, Value: []byte("value")}))
	f.Add(encodeVersion(nil, &causal.Version{Kind: causal.KindTombstone, Timestamp: clocks.Timestamp{WallMs: 1, Region: "a"}, Seq: 1, Vector: clocks.Vector{"a": 1}}))
	f.Add([]byte{})
	f.Add([]byte{recordFormat, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeVersion(b)
		if err != nil {
			return
		}
		if again := encodeVersion(nil, &v); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which re-encodes as %x", b, again)
		}
	})
}
