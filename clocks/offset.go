package clocks

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// OffsetSample is one reading of a peer's physical clock taken in a round
// trip: this node asked at Sent, the peer read its clock (Remote) while
// answering, and the answer arrived at Received. Sent and Received are this
// node's physical clock.
//
// Because the peer read its clock somewhere between Sent and Received, how
// far this node's clock is ahead of the peer's lies in
// [Sent-Remote, Received-Remote], whatever the one-way delays were: the
// interval is as wide as the round trip, and a slow or asymmetric WAN path
// widens it instead of moving it. That is why a sample is a round trip and
// not a one-way message (a message stamped by the peer alone cannot tell
// "this node is ahead" from "the message was slow").
type OffsetSample struct {
	Peer           string
	Sent, Received time.Time
	Remote         time.Time
}

// Valid reports whether s can be used: it names a peer and its round trip is
// not negative (this node's clock did not step back during it).
func (s OffsetSample) Valid() bool { return s.Peer != "" && !s.Received.Before(s.Sent) }

// bounds is the interval a sample puts the offset (this node minus the
// peer) in.
func (s OffsetSample) bounds() (lo, hi time.Duration) {
	return s.Sent.Sub(s.Remote), s.Received.Sub(s.Remote)
}

// PeerOffset is how far this node's clock is ahead of one peer's (negative:
// behind), as the peer's recent samples bound it.
type PeerOffset struct {
	Peer string
	// Min and Max bound the offset: it is certainly within [Min, Max].
	Min, Max time.Duration
	// Offset is the midpoint of [Min, Max] (Cristian's estimate), the figure
	// to report; decisions use the bounds.
	Offset time.Duration
	// Samples is how many samples the bounds come from; Newest is when this
	// node received the latest of them.
	Samples int
	Newest  time.Time
}

// OffsetVerdict says whether this node's clock agrees with its peers'.
type OffsetVerdict int

const (
	// OffsetInSync: no majority of the measured peers is certainly more than
	// the max offset away (this includes having measured fewer than two).
	OffsetInSync OffsetVerdict = iota
	// OffsetAhead: this node's clock is certainly more than the max offset
	// ahead of a majority of the peers it measured.
	OffsetAhead
	// OffsetBehind: certainly more than the max offset behind a majority.
	OffsetBehind
)

func (v OffsetVerdict) String() string {
	switch v {
	case OffsetInSync:
		return "in sync"
	case OffsetAhead:
		return "ahead"
	case OffsetBehind:
		return "behind"
	}
	return fmt.Sprintf("OffsetVerdict(%d)", int(v))
}

// OffsetEstimate is this node's clock offset from its peers at one moment.
type OffsetEstimate struct {
	// Peers are the peers with samples younger than the estimator's max
	// age, by name.
	Peers []PeerOffset
	// Offset is the median of the peers' offsets (0 with no peer): how far
	// this node's clock is ahead of its peers as a whole.
	Offset time.Duration
	// Verdict is the decision; Beyond is how many peers voted for it (0 when
	// in sync).
	Verdict   OffsetVerdict
	Beyond    int
	MaxOffset time.Duration
}

// Defaults of an OffsetEstimator.
const (
	// DefaultOffsetSamplesPerPeer: like NTP's clock filter, the last eight
	// samples of a peer.
	DefaultOffsetSamplesPerPeer = 8
	// DefaultOffsetMaxAge: samples older than this are forgotten. It must
	// span a few probes of every peer: gossip probes one member per probe
	// interval (5 round trips, up to 5s on a 1s WAN), so with a dozen
	// regions a peer is probed about once a minute.
	DefaultOffsetMaxAge = 3 * time.Minute
)

// OffsetEstimator estimates how far this node's physical clock is from its
// peers' from round-trip samples, and decides whether it is too far to be
// trusted. It is pure: time comes in with the samples and with Estimate.
// It is not safe for concurrent use.
//
// # Rules
//
//   - Per peer, the offset is bounded by the intersection of the intervals of
//     its recent samples (at most SamplesPerPeer, none older than MaxAge):
//     every sample's interval contains the true offset while neither clock
//     steps, so the intersection does too and is at least as tight as the
//     best single sample. If the intervals do not intersect, a clock stepped
//     (an operator fixed it, say) and only the newest sample is believed.
//     Samples "from the future" (received after the time Estimate is asked
//     for, i.e. this node's clock stepped back) are forgotten too.
//   - This node is too far ahead (behind) when, for a strict majority of the
//     peers it measured and for at least two of them, the whole interval lies
//     beyond +MaxOffset (-MaxOffset). Bounds rather than midpoints: a delay,
//     however long or lopsided, only widens an interval, so it can never make
//     a node in sync look out of sync; the price is that an offset within a
//     round trip of MaxOffset is not acted on. A majority: the node that is
//     wrong is the one whose clock disagrees with most others; a minority of
//     wrong peers makes it see a minority beyond. At least two: with one
//     peer, each of the two sees the other beyond and neither can tell whose
//     clock is wrong, and stopping both would stop the cluster.
//   - With no measured peer (alone, partitioned, gossip off) it is in sync: a
//     node that cannot measure keeps serving.
type OffsetEstimator struct {
	maxOffset      time.Duration
	maxAge         time.Duration
	samplesPerPeer int
	peers          map[string][]OffsetSample // oldest first
}

// NewOffsetEstimator returns an estimator that judges against maxOffset and
// keeps the last samplesPerPeer samples of each peer for at most maxAge;
// zero samplesPerPeer and maxAge take the defaults above. It panics on a
// negative maxOffset or maxAge (configuration is validated before).
func NewOffsetEstimator(maxOffset, maxAge time.Duration, samplesPerPeer int) *OffsetEstimator {
	if maxOffset < 0 || maxAge < 0 || samplesPerPeer < 0 {
		panic(fmt.Sprintf("clocks.NewOffsetEstimator: negative setting (max offset %v, max age %v, samples %d)", maxOffset, maxAge, samplesPerPeer))
	}
	if maxAge == 0 {
		maxAge = DefaultOffsetMaxAge
	}
	if samplesPerPeer == 0 {
		samplesPerPeer = DefaultOffsetSamplesPerPeer
	}
	return &OffsetEstimator{maxOffset: maxOffset, maxAge: maxAge, samplesPerPeer: samplesPerPeer, peers: map[string][]OffsetSample{}}
}

// MaxOffset is the offset beyond which a majority makes a verdict.
func (e *OffsetEstimator) MaxOffset() time.Duration { return e.maxOffset }

// Add records a sample; an invalid one (see OffsetSample.Valid) is dropped
// and Add reports false.
func (e *OffsetEstimator) Add(s OffsetSample) bool {
	if !s.Valid() {
		return false
	}
	q := e.peers[s.Peer]
	if len(q) == e.samplesPerPeer {
		q = append(q[:0], q[1:]...)
	}
	e.peers[s.Peer] = append(q, s)
	return true
}

// Forget drops every sample of peer (a member that left for good).
func (e *OffsetEstimator) Forget(peer string) { delete(e.peers, peer) }

// Estimate returns the offset and verdict as of now (this node's physical
// clock), forgetting samples older than the max age.
func (e *OffsetEstimator) Estimate(now time.Time) OffsetEstimate {
	out := OffsetEstimate{MaxOffset: e.maxOffset}
	for peer, q := range e.peers {
		fresh := q[:0]
		for _, s := range q {
			if age := now.Sub(s.Received); age >= 0 && age <= e.maxAge {
				fresh = append(fresh, s)
			}
		}
		if len(fresh) == 0 {
			delete(e.peers, peer)
			continue
		}
		e.peers[peer] = fresh
		out.Peers = append(out.Peers, peerOffset(peer, fresh))
	}
	slices.SortFunc(out.Peers, func(a, b PeerOffset) int { return cmp.Compare(a.Peer, b.Peer) })
	if len(out.Peers) == 0 {
		return out
	}
	offsets := make([]time.Duration, len(out.Peers))
	ahead, behind := 0, 0
	for i, p := range out.Peers {
		offsets[i] = p.Offset
		switch {
		case p.Min > e.maxOffset:
			ahead++
		case p.Max < -e.maxOffset:
			behind++
		}
	}
	slices.Sort(offsets)
	mid := len(offsets) / 2
	out.Offset = offsets[mid]
	if len(offsets)%2 == 0 {
		out.Offset = offsets[mid-1] + (offsets[mid]-offsets[mid-1])/2
	}
	majority := len(out.Peers)/2 + 1
	switch {
	case ahead >= 2 && ahead >= majority:
		out.Verdict, out.Beyond = OffsetAhead, ahead
	case behind >= 2 && behind >= majority:
		out.Verdict, out.Beyond = OffsetBehind, behind
	}
	return out
}

// peerOffset bounds one peer's offset by its samples (oldest first, at
// least one).
func peerOffset(peer string, q []OffsetSample) PeerOffset {
	newest := q[len(q)-1]
	lo, hi := newest.bounds()
	n := 1
	for _, s := range q[:len(q)-1] {
		l, h := s.bounds()
		lo, hi = max(lo, l), min(hi, h)
		n++
	}
	if lo > hi { // a clock stepped: believe the newest sample alone
		lo, hi = newest.bounds()
		n = 1
	}
	return PeerOffset{Peer: peer, Min: lo, Max: hi, Offset: lo + (hi-lo)/2, Samples: n, Newest: newest.Received}
}
