package replica

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// ErrCorruptRecord reports a stored record or replication frame whose
// checksum or structure is wrong. It means a disk, a link or a bug damaged
// data; the node refuses the damaged bytes rather than serve or store them.
var ErrCorruptRecord = errors.New("corrupt record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const recordFormat = 1

// Every record ends with a CRC-32C of everything before it.
func sealed(dst []byte, start int) []byte {
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func unseal(src []byte, what string) ([]byte, error) {
	if len(src) < 1+4 {
		return nil, fmt.Errorf("%w: %s of %d bytes is too short", ErrCorruptRecord, what, len(src))
	}
	body, sum := src[:len(src)-4], binary.BigEndian.Uint32(src[len(src)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: %s checksum mismatch", ErrCorruptRecord, what)
	}
	if body[0] != recordFormat {
		return nil, fmt.Errorf("%w: %s has unknown format %d", ErrCorruptRecord, what, body[0])
	}
	return body[1:], nil
}

// encodeVersion lays out a stored version as
// [format][kind][timestamp][uvarint seq][vector][uvarint len][value][crc32c].
func encodeVersion(dst []byte, v *causal.Version) []byte {
	start := len(dst)
	dst = append(dst, recordFormat, byte(v.Kind))
	dst = clocks.AppendTimestamp(dst, v.Timestamp)
	dst = binary.AppendUvarint(dst, v.Seq)
	dst = clocks.AppendVector(dst, v.Vector)
	dst = binary.AppendUvarint(dst, uint64(len(v.Value)))
	dst = append(dst, v.Value...)
	return sealed(dst, start)
}

// decodeVersion parses a stored version; the returned Value aliases src.
func decodeVersion(src []byte) (causal.Version, error) {
	var v causal.Version
	body, err := unseal(src, "version")
	if err != nil {
		return v, err
	}
	v.Kind, body, err = readKind(body)
	if err != nil {
		return v, err
	}
	if v.Timestamp, v.Seq, v.Vector, body, err = readHeader(body); err != nil {
		return v, err
	}
	length, n := binary.Uvarint(body)
	if n <= 0 || uint64(len(body)-n) != length {
		return v, fmt.Errorf("%w: bad value length", ErrCorruptRecord)
	}
	if length > 0 {
		v.Value = body[n:]
	}
	return v, nil
}

func readKind(b []byte) (causal.Kind, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: missing kind", ErrCorruptRecord)
	}
	k := causal.Kind(b[0])
	if k != causal.KindValue && k != causal.KindTombstone {
		return 0, nil, fmt.Errorf("%w: unknown kind %d", ErrCorruptRecord, k)
	}
	return k, b[1:], nil
}

// readHeader reads the timestamp, sequence number and vector that every
// version, write and outcome record carries.
func readHeader(b []byte) (ts clocks.Timestamp, seq uint64, vec clocks.Vector, rest []byte, err error) {
	if ts, b, err = clocks.ReadTimestamp(b); err != nil {
		return ts, 0, nil, nil, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	var n int
	if seq, n = binary.Uvarint(b); n <= 0 || seq == 0 {
		return ts, 0, nil, nil, fmt.Errorf("%w: bad sequence number", ErrCorruptRecord)
	}
	if vec, b, err = clocks.ReadVector(b[n:]); err != nil {
		return ts, 0, nil, nil, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	return ts, seq, vec, b, nil
}

// MaxWriteOps bounds the keys of one write (WriteMany).
const MaxWriteOps = 128

// encodeWrite is the replication frame of a write, also stored as its
// replication log entry:
// [format][timestamp][uvarint seq][vector][request id 16][uvarint ops]
// then per op [kind][uvarint len][key][uvarint len][value], then [crc32c].
func encodeWrite(dst []byte, w *causal.Write) []byte {
	start := len(dst)
	dst = append(dst, recordFormat)
	dst = clocks.AppendTimestamp(dst, w.Timestamp)
	dst = binary.AppendUvarint(dst, w.Seq)
	dst = clocks.AppendVector(dst, w.Vector)
	dst = append(dst, w.RequestID[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(w.Ops)))
	for _, op := range w.Ops {
		dst = append(dst, byte(op.Kind))
		dst = binary.AppendUvarint(dst, uint64(len(op.Key)))
		dst = append(dst, op.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(op.Value)))
		dst = append(dst, op.Value...)
	}
	return sealed(dst, start)
}

// decodeWrite parses a replication frame. Keys and values are copied, so the
// write outlives src. Every field is validated: a frame that passes is one
// the node could have produced.
func decodeWrite(src []byte) (*causal.Write, error) {
	body, err := unseal(src, "write")
	if err != nil {
		return nil, err
	}
	w := &causal.Write{}
	if w.Timestamp, w.Seq, w.Vector, body, err = readHeader(body); err != nil {
		return nil, err
	}
	if w.Timestamp.Region == "" || w.Vector.Get(w.Timestamp.Region) != w.Seq {
		return nil, fmt.Errorf("%w: write %d of %q carries vector %v", ErrCorruptRecord, w.Seq, w.Timestamp.Region, w.Vector)
	}
	if len(body) < len(w.RequestID) {
		return nil, fmt.Errorf("%w: truncated request id", ErrCorruptRecord)
	}
	body = body[copy(w.RequestID[:], body):]
	count, n := binary.Uvarint(body)
	if n <= 0 || count == 0 || count > MaxWriteOps {
		return nil, fmt.Errorf("%w: bad op count", ErrCorruptRecord)
	}
	body = body[n:]
	w.Ops = make([]causal.Op, 0, count)
	for range count {
		var op causal.Op
		if op.Kind, body, err = readKind(body); err != nil {
			return nil, err
		}
		var key, value []byte
		if key, body, err = readBytes(body, MaxKeyBytes); err != nil {
			return nil, err
		}
		if value, body, err = readBytes(body, MaxValueBytes); err != nil {
			return nil, err
		}
		if len(key) == 0 || (op.Kind == causal.KindTombstone && len(value) > 0) {
			return nil, fmt.Errorf("%w: bad op", ErrCorruptRecord)
		}
		op.Key = string(key)
		if len(value) > 0 {
			op.Value = append([]byte(nil), value...)
		}
		w.Ops = append(w.Ops, op)
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: write has trailing bytes", ErrCorruptRecord)
	}
	return w, nil
}

func readBytes(b []byte, limit int) (field, rest []byte, err error) {
	length, n := binary.Uvarint(b)
	if n <= 0 || length > uint64(limit) || uint64(len(b)-n) < length {
		return nil, nil, fmt.Errorf("%w: bad field length", ErrCorruptRecord)
	}
	return b[n : n+int(length)], b[n+int(length):], nil
}

// opsDigest identifies what a write did, so a retry (same request id, same
// ops) is told apart from a different write that reuses the id.
func opsDigest(ops []causal.Op) [sha256.Size]byte {
	h := sha256.New()
	var buf []byte
	for _, op := range ops {
		buf = append(buf[:0], byte(op.Kind))
		buf = binary.AppendUvarint(buf, uint64(len(op.Key)))
		buf = append(buf, op.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
		h.Write(buf)
		h.Write(op.Value)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// requestOutcome is what a request id remembers: the write it produced.
type requestOutcome struct {
	Digest    [sha256.Size]byte
	Timestamp clocks.Timestamp
	Seq       uint64
	Vector    clocks.Vector
}

func encodeOutcome(o *requestOutcome) []byte {
	dst := []byte{recordFormat}
	dst = clocks.AppendTimestamp(dst, o.Timestamp)
	dst = binary.AppendUvarint(dst, o.Seq)
	dst = clocks.AppendVector(dst, o.Vector)
	dst = append(dst, o.Digest[:]...)
	return sealed(dst, 0)
}

func decodeOutcome(src []byte) (requestOutcome, error) {
	var o requestOutcome
	body, err := unseal(src, "request outcome")
	if err != nil {
		return o, err
	}
	if o.Timestamp, o.Seq, o.Vector, body, err = readHeader(body); err != nil {
		return o, err
	}
	if len(body) != len(o.Digest) {
		return o, fmt.Errorf("%w: request outcome digest", ErrCorruptRecord)
	}
	copy(o.Digest[:], body)
	return o, nil
}

// nodeState is persisted with every write batch: the vector of writes applied
// here and the greatest timestamp issued, so a restart resumes both.
type nodeState struct {
	Vector clocks.Vector
	Clock  clocks.Timestamp
}

func encodeState(dst []byte, s *nodeState) []byte {
	start := len(dst)
	dst = append(dst, recordFormat)
	dst = clocks.AppendTimestamp(dst, s.Clock)
	dst = clocks.AppendVector(dst, s.Vector)
	return sealed(dst, start)
}

func decodeState(src []byte) (nodeState, error) {
	var s nodeState
	body, err := unseal(src, "node state")
	if err != nil {
		return s, err
	}
	if s.Clock, body, err = clocks.ReadTimestamp(body); err != nil {
		return s, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if s.Vector, body, err = clocks.ReadVector(body); err != nil {
		return s, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if len(body) != 0 {
		return s, fmt.Errorf("%w: node state has trailing bytes", ErrCorruptRecord)
	}
	return s, nil
}
