package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Snapshot stream format, version 1:
//
//	header   "CWLS" (4 bytes), format version (1 byte), last applied index (u64 big-endian)
//	records  tag 1, uvarint key length, key, uvarint value length, value   (in key order)
//	end      tag 0, record count (u64 big-endian)
//	trailer  CRC-32C (Castagnoli) of every byte before it (u32 big-endian)
//
// The records are every key of the machine's Pebble database, metadata
// included, so a restored machine is byte-for-byte the one that was
// snapshotted.
const (
	snapshotMagic    = "CWLS"
	snapshotFormatV1 = 1

	snapshotTagEnd    = 0
	snapshotTagRecord = 1

	// Bounds on one record, far above what Apply writes (a key is at most
	// a prefix, a varint and two 512-byte names; a value at most a 64 KiB
	// register or an outcome holding one), so a corrupt length is refused
	// before it becomes an allocation.
	maxSnapshotKeyBytes   = 4 << 10
	maxSnapshotValueBytes = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot is wrapped by Restore's errors about the stream itself.
var ErrCorruptSnapshot = errors.New("corrupt linear state snapshot")

// snapshot is a Pebble snapshot of the applied state. Taking it is cheap;
// Persist does the I/O, concurrently with later Applies.
type snapshot struct {
	m           *Machine
	snap        *pebble.Snapshot
	lastApplied uint64
	once        sync.Once
}

// Snapshot captures the applied state for raft. It must be released.
func (m *Machine) Snapshot() (raft.FSMSnapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("linear state machine is closed")
	}
	s := &snapshot{m: m, snap: m.db.NewSnapshot(), lastApplied: m.applied.index}
	m.snaps[s] = struct{}{}
	return s, nil
}

// Persist writes the snapshot stream to sink and closes it, or cancels it
// on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist linear state snapshot at index %d: %w", s.lastApplied, err)
	}
	return sink.Close()
}

// Release frees the Pebble snapshot. Calling it again does nothing.
func (s *snapshot) Release() {
	s.once.Do(func() {
		s.m.mu.Lock()
		delete(s.m.snaps, s)
		s.m.mu.Unlock()
		_ = s.snap.Close()
	})
}

func (s *snapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	sum := crc32.New(castagnoli)
	out := io.MultiWriter(bw, sum)
	var e encoder
	flush := func() error {
		_, err := out.Write(e.buf)
		e.buf = e.buf[:0]
		return err
	}

	e.raw([]byte(snapshotMagic))
	e.u8(snapshotFormatV1)
	e.u64(s.lastApplied)
	if err := flush(); err != nil {
		return err
	}
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: keyspaceStart, UpperBound: keyspaceEnd})
	if err != nil {
		return err
	}
	var count uint64
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		e.u8(snapshotTagRecord)
		e.bytes(it.Key())
		e.bytes(v)
		if err := flush(); err != nil {
			_ = it.Close()
			return err
		}
		count++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	e.u8(snapshotTagEnd)
	e.u64(count)
	if err := flush(); err != nil {
		return err
	}
	if _, err := bw.Write(binary.BigEndian.AppendUint32(nil, sum.Sum32())); err != nil {
		return err
	}
	return bw.Flush()
}

// Restore replaces the state with a snapshot stream. It reads and verifies
// the whole stream before changing anything. If the snapshot's last
// applied index is at or below LastApplied, the state is kept: this
// machine is already past it, which is the usual case when raft restores
// its latest snapshot at start while the Pebble state survived. Otherwise
// all state is replaced in one synced batch. A corrupt stream is refused
// with an error wrapping ErrCorruptSnapshot and the state is untouched.
// Restore does not close r; raft does.
func (m *Machine) Restore(r io.ReadCloser) error {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 64<<10), sum: crc32.New(castagnoli)}
	header := sr.full(len(snapshotMagic) + 1 + 8)
	if sr.err != nil {
		return sr.fail("header")
	}
	if string(header[:4]) != snapshotMagic {
		return fmt.Errorf("%w: not a linear state snapshot (magic %q)", ErrCorruptSnapshot, header[:4])
	}
	if header[4] != snapshotFormatV1 {
		return fmt.Errorf("%w: unknown snapshot format version %d (this node understands %d); upgrade this node",
			ErrCorruptSnapshot, header[4], snapshotFormatV1)
	}
	index := binary.BigEndian.Uint64(header[5:])
	current := m.applied.index
	replace := index > current

	var b *pebble.Batch
	if replace {
		b = m.db.NewBatch()
		defer b.Close()
		if err := b.DeleteRange(keyspaceStart, keyspaceEnd, nil); err != nil {
			return err
		}
	}
	var prev []byte
	var count uint64
	sawApplied := false
	for {
		tag := sr.byte()
		if sr.err != nil {
			return sr.fail(fmt.Sprintf("record %d", count))
		}
		if tag == snapshotTagEnd {
			break
		}
		if tag != snapshotTagRecord {
			return fmt.Errorf("%w: record %d has unknown tag %d", ErrCorruptSnapshot, count, tag)
		}
		key := sr.lengthPrefixed(maxSnapshotKeyBytes)
		value := sr.lengthPrefixed(maxSnapshotValueBytes)
		if sr.err != nil {
			return sr.fail(fmt.Sprintf("record %d", count))
		}
		if len(key) == 0 || !knownPrefix(key[0]) {
			return fmt.Errorf("%w: record %d has a key (%x) this machine never writes", ErrCorruptSnapshot, count, key)
		}
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("%w: record %d is out of key order", ErrCorruptSnapshot, count)
		}
		switch {
		case bytes.Equal(key, keyApplied):
			if !bytes.Equal(value, u64Bytes(index)) {
				return fmt.Errorf("%w: its last applied record disagrees with its header (index %d)", ErrCorruptSnapshot, index)
			}
			sawApplied = true
		case bytes.Equal(key, keyFormat):
			if !bytes.Equal(value, u64Bytes(storageFormat)) {
				return fmt.Errorf("%w: it holds state in a storage format other than %d", ErrCorruptSnapshot, storageFormat)
			}
		}
		if b != nil {
			if err := b.Set(key, value, nil); err != nil {
				return err
			}
		}
		prev = key
		count++
	}
	recorded := binary.BigEndian.Uint64(sr.full(8))
	want := sr.sum.Sum32()
	trailer := sr.rawFull(4)
	if sr.err != nil {
		return sr.fail("trailer")
	}
	if recorded != count {
		return fmt.Errorf("%w: it holds %d records but says %d", ErrCorruptSnapshot, count, recorded)
	}
	if got := binary.BigEndian.Uint32(trailer); got != want {
		return fmt.Errorf("%w: checksum %08x does not match its contents (%08x)", ErrCorruptSnapshot, got, want)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%w: bytes follow its trailer", ErrCorruptSnapshot)
		}
		return fmt.Errorf("read linear state snapshot: %w", err)
	}
	if index > 0 && !sawApplied {
		return fmt.Errorf("%w: it has no last applied record", ErrCorruptSnapshot)
	}

	if !replace {
		m.logger.Info("kept linear state: it is at or past the snapshot",
			"snapshot_index", index, "last_applied", current)
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("restore linear state snapshot at index %d: %w", index, err)
	}
	if err := m.load(); err != nil {
		return fmt.Errorf("restore linear state snapshot at index %d: %w", index, err)
	}
	m.logger.Info("restored linear state from snapshot",
		"snapshot_index", index, "previous_last_applied", current, "records", count)
	return nil
}

// snapshotReader reads the stream and checksums what it reads. The first
// error sticks.
type snapshotReader struct {
	r   *bufio.Reader
	sum hash.Hash32
	err error
}

func (s *snapshotReader) fail(where string) error {
	if errors.Is(s.err, io.EOF) || errors.Is(s.err, io.ErrUnexpectedEOF) || errors.Is(s.err, ErrCorruptSnapshot) {
		return fmt.Errorf("%w: %s: %w", ErrCorruptSnapshot, where, s.err)
	}
	return fmt.Errorf("read linear state snapshot: %s: %w", where, s.err)
}

// rawFull reads n bytes without checksumming them.
func (s *snapshotReader) rawFull(n int) []byte {
	if s.err != nil {
		return make([]byte, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		s.err = err
	}
	return b
}

func (s *snapshotReader) full(n int) []byte {
	b := s.rawFull(n)
	if s.err == nil {
		s.sum.Write(b)
	}
	return b
}

func (s *snapshotReader) byte() byte { return s.full(1)[0] }

// ReadByte lets binary.ReadUvarint read through the checksum.
func (s *snapshotReader) ReadByte() (byte, error) {
	b := s.byte()
	return b, s.err
}

func (s *snapshotReader) lengthPrefixed(limit uint64) []byte {
	if s.err != nil {
		return nil
	}
	n, err := binary.ReadUvarint(s)
	if err != nil {
		if s.err == nil {
			s.err = fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
		return nil
	}
	if n > limit {
		s.err = fmt.Errorf("%w: length %d exceeds %d", ErrCorruptSnapshot, n, limit)
		return nil
	}
	return s.full(int(n))
}
