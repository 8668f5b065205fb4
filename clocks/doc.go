// Package clocks provides the notions of time Causeway's causal tier is built
// on: hybrid logical timestamps, which order versions for last-writer-wins;
// vector clocks, which track causal dependencies and detect concurrency; and
// causal tokens, which carry a session's causal past between requests,
// regions and clients.
//
// The package is pure: no goroutines, no I/O, no global mutable state apart
// from a bounded, concurrency-safe table of decoded region names that only
// saves allocations and never changes a result. Physical time is injected
// (PhysicalClock), so the deterministic simulator and the tests decide what
// time it is.
//
// # Hybrid logical clock
//
// A Timestamp is (WallMs, Logical, Region), ordered lexicographically in that
// order. A Clock keeps the greatest timestamp it issued, observed or restored
// (Last) and guarantees:
//
//  1. Monotonicity. Now returns a timestamp strictly greater than Last, and
//     Last never decreases. This holds whatever the physical clock does,
//     including going backwards, because WallMs is max(physical, Last.WallMs)
//     and Logical counts up while WallMs stands still.
//  2. Clock condition. If write a happened before write b (same region, or a
//     was replicated to b's region and passed to Observe before b was issued),
//     then a's timestamp < b's. So last-writer-wins never lets a write be
//     overwritten by one that causally precedes it, and sessions see their
//     own writes win over what they read.
//  3. Closeness to physical time. WallMs of a timestamp a region issues is
//     either its own physical time or the WallMs of a timestamp it issued,
//     observed or restored earlier. Observe refuses timestamps more than
//     MaxOffset ahead of local physical time (ErrClockOffset), so one region
//     with a fast clock cannot drag the others ahead: every accepted WallMs
//     is at most MaxOffset ahead of the receiver's own physical clock. While clocks
//     agree to within MaxOffset, last-writer-wins therefore matches wall-clock
//     order up to that offset, which is why the clock is hybrid rather than a
//     plain Lamport counter.
//  4. Overflow. If Logical would pass 2^32-1 within one millisecond, WallMs
//     advances by one and Logical restarts at 0: monotonicity is kept at the
//     price of a millisecond of drift that needs 2^32 writes to happen.
//
// Rejecting a too-far-ahead timestamp was chosen over clamping it: the
// timestamp of a version must be the same in every region, or regions resolve
// conflicts differently and never converge.
//
// # Clock offset from peers
//
// Observe protects a node from a peer's fast clock, but only the node whose
// own clock is wrong can stop issuing wrong timestamps. OffsetEstimator tells
// it so: from round-trip samples (this node's clock when it asked and when
// the answer came, and the peer's clock in the answer) it bounds each peer's
// offset by the round trip, intersects a peer's recent samples, and judges
// the node ahead (behind) when a strict majority of the peers it measured,
// and at least two, are certainly beyond the max offset. A delay only widens
// a bound, so clocks within the max offset are never judged out of sync
// however slow or lopsided the network (TestPropertyDelayIsNotOffset); the
// price is that an offset within a round trip of the max offset is not acted
// on. See OffsetEstimator for the rules and why each is there.
//
// # Vector clocks
//
// A Vector maps region to sequence number (how many of that region's writes
// are in the causal past). Vectors are ordered element-wise (v <= o when
// v[r] <= o[r] for every region r, missing entries reading as 0) and form a
// join-semilattice with Merge, the element-wise maximum, as the join:
//
//   - Merge is commutative, associative and idempotent.
//   - v.Merge(o) dominates v and o, and is dominated by every vector that
//     dominates both (least upper bound).
//   - v.Compare(o) is Equal, Before or After exactly when v.Merge(o) equals o,
//     equals o (v smaller), or equals v (v larger); it is Concurrent when the
//     merge differs from both, i.e. the writes conflict.
//   - An entry with value 0 is the same as no entry, in every method and in
//     the encoding, so vectors have one canonical form.
//
// Per-write metadata is one Vector: O(number of regions), never O(keys).
//
// # Binary encoding
//
// AppendTimestamp/ReadTimestamp and AppendVector/ReadVector write and read a
// compact canonical form (minimal unsigned varints, vector entries sorted by
// region, zero entries omitted). Readers reject non-canonical input, oversized
// names and more than MaxRegions entries, so decoding untrusted bytes is
// bounded and every accepted byte string re-encodes to itself.
//
// # Causal tokens
//
// A Token is a cluster id, a Vector (the session's causal past) and Seen (the
// greatest timestamp the session has read or written). Its string form is
// base64url without padding of:
//
//	offset   size (bytes)   field
//	0        1              format version (TokenFormatVersion = 1)
//	1        16             cluster UUID, in RFC 4122 byte order
//	17       3..48          Seen: uvarint WallMs, uvarint Logical,
//	                        uvarint region length, region bytes
//	17+s     1..2753        Vector: uvarint entry count (<= MaxRegions), then
//	                        per entry in increasing region order: uvarint name
//	                        length, name bytes, uvarint sequence number (> 0)
//	n-4      4              CRC-32C (Castagnoli) of bytes [0, n-4), big-endian
//
// The largest token is 2822 bytes (3763 characters), within MaxTokenLen.
//
// Tokens pass through clients, message queues, session files and copy-paste;
// the checksum catches truncation and corruption there, and DecodeToken checks
// it before interpreting any field, so a damaged token is reported as damaged
// instead of, say, making a region wait for writes that do not exist. The
// checksum is not authentication: a client can forge a token, but can only
// harm its own session (it waits, then gets unavailable). An HMAC was
// considered and left out because it needs a key shared by all regions. The
// cluster id makes a token from another cluster (staging versus production)
// fail with ErrForeignToken instead of being read against unrelated sequence
// numbers.
package clocks
