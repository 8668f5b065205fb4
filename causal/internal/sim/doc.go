// Package sim is a seeded, deterministic simulation of Causeway's causal
// tier: several regions, each a causal.Replica over a simulated durable
// store, replicating to each other over a faulty network while client
// sessions move between them, followed by healing, quiescence and a check of
// the recorded history with internal/check.
//
// # What a schedule exercises
//
//   - Regions (2 to 5) with physical clocks skewed from virtual time, and
//     hybrid clocks built on them (clocks.NewClock with the configured max
//     offset). A restarted region's physical clock may jump backwards, and
//     in some schedules one region's clock is ahead by more than the max
//     offset, so its timestamps cannot be observed elsewhere.
//   - Replication as in the real protocol: each region periodically asks
//     every origin to resume from applied[origin]+1, and the origin answers
//     with a bounded window of its log, one message per entry. Links delay
//     (with jitter, so messages overtake each other), lose and duplicate
//     messages; partitions cut links in both directions or one and heal
//     later. Received writes go through Replica.Receive and Replica.Ready,
//     and each ready write is persisted atomically, resolving its versions
//     into the key's siblings with causal.Resolve. A write refused with
//     causal.ErrPendingFull is dropped; resume sends it again.
//   - Crashes: a region loses its replica, its pending buffer and every
//     message on its way to it, and restarts from durable state (applied
//     vector, data, its own log, the greatest timestamp it issued).
//   - Disk loss: a region whose every write is also held elsewhere loses its
//     whole durable state and restarts empty, as the README's recovery
//     says, while sessions keep sending it operations. It joins
//     (causal.Join): it serves nobody until it has merged a snapshot of
//     every other region (causal.MergeSnapshot), then numbers its writes
//     after the greatest of its own that any snapshot held. Its log starts
//     there, so a region that asks it for older writes is answered
//     "truncated" and merges its snapshot instead. An origin asked for
//     writes beyond its head has lost writes (causal.CheckResume): a
//     protocol error here. Config.UnsafeRejoinWithoutSnapshot restarts the
//     region as Causeway once did, serving at once from sequence number 1,
//     and TestCheckerCatchesUnsafeRejoin shows the checkers catch it.
//   - The stream's bookkeeping, with the rules of package causal: resume
//     requests acknowledge what the subscriber holds and carry its applied
//     vector (as gossip spreads it); every answer ends with the origin's
//     head and time. Every GCEveryMs a region truncates its log to the
//     slowest acknowledgement (causal.TruncationPoint) and collects the
//     tombstones every region applied below its safe time
//     (causal.Collectable, causal.SafeWallMs), during the workload and for
//     a while at rest after quiescence. Nearly every schedule truncates a
//     log and loses a disk; most collect a tombstone (TestSimulation states
//     the shares it requires). TestCheckerCatchesBrokenStreamRules breaks
//     the rules on purpose (collecting unstable tombstones; truncating past
//     the slowest subscriber and resuming past the gap) and the checkers
//     must catch each.
//   - Sessions that carry a causal token (vector and Seen), move between
//     regions at random, and put (unique values), delete, get and read_many
//     over a small key set, including the photo-album pattern: write "acl",
//     then, with the token, "photo" (often in another region), while others
//     read both in one snapshot. A region serves a session only if its
//     applied vector dominates the token's, otherwise the operation fails
//     as unavailable, as a real region answers after its wait times out.
//     Some writes end without the client learning the outcome: the region
//     crashes just before or just after persisting, or the reply is lost.
//
// After Config.Steps operations, every partition heals and every crashed
// region restarts (loss and duplication go on), and the simulation runs
// until all regions have applied every write and buffer nothing.
//
// # What a schedule checks
//
// check.Check over the history and every region's final winners (causal
// visibility and the session guarantees, only written versions read,
// timestamps that respect causality, no acknowledged write lost,
// convergence), plus what only the simulator can see: quiescence is
// reached (KindNotQuiescent), whole sibling sets converge
// (KindSiblingDivergence), and the state machine accepts and orders the
// writes regions produce (KindProtocolError).
//
// # Determinism
//
// There are no goroutines, no real time and no global randomness: one
// *rand.Rand seeded from the seed draws every choice, and events at the same
// virtual millisecond run in the order they were scheduled. So Run(seed,
// cfg) always produces the same history, and a failing seed replays
// exactly:
//
//	go test ./causal/internal/sim -run TestSimulation -seed=N -v
package sim
