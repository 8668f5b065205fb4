// Package fsm is the deterministic state machine of Causeway's
// linearizable tier: unique claims, compare-and-set registers, leases, and
// locks that hand out fencing tokens. It implements raft.FSM (and
// raft.BatchingFSM) of hashicorp/raft; the raft node around it proposes
// encoded Commands and hands each committed entry to Apply. State lives in
// the machine's own Pebble database.
//
// # Determinism
//
// Every replica applies the same log and must reach the same state and
// return the same Result for every entry. So Apply reads nothing but the
// log entry and its own state: no time.Now, no randomness, no map
// iteration, no configuration that could differ between nodes. Time comes
// from the log: the leader stamps each command with its wall clock
// (Command.NowMs) and the machine's clock is the maximum NowMs applied so
// far, so it never goes back, even when leadership moves to a node whose
// clock is behind. Leases expire against that clock at the start of each
// Apply; a leader with nothing to propose proposes OpTick when
// NextExpiryMs has passed. Every loop is bounded (leases expired per
// Apply, locks per lease, outcomes evicted per Apply); work beyond a bound
// is done by the next Apply, and until then a lease or outcome past its
// time is treated as gone wherever it is consulted, so the bounds change
// when work happens but never an answer. Result messages are built only
// from the command and the state, so they are deterministic too.
//
// # Fencing tokens strictly increase
//
// A lock acquisition's token is the log index of the Lock entry that
// acquired it, and the newest token per lock name is kept forever. Raft
// commits each index at most once, with one entry, on every replica, and a
// new leader's entries take indices after every committed one; so for one
// lock, an acquisition applied later has a larger index, hence a larger
// token, whoever led the cluster, and however the clocks of the leaders
// compare. A holder whose lease expired can therefore always be told from
// the current holder: a CAS fenced with its token finds a newer token and
// is refused (CodeFailedPrecondition). Apply also checks the property on
// every acquisition and stops the replica if it ever fails. (Tokens drawn
// from the leader's clock or a per-leader counter would not have this
// property; the tests show a clock-derived sequence failing the check.)
//
// # Exactly once
//
// Every mutation carries a request id. Its outcome (its Result and a hash
// of the command without NowMs) is stored in the same batch as its
// effects. A retry of the same request, typically after a timeout left the
// client unsure, finds the outcome and gets the original Result with
// Duplicate set, and the state is not touched. The same id with a
// different command is refused (CodeInvalidArgument). Outcomes are kept
// for OutcomeRetentionMs of machine time, at most MaxOutcomes of them,
// oldest evicted first: a client must finish retrying within that window.
//
// # No double apply
//
// Each Apply (each ApplyBatch) commits one Pebble batch holding the state
// changes, the outcomes, the clock and the last applied index, without
// fsync: the raft log is the durable record. After a crash the state is
// some prefix of what was applied (Pebble recovers its WAL in order), and
// it records which prefix. raft replays committed entries from its latest
// snapshot; Apply ignores every entry at or below LastApplied, and Restore
// keeps the state when a snapshot is not ahead of it, so no entry applies
// twice and none is skipped. A Restore that does replace the state commits
// with fsync, because raft may then drop the log entries it covers.
//
// A storage failure inside Apply panics. Apply has no way to report an
// error to raft, and a replica that went on after skipping or half-applying
// an entry would silently diverge; a restarted one replays the log from its
// last commit.
//
// # Reads
//
// Lookup and Get proposed through the log are linearizable by
// construction. Read answers them from the applied state without a log
// entry, for a node that has confirmed its leadership and waited for the
// state to reach the read index, or for a read the caller accepts as stale.
package fsm
