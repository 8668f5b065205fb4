package clocks

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/google/uuid"
)

// TokenFormatVersion is the first byte of every encoded causal token. A
// format change gets a new version so that old tokens are rejected with a
// clear message instead of being misread.
const TokenFormatVersion = 1

// MaxTokenLen is the longest encoded token DecodeToken accepts, in
// characters. The largest valid token (MaxRegions entries with maximal names
// and sequence numbers, maximal Seen) is 3763 characters, so every token
// Encode can produce from a valid Token fits; the bound is checked before
// decoding so that a huge header costs nothing.
const MaxTokenLen = 4096

const (
	tokenHeaderLen   = 1 + 16 // version, cluster id
	tokenChecksumLen = 4
	// tokenMinLen is the shortest valid payload: header, zero Seen (three
	// one-byte varints), empty vector (one byte), checksum.
	tokenMinLen = tokenHeaderLen + 3 + 1 + tokenChecksumLen
	// tokenBufLen is the capacity Encode starts with: a token with half a
	// dozen regions fits without growing the buffer. tokenTextBufLen is its
	// length in base64 without padding.
	tokenBufLen     = 128
	tokenTextBufLen = (tokenBufLen*8 + 5) / 6
)

// castagnoli is CRC-32C, chosen over IEEE CRC-32 for its better error
// detection and because it is hardware-accelerated on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tokenEncoding is base64url without padding, so tokens survive URLs, HTTP
// headers, shell arguments and JSON without escaping. Strict mode rejects
// non-zero padding bits, which would otherwise give one token several
// spellings.
var tokenEncoding = base64.RawURLEncoding.Strict()

// Token is a session's causal token: what the session has seen. Every response
// returns a new one and every request sends it back, so session guarantees
// (read-your-writes, monotonic reads, monotonic writes, writes-follow-reads)
// hold even when the client moves to another region or hands the token to
// another client. Clients treat the encoded form as opaque.
type Token struct {
	// Cluster is the cluster that issued the token. Sequence numbers are only
	// meaningful within one cluster.
	Cluster uuid.UUID
	// Vector is the session's causal past: per region, the sequence number of
	// the newest write the session depends on. A region serves the session
	// once its applied vector dominates this one.
	Vector Vector
	// Seen is the greatest timestamp the session has read or written. Writes
	// of the session are issued after observing it, so they order after
	// everything the session saw.
	Seen Timestamp
}

// Merge returns a token whose causal past includes both t and o: the merged
// vector and the later Seen. Cluster is taken from t; the caller has already
// checked that both tokens belong to it.
func (t Token) Merge(o Token) Token {
	return Token{
		Cluster: t.Cluster,
		Vector:  t.Vector.Merge(o.Vector),
		Seen:    maxTimestamp(t.Seen, o.Seen),
	}
}

// Encode returns the opaque string form of t; the byte layout is in the
// package documentation. The encoding is canonical, so equal tokens encode to
// equal strings. A token whose vector fails Vector.Validate encodes to a
// string that DecodeToken rejects.
func (t Token) Encode() string {
	// Every response carries a token, so the work is kept to two
	// allocations: the raw bytes and the returned string. The raw bytes
	// cannot live on the stack because crc32 passes them to an
	// implementation chosen at run time, which the compiler must assume
	// keeps them; the base64 text can, unless the token is unusually large.
	buf := make([]byte, 0, tokenBufLen)
	buf = append(buf, TokenFormatVersion)
	buf = append(buf, t.Cluster[:]...)
	buf = AppendTimestamp(buf, t.Seen)
	buf = AppendVector(buf, t.Vector)
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	var text [tokenTextBufLen]byte
	var out []byte
	if n := tokenEncoding.EncodedLen(len(buf)); n <= len(text) {
		out = text[:n]
	} else {
		out = make([]byte, n)
	}
	tokenEncoding.Encode(out, buf)
	return string(out)
}

// DecodeToken decodes a token produced by Encode and checks that cluster
// issued it.
//
// The empty string is the token of a new session: it decodes to a token of
// cluster with an empty vector and zero Seen. Any other input that is not a
// token returns an error wrapping ErrInvalidToken; a valid token of another
// cluster returns an error wrapping ErrForeignToken. The checksum is verified
// before any field is interpreted, so a truncated or altered token is reported
// as such rather than as whatever its damaged fields happen to say.
func DecodeToken(s string, cluster uuid.UUID) (Token, error) {
	if s == "" {
		return Token{Cluster: cluster, Vector: Vector{}}, nil
	}
	t, err := InspectToken(s)
	if err != nil {
		return Token{}, err
	}
	if t.Cluster != cluster {
		return Token{}, fmt.Errorf("%w: token was issued by cluster %s, this is cluster %s; omit the token to start a new session here",
			ErrForeignToken, t.Cluster, cluster)
	}
	return t, nil
}

// InspectToken decodes a non-empty token like DecodeToken but accepts any
// cluster. It is for diagnostics (showing what a token contains); requests
// must go through DecodeToken.
func InspectToken(s string) (Token, error) {
	if len(s) > MaxTokenLen {
		return Token{}, fmt.Errorf("%w: token is %d characters, longer than the maximum of %d", ErrInvalidToken, len(s), MaxTokenLen)
	}
	raw, err := tokenEncoding.DecodeString(s)
	// The decoder skips '\r' and '\n'; a token containing them is not one
	// Encode produced, so it is rejected to keep one spelling per token.
	if err != nil || tokenEncoding.EncodedLen(len(raw)) != len(s) {
		return Token{}, fmt.Errorf("%w: token is not base64url text; send it exactly as it was returned", ErrInvalidToken)
	}
	if len(raw) < tokenMinLen {
		return Token{}, fmt.Errorf("%w: token is too short (%d bytes, at least %d): it was truncated", ErrInvalidToken, len(raw), tokenMinLen)
	}
	body, sum := raw[:len(raw)-tokenChecksumLen], raw[len(raw)-tokenChecksumLen:]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(sum) {
		return Token{}, fmt.Errorf("%w: checksum mismatch: token was altered or truncated; send it exactly as it was returned", ErrInvalidToken)
	}
	if version := body[0]; version != TokenFormatVersion {
		return Token{}, fmt.Errorf("%w: token format version %d is not supported (this server reads version %d)", ErrInvalidToken, version, TokenFormatVersion)
	}
	// Field errors are formatted with %v, not wrapped: they carry ErrCorrupt,
	// which means damaged storage, while a bad token is the client's problem
	// and must map to invalid_argument, not to an internal error.
	var t Token
	copy(t.Cluster[:], body[1:tokenHeaderLen])
	rest := body[tokenHeaderLen:]
	if t.Seen, rest, err = ReadTimestamp(rest); err != nil {
		return Token{}, fmt.Errorf("%w: seen timestamp: %v", ErrInvalidToken, err)
	}
	if t.Vector, rest, err = ReadVector(rest); err != nil {
		return Token{}, fmt.Errorf("%w: vector: %v", ErrInvalidToken, err)
	}
	if len(rest) != 0 {
		return Token{}, fmt.Errorf("%w: %d unexpected bytes after the vector", ErrInvalidToken, len(rest))
	}
	return t, nil
}
