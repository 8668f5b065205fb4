package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"
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
}

// OpenStore opens (creating if needed) the store in dir.
func OpenStore(dir string, o StoreOptions) (*Store, error) {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	opts := &pebble.Options{
		FS:                 fs,
		Logger:             pebbleLogger{logger.With("component", "pebble")},
		FormatMajorVersion: pebble.FormatNewest,
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close flushes nothing extra (every acknowledged write is already in the
// synced WAL) and releases the store.
func (s *Store) Close() error { return s.db.Close() }

// Latest returns the newest version of key: one SeekGE to the key's prefix,
// since versions are stored newest first. found is false when the key has no
// version at all.
func (s *Store) Latest(key string) (rec Record, found bool, err error) {
	lower, upper := keyPrefixBounds(key)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return rec, false, err
	}
	defer it.Close()
	if !it.First() {
		return rec, false, it.Error()
	}
	raw, err := it.ValueAndErr()
	if err != nil {
		return rec, false, err
	}
	rec, err = decodeRecord(raw)
	if err != nil {
		return rec, false, fmt.Errorf("key %q: %w", key, err)
	}
	rec.Value = append([]byte(nil), rec.Value...)
	return rec, true, nil
}

// Versions returns every stored version of key, newest first.
func (s *Store) Versions(key string) ([]Record, error) {
	lower, upper := keyPrefixBounds(key)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Record
	for ok := it.First(); ok; ok = it.Next() {
		rec, err := decodeRecord(it.Value())
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		rec.Value = append([]byte(nil), rec.Value...)
		out = append(out, rec)
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

// writeBatch accumulates one write's records: the version(s), the
// replication log entry, the request outcome and the node state.
type writeBatch struct {
	b   *pebble.Batch
	buf []byte
}

func (s *Store) newWriteBatch() *writeBatch {
	return &writeBatch{b: s.db.NewBatch()}
}

func (w *writeBatch) putVersion(key string, r *Record) []byte {
	dataKey := appendDataKey(nil, key, r.Timestamp)
	w.buf = encodeRecord(w.buf[:0], r)
	_ = w.b.Set(dataKey, w.buf, nil) // Set on an unapplied batch cannot fail
	return dataKey
}

// putLog records that local write seq produced the given data keys, so
// replication can stream local writes in sequence order.
func (w *writeBatch) putLog(seq uint64, dataKeys ...[]byte) {
	var v []byte
	for _, k := range dataKeys {
		v = appendLengthPrefixed(v, k)
	}
	_ = w.b.Set(logKey(seq), v, nil)
}

func (w *writeBatch) putOutcome(id uuid.UUID, o *requestOutcome) {
	_ = w.b.Set(requestKey(id), encodeOutcome(o), nil)
	_ = w.b.Set(requestExpiryKey(o.Timestamp.WallMs, id), nil, nil)
}

func (w *writeBatch) putState(st *nodeState) {
	_ = w.b.Set(metaState, encodeState(st), nil)
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
	w.b.Close()
	return err
}

// abandon releases a batch that was never committed.
func (w *writeBatch) abandon() { w.b.Close() }

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

func appendLengthPrefixed(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// pebbleLogger routes Pebble's log lines into slog. Pebble's Fatalf means an
// unrecoverable storage failure; the process exits, as Pebble expects.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
