package clocks_test

import (
	"testing"

	"github.com/causewaydb/causeway/clocks"
)

// FuzzDecodeToken feeds arbitrary text to DecodeToken. It must never panic,
// and whatever it accepts must re-encode to the same text, so that a token
// has exactly one spelling.
//
// Random input almost never passes the checksum, which would leave the
// parser behind it unexplored. So each input is also treated as a token body
// and sealed with a valid checksum (see seal) before being decoded again.
func FuzzDecodeToken(f *testing.F) {
	valid := clocks.Token{
		Cluster: testCluster,
		Vector:  clocks.Vector{"us-east": 12, "eu-west": 3, "ap-south": 1},
		Seen:    ts(1732349923123, 4, "us-east"),
	}.Encode()
	f.Add(valid)
	f.Add(clocks.Token{Cluster: testCluster}.Encode())
	f.Add(clocks.Token{Cluster: otherCluster, Vector: clocks.Vector{"us-east": 1}}.Encode())
	f.Add("")
	f.Add(valid[:len(valid)/2])
	f.Add("not a token")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add(string(tokenBody(1, testCluster, []byte{0, 0, 0}, []byte{0})))
	f.Add(string(tokenBody(1, testCluster, []byte{1, 1, 2, 'u', 's'}, vectorBytes(1, "us-east", uint64(7)))))

	check := func(t *testing.T, s string) {
		tok, err := clocks.DecodeToken(s, testCluster)
		if err != nil || s == "" {
			// "" is the token of a new session; it decodes without being
			// an encoding of anything.
			return
		}
		if tok.Cluster != testCluster {
			t.Fatalf("DecodeToken(%q) accepted cluster %s", s, tok.Cluster)
		}
		if again := tok.Encode(); again != s {
			t.Fatalf("DecodeToken(%q) = %+v, which encodes as %q", s, tok, again)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		check(t, s)
		check(t, seal([]byte(s)))
	})
}
