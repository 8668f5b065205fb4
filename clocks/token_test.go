package clocks_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

var (
	testCluster  = uuid.MustParse("6f1c2a0e-3b7d-4c59-9a1e-2d8f5b6c7e90")
	otherCluster = uuid.MustParse("0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b")
)

// seal turns a token body (everything before the checksum) into token text
// with a valid checksum, so tests can reach the checks that come after it.
func seal(body []byte) string {
	sum := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint32(body, sum))
}

// tokenBody builds a token body field by field.
func tokenBody(version byte, cluster uuid.UUID, fields ...[]byte) []byte {
	b := append([]byte{version}, cluster[:]...)
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

func TestTokenRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := tokenGen().Draw(t, "token")
		s := want.Encode()
		if len(s) > clocks.MaxTokenLen {
			t.Fatalf("encoded token is %d characters, more than MaxTokenLen", len(s))
		}
		got, err := clocks.DecodeToken(s, want.Cluster)
		if err != nil {
			t.Fatalf("DecodeToken(%q): %v", s, err)
		}
		if got.Cluster != want.Cluster || got.Seen != want.Seen || !reflect.DeepEqual(got.Vector, want.Vector.Clone()) {
			t.Fatalf("DecodeToken(Encode(%+v)) = %+v", want, got)
		}
		if again := got.Encode(); again != s {
			t.Fatalf("re-encoding gives %q, want %q", again, s)
		}
	})
}

// TestTokenMaxSize checks the size claims in the package documentation: the
// largest valid token fits in MaxTokenLen.
func TestTokenMaxSize(t *testing.T) {
	v := clocks.Vector{}
	for i := range clocks.MaxRegions {
		v[regionName(i)+strings.Repeat("x", clocks.MaxRegionLen-3)] = math.MaxUint64
	}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	tok := clocks.Token{
		Cluster: testCluster,
		Vector:  v,
		Seen:    ts(math.MaxUint64, math.MaxUint32, strings.Repeat("z", clocks.MaxRegionLen)),
	}
	s := tok.Encode()
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2822 || len(s) != 3763 {
		t.Fatalf("largest token is %d bytes, %d characters; the package documentation says 2822 and 3763", len(raw), len(s))
	}
	got, err := clocks.DecodeToken(s, testCluster)
	if err != nil || !got.Vector.Equal(v) || got.Seen != tok.Seen {
		t.Fatalf("DecodeToken of the largest token = %v, %v", got, err)
	}
}

func TestDecodeTokenEmpty(t *testing.T) {
	got, err := clocks.DecodeToken("", testCluster)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != testCluster || got.Vector == nil || len(got.Vector) != 0 || !got.Seen.IsZero() {
		t.Fatalf(`DecodeToken("") = %#v, want an empty token of the cluster`, got)
	}
}

func TestDecodeTokenErrors(t *testing.T) {
	valid := clocks.Token{
		Cluster: testCluster,
		Vector:  clocks.Vector{"us-east": 12, "eu-west": 3},
		Seen:    ts(1732349923123, 4, "us-east"),
	}.Encode()
	seen := clocks.AppendTimestamp(nil, ts(1732349923123, 4, "us-east"))
	vector := clocks.AppendVector(nil, clocks.Vector{"us-east": 12})
	flipped := []byte(valid)
	flipped[10] = map[bool]byte{true: 'B', false: 'A'}[flipped[10] == 'A']

	tests := []struct {
		name    string
		in      string
		foreign bool   // want ErrForeignToken instead of ErrInvalidToken
		want    string // fragment of the message
	}{
		{"too long", strings.Repeat("A", clocks.MaxTokenLen+1), false, "longer than the maximum"},
		{"not base64", "not a token!", false, "base64url"},
		{"standard base64 alphabet", strings.ReplaceAll(strings.ReplaceAll(valid, "-", "+"), "_", "/") + "+/", false, "base64url"},
		{"padded", valid + "==", false, "base64url"},
		{"line break inside", valid[:8] + "\n" + valid[8:], false, "base64url"},
		{"too short", seal([]byte{1, 2, 3}), false, "too short"},
		{"truncated", valid[:len(valid)-6], false, "checksum mismatch"},
		{"altered", string(flipped), false, "checksum mismatch"},
		{"unknown version", seal(tokenBody(2, testCluster, seen, vector)), false, "version 2"},
		{"version 0", seal(tokenBody(0, testCluster, seen, vector)), false, "version 0"},
		{"trailing bytes", seal(tokenBody(1, testCluster, seen, vector, []byte{0})), false, "1 unexpected bytes"},
		{"bad seen region", seal(tokenBody(1, testCluster, []byte{1, 1, 2, 'U', 'S'}, vector)), false, "seen timestamp"},
		{"unsorted vector", seal(tokenBody(1, testCluster, seen, vectorBytes(2, "us-east", uint64(1), "eu-west", uint64(1)))), false, "out of order"},
		{"vector truncated", seal(tokenBody(1, testCluster, seen, vectorBytes(2, "us-east", uint64(1)))), false, "vector"},
		{"another cluster", clocks.Token{Cluster: otherCluster, Vector: clocks.Vector{"us-east": 1}}.Encode(), true, otherCluster.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := clocks.DecodeToken(tt.in, testCluster)
			if err == nil {
				t.Fatalf("DecodeToken(%q) = %+v, want an error", tt.in, got)
			}
			if errors.Is(err, clocks.ErrForeignToken) != tt.foreign || errors.Is(err, clocks.ErrInvalidToken) == tt.foreign {
				t.Fatalf("DecodeToken(%q) = %v; want foreign: %v", tt.in, err, tt.foreign)
			}
			if errors.Is(err, clocks.ErrCorrupt) {
				t.Fatalf("DecodeToken(%q) = %v: a bad token must not look like storage corruption", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeToken(%q) = %q, want a message mentioning %q", tt.in, err, tt.want)
			}
			if tt.foreign && !strings.Contains(err.Error(), testCluster.String()) {
				t.Fatalf("foreign token error %q does not name this cluster", err)
			}
		})
	}
}

func TestInspectTokenIgnoresCluster(t *testing.T) {
	want := clocks.Token{Cluster: otherCluster, Vector: clocks.Vector{"us-east": 1}, Seen: ts(5, 0, "us-east")}
	got, err := clocks.InspectToken(want.Encode())
	if err != nil || got.Cluster != otherCluster || !got.Vector.Equal(want.Vector) || got.Seen != want.Seen {
		t.Fatalf("InspectToken = %+v, %v; want %+v", got, err, want)
	}
	if _, err := clocks.InspectToken(""); !errors.Is(err, clocks.ErrInvalidToken) {
		t.Fatalf(`InspectToken("") = %v, want ErrInvalidToken (there is nothing to inspect)`, err)
	}
}

// TestTokenDamageRejected: every single-byte change and every truncation of
// a token is rejected, whether the damage hits the text or the bytes under
// it. CRC-32C detects every error burst up to 32 bits, and one changed byte
// or base64 character is such a burst, so this must hold for every token,
// not just most.
func TestTokenDamageRejected(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	rapid.Check(t, func(t *rapid.T) {
		tok := tokenGen().Draw(t, "token")
		s := tok.Encode()
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		decode := func(what, damaged string) {
			if got, err := clocks.DecodeToken(damaged, tok.Cluster); !errors.Is(err, clocks.ErrInvalidToken) {
				t.Fatalf("%s: DecodeToken(%q) = %+v, %v; want ErrInvalidToken", what, damaged, got, err)
			}
		}

		// One byte of the binary form changed.
		i := rapid.IntRange(0, len(raw)-1).Draw(t, "byte index")
		flip := rapid.ByteRange(1, 255).Draw(t, "xor")
		changed := []byte(string(raw))
		changed[i] ^= flip
		decode("changed byte", base64.RawURLEncoding.EncodeToString(changed))

		// One character of the text changed.
		j := rapid.IntRange(0, len(s)-1).Draw(t, "char index")
		c := rapid.SampledFrom([]byte(alphabet)).Filter(func(c byte) bool { return c != s[j] }).Draw(t, "char")
		decode("changed character", s[:j]+string(c)+s[j+1:])

		// Truncated, as bytes and as text. Not to nothing: "" is the valid
		// token of a new session.
		n := rapid.IntRange(1, len(raw)-1).Draw(t, "byte length")
		decode("truncated bytes", base64.RawURLEncoding.EncodeToString(raw[:n]))
		m := rapid.IntRange(1, len(s)-1).Draw(t, "text length")
		decode("truncated text", s[:m])
	})
}

func TestTokenMerge(t *testing.T) {
	a := clocks.Token{Cluster: testCluster, Vector: clocks.Vector{"us-east": 5, "eu-west": 1}, Seen: ts(100, 0, "us-east")}
	b := clocks.Token{Cluster: otherCluster, Vector: clocks.Vector{"eu-west": 3}, Seen: ts(200, 1, "eu-west")}
	got := a.Merge(b)
	want := clocks.Token{Cluster: testCluster, Vector: clocks.Vector{"us-east": 5, "eu-west": 3}, Seen: ts(200, 1, "eu-west")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge = %+v, want %+v", got, want)
	}
	if a.Vector.Get("eu-west") != 1 {
		t.Fatalf("Merge modified its receiver: %v", a.Vector)
	}
	if got := b.Merge(a); got.Cluster != otherCluster || got.Seen != want.Seen || !got.Vector.Equal(want.Vector) {
		t.Fatalf("reverse Merge = %+v", got)
	}
}
