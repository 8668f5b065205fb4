package replica

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/clocks"
)

// Backups and restores reach Pebble here, through the Store, like every
// other access to a region's data.

// Checkpoint writes a consistent copy of the store, as of one instant,
// into dir, which must not exist: Pebble hard-links the immutable table
// files where it can and copies the rest, with the write-ahead log flushed
// first so that every batch committed before the call is in the copy. The
// node keeps serving meanwhile. Every batch the node commits carries its
// applied vector (nodeState), so the copy's own state record names exactly
// the writes it holds (ReadCheckpoint).
func (s *Store) Checkpoint(dir string) error {
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint the store into %s: %w", dir, err)
	}
	return nil
}

// CheckpointInfo is what a store's metadata says about it.
type CheckpointInfo struct {
	ClusterID uuid.UUID
	Region    string
	NodeID    string
	// Vector is the applied vector recorded with the last committed batch:
	// the writes the store holds.
	Vector clocks.Vector
	// Joining and Merging: the store was taken while its region joined, or
	// half way through a snapshot merge.
	Joining, Merging bool
	// RaftServerID is the node's Raft server id, if it was ever a voter.
	RaftServerID string
}

// checkpointCacheBytes sizes the block cache of a store opened only to
// read its metadata (ReadCheckpoint, PrepareRestored).
const checkpointCacheBytes = 8 << 20

// ReadCheckpoint opens the store in dir (a checkpoint, or a restored data
// directory), reads its metadata and closes it. Opening replays the store's
// write-ahead log, so the files in dir change: checksum them after.
func ReadCheckpoint(dir string) (CheckpointInfo, error) {
	s, err := OpenStore(dir, StoreOptions{CacheBytes: checkpointCacheBytes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return CheckpointInfo{}, err
	}
	info, err := s.checkpointInfo()
	return info, errors.Join(err, s.Close())
}

func (s *Store) checkpointInfo() (CheckpointInfo, error) {
	var (
		info CheckpointInfo
		err  error
	)
	get := func(key []byte) ([]byte, bool) {
		raw, found, gerr := s.meta(key)
		if gerr != nil && err == nil {
			err = gerr
		}
		return raw, found
	}
	raw, found := get(metaCluster)
	if !found {
		return info, fmt.Errorf("%w: the store holds no cluster id (not a Causeway data directory, or never opened by a node)", ErrCorruptRecord)
	}
	id, perr := uuid.FromBytes(raw)
	if perr != nil {
		return info, fmt.Errorf("%w: cluster id: %w", ErrCorruptRecord, perr)
	}
	info.ClusterID = id
	raw, _ = get(metaRegion)
	info.Region = string(raw)
	raw, _ = get(metaNode)
	info.NodeID = string(raw)
	raw, _ = get(metaRaftID)
	info.RaftServerID = string(raw)
	_, info.Joining = get(metaJoining)
	_, info.Merging = get(metaMerging)
	info.Vector = clocks.Vector{}
	if raw, found := get(metaState); found {
		st, derr := decodeState(raw)
		if derr != nil {
			return info, derr
		}
		info.Vector = st.Vector
	}
	return info, err
}

// PrepareRestored readies the store in dir, copied from a backup, to be
// started as its region again, and returns its metadata. The region is then
// behind on its own writes: every write it acknowledged after the backup
// lives only in the other regions, and a node that served at once would
// number its new writes after the backup's vector, reusing numbers those
// regions hold (causal.ErrLostWrites). So the store is marked joining, as a
// region created empty with --join is: at its start the node merges a
// snapshot of every other region, which gives back its own later writes and
// everything else the backup lacks, and only then serves (causal.Join).
//
// The node id is dropped, so that the node gossips under a new one (the old
// node may still be listed dead), and so is the Raft server id: the backup
// holds no Raft state, and a voter restored from it rejoins the linearizable
// tier as a new member, like a voter that lost its data directory.
func PrepareRestored(dir string) (CheckpointInfo, error) {
	s, err := OpenStore(dir, StoreOptions{CacheBytes: checkpointCacheBytes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return CheckpointInfo{}, err
	}
	info, err := s.checkpointInfo()
	if err == nil {
		wb := s.newWriteBatch()
		_ = wb.b.Set(metaJoining, nil, nil)
		wb.deleteMeta(metaNode)
		wb.deleteMeta(metaRaftID)
		err = wb.b.Commit(pebble.Sync)
		wb.release()
	}
	return info, errors.Join(err, s.Close())
}
