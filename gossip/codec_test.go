package gossip

import (
	"bytes"
	"errors"
	"testing"

	"github.com/causewaydb/causeway/clocks"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{Region: "eu-west", NodeID: "n1"},
		{Region: "us-east", NodeID: "node_2.a-b", APIAddr: "10.0.0.1:7070", ReplicationAddr: "[::1]:7071", RaftAddr: "h:1"},
		{Region: "us-east", NodeID: "n3", RaftAddr: "h:1", RaftID: "us-east/3f2a9c1d"},
		{Region: "us-east", NodeID: "n3", RaftAddr: "h:1", RaftID: "us-east"},
	} {
		b := appendMeta(nil, m)
		if len(b) != m.Size() {
			t.Errorf("Size() = %d, encoding is %d bytes", m.Size(), len(b))
		}
		got, err := decodeMeta(b)
		if err != nil || got != m {
			t.Errorf("decodeMeta(appendMeta(%+v)) = %+v, %v", m, got, err)
		}
		// Every proper prefix and any trailing byte are rejected.
		for i := range b {
			if _, err := decodeMeta(b[:i]); !errors.Is(err, errCorrupt) {
				t.Errorf("decodeMeta of %d of %d bytes: err = %v, want errCorrupt", i, len(b), err)
			}
		}
		if _, err := decodeMeta(append(b, 0)); !errors.Is(err, errCorrupt) {
			t.Errorf("decodeMeta with a trailing byte: err = %v", err)
		}
	}
	// Decodes but does not validate: no region.
	if _, err := decodeMeta(appendMeta(nil, Meta{NodeID: "n1"})); !errors.Is(err, errCorrupt) {
		t.Errorf("metadata without a region: err = %v, want errCorrupt", err)
	}
}

// TestMetaCompatibility: a Meta without a RaftID is encoded exactly as
// nodes that predate RaftID encode it (version 1), so either can read the
// other's; version 2 carries the RaftID, and is read only with one that
// belongs to the member's region.
func TestMetaCompatibility(t *testing.T) {
	v1 := Meta{Region: "eu-west", NodeID: "n1", APIAddr: "a:1", ReplicationAddr: "r:2", RaftAddr: "h:3"}
	want := []byte("\x01\x07eu-west\x02n1\x03a:1\x03r:2\x03h:3")
	if got := appendMeta(nil, v1); !bytes.Equal(got, want) {
		t.Fatalf("Meta without RaftID encodes as %q, want version 1's %q", got, want)
	}
	v2 := v1
	v2.RaftID = "eu-west/0a1b2c3d"
	if got := appendMeta(nil, v2); got[0] != 2 || !bytes.HasPrefix(got[1:], want[1:]) {
		t.Fatalf("Meta with RaftID encodes as %q, want version 2 extending version 1's fields", got)
	}
	for name, b := range map[string][]byte{
		"version 2 with an empty RaftID": append(append([]byte{2}, want[1:]...), 0),
		"version 3":                      append([]byte{3}, want[1:]...),
		"RaftID of another region":       appendMeta(nil, Meta{Region: "eu-west", NodeID: "n1", RaftAddr: "h:3", RaftID: "us-east/0a1b2c3d"}),
		"RaftID with a bad suffix":       appendMeta(nil, Meta{Region: "eu-west", NodeID: "n1", RaftAddr: "h:3", RaftID: "eu-west/a b"}),
		"RaftID without a RaftAddr":      appendMeta(nil, Meta{Region: "eu-west", NodeID: "n1", RaftID: "eu-west/0a1b2c3d"}),
	} {
		if _, err := decodeMeta(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

func testMessages() [][]byte {
	hb := heartbeat{name: "eu-west/n1", generation: 1 << 60, counter: 7, applied: clocks.Vector{"eu-west": 3, "us-east": 300}, hasApplied: true}
	bare := heartbeat{name: "us-east/n2", generation: 5, counter: 1}
	leaving := heartbeat{name: "ap-south/n3", generation: 6, counter: 9, applied: clocks.Vector{"ap-south": 1}, hasApplied: true, leaving: true}
	return [][]byte{
		appendHeartbeatMsg(nil, hb),
		appendHeartbeatMsg(nil, bare),
		appendHeartbeatMsg(nil, leaving),
		appendRemovedMsg(nil, []string{"ap-south", "sa-east"}),
		appendStateMsg(nil, []heartbeat{hb, bare}, []string{"ap-south"}),
		appendStateMsg(nil, nil, nil),
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, b := range testMessages() {
		msg, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		var again []byte
		switch msg.kind {
		case kindHeartbeat:
			again = appendHeartbeatMsg(nil, msg.heartbeats[0])
		case kindRemoved:
			again = appendRemovedMsg(nil, msg.removed)
		case kindState:
			again = appendStateMsg(nil, msg.heartbeats, msg.removed)
		}
		if !bytes.Equal(again, b) {
			t.Errorf("re-encoding %x gives %x", b, again)
		}
		for i := range b {
			if _, err := decodeMessage(b[:i]); !errors.Is(err, errCorrupt) {
				t.Errorf("%d of %d bytes of %x: err = %v, want errCorrupt", i, len(b), b, err)
			}
		}
		if _, err := decodeMessage(append(bytes.Clone(b), 0)); !errors.Is(err, errCorrupt) {
			t.Errorf("%x with a trailing byte: err = %v, want errCorrupt", b, err)
		}
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	tests := map[string][]byte{
		"other version":       {2, kindHeartbeat},
		"unknown kind":        {wireVersion, 99},
		"padded varint":       {wireVersion, kindRemoved, 0x80, 0x00},
		"name not region/id":  append([]byte{wireVersion, kindHeartbeat, 5}, "eu-n1\x01\x01\x00"...),
		"bad region in name":  append([]byte{wireVersion, kindHeartbeat, 5}, "EU/n1\x01\x01\x00"...),
		"unknown flags":       append([]byte{wireVersion, kindHeartbeat, 5}, "eu/n1\x01\x01\x04"...),
		"huge state count":    {wireVersion, kindState, 0xff, 0xff, 0x03},
		"huge removed count":  {wireVersion, kindRemoved, 0xff, 0x0f},
		"bad removed region":  {wireVersion, kindRemoved, 1, 1, 'A'},
		"bad applied vector":  append([]byte{wireVersion, kindHeartbeat, 5}, "eu/n1\x01\x01\x01\x01\x01A\x01"...),
		"zero vector entry":   append([]byte{wireVersion, kindHeartbeat, 5}, "eu/n1\x01\x01\x01\x01\x01a\x00"...),
		"name over the limit": append([]byte{wireVersion, kindHeartbeat, 200}, bytes.Repeat([]byte{'a'}, 200)...),
	}
	for name, b := range tests {
		if _, err := decodeMessage(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

// FuzzDecodeMessage checks that no input panics the decoder and that
// whatever it accepts re-encodes to the same bytes.
func FuzzDecodeMessage(f *testing.F) {
	for _, b := range testMessages() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := decodeMessage(b)
		if err != nil {
			return
		}
		var again []byte
		switch msg.kind {
		case kindHeartbeat:
			again = appendHeartbeatMsg(nil, msg.heartbeats[0])
		case kindRemoved:
			again = appendRemovedMsg(nil, msg.removed)
		case kindState:
			again = appendStateMsg(nil, msg.heartbeats, msg.removed)
		}
		if !bytes.Equal(again, b) {
			t.Errorf("accepted %x, which re-encodes as %x", b, again)
		}
	})
}

func TestHeartbeatOrder(t *testing.T) {
	none := heartbeat{}
	first := heartbeat{generation: 10, counter: 1}
	later := heartbeat{generation: 10, counter: 2}
	restarted := heartbeat{generation: 11, counter: 1}
	for _, tt := range []struct {
		a, b heartbeat
		want bool
	}{
		{first, none, true},
		{later, first, true},
		{first, later, false},
		{first, first, false},
		{restarted, later, true},
		{later, restarted, false},
	} {
		if got := tt.a.newerThan(tt.b); got != tt.want {
			t.Errorf("%+v newer than %+v = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
