package replica

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// storage is the contract of a region's storage: everything the node's code
// asks of it, and the only way into Pebble. Store is the implementation on
// Pebble; inmemStore (inmem_store_test.go) is an in-memory double written from
// this contract alone, and store_conformance_test.go runs the same cases
// against both, as hashicorp/raft's inmem_store does for its log stores.
//
// The contract, beyond each method's own comment:
//   - Versions of a key come back newest first (the order of appendDataKey:
//     timestamp descending); one version per timestamp, a later put of the
//     same timestamp replaces it.
//   - A batch is all or nothing: nothing of it is visible before commit
//     returns, all of it after; an abandoned batch leaves no trace.
//   - A view sees the store as it was when opened, whatever is committed
//     after; scan walks one keyspace in key order, with the records encoded
//     as they are stored (the snapshot stream ships them as they are).
//   - The replication log has no holes: logRange reports a gap below what
//     was truncated as ErrCorruptRecord.
type storage interface {
	Siblings(key string, values bool) ([]causal.Version, error)
	outcome(id uuid.UUID) (requestOutcome, bool, error)
	meta(key []byte) (value []byte, found bool, err error)
	setMeta(kv ...[]byte) error
	batch() storageBatch
	expireRequests(cutoffMs uint64, limit int) (int, error)
	logRange(from, to uint64, maxBytes int) ([][]byte, error)
	firstLogSeq() (seq uint64, found bool, err error)
	truncateLog(seq uint64) error
	peers() (map[string]string, error)
	rememberPeer(region, addr string) error
	forgetPeer(region string) error
	fenceSeen(lock string) (uint64, error)
	tombstoneCandidates(stable clocks.Vector, limit int) ([]tombstoneCandidate, error)
	deleteUnsynced(keys [][]byte) error
	snapshot() storageView
	Close() error
}

// storageBatch is one atomic, durable batch of records (writeBatch on
// Pebble).
type storageBatch interface {
	putVersion(key string, v *causal.Version)
	deleteVersion(key string, ts clocks.Timestamp)
	indexTombstone(key string, v *causal.Version)
	putLog(lw *causal.Write)
	putOutcome(id uuid.UUID, o *requestOutcome)
	putOutcomeRecord(key, value []byte)
	putState(st *nodeState)
	putFence(lock string, token uint64)
	deleteMeta(key []byte)
	// commit makes the batch durable and visible, then releases it.
	commit() error
	// abandon releases a batch that was never committed.
	abandon()
}

// storageView is a consistent, read-only view of the storage (storeView on
// Pebble).
type storageView interface {
	Siblings(key string, values bool) ([]causal.Version, error)
	scan(space byte, fn func(key, value []byte) error) (fromFn bool, err error)
	Close() error
}

var (
	_ storage      = (*Store)(nil)
	_ storageBatch = (*writeBatch)(nil)
	_ storageView  = (*storeView)(nil)
)

// batch starts a batch (storage); the node's write path uses
// newWriteBatch and commitNoWait directly for group commit.
func (s *Store) batch() storageBatch { return s.newWriteBatch() }

// snapshot opens a consistent view (storage).
func (s *Store) snapshot() storageView { return s.view() }

// commit commits the batch durably and releases it (storageBatch).
func (w *writeBatch) commit() error {
	err := w.b.Commit(pebble.Sync)
	w.release()
	return err
}
