package gossip

import (
	"errors"
	"testing"
	"time"
)

func TestClockMsgRoundTrip(t *testing.T) {
	for _, now := range []time.Time{time.UnixMicro(0), time.UnixMicro(1_700_000_000_123_456), time.Unix(-5, 0)} {
		b := appendClockMsg(nil, now)
		got, err := decodeClockMsg(b)
		want := now
		if now.Before(time.Unix(0, 0)) {
			want = time.UnixMicro(0) // a clock before 1970 reads as the epoch
		}
		if err != nil || !got.Equal(want) {
			t.Errorf("%v: decoded %v, %v; want %v", now, got, err, want)
		}
	}
}

func TestDecodeClockMsgRejects(t *testing.T) {
	good := appendClockMsg(nil, time.UnixMicro(1_700_000_000_000_000))
	for name, b := range map[string][]byte{
		"empty":            {},
		"header only":      good[:2],
		"truncated":        good[:len(good)-1],
		"trailing byte":    append(append([]byte{}, good...), 0),
		"another kind":     {wireVersion, kindHeartbeat, 1},
		"another version":  {wireVersion + 1, kindClock, 1},
		"non-minimal":      {wireVersion, kindClock, 0x80, 0x00},
		"beyond year 2262": appendClockMsgMicros(maxClockMicros + 1),
	} {
		if _, err := decodeClockMsg(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s (%x): err = %v, want errCorrupt", name, b, err)
		}
	}
}

func appendClockMsgMicros(us uint64) []byte {
	b := []byte{wireVersion, kindClock}
	for us >= 0x80 {
		b = append(b, byte(us)|0x80)
		us >>= 7
	}
	return append(b, byte(us))
}
