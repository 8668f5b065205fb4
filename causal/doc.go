// Package causal is Causeway's replication protocol as a deterministic state
// machine: it decides the timestamp, sequence number and dependencies of each
// local write, when a write from another region may be applied, and how
// concurrent writes to one key resolve. It has no goroutines, does no I/O and
// reads no clock except the injected hybrid clock, so a seeded simulation
// can drive several regions through any schedule and replay it exactly.
//
// # Protocol
//
// Each region numbers its own writes 1, 2, 3, ... and streams them to every
// other region in that order. A write carries a vector clock of its causal
// past: {origin: seq} merged with the vector of the session's causal token.
// A receiving region applies write n of origin o once it has applied o's
// write n-1 and, for every other region r, at least vector[r] of r's writes
// (Replica.Ready). So no region ever exposes a write before its causal past:
// causal+ consistency. Metadata per write is one vector: O(regions).
//
// # Conflicts
//
// The versions of a key that no other version covers are its siblings
// (Resolve). They are concurrent, at most one per region, and the winner is
// the one with the greatest hybrid timestamp: last-writer-wins that respects
// causality, because a write that covers another observed its timestamp
// first. Every region that applied the same writes holds the same siblings
// and the same winner: convergence.
//
// # Snapshots and joining
//
// A region that starts with no data inside an existing cluster (a new one,
// or one whose disk was lost) joins: it merges a snapshot of every other
// region before it serves (Join), so its sequence numbers continue after
// the greatest of its own writes any region holds, and no write it
// acknowledges can be taken for one of its earlier life. A region whose
// subscriber asks for writes beyond its newest has lost writes
// (CheckResume) and must stop writing. A region behind an origin's
// truncated log merges that origin's snapshot; MergeSnapshot gives the
// siblings a region would hold had it applied the writes one by one.
//
// # The replication stream
//
// stream.go holds the rules a stream must keep not to lose or invent a
// write: what a subscriber accepts (Inbox: the origin's next write only, a
// head not behind it), which acknowledgements an origin believes
// (CheckAck), how far it truncates its log (TruncationPoint), how it
// answers a resume request (ResumeAt: send, wait, "merge a snapshot", or
// "you hold writes I lost"), and when a tombstone may go for good
// (Collectable, SafeWallMs). Time is passed in; package replica and the
// simulator drive the same functions.
//
// # The change feed
//
// feed.go holds the rule a watcher follows (FeedCursor): a region's feed
// lists the writes it applied, in apply order, each with the applied
// vector after it; a watcher resuming from a token (a vector of what it
// has seen) is given exactly the writes the vector lacks, in that order,
// and its token afterwards is the merge of the two. Because every region
// applies in a causal order and every token names a causal past, the
// sequence a watcher gets across resumes in any regions is a linear
// extension of happens-before with no gap and no repeat (proof sketch in
// feed.go; feed_test.go drives it through seeded schedules and a broken
// variant). A feed that no longer holds writes a token lacks refuses it
// (ErrFeedTruncated).
//
// # Sessions
//
// A session's token carries the merge of the vectors it has read or written
// and the greatest timestamp it has seen. A region serves the session only
// once its applied vector dominates the token's (the caller waits), and a
// write observes the token's timestamp before taking its own, so a write made
// after reading a value wins over that value wherever it is made.
package causal
