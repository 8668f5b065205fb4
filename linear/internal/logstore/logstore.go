package logstore

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/internal/logbridge"
)

// cacheBytes sizes Pebble's block cache. The store sits beside the node's
// main store, and Raft reads mostly the tail of the log it has just written
// (still in the memtable), so a small cache is enough.
const cacheBytes = 8 << 20

// ErrKeyNotFound is returned by Get for a key that was never Set (or was Set
// to nil). Its message is exactly "not found" because Raft recognises a
// missing key by comparing err.Error() with that string, as raft-boltdb and
// raft's InmemStore return it; use errors.Is in Causeway's own code.
var ErrKeyNotFound = errors.New("not found")

// Store is a Raft log store and stable store on Pebble. It is safe for
// concurrent use; it must not be used after Close.
type Store struct {
	db *pebble.DB

	// writeMu serializes writes to the log, so that the cached bounds change
	// in the order the writes commit. It is held across the commit's fsync;
	// readers of the bounds take only boundsMu.
	writeMu sync.Mutex

	// boundsMu guards first and last, the lowest and highest stored log
	// index, both 0 when the log is empty. They are written only while
	// writeMu is held too.
	boundsMu    sync.RWMutex
	first, last uint64
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens (creating if needed) the store in dir on fs: vfs.Default in
// production, vfs.NewMem() in tests. Pebble's log lines go to logger (nil
// means slog.Default()).
func Open(dir string, fs vfs.FS, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	opts := &pebble.Options{
		CacheSize:          cacheBytes,
		FS:                 fs,
		Logger:             logbridge.Pebble(logger.With("component", "raft-log-pebble")),
		FormatMajorVersion: pebbleFormat,
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open raft log store in %s: %w", dir, err)
	}
	s := &Store{db: db}
	if s.first, s.last, err = s.seekBounds(); err != nil {
		return nil, errors.Join(fmt.Errorf("open raft log store in %s: %w", dir, err), db.Close())
	}
	return s, nil
}

// seekBounds finds the lowest and highest stored log index with one seek
// each; both are 0 for an empty log.
func (s *Store) seekBounds() (first, last uint64, err error) {
	lower, upper := logBounds()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	if it.First() {
		if first, err = logKeyIndex(it.Key()); err != nil {
			return 0, 0, err
		}
		if !it.Last() {
			return 0, 0, errors.Join(errors.New("raft log iterator found a first entry but no last one"), it.Error())
		}
		if last, err = logKeyIndex(it.Key()); err != nil {
			return 0, 0, err
		}
	}
	return first, last, it.Error()
}

// Close releases the store. Every acknowledged write is already in the
// synced WAL, so there is nothing to flush.
func (s *Store) Close() error { return s.db.Close() }

// FirstIndex returns the lowest stored log index, 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	s.boundsMu.RLock()
	defer s.boundsMu.RUnlock()
	return s.first, nil
}

// LastIndex returns the highest stored log index, 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) {
	s.boundsMu.RLock()
	defer s.boundsMu.RUnlock()
	return s.last, nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// if there is none, and an error wrapping ErrCorruptRecord (leaving log
// unchanged) if the stored record cannot be trusted.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	value, err := s.get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("read raft log entry %d: %w", index, err)
	}
	return decodeLog(index, value, log)
}

// get returns a copy of key's value, or pebble.ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) {
	value, closer, err := s.db.Get(key)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return slices.Clone(value), nil
}

// StoreLog stores one entry durably.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores entries durably in one batch: after a crash all of them
// are present or none is. An entry at an index already stored replaces it.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	b := s.db.NewBatch()
	defer b.Close()
	first, last := s.first, s.last
	for _, l := range logs {
		if l.Index == 0 {
			// Raft's indices start at 1; 0 means "empty log" in
			// FirstIndex and LastIndex and cannot also be an entry.
			return errors.New("store raft log entries: index 0 is not a valid log index")
		}
		key := logKey(l.Index)
		if err := b.Set(key, encodeLog(key, l), nil); err != nil {
			return fmt.Errorf("store raft log entry %d: %w", l.Index, err)
		}
		if first == 0 || l.Index < first {
			first = l.Index
		}
		last = max(last, l.Index)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store raft log entries %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	s.setBounds(first, last)
	return nil
}

// DeleteRange deletes the entries from `from` to `to`, inclusive, durably and
// at once. Raft uses it both to compact a prefix behind a snapshot and to
// cut a conflicting suffix; a range with no entries is a no-op.
func (s *Store) DeleteRange(from, to uint64) error {
	if from > to {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	start := logKey(from)
	end := logKey(to + 1)
	if to == ^uint64(0) {
		_, end = logBounds()
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(start, end, nil); err != nil {
		return fmt.Errorf("delete raft log entries %d..%d: %w", from, to, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("delete raft log entries %d..%d: %w", from, to, err)
	}

	first, last := s.first, s.last
	firstGone := first != 0 && from <= first && first <= to
	lastGone := last != 0 && from <= last && last <= to
	var err error
	switch {
	case firstGone && lastGone:
		// Every entry lies between first and last, so all are gone.
		first, last = 0, 0
	case firstGone:
		// last survives, so there is an entry after to: one seek finds it
		// without stepping over the deleted keys. Guessing to+1 instead
		// would be wrong after a gap (a log that starts again after a
		// snapshot), and Open would then disagree with the cache.
		if first, err = s.seekIndex(end, true); err != nil {
			first = to + 1
		}
	case lastGone:
		if last, err = s.seekIndex(start, false); err != nil {
			last = from - 1
		}
	}
	s.setBounds(first, last)
	if err != nil {
		// The deletion is committed; the bound set above is right for a
		// contiguous log, and Open recomputes both bounds from the data.
		return fmt.Errorf("deleted raft log entries %d..%d, but finding the new bounds failed: %w", from, to, err)
	}
	return nil
}

// seekIndex returns the index of the first log entry at or after key
// (forward) or the last entry before key (backward), or 0 if there is none.
func (s *Store) seekIndex(key []byte, forward bool) (uint64, error) {
	lower, upper := logBounds()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var ok bool
	if forward {
		ok = it.SeekGE(key)
	} else {
		ok = it.SeekLT(key)
	}
	if !ok {
		return 0, it.Error()
	}
	return logKeyIndex(it.Key())
}

func (s *Store) setBounds(first, last uint64) {
	if first == 0 || last == 0 {
		first, last = 0, 0
	}
	s.boundsMu.Lock()
	s.first, s.last = first, last
	s.boundsMu.Unlock()
}

// Set stores val under key durably. A nil val removes the key, so that Get
// reports it missing as raft's InmemStore does; an empty non-nil val is
// stored and read back as empty.
func (s *Store) Set(key []byte, val []byte) error {
	k := stableKey(bytesPrefix, key)
	var err error
	if val == nil {
		err = s.db.Delete(k, pebble.Sync)
	} else {
		err = s.db.Set(k, frame(k, val), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("store raft stable value %q: %w", key, err)
	}
	return nil
}

// Get returns the value Set under key, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	k := stableKey(bytesPrefix, key)
	value, err := s.get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read raft stable value %q: %w", key, err)
	}
	return decodeBytes(k, value)
}

// SetUint64 stores val under key durably.
func (s *Store) SetUint64(key []byte, val uint64) error {
	k := stableKey(uint64Prefix, key)
	if err := s.db.Set(k, encodeUint64(k, val), pebble.Sync); err != nil {
		return fmt.Errorf("store raft stable integer %q: %w", key, err)
	}
	return nil
}

// GetUint64 returns the value SetUint64 stored under key, or 0 and no error
// if there is none.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	k := stableKey(uint64Prefix, key)
	value, err := s.get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read raft stable integer %q: %w", key, err)
	}
	return decodeUint64(k, value)
}

// pebbleFormat is the Pebble format major version this store is created
// with, pinned rather than pebble.FormatNewest so that a Pebble upgrade does
// not rewrite the on-disk format under a node that may be rolled back (the
// replica store pins the same one).
const pebbleFormat = pebble.FormatValueSeparation
