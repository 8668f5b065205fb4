package check

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// OpKind is what a client asked for.
type OpKind string

// The operations a history records.
const (
	OpPut      OpKind = "put"
	OpDelete   OpKind = "delete"
	OpGet      OpKind = "get"       // one key
	OpReadMany OpKind = "read_many" // several keys, read as one snapshot
)

// VersionRef is a version of a key as the API reports it: the write that
// produced it, identified by its origin region and that region's sequence
// number, and the write's hybrid timestamp.
//
// The zero VersionRef (empty Origin) stands for a key that never existed. A
// deleted key reads as the delete's version, with Tombstone set.
type VersionRef struct {
	Origin    string // region that accepted the write
	Seq       uint64 // the write's position among Origin's writes
	WallMs    uint64 // hybrid timestamp: physical part
	Logical   uint32 // hybrid timestamp: logical part
	Tombstone bool   // the version records a delete
	// Value is the value a read returned (empty for a tombstone). A put's
	// values are unique within a history, so a version whose write was never
	// acknowledged (Op.Indeterminate) can still be traced to its put. In
	// Op.Written it is ignored: the write's own Op.Value is what it wrote.
	Value string
}

// Exists reports whether v is a version at all, rather than the absence of
// any.
func (v VersionRef) Exists() bool { return v.Origin != "" }

// Compare orders versions by timestamp: (WallMs, Logical, Origin)
// lexicographically, the order in which last-writer-wins picks a winner.
// The zero VersionRef orders first.
func (v VersionRef) Compare(o VersionRef) int {
	if c := cmp.Compare(v.WallMs, o.WallMs); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Logical, o.Logical); c != 0 {
		return c
	}
	return strings.Compare(v.Origin, o.Origin)
}

// Timestamp formats v's timestamp as WALLMS.LOGICAL@ORIGIN.
func (v VersionRef) Timestamp() string {
	return strconv.FormatUint(v.WallMs, 10) + "." + strconv.FormatUint(uint64(v.Logical), 10) + "@" + v.Origin
}

// String describes v, e.g. `us-east/4 "v17" @1700000000123.2@us-east`.
func (v VersionRef) String() string {
	if !v.Exists() {
		return "nothing"
	}
	what := strconv.Quote(v.Value)
	if v.Tombstone {
		what = "tombstone"
	}
	return fmt.Sprintf("%s/%d %s @%s", v.Origin, v.Seq, what, v.Timestamp())
}

// id is the identity of the write that produced v.
func (v VersionRef) id() versionID { return versionID{origin: v.Origin, seq: v.Seq} }

// Op is one client operation as a client saw it.
type Op struct {
	// Session is the client session. Operations of one session are issued
	// one after the other; that order is part of causality.
	Session string
	// Index is the operation's position in its session (increasing; gaps are
	// fine).
	Index int
	// Region is the region that served (or was asked to serve) the operation.
	Region string
	Kind   OpKind
	// OK: the operation was acknowledged. Operations that failed (the region
	// was unavailable, the request was refused) are kept with OK false and
	// are ignored, except for indeterminate writes.
	OK bool
	// Indeterminate: the outcome is unknown (a timeout, a lost reply); the
	// write may or may not have happened. Only meaningful for put and delete
	// with OK false. Such a write joins the history if some read or the final
	// state returns its version; the session does not depend on it, since it
	// never learned of it.
	Indeterminate bool
	// Key and Value are what put and delete wrote (Value only for put).
	Key   string
	Value string
	// Written is the version an acknowledged put or delete reported.
	Written VersionRef
	// Reads maps each key a get (exactly one) or read_many read to the
	// version returned; the zero VersionRef if the key never existed.
	Reads map[string]VersionRef
}

func (o *Op) isWrite() bool { return o.Kind == OpPut || o.Kind == OpDelete }
func (o *Op) isRead() bool  { return o.Kind == OpGet || o.Kind == OpReadMany }

// Final is the state after healing and quiescence: region -> key -> winning
// version (a key that is absent, or mapped to the zero VersionRef, does not
// exist in that region).
type Final map[string]map[string]VersionRef

// Violation kinds. Session guarantees are named when the overwritten write
// reached the reader through its own session; otherwise the violation is of
// causal visibility in general.
const (
	// KindMalformed: the history itself is inconsistent (missing fields,
	// duplicate positions in a session); the operation is skipped.
	KindMalformed = "malformed-history"
	// KindUnwrittenVersion: a read or the final state returned a version no
	// put or delete in the history produced.
	KindUnwrittenVersion = "unwritten-version"
	// KindVersionMismatch: a version was returned for another key than the
	// one its write wrote, or with another timestamp, kind or value.
	KindVersionMismatch = "version-mismatch"
	// KindDuplicateVersion: two writes were acknowledged with one version
	// identity (origin, seq) or one timestamp, which must be unique: a region
	// forgot a write it acknowledged, or its clock went backwards.
	KindDuplicateVersion = "duplicate-version"
	// KindCausalityCycle: a read returned a write that causally follows the
	// read itself (for instance a later write of the same session).
	KindCausalityCycle = "causality-cycle"
	// KindTimestampOrder: a write's timestamp is not greater than that of
	// a write in its causal past, or than an earlier write of its origin
	// region. Last-writer-wins would then let the older write win.
	KindTimestampOrder = "timestamp-order"
	// KindReadYourWrites: a read missed the session's own earlier write.
	KindReadYourWrites = "read-your-writes"
	// KindMonotonicReads: a read returned something older than what the
	// session had already read.
	KindMonotonicReads = "monotonic-reads"
	// KindMonotonicWrites: the session read a write of another session, and
	// then missed an earlier write of that same session.
	KindMonotonicWrites = "monotonic-writes"
	// KindWritesFollowReads: the session read a write, and then missed a
	// write its writer had seen before writing it.
	KindWritesFollowReads = "writes-follow-reads"
	// KindCausalSnapshot: a read_many returned a version together with an
	// older version of another key than the first version's causal past
	// holds: the snapshot is not causally closed.
	KindCausalSnapshot = "causal-snapshot"
	// KindDivergence: regions hold different final versions of a key.
	KindDivergence = "divergence"
	// KindLostWrite: the final state of a key is not the newest write to it
	// that was acknowledged (or observed): a write was lost.
	KindLostWrite = "lost-write"
)

// Violation is one broken guarantee.
type Violation struct {
	Kind    string
	Op      int // index of the operation in the history; -1 for the final state
	Session string
	Key     string
	Detail  string // what happened, in terms of the history
}

// String formats v on one line.
func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Kind)
	if v.Op >= 0 {
		fmt.Fprintf(&b, " [op %d", v.Op)
		if v.Session != "" {
			fmt.Fprintf(&b, ", session %s", v.Session)
		}
		b.WriteString("]")
	} else if v.Session != "" {
		fmt.Fprintf(&b, " [session %s]", v.Session)
	}
	if v.Key != "" {
		fmt.Fprintf(&b, " key %q", v.Key)
	}
	b.WriteString(": ")
	b.WriteString(v.Detail)
	return b.String()
}
