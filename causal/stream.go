package causal

import (
	"errors"
	"fmt"

	"github.com/causewaydb/causeway/clocks"
)

// The replication stream's rules. Each region streams its own writes, in
// sequence order, to every other region, which pulls them from its own
// applied position and acknowledges what it made durable. What may be
// believed, sent, truncated and collected along the way decides whether a
// write can be lost; these functions hold those decisions, with no I/O and
// time passed in, so that the simulator drives the same rules as the node.

// ErrBadFrame: a replication message the origin could not have sent (a
// write of another origin, a gap or repeat in the sequence, a head behind
// the writes it came with). The link, a peer's bug or a damaged disk
// changed it; the stream must be reset and resumed from the receiver's
// durable position, so that nothing damaged is applied and nothing skipped.
var ErrBadFrame = errors.New("replication message the origin could not have sent")

// ErrBadAck: a subscriber acknowledged a write it was never sent. Believing
// it would truncate the log of writes the subscriber still lacks.
var ErrBadAck = errors.New("acknowledgement beyond what was sent")

// Inbox is a subscriber's side of one stream from origin: it checks every
// message against what the origin can have sent.
type Inbox struct {
	origin string
	next   uint64 // the origin's write this stream must deliver next
}

// NewInbox starts a stream from origin at sequence number from (the
// subscriber's applied position plus one).
func NewInbox(origin string, from uint64) *Inbox { return &Inbox{origin: origin, next: max(from, 1)} }

// Next is the sequence number the stream must deliver next.
func (in *Inbox) Next() uint64 { return in.next }

// Accept checks one write of a message: from the origin, and the very next
// in its sequence. A frame that vanished from a damaged message would
// otherwise leave a gap no later frame fills.
func (in *Inbox) Accept(w *Write) error {
	if w.Origin() != in.origin {
		return fmt.Errorf("%w: %s sent a write of region %s", ErrBadFrame, in.origin, w.Origin())
	}
	if w.Seq != in.next {
		return fmt.Errorf("%w: %s sent its write %d where %d was due", ErrBadFrame, in.origin, w.Seq, in.next)
	}
	in.next++
	return nil
}

// CheckHead checks the head (the origin's newest write) a message reported
// after the writes it carried (withWrites): it cannot be behind them.
func (in *Inbox) CheckHead(head uint64, withWrites bool) error {
	if withWrites && head < in.next-1 {
		return fmt.Errorf("%w: %s reported head %d with its write %d", ErrBadFrame, in.origin, head, in.next-1)
	}
	return nil
}

// CaughtUpWallMs is the origin's physical time to record as the moment the
// subscriber had every write the origin had issued, when a message sent at
// sentWallMs reports a head the subscriber has applied: every later write
// of the origin carries a later timestamp. It is never beyond the
// subscriber's own clock (nowMs): the origin's clock may run ahead, and a
// damaged message may claim any time, which would otherwise let tombstones
// be collected while writes that beat them can still arrive.
func CaughtUpWallMs(sentWallMs, nowMs uint64) uint64 { return min(sentWallMs, nowMs) }

// CheckAck is the origin's rule for an acknowledgement: a subscriber may
// acknowledge only writes the stream handed it (sentThrough).
func CheckAck(subscriber string, acked, sentThrough uint64) error {
	if acked > sentThrough {
		return fmt.Errorf("%w: region %s acknowledged write %d, but was sent writes up to %d only", ErrBadAck, subscriber, acked, sentThrough)
	}
	return nil
}

// TruncationPoint is how far the origin may truncate its replication log:
// to the lowest acknowledgement of its subscribers (acks, by region; one
// that never acknowledged holds the log back entirely), and never past its
// own newest durable write (head). A subscriber that falls behind the log
// anyway (a region that lost its data, or one added later) catches up from
// a snapshot (ResumeAt says when).
func TruncationPoint(head uint64, subscribers []string, acks map[string]uint64) uint64 {
	upTo := head
	for _, s := range subscribers {
		upTo = min(upTo, acks[s])
	}
	return upTo
}

// Resume is what an origin does with a request to resume its stream.
type Resume int

const (
	// ResumeSend: send the log from the position asked.
	ResumeSend Resume = iota
	// ResumeWait: the subscriber has every write; wait for new ones.
	ResumeWait
	// ResumeSnapshot: the log no longer holds the position asked (it was
	// truncated, or the region rejoined with its earlier writes recovered
	// from snapshots): the subscriber must merge a snapshot.
	ResumeSnapshot
	// ResumeLostWrites: the subscriber holds writes the origin lacks
	// (CheckResume): the origin lost writes it had acknowledged.
	ResumeLostWrites
)

// ResumeAt decides how an origin answers a subscriber asking for its
// writes from from, when its newest durable write is head and its log
// holds writes from logFirst (0: the log is empty) on.
func ResumeAt(region string, head, logFirst, from uint64) (Resume, error) {
	from = max(from, 1)
	if err := CheckResume(region, head, from); err != nil {
		return ResumeLostWrites, err
	}
	switch {
	case from > head:
		return ResumeWait, nil
	case logFirst == 0 || from < logFirst:
		return ResumeSnapshot, nil
	}
	return ResumeSend, nil
}

// SafeWallMs is the physical time (ms) below which no write can still
// arrive at a region: the least of its own clock (nowMs) and, for every
// peer, the peer's time when it last reported that the region had all its
// writes (caughtUp), less the maximum clock offset (marginMs). A peer never
// caught up holds it at 0.
func SafeWallMs(nowMs uint64, caughtUp []uint64, marginMs uint64) uint64 {
	safe := nowMs
	for _, c := range caughtUp {
		safe = min(safe, c)
	}
	if safe < marginMs {
		return 0
	}
	return safe - marginMs
}

// Collectable reports whether tombstone t, one of a key's siblings, may be
// deleted for good. Every region has applied it (stable, the element-wise
// minimum of every region's applied vector, covers it), and its timestamp
// is below safeWallMs, so any write concurrent with it that is still on its
// way carries a later timestamp and beats it anyway, here and everywhere.
// And it changes no answer: it is the key's only version (the key then
// reads as never written, the same to a client as deleted), or it is not
// the winner (a later sibling wins over it everywhere). Without the second
// case a tombstone collected as the only version would live on as a losing
// sibling in the regions that had not collected it yet when a concurrent
// write arrived: the same winner everywhere, but not the same siblings.
func Collectable(t *Version, siblings []Version, stable clocks.Vector, safeWallMs uint64) bool {
	if t.Kind != KindTombstone || stable.Get(t.Timestamp.Region) < t.Seq || t.Timestamp.WallMs >= safeWallMs {
		return false
	}
	for i := range siblings {
		if siblings[i].Same(t) {
			return len(siblings) == 1 || i > 0 // alone, or not the winner
		}
	}
	return false // no longer a sibling: superseded already
}
