package gossip

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Clock readings. Every ack this node sends to a direct probe carries its
// physical clock (Config.Clock), and every answered direct probe this node
// makes is reported to Config.OnClockReading with the round trip around it:
// that is how a Causeway node measures its clock against its peers' (see
// clocks.OffsetEstimator) without a protocol of its own. memberlist measures
// the round trip of direct UDP probes only (not indirect or TCP fallback
// probes), which is what an offset bound needs.
//
// Ack payload (memberlist ack message):
//
//	byte     format version (wireVersion = 1)
//	byte     kindClock
//	uvarint  the sender's physical clock, microseconds since the Unix epoch
//	         (0 for a clock before 1970)
//
// An ack without a payload (a member of an older version) is ignored; one
// that does not decode is counted in DroppedPackets.

const kindClock = 4

// ClockReading is one answered probe of a member: this node sent it at Sent
// and received the ack at Received (both by Config.Clock), and the member's
// clock read Remote when it answered.
type ClockReading struct {
	Meta                   Meta
	Sent, Received, Remote time.Time
}

// pingDelegate implements memberlist.PingDelegate.
type pingDelegate struct{ g *Gossip }

var _ memberlist.PingDelegate = (*pingDelegate)(nil)

// AckPayload implements memberlist.PingDelegate: this node's clock.
func (d *pingDelegate) AckPayload() []byte {
	return appendClockMsg(nil, d.g.cfg.Clock())
}

// NotifyPingComplete implements memberlist.PingDelegate. rtt is measured
// by memberlist from sending the probe to the ack's arrival; the reading of
// this node's clock is taken here, a moment after the arrival, so Sent is
// that reading less rtt.
func (d *pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	g := d.g
	if g.cfg.OnClockReading == nil || len(payload) == 0 {
		return
	}
	received := g.cfg.Clock()
	remote, err := decodeClockMsg(payload)
	if err != nil {
		g.rejectInput("gossip ack from "+other.Name, err)
		return
	}
	meta, err := decodeMeta(other.Meta)
	if err != nil {
		return // not a Causeway member; NotifyAlive keeps those out
	}
	g.cfg.OnClockReading(ClockReading{Meta: meta, Sent: received.Add(-rtt), Received: received, Remote: remote})
}

func appendClockMsg(dst []byte, now time.Time) []byte {
	dst = append(dst, wireVersion, kindClock)
	return binary.AppendUvarint(dst, uint64(max(now.UnixMicro(), 0)))
}

func decodeClockMsg(b []byte) (time.Time, error) {
	if len(b) < 2 || b[0] != wireVersion || b[1] != kindClock {
		return time.Time{}, fmt.Errorf("%w: ack payload is not a clock reading", errCorrupt)
	}
	us, rest, err := readUvarint(b[2:], "clock reading")
	if err != nil {
		return time.Time{}, err
	}
	if len(rest) > 0 || us > maxClockMicros {
		return time.Time{}, fmt.Errorf("%w: clock reading of %d bytes, %d µs", errCorrupt, len(b), us)
	}
	return time.UnixMicro(int64(us)), nil
}

// maxClockMicros keeps a decoded reading within what time.Time arithmetic
// handles without overflow (about year 2262 in Unix nanoseconds).
const maxClockMicros = 1 << 62 / 1000
