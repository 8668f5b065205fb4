package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/logbridge"
)

// Store is one region's multi-version storage on Pebble. It is safe for
// concurrent use; callers that need an order between batches (the node's
// write path) impose it themselves, see Commit.
type Store struct {
	db *pebble.DB
}

// StoreOptions configures OpenStore.
type StoreOptions struct {
	// FS is the filesystem; nil means the operating system's (vfs.Default).
	// Tests pass vfs.NewMem().
	FS vfs.FS
	// Logger receives Pebble's own log lines; nil discards Info and keeps
	// errors on slog.Default().
	Logger *slog.Logger
	// CacheBytes sizes Pebble's block cache; 0 means DefaultCacheBytes.
	CacheBytes int64
	// MinSyncInterval, if set, is consulted after every WAL fsync for the
	// pause before the next (Pebble's WALMinSyncInterval); see package internal/groupcommit.
	MinSyncInterval func() time.Duration
	// format is the range of store formats opened; zero: this build's
	// (version.go). Tests set it to play a build of another version.
	format storeFormat
}

// DefaultCacheBytes is the default block cache. Every write reads its key's
// siblings, so a cache that holds the index and recent data blocks keeps
// that read off the disk.
const DefaultCacheBytes = 256 << 20

// OpenStore opens (creating if needed) the store in dir. It refuses a
// store of a format version this build cannot read (ErrUnsupportedVersion)
// and migrates an older one it can (version.go).
func OpenStore(dir string, o StoreOptions) (*Store, error) {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	opts := &pebble.Options{
		CacheSize:          o.CacheBytes,
		FS:                 fs,
		Logger:             logbridge.Pebble(logger.With("component", "pebble")),
		FormatMajorVersion: pebbleFormat,
		WALMinSyncInterval: o.MinSyncInterval,
	}
	opts.Experimental.SpanPolicyFunc = tablePerKeyspace
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	if err := checkStoreFormat(db, dir, o.format); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &Store{db: db}, nil
}

// Close flushes nothing extra (every acknowledged write is already in the
// synced WAL) and releases the store.
func (s *Store) Close() error { return s.db.Close() }

// Siblings returns every stored version of key, newest first: the key's
// concurrent versions, at most one per region. The winner, the newest, is
// found by one SeekGE to the key's prefix (versions are stored newest first). Without values, only the
// headers (kind, timestamp, sequence number, vector) are filled.
func (s *Store) Siblings(key string, values bool) ([]causal.Version, error) {
	return siblingsFrom(s.db, key, values)
}

func siblingsFrom(r pebble.Reader, key string, values bool) ([]causal.Version, error) {
	lower, upper := keyPrefixBounds(key)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []causal.Version
	for ok := it.First(); ok; ok = it.Next() {
		raw, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		v, err := decodeVersion(raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		if values {
			v.Value = bytes.Clone(v.Value)
		} else {
			v.Value = nil
		}
		out = append(out, v)
	}
	return out, it.Error()
}

// outcome returns what request id produced, if it was applied here.
func (s *Store) outcome(id uuid.UUID) (requestOutcome, bool, error) {
	raw, closer, err := s.db.Get(requestKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return requestOutcome{}, false, nil
	}
	if err != nil {
		return requestOutcome{}, false, err
	}
	defer closer.Close()
	o, err := decodeOutcome(raw)
	return o, err == nil, err
}

// meta reads a metadata record; found is false if it was never written.
func (s *Store) meta(key []byte) (value []byte, found bool, err error) {
	raw, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), raw...), true, nil
}

// setMeta writes metadata records durably in one batch.
func (s *Store) setMeta(kv ...[]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := b.Set(kv[i], kv[i+1], nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// DiskUsage is the disk space used by the store, in bytes.
func (s *Store) DiskUsage() uint64 { return s.db.Metrics().DiskSpaceUsage() }

// WALFsyncs is the number of fsyncs of the write-ahead log since the store
// opened (Pebble counts them in its fsync latency histogram). With group
// commit one fsync makes many batches durable.
func (s *Store) WALFsyncs() uint64 {
	h := s.db.Metrics().LogWriter.FsyncLatency
	if h == nil {
		return 0
	}
	var m dto.Metric
	if h.Write(&m) != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// writeBatch accumulates the records of one or more writes: versions,
// replication log entries, request outcomes and the node state.
//
// Batches are recycled (writeBatchPool) once committed and synced or
// abandoned, so the write path allocates neither the batch nor its scratch
// buffers. Pebble copies keys and values into the batch on Set, so the
// scratch buffers are reused from one record to the next.
type writeBatch struct {
	b   *pebble.Batch
	buf []byte // scratch for encoded records
	key []byte // scratch for keys
	// staged is the sibling set (headers only) of every key whose versions
	// the batch changes, as it will be once the batch is committed: writes
	// staged later in the same batch resolve against it (Node.stagedSiblings).
	staged map[string][]causal.Version
	// enqueued is when Node.commit handed the batch to the WAL, for the
	// fsync latency metric (Node.waitDurable).
	enqueued time.Time
}

// maxPooledScratch bounds the scratch a recycled batch keeps: a batch that
// carried a large value gives its buffer back to the garbage collector
// rather than pinning it in the pool.
const maxPooledScratch = 64 << 10

var writeBatchPool = sync.Pool{New: func() any {
	return &writeBatch{staged: make(map[string][]causal.Version, 1)}
}}

// newWriteBatch starts a batch.
func (s *Store) newWriteBatch() *writeBatch {
	w := writeBatchPool.Get().(*writeBatch)
	w.b = s.db.NewBatch()
	return w
}

// release closes the Pebble batch and recycles w; w must not be used after.
func (w *writeBatch) release() {
	if w.b == nil {
		// A second release would hand one batch to two writers.
		panic("replica: write batch released twice")
	}
	w.b.Close()
	w.b = nil
	if cap(w.buf) > maxPooledScratch {
		w.buf = nil
	}
	if cap(w.key) > maxPooledScratch {
		w.key = nil
	}
	clear(w.staged)
	writeBatchPool.Put(w)
}

// putFence records token as the newest seen for lock.
func (w *writeBatch) putFence(lock string, token uint64) {
	w.b.Set(fenceKey(lock), binary.BigEndian.AppendUint64(nil, token), nil)
}

// deleteMeta deletes node metadata (metaJoining, metaMerging, ...).
func (w *writeBatch) deleteMeta(key []byte) { _ = w.b.Delete(key, nil) }

// putOutcomeRecord stores a request outcome record as received in a
// snapshot (already checked to decode).
func (w *writeBatch) putOutcomeRecord(key, value []byte) { _ = w.b.Set(key, value, nil) }

// stage records key's sibling set as of the end of the batch so far.
func (w *writeBatch) stage(key string, siblings []causal.Version) {
	w.staged[key] = siblings
}

func (w *writeBatch) putVersion(key string, v *causal.Version) {
	w.key = appendDataKey(w.key[:0], key, v.Timestamp)
	w.buf = encodeVersion(w.buf[:0], v)
	_ = w.b.Set(w.key, w.buf, nil) // Set on an unapplied batch cannot fail
}

// indexTombstone records a tombstone for collection once every region has
// it (tombstones.go).
func (w *writeBatch) indexTombstone(key string, v *causal.Version) {
	w.buf = appendDataKey(w.buf[:0], key, v.Timestamp)
	w.key = appendTombstoneKey(w.key[:0], v.Timestamp.Region, v.Seq, w.buf)
	_ = w.b.Set(w.key, nil, nil)
}

func (w *writeBatch) deleteVersion(key string, ts clocks.Timestamp) {
	w.key = appendDataKey(w.key[:0], key, ts)
	_ = w.b.Delete(w.key, nil)
}

// putLog records local write lw (its replication frame) in the
// replication log, from which it streams to the other regions.
func (w *writeBatch) putLog(lw *causal.Write) {
	w.key = appendLogKey(w.key[:0], lw.Seq)
	w.buf = encodeWrite(w.buf[:0], lw)
	_ = w.b.Set(w.key, w.buf, nil)
}

func (w *writeBatch) putOutcome(id uuid.UUID, o *requestOutcome) {
	_ = w.b.Set(requestKey(id), encodeOutcome(o), nil)
	_ = w.b.Set(requestExpiryKey(o.Timestamp.WallMs, id), nil, nil)
}

func (w *writeBatch) putState(st *nodeState) {
	w.buf = encodeState(w.buf[:0], st)
	_ = w.b.Set(metaState, w.buf, nil)
}

// commitNoWait enqueues the batch into the WAL and memtable and returns
// without waiting for the fsync; wait must follow. Callers holding a lock
// across commitNoWait get WAL order equal to their lock order while the
// fsync itself is shared by every batch queued behind it (group commit):
// the lock is never held across an fsync.
func (s *Store) commitNoWait(w *writeBatch) error {
	return s.db.ApplyNoSyncWait(w.b, pebble.Sync)
}

// wait blocks until the batch is durable, then releases it.
func (w *writeBatch) wait() error {
	err := w.b.SyncWait()
	w.release()
	return err
}

// abandon releases a batch that was never committed.
func (w *writeBatch) abandon() { w.release() }

// expireRequests deletes request ids recorded before cutoffMs (wall clock),
// at most limit of them, and reports how many it deleted.
func (s *Store) expireRequests(cutoffMs uint64, limit int) (int, error) {
	lower := []byte{spaceRequestExp}
	upper := requestExpiryKey(cutoffMs, uuid.UUID{})
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		k := it.Key()
		var id uuid.UUID
		copy(id[:], k[len(k)-16:])
		_ = b.Delete(requestKey(id), nil)
		_ = b.Delete(append([]byte(nil), k...), nil)
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, b.Commit(pebble.Sync)
}

// logRange returns the replication frames of local writes from..to
// (inclusive), stopping early after maxBytes.
func (s *Store) logRange(from, to uint64, maxBytes int) ([][]byte, error) {
	if from > to {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(from), UpperBound: logKey(to + 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][]byte
	size := 0
	next := from
	for ok := it.First(); ok && size < maxBytes; ok = it.Next() {
		if seq := binary.BigEndian.Uint64(it.Key()[1:]); seq != next {
			return nil, fmt.Errorf("%w: replication log jumps from %d to %d", ErrCorruptRecord, next-1, seq)
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		out = append(out, bytes.Clone(raw))
		size += len(raw)
		next++
	}
	return out, it.Error()
}

// firstLogSeq is the oldest local write still in the replication log; found
// is false when the log is empty.
func (s *Store) firstLogSeq() (seq uint64, found bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceLog}, UpperBound: []byte{spaceLog + 1}})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.First() {
		return 0, false, it.Error()
	}
	return binary.BigEndian.Uint64(it.Key()[1:]), true, nil
}

// truncateLog deletes the replication log up to seq (inclusive). Losing
// the deletion in a crash only brings entries back, so it is not synced.
func (s *Store) truncateLog(seq uint64) error {
	return s.db.DeleteRange(logKey(0), logKey(seq+1), pebble.NoSync)
}

// peers returns the remembered peers: region -> address.
func (s *Store) peers() (map[string]string, error) {
	upper := append(bytes.Clone(metaPeerPrefix[:len(metaPeerPrefix)-1]), metaPeerPrefix[len(metaPeerPrefix)-1]+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: metaPeerPrefix, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		out[string(it.Key()[len(metaPeerPrefix):])] = string(it.Value())
	}
	return out, it.Error()
}

// rememberPeer records a peer durably, so that after a restart this region
// still keeps its replication log for it.
func (s *Store) rememberPeer(region, addr string) error {
	return s.setMeta(append(bytes.Clone(metaPeerPrefix), region...), []byte(addr))
}

// forgetPeer deletes a remembered peer.
func (s *Store) forgetPeer(region string) error {
	return s.db.Delete(append(bytes.Clone(metaPeerPrefix), region...), pebble.Sync)
}

// fenceSeen is the highest token stored for lock (0 if none).
func (s *Store) fenceSeen(lock string) (uint64, error) {
	raw, closer, err := s.db.Get(fenceKey(lock))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: fence record for %q is %d bytes", ErrCorruptRecord, lock, len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

// storeView is a consistent, read-only view of the store at one instant
// (a Pebble snapshot): a multi-key read and a snapshot stream see no write
// half. Close releases it.
type storeView struct{ snap *pebble.Snapshot }

// view opens a consistent view of the store as it is now.
func (s *Store) view() *storeView { return &storeView{snap: s.db.NewSnapshot()} }

// Siblings is Store.Siblings as of the view.
func (v *storeView) Siblings(key string, values bool) ([]causal.Version, error) {
	return siblingsFrom(v.snap, key, values)
}

// scan calls fn with every key and value of one keyspace (spaceData,
// spaceRequest, ...), in key order, as of the view; key and value are
// valid only during the call. It stops at fn's first error and returns
// it; fromFn reports that the error came from fn, not from the store.
func (v *storeView) scan(space byte, fn func(key, value []byte) error) (fromFn bool, err error) {
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: []byte{space}, UpperBound: []byte{space + 1}})
	if err != nil {
		return false, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		raw, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return false, err
		}
		if err := fn(it.Key(), raw); err != nil {
			it.Close()
			return true, err
		}
	}
	return false, errors.Join(it.Error(), it.Close())
}

func (v *storeView) Close() error { return v.snap.Close() }

// tombstoneCandidate is an entry of the tombstone index: the index key and
// the data key of the tombstone it points at.
type tombstoneCandidate struct{ index, dataKey []byte }

// tombstoneCandidates lists up to limit indexed tombstones whose write the
// stable vector covers, in index order.
func (s *Store) tombstoneCandidates(stable clocks.Vector, limit int) ([]tombstoneCandidate, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceTombstone}, UpperBound: []byte{spaceTombstone + 1}})
	if err != nil {
		return nil, err
	}
	var out []tombstoneCandidate
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		origin, seq, dataKey, valid := parseTombstoneKey(it.Key())
		if !valid || seq > stable.Get(origin) {
			continue
		}
		out = append(out, tombstoneCandidate{bytes.Clone(it.Key()), bytes.Clone(dataKey)})
	}
	return out, it.Close()
}

// deleteUnsynced deletes keys in one batch without an fsync: for deletions
// that a crash may undo harmlessly (collected tombstones come back).
func (s *Store) deleteUnsynced(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		_ = b.Delete(k, nil)
	}
	return b.Commit(pebble.NoSync)
}
