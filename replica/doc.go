// Package replica is one region's Causeway node: durable multi-version
// storage on Pebble, the write and read paths that keep sessions causal, and
// the Connect handlers that expose them (Server: the handlers with their
// options, replication's start and stop around a listener, Node.Ready and
// Node.Metrics). What a listener serves beyond them (gRPC health,
// reflection, the probes, GET /, /metrics, the unknown-method answer) and
// the HTTP server itself are the process's (internal/process).
//
// # Neighbours
//
// replica imports neither package gossip nor package linear. What it needs
// from them is an interface it defines (neighbours.go): Membership (the
// members with their region, state, addresses and applied vectors, the
// stable vector, whether membership has joined, removing a region) and
// LinearTier (unique claims and fencing tokens for guarded writes, its
// status); the tier's LinearService is mounted by the composition root
// beside the node's services (Service). The composition root,
// internal/process, adapts gossip and linear to them and hands them in
// through Config.Membership (started once the node's address is known)
// and Config.Linear (opened with the node); the node tells membership what
// it applied and learns of members and clock readings through
// MemberEvents. replica's tests use in-memory doubles (doubles_test.go)
// and need neither memberlist nor Raft; the tests that deliberately run
// real gossip belong to the composition root (internal/process). The arrows point one way: process -> replica, gossip,
// linear; replica -> causal, clocks, api, internal/...
//
// # Guarantees
//
//   - Durability. A write is acknowledged only after the Pebble batch holding
//     it is fsynced (pebble.Sync). A crash of the process or the machine after
//     the acknowledgement loses nothing; a restart recovers the data, the
//     region's vector and its hybrid clock (which never goes backwards).
//   - Group commit without reordering. The node assigns a write its timestamp
//     and sequence number and enqueues its batch into Pebble's WAL under one
//     mutex (Node.mu), then waits for the fsync outside it. WAL order is
//     therefore sequence order (a crash never leaves a gap: if seq n is in the
//     WAL, so is every seq below it), while all writes enqueued during one
//     fsync share the next one. No lock is held across an fsync. While 8 or
//     more writes are in progress the WAL pauses briefly (Config.
//     GroupCommitDelay, 1ms) after each fsync so that more writes share the
//     next; this delays acknowledgements, never durability.
//   - The sibling set a write resolves against is the store's. Under Node.mu
//     a write reads its key's siblings from a bounded cache of recently
//     written keys (sibling_cache.go) or, on a miss, from Pebble; the cache
//     changes only under Node.mu, after the batch that changed the store.
//   - No read of undurable data. Pebble makes a batch visible before its fsync
//     completes; a read that finds a local version above the durable
//     watermark waits for it, so no client ever sees a write that a crash
//     could take back.
//   - Sessions. Every request may carry a causal token (package clocks). A
//     request whose token names writes this region has not applied waits for
//     them, bounded by the request deadline (or Config.CausalWaitTimeout),
//     then fails with unavailable naming the missing region and sequence
//     numbers. A write observes the token's Seen timestamp, so it wins
//     last-writer-wins over everything its session read or wrote, in any
//     region. Tokens from another cluster or damaged ones fail at once with
//     invalid_argument.
//   - Exactly-once retries. A write with a request id records its outcome in
//     the same batch; a retry returns the original version and writes
//     nothing. Ids are remembered for Config.RequestIDRetention (default 24h).
//   - A wrong clock stops its own node. Each node measures its physical
//     clock against its peers' from gossip round trips (acks carry the
//     member's clock; clocks.OffsetEstimator bounds each peer's offset by
//     the round trip, so WAN delay is never read as offset). While a
//     majority of the peers it measured, and at least two, are certainly
//     more than Config.MaxClockOffset away, the node refuses local writes
//     with unavailable ("region X's clock is 3.0s ahead of its peers ...;
//     use another region for writes") and reports it in Status
//     (ClockOffset) and metrics (causeway_clock_offset_seconds per peer,
//     causeway_clock_offset_writes_refused). It refuses rather than clamps:
//     clamping would trust the very estimate that may be wrong, and a clock
//     seconds off is an operator's problem to see at once. Reads go on, and
//     so does replication both ways. With fewer than two peers measured
//     (alone, partitioned, gossip off) a node cannot tell whose clock is
//     wrong and keeps serving. Writes it stamped before it fenced itself
//     (until it has measured two peers: about two gossip probe intervals
//     after start) are replicated and applied everywhere as usual
//     (refusing them would stop replication; they are counted in
//     causeway_clock_skewed_writes_applied_total): they are at most the
//     skew ahead, so they beat only writes made within that skew of them,
//     and the healthy regions refuse tokens that carry them
//     (failed_precondition) only until their own clocks pass them. See
//     clockoffset.go.
//   - Bad input changes nothing: every check happens before anything is
//     written (limits in config.go, error codes in package api).
//   - Causal replication. Every region pulls every other region's writes
//     over a bidirectional Connect stream (ReplicationService/Replicate),
//     starting from its own durable position and acknowledging what it made
//     durable. A disconnect, partition or restart of either side therefore
//     loses nothing, and the causal state machine (package causal) drops
//     anything already applied, so nothing applies twice. Only durable
//     writes leave their region. Remote writes are applied in causal order,
//     in the same group-committed batches as local ones. A receiver reads a
//     stream ahead of its applies (at most 2 MiB of frames; past that the
//     transport's flow control holds the origin back) and applies every
//     message that arrived during its previous apply as one batch, with one
//     fsync, so it keeps up with an origin that sends many small messages.
//   - Bounded log. The replication log holds a region's own writes until
//     every known region has acknowledged them, then is truncated. A region
//     whose peer no longer holds what it lacks merges a consistent snapshot
//     of that peer (ReplicationService/Snapshot: data, request outcomes and
//     the vector they embody; causal.MergeSnapshot, key by key, also into a
//     region with data of its own), then follows the streams.
//   - No sequence number twice. A region created empty with --join
//     (Config.Join) serves nothing until it has merged a snapshot of every
//     other region (join.go, causal.Join), so after the loss of its data
//     directory it numbers its writes after the last one any region holds.
//     A region asked by a subscriber for writes beyond its newest has lost
//     writes (causal.CheckResume): it refuses every client request from then
//     on, naming the repair. Status and gRPC health say which (CausalState).
//   - Scans are snapshots. Scan (scan.go) reads a prefix or range from one
//     Pebble snapshot opened under Node.mu together with the applied
//     vector it embodies, after the token's causal past and before
//     answering only once that vector is durable; later pages of the scan
//     read the same snapshot, retained ScanRetention (60s) after each
//     page, at most MaxOpenScans (256; past it the least recently paged
//     is released, so first pages never fail for want of room).
//   - A change feed in causal order. Every applied write (local or remote)
//     is recorded in the same batch as its data, in apply order, with the
//     applied vector after it (feed.go); Watch (watch.go) follows it with
//     causal.FeedCursor, so a watcher resuming anywhere from a token gets
//     every write the token lacks, once, in a causal order. Watchers see
//     only durable entries. The feed is bounded (FeedConfig: 1h, 1,000,000
//     writes), and so is every watcher's queue (a slow consumer is cut off
//     with a resume token) and the number of watchers. A watcher caught up
//     with its region is fed by the node's one dispatcher (watch_hub.go),
//     which builds each event and token once for all of them and hands
//     a watcher back to its reader whenever it cannot share them.
//   - Versioned formats (version.go). The store records its format version
//     and a node refuses a store or a replication peer of a version it
//     cannot read, naming both versions, instead of misreading it; releases
//     N and N+1 share a version, so a cluster upgrades one node at a time.
//     The check costs one read at open and one exchange per stream start,
//     nothing per write.
//   - Concurrency is visible. A key keeps its siblings (concurrent versions,
//     at most one per region); reads report them, the winner is the one with
//     the greatest hybrid timestamp, and a write whose token covers them
//     supersedes them.
//
// # Storage layout
//
// Versions of a key are stored newest first under an order-preserving
// escaping of the key (keys.go), so the latest version is one SeekGE away.
// Each version record carries its kind (value or tombstone), Lamport
// timestamp, origin region and sequence number, its causal dependency vector
// (O(regions)) and a CRC-32C checksum; a damaged record is refused, never
// served (record.go). Every local write also appends a replication log entry
// keyed by its sequence number, from which replication to other regions
// streams, and every applied write a change feed entry keyed by its apply
// position, from which Watch streams.
//
// Store (store.go) is the only code that touches Pebble. The rest of the
// node goes through its methods: write batches (writeBatch) for every
// change that must be ordered with writes, a consistent view (storeView,
// a Pebble snapshot) for multi-key reads and snapshot streams, and
// narrow reads and deletions for the background work (request expiry, log
// truncation, tombstone collection).
package replica
