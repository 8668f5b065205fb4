package causal

import (
	"github.com/causewaydb/causeway/clocks"
)

// Kind says whether a version holds a value or records a deletion.
type Kind uint8

const (
	KindValue     Kind = 1
	KindTombstone Kind = 2
)

// Op is one key's change within a write.
type Op struct {
	Key   string
	Kind  Kind
	Value []byte // nil for a tombstone
}

// Write is the unit of replication: the ops of one Put, Delete or WriteMany,
// applied atomically in every region.
type Write struct {
	// Timestamp is the write's Lamport (hybrid) timestamp; its Region is the
	// origin region.
	Timestamp clocks.Timestamp
	// Seq is the write's position in the origin's sequence of writes.
	Seq uint64
	// Vector is the write's causal past, including itself: {origin: Seq} plus
	// the session's dependencies. O(regions) entries.
	Vector clocks.Vector
	// RequestID, when non-zero, makes retries of the write apply once in
	// every region that has applied it.
	RequestID [16]byte
	Ops       []Op
}

// Origin is the region that accepted the write.
func (w *Write) Origin() string { return w.Timestamp.Region }

// Version is one write's effect on one key.
type Version struct {
	Kind      Kind
	Timestamp clocks.Timestamp // Region is the origin
	Seq       uint64
	Vector    clocks.Vector
	Value     []byte
}

// VersionOf is op's version as written by w.
func VersionOf(w *Write, op Op) Version {
	return Version{Kind: op.Kind, Timestamp: w.Timestamp, Seq: w.Seq, Vector: w.Vector, Value: op.Value}
}

// Covers reports whether v's causal past includes o: v was written by a
// session that had seen o (or by o's region after o). A covered version is
// superseded; it is no longer a sibling.
func (v *Version) Covers(o *Version) bool {
	return v.Vector.Get(o.Timestamp.Region) >= o.Seq
}

// Same reports whether v and o are the same write's version.
func (v *Version) Same(o *Version) bool {
	return v.Timestamp == o.Timestamp && v.Seq == o.Seq
}

// Resolve returns the sibling set of a key after v is applied to it.
//
// A key's sibling set holds its maximal versions: those no other applied
// version covers. They are mutually concurrent, at most one per region (a
// region's writes are ordered), and the winner is the one with the greatest
// timestamp. Because a version that covers another was written after
// observing it, it also has the greater timestamp (the clock condition), so
// every region that has applied the same writes, in any causal order, holds
// the same sibling set and the same winner.
//
// siblings must be sorted newest first; so is the result. applied is false
// when v was already applied or is covered (a duplicate or stale delivery);
// superseded lists the versions v replaces.
func Resolve(siblings []Version, v Version) (next []Version, superseded []Version, applied bool) {
	for i := range siblings {
		if siblings[i].Same(&v) || siblings[i].Covers(&v) {
			return siblings, nil, false
		}
	}
	next = make([]Version, 0, len(siblings)+1)
	for _, s := range siblings {
		if v.Covers(&s) {
			superseded = append(superseded, s)
			continue
		}
		next = append(next, s)
	}
	at := len(next)
	for i := range next {
		if next[i].Timestamp.Less(v.Timestamp) {
			at = i
			break
		}
	}
	next = append(next, Version{})
	copy(next[at+1:], next[at:])
	next[at] = v
	return next, superseded, true
}
