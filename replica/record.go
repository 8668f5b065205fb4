package replica

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/causewaydb/causeway/clocks"
)

// ErrCorruptRecord reports a stored record whose checksum or structure is
// wrong. It is never returned for client input; it means the disk or a bug
// damaged data, and the node refuses to serve the damaged record.
var ErrCorruptRecord = errors.New("corrupt record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const recordFormat = 1

// Kind says whether a version holds a value or records a deletion.
type Kind uint8

const (
	KindValue     Kind = 1
	KindTombstone Kind = 2
)

// Record is one stored version of a key. Its vector is the causal past of the
// write (O(regions) entries), so a reader's token can absorb it.
type Record struct {
	Kind      Kind
	Timestamp clocks.Timestamp // Lamport timestamp; Region is the origin region
	Seq       uint64           // position in the origin region's sequence of writes
	Vector    clocks.Vector    // causal past of the write, including {origin: Seq}
	Value     []byte
}

// encodeRecord lays out a record as
// [format][kind][timestamp][uvarint seq][vector][uvarint len][value][crc32c BE].
func encodeRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, recordFormat, byte(r.Kind))
	dst = clocks.AppendTimestamp(dst, r.Timestamp)
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = clocks.AppendVector(dst, r.Vector)
	dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
	dst = append(dst, r.Value...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeRecord parses a record; the returned Value aliases src.
func decodeRecord(src []byte) (Record, error) {
	var r Record
	if len(src) < 2+4 {
		return r, fmt.Errorf("%w: %d bytes is too short", ErrCorruptRecord, len(src))
	}
	body, sum := src[:len(src)-4], binary.BigEndian.Uint32(src[len(src)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return r, fmt.Errorf("%w: checksum mismatch", ErrCorruptRecord)
	}
	if body[0] != recordFormat {
		return r, fmt.Errorf("%w: unknown format %d", ErrCorruptRecord, body[0])
	}
	r.Kind = Kind(body[1])
	if r.Kind != KindValue && r.Kind != KindTombstone {
		return r, fmt.Errorf("%w: unknown kind %d", ErrCorruptRecord, r.Kind)
	}
	var err error
	rest := body[2:]
	if r.Timestamp, rest, err = clocks.ReadTimestamp(rest); err != nil {
		return r, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	var n int
	if r.Seq, n = binary.Uvarint(rest); n <= 0 {
		return r, fmt.Errorf("%w: bad sequence number", ErrCorruptRecord)
	}
	rest = rest[n:]
	if r.Vector, rest, err = clocks.ReadVector(rest); err != nil {
		return r, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	length, n := binary.Uvarint(rest)
	if n <= 0 || uint64(len(rest)-n) != length {
		return r, fmt.Errorf("%w: bad value length", ErrCorruptRecord)
	}
	r.Value = rest[n:]
	return r, nil
}

// requestOutcome is what a request id remembers: the write it produced, and
// a digest of the value, so a retry is told apart from a different write that
// reuses the id.
type requestOutcome struct {
	Key       string
	Kind      Kind
	Digest    [sha256.Size]byte
	Timestamp clocks.Timestamp
	Seq       uint64
	Vector    clocks.Vector
}

func encodeOutcome(o *requestOutcome) []byte {
	dst := []byte{recordFormat, byte(o.Kind)}
	dst = binary.AppendUvarint(dst, uint64(len(o.Key)))
	dst = append(dst, o.Key...)
	dst = clocks.AppendTimestamp(dst, o.Timestamp)
	dst = binary.AppendUvarint(dst, o.Seq)
	dst = clocks.AppendVector(dst, o.Vector)
	dst = append(dst, o.Digest[:]...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

func decodeOutcome(src []byte) (requestOutcome, error) {
	var o requestOutcome
	if len(src) < 2+4 {
		return o, fmt.Errorf("%w: request record too short", ErrCorruptRecord)
	}
	body, sum := src[:len(src)-4], binary.BigEndian.Uint32(src[len(src)-4:])
	if crc32.Checksum(body, castagnoli) != sum || body[0] != recordFormat {
		return o, fmt.Errorf("%w: request record checksum or format", ErrCorruptRecord)
	}
	o.Kind = Kind(body[1])
	rest := body[2:]
	klen, n := binary.Uvarint(rest)
	if n <= 0 || uint64(len(rest)-n) < klen {
		return o, fmt.Errorf("%w: request record key", ErrCorruptRecord)
	}
	o.Key = string(rest[n : n+int(klen)])
	rest = rest[n+int(klen):]
	var err error
	if o.Timestamp, rest, err = clocks.ReadTimestamp(rest); err != nil {
		return o, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if o.Seq, n = binary.Uvarint(rest); n <= 0 {
		return o, fmt.Errorf("%w: request record seq", ErrCorruptRecord)
	}
	if o.Vector, rest, err = clocks.ReadVector(rest[n:]); err != nil {
		return o, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if len(rest) < len(o.Digest) {
		return o, fmt.Errorf("%w: request record digest", ErrCorruptRecord)
	}
	rest = rest[copy(o.Digest[:], rest):]
	if len(rest) != 0 {
		return o, fmt.Errorf("%w: request record has trailing bytes", ErrCorruptRecord)
	}
	return o, nil
}

// nodeState is persisted with every write batch: the vector of writes applied
// here and the greatest timestamp issued, so a restart resumes both.
type nodeState struct {
	Vector clocks.Vector
	Clock  clocks.Timestamp
}

func encodeState(s *nodeState) []byte {
	dst := []byte{recordFormat}
	dst = clocks.AppendTimestamp(dst, s.Clock)
	dst = clocks.AppendVector(dst, s.Vector)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

func decodeState(src []byte) (nodeState, error) {
	var s nodeState
	if len(src) < 1+4 {
		return s, fmt.Errorf("%w: state record too short", ErrCorruptRecord)
	}
	body, sum := src[:len(src)-4], binary.BigEndian.Uint32(src[len(src)-4:])
	if crc32.Checksum(body, castagnoli) != sum || body[0] != recordFormat {
		return s, fmt.Errorf("%w: state record checksum or format", ErrCorruptRecord)
	}
	var err error
	rest := body[1:]
	if s.Clock, rest, err = clocks.ReadTimestamp(rest); err != nil {
		return s, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if s.Vector, rest, err = clocks.ReadVector(rest); err != nil {
		return s, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if len(rest) != 0 {
		return s, fmt.Errorf("%w: state record has trailing bytes", ErrCorruptRecord)
	}
	return s, nil
}
