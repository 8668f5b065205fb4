package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var validRequestID = requestID(1)

func TestCommandEncodingRoundTrips(t *testing.T) {
	for _, c := range []Command{
		{},
		{Op: OpTick, NowMs: startMs},
		{Op: OpClaim, RequestID: validRequestID, NowMs: startMs, Namespace: "users", Name: "alice", Owner: "client-7"},
		{Op: OpCAS, RequestID: validRequestID, NowMs: -1, Key: "k", Value: []byte{0, 1, 2}, Delete: true,
			Compare: CompareValue, ExpectVersion: 1 << 63, ExpectValue: []byte("old"), FenceLock: "L", FenceToken: 42,
			LeaseID: 7, TTLms: 500, Lock: "L2"},
	} {
		got, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("DecodeCommand(%+v): %v", c, err)
		}
		if !reflect.DeepEqual(*got, c) {
			t.Errorf("round trip of %+v gave %+v", c, *got)
		}
		if !bytes.Equal(got.Encode(), c.Encode()) {
			t.Errorf("re-encoding %+v changed its bytes", c)
		}
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	good := (&Command{Op: OpGet, NowMs: 5, Key: "k"}).Encode()
	withByte := func(i int, b byte) []byte {
		out := bytes.Clone(good)
		out[i] = b
		return out
	}
	// Offset of Delete's byte: version, op, empty RequestID, NowMs, four
	// empty strings (Namespace, Name, Owner) then Key "k" (2 bytes), empty Value.
	deleteAt := 1 + 1 + 1 + 1 + 3 + 2 + 1
	for _, tc := range []struct {
		name, data, msg string
	}{
		{"empty", "", "empty log entry"},
		{"unknown version", string(withByte(0, 2)), "unknown command format version 2"},
		{"truncated", string(good[:len(good)-1]), "truncated"},
		{"trailing byte", string(append(bytes.Clone(good), 0)), "trailing"},
		{"boolean not 0 or 1", string(withByte(deleteAt, 2)), "boolean"},
		{"length beyond the entry", string(withByte(3+1+3, 100)), "exceeds"},
		{"non-canonical varint", string(append([]byte{1, byte(OpGet), 0x80, 0x00}, good[4:]...)), "non-canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCommand([]byte(tc.data))
			if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("DecodeCommand = %v, want ErrInvalidCommand mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("x", MaxNameBytes+1)
	big := make([]byte, MaxValueBytes+1)
	id := validRequestID
	for _, tc := range []struct {
		name string
		cmd  Command
		msgs []string // empty: valid
	}{
		{"claim", Command{Op: OpClaim, RequestID: id, Namespace: "n", Name: "a", Owner: "o"}, nil},
		{"names at the limit", Command{Op: OpClaim, RequestID: id, Namespace: long[1:], Name: long[1:], Owner: long[1:]}, nil},
		{"tick", Command{Op: OpTick, NowMs: startMs}, nil},
		{"get", Command{Op: OpGet, Key: "k"}, nil},
		{"cas with everything", Command{Op: OpCAS, RequestID: id, Key: "k", Value: big[1:], Compare: CompareValue, ExpectValue: big[1:], FenceLock: "L", FenceToken: 3}, nil},
		{"delete", Command{Op: OpCAS, RequestID: id, Key: "k", Delete: true, Compare: CompareVersion, ExpectVersion: 4}, nil},
		{"grant bounds", Command{Op: OpGrant, RequestID: id, TTLms: MinLeaseTTLms}, nil},
		{"lock", Command{Op: OpLock, RequestID: id, Lock: "L", LeaseID: 3, Owner: "o"}, nil},

		{"no op", Command{}, []string{"unknown operation 0"}},
		{"unknown op", Command{Op: opEnd}, []string{"unknown operation"}},
		{"negative clock", Command{Op: OpTick, NowMs: -1}, []string{"NowMs -1"}},
		{"clock beyond year 9999", Command{Op: OpTick, NowMs: MaxNowMs + 1}, []string{"NowMs"}},
		{"mutation without request id", Command{Op: OpClaim, Namespace: "n", Name: "a", Owner: "o"}, []string{"RequestID is required for claim"}},
		{"request id not a uuid", Command{Op: OpRevoke, RequestID: "retry-1", LeaseID: 1}, []string{`RequestID "retry-1" is not a UUID`}},
		{"request id in 32-hex form", Command{Op: OpRevoke, RequestID: strings.ReplaceAll(id, "-", ""), LeaseID: 1}, []string{"is not a UUID in its 36-character form"}},
		{"read with request id", Command{Op: OpGet, RequestID: id, Key: "k"}, []string{"RequestID must be empty for get"}},
		{"claim missing fields", Command{Op: OpClaim, RequestID: id}, []string{"Namespace is required", "Name is required", "Owner is required"}},
		{"names too long", Command{Op: OpLookup, Namespace: long, Name: long}, []string{"Namespace is 513 bytes; at most 512", "Name is 513 bytes"}},
		{"value too big", Command{Op: OpCAS, RequestID: id, Key: "k", Value: big}, []string{"Value is 65537 bytes"}},
		{"expected value too big", Command{Op: OpCAS, RequestID: id, Key: "k", Compare: CompareValue, ExpectValue: big}, []string{"ExpectValue is 65537 bytes"}},
		{"delete with a value", Command{Op: OpCAS, RequestID: id, Key: "k", Delete: true, Value: []byte("v")}, []string{"Value must be empty when Delete"}},
		{"unknown compare", Command{Op: OpCAS, RequestID: id, Key: "k", Compare: compareEnd}, []string{"Compare 3 is not a known comparison"}},
		{"expect version without compare", Command{Op: OpCAS, RequestID: id, Key: "k", ExpectVersion: 3}, []string{"ExpectVersion is not used by cas"}},
		{"expect value with version compare", Command{Op: OpCAS, RequestID: id, Key: "k", Compare: CompareVersion, ExpectValue: []byte("x")}, []string{"ExpectValue is not used"}},
		{"fence lock without token", Command{Op: OpCAS, RequestID: id, Key: "k", FenceLock: "L"}, []string{"FenceToken is required with FenceLock"}},
		{"fence token without lock", Command{Op: OpCAS, RequestID: id, Key: "k", FenceToken: 3}, []string{"FenceToken 3 is set without FenceLock"}},
		{"ttl too short", Command{Op: OpGrant, RequestID: id, TTLms: MinLeaseTTLms - 1}, []string{"TTLms 499 is outside 500..86400000"}},
		{"ttl too long", Command{Op: OpGrant, RequestID: id, TTLms: MaxLeaseTTLms + 1}, []string{"TTLms 86400001"}},
		{"keepalive without lease", Command{Op: OpKeepAlive, RequestID: id}, []string{"LeaseID is required for keepalive"}},
		{"lock missing fields", Command{Op: OpLock, RequestID: id}, []string{"Lock is required", "Owner is required", "LeaseID is required"}},
		{"unlock with owner", Command{Op: OpUnlock, RequestID: id, Lock: "L", LeaseID: 1, Owner: "o"}, []string{"Owner is not used by unlock"}},
		{"tick with fields", Command{Op: OpTick, Key: "k", TTLms: 5}, []string{"Key is not used by tick", "TTLms is not used by tick"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate()
			if len(tc.msgs) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("Validate = %v, want ErrInvalidCommand", err)
			}
			for _, msg := range tc.msgs {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("Validate = %q, want it to mention %q", err, msg)
				}
			}
		})
	}
}

func TestResultEncodingRoundTrips(t *testing.T) {
	r := &Result{Code: CodeAborted, Message: "m", Index: 9, Owner: "o", Version: 8, Value: []byte("v"),
		LeaseID: 7, ExpiresMs: startMs, Token: 6}
	got, err := decodeResult(encodeResult(r))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip gave %+v, want %+v", got, r)
	}
	r.Duplicate = true
	if got, _ := decodeResult(encodeResult(r)); got.Duplicate {
		t.Fatal("Duplicate was stored; it describes an answer, not an outcome")
	}
}

// FuzzDecodeCommand: decoding never panics, and a decoded command
// re-encodes to exactly its input (so a retry's fingerprint cannot depend
// on how it was encoded).
func FuzzDecodeCommand(f *testing.F) {
	f.Add((&Command{Op: OpClaim, RequestID: validRequestID, NowMs: startMs, Namespace: "n", Name: "a", Owner: "o"}).Encode())
	f.Add((&Command{Op: OpCAS, Key: "k", Value: []byte("v"), Compare: CompareValue, ExpectValue: []byte("w")}).Encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		_ = c.Validate()
		if !bytes.Equal(c.Encode(), data) {
			t.Fatalf("decoded %x, which re-encodes to %x", data, c.Encode())
		}
	})
}
