// Package logstore keeps the Raft log and Raft's stable state (current term,
// last vote) of Causeway's linearizable tier in a Pebble database. A *Store
// implements both raft.LogStore and raft.StableStore, and behaves as raft's
// own InmemStore does; the same test table runs against both.
//
// # Guarantees
//
// Durability. Every StoreLog, StoreLogs, DeleteRange, Set and SetUint64 is
// committed with pebble.Sync before it returns, so whatever it reported as
// done survives a crash of the process or the machine. Raft relies on this:
// a follower that acknowledges an append, or a node that records its term
// or its vote, promises the leader or the candidate that the fact will still
// be there after a restart. A node that forgot a vote could vote twice in
// one term and let two leaders be elected.
//
// Atomicity. StoreLogs writes all of its entries in one batch, and
// DeleteRange removes its range with one range deletion, so after a crash
// either all of a call's effect is present or none of it. A log never has
// half of an append, or a hole punched by half of a truncation.
//
// Ordering. Log entries are stored under a one-byte prefix followed by the
// index as a big-endian uint64, so Pebble's key order is index order. The
// first and last index are therefore one seek each when the store is opened;
// after that they are cached in memory and kept up to date by every write,
// because Raft asks for them on every append and every heartbeat. Writes to
// the log are serialized, so the cached bounds change in the same order as
// the data on disk.
//
// Corruption detection. Every stored value starts with a format version
// byte and a CRC-32C that covers the key and the value. A record whose
// version is unknown, whose checksum does not match, whose length does not
// add up, or whose index differs from the key it is stored under is refused
// with an error wrapping ErrCorruptRecord. Pebble checksums its own blocks,
// but a bug above it, a copied or hand-edited directory, or a record written
// by a future format would otherwise be decoded into a plausible but wrong
// entry; for a replicated log that is worse than an error, because the wrong
// entry would be applied to the state machine and replicated to the peers.
//
// # Missing stable keys
//
// Raft (v1.8) reads its current term and last vote from a store that may be
// fresh, and treats a missing key as "zero" only when the returned error's
// message is exactly "not found" (it compares err.Error(), the convention of
// raft-boltdb). This package follows InmemStore: Get of a missing key returns
// ErrKeyNotFound, whose message is that string, and GetUint64 of a missing
// key returns 0 with no error. Set with a nil value makes the key missing
// again, as in InmemStore. Byte values (Set/Get) and integer values
// (SetUint64/GetUint64) live in separate key spaces, also as in InmemStore.
//
// # Record format (version 1)
//
//	value  = version(1 byte) crc32c(4 bytes, big-endian) body
//	crc32c = CRC-32C (Castagnoli) of the key followed by the body
//
//	log body    = index(8) term(8) type(1) appendedAtSeconds(8) appendedAtNanos(4)
//	              uvarint(len(data)) data uvarint(len(extensions)) extensions
//	uint64 body = value(8)
//	bytes body  = the value as given
//
// Integers are big-endian. AppendedAt keeps its instant (to the nanosecond)
// but comes back in UTC and without a monotonic clock reading; a zero
// AppendedAt comes back as the zero time. Empty Data and Extensions come back
// as nil.
package logstore
