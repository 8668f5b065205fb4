package gossip

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeMeta: node metadata arrives from any member of the gossip
// network. No input panics the decoder, and what it accepts is valid and
// re-encodes to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(appendMeta(nil, Meta{Region: "us-east", NodeID: "n1", APIAddr: "127.0.0.1:7071", ReplicationAddr: "127.0.0.1:7071", RaftAddr: "127.0.0.1:7271", RaftID: "us-east/1a2b3c4d"}))
	f.Add(appendMeta(nil, Meta{Region: "eu-west", NodeID: "n2", APIAddr: "127.0.0.1:7072", ReplicationAddr: "127.0.0.1:7072"}))
	f.Add([]byte{})
	f.Add([]byte{metaVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted invalid metadata %+v: %v", m, err)
		}
		if again := appendMeta(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which re-encodes as %x", b, again)
		}
	})
}

// FuzzDecodeClockMsg: clock readings ride on gossip acks from any member.
func FuzzDecodeClockMsg(f *testing.F) {
	f.Add(appendClockMsg(nil, time.UnixMicro(1796300000000000)))
	f.Add([]byte{wireVersion, kindClock})
	f.Add([]byte{wireVersion, kindClock, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		at, err := decodeClockMsg(b)
		if err != nil {
			return
		}
		if again := appendClockMsg(nil, at); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which re-encodes as %x", b, again)
		}
	})
}
