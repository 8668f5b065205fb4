// Package lincheck decides whether a recorded history of client operations
// against Causeway's linearizable tier kept its promises. Like package check
// for the causal tier, it knows nothing of how the tier works: a history is
// what clients saw (Op: what was asked, what came back, and when), recorded
// by tests of real nodes or by the simulator and stored as JSON lines
// (WriteHistory, ReadHistory).
//
// # CheckLinearizable
//
// CheckLinearizable runs the porcupine checker: the history is linearizable
// if every operation can be given one instant between its call and its
// return at which it takes effect, so that the operations, in the order of
// those instants, are a legal run of this sequential specification. Objects
// are independent, so the history is split per object (a claimed name, a
// register) and each part is checked on its own.
//
// A claim is a name that is free or held by one owner:
//
//   - claim(owner): ok if the name is free or already held by owner (claiming
//     is idempotent), and then owner holds it; already_exists if another
//     owner holds it (Value, if reported, is that owner).
//   - release(owner): ok if owner holds it, and then it is free; not_found
//     if it is free; failed_precondition if another owner holds it.
//   - lookup: ok with Value = the owner ("" if free); not_found if free.
//
// A register is absent or holds a value, and has versions; 0 means absent:
//
//   - cas(condition, Value or Delete): the condition is none, a version
//     (CompareVersion: 0 = must be absent, n = the current version is n) or a
//     value (CompareValue: the register exists and holds it). When it holds:
//     ok, the register takes the value (or becomes absent) and the returned
//     Version, which must be greater than that of every earlier write of the
//     register, deletes included; a delete may report version 0 (Causeway's
//     does: an absent key compares as version 0), and its version is then
//     only known to exceed the previous one. When the condition does not
//     hold: aborted, with Version = the current version (0 if absent). A
//     delete of an absent register, or a conditional write of one, may
//     instead answer not_found without effect.
//   - get: ok with the value and version (version 0: absent), or not_found
//     if absent.
//
// # Outcomes
//
// An operation that succeeded took effect. One that failed with a code
// describing the state it met (aborted, already_exists, not_found,
// failed_precondition) did not, and the state must explain the code: two
// clients both told ok for a claim of one name, or a CAS told aborted when
// its version was current, are violations. One refused before replication
// (invalid_argument, permission_denied, unauthenticated, unimplemented,
// resource_exhausted) had no effect whatever the state.
//
// Every other outcome is indeterminate (Op.Indeterminate): info (timeout,
// lost connection) and failures such as unavailable or deadline_exceeded,
// after which a leader may still have committed the request. Such an
// operation is given an infinite return time, so it may be linearized at
// any point after its call — including after every other operation, where
// its effect is invisible, which is how "it never took effect" is covered.
// When it does take effect in the middle of the history, its value is known
// but the version it was given is not; the register then records only a
// lower bound for its version, and the next operation that reports the
// version (a get, an aborted cas, a cas conditioned on it) pins it.
//
// The result per object is linearizable, not-linearizable or unknown (the
// check exceeded its time budget: the problem is NP-complete in general,
// though partitioning keeps it fast in practice). Report.WriteVisualization
// writes porcupine's HTML view of the objects that failed, showing the
// longest partial linearizations and the operation that could not follow
// them.
//
// # CheckFencing
//
// Locks are leases: they expire without an unlock, at a time the history
// does not record, so mutual exclusion cannot be judged from client
// timestamps. What can be judged is what fencing tokens promise, per lock:
// tokens of successful acquisitions are distinct and grow in real-time
// order (an acquisition that returned before another was invoked has the
// smaller token), and a fenced write carrying token t is not accepted once
// an acquisition with a greater token had returned before the write was
// invoked. Only acknowledged operations constrain; an acquisition with an
// unknown outcome may have taken a token the history never saw, so it is
// ignored.
package lincheck
