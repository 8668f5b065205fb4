package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// Key prefixes. Each kind of record has its own prefix, so a range over one
// kind never meets another.
const (
	// logPrefix is followed by the entry's index, big-endian, so that
	// Pebble's byte order is index order.
	logPrefix byte = 0x01
	// bytesPrefix is followed by a Set/Get key.
	bytesPrefix byte = 0x02
	// uint64Prefix is followed by a SetUint64/GetUint64 key.
	uint64Prefix byte = 0x03
)

// logKeyLen is the length of every log key: the prefix and the index.
const logKeyLen = 1 + 8

// formatVersion is written as the first byte of every value. A reader
// refuses versions it does not know rather than guessing at their layout.
const formatVersion byte = 1

// headerLen is the version byte and the checksum.
const headerLen = 1 + 4

// logBodyFixedLen is the fixed-width part of a log body: index, term, type,
// AppendedAt seconds and nanoseconds. The two length-prefixed byte strings
// follow it.
const logBodyFixedLen = 8 + 8 + 1 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptRecord is wrapped by every error about a stored record that
// cannot be trusted: unknown format version, checksum mismatch, bad length,
// or a log entry stored under another entry's index. The store does not
// repair such a record; the node should stop and be restored from a peer.
var ErrCorruptRecord = errors.New("logstore: corrupt record")

func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	k[0] = logPrefix
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// logKeyIndex returns the index in a log key, or an error if key is not a
// well-formed log key.
func logKeyIndex(key []byte) (uint64, error) {
	if len(key) != logKeyLen || key[0] != logPrefix {
		return 0, fmt.Errorf("%w: log key %x is not a prefix byte and an 8-byte index", ErrCorruptRecord, key)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

// logBounds are the lower (inclusive) and upper (exclusive) bounds of all
// log keys.
func logBounds() (lower, upper []byte) {
	return []byte{logPrefix}, []byte{logPrefix + 1}
}

func stableKey(prefix byte, key []byte) []byte {
	k := make([]byte, 0, 1+len(key))
	k = append(k, prefix)
	return append(k, key...)
}

// frame returns body behind a header of the format version and the
// checksum of key and body. The checksum covers the key so that a value
// copied under another key is refused too.
func frame(key, body []byte) []byte {
	v := make([]byte, headerLen+len(body))
	v[0] = formatVersion
	copy(v[headerLen:], body)
	binary.BigEndian.PutUint32(v[1:headerLen], checksum(key, body))
	return v
}

func checksum(key, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
}

// unframe checks value's version and checksum and returns its body, which
// aliases value. what names the record in error messages.
func unframe(key, value []byte, what string) ([]byte, error) {
	if len(value) < headerLen {
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than the %d-byte header", ErrCorruptRecord, what, len(value), headerLen)
	}
	if value[0] != formatVersion {
		return nil, fmt.Errorf("%w: %s has format version %d, this build reads only version %d (damaged, or written by a newer Causeway)",
			ErrCorruptRecord, what, value[0], formatVersion)
	}
	body := value[headerLen:]
	stored := binary.BigEndian.Uint32(value[1:headerLen])
	if computed := checksum(key, body); stored != computed {
		return nil, fmt.Errorf("%w: %s fails its checksum (stored %08x, computed %08x)", ErrCorruptRecord, what, stored, computed)
	}
	return body, nil
}

// encodeLog returns the stored value of l, framed for key.
func encodeLog(key []byte, l *raft.Log) []byte {
	body := make([]byte, logBodyFixedLen, logBodyFixedLen+2*binary.MaxVarintLen64+len(l.Data)+len(l.Extensions))
	binary.BigEndian.PutUint64(body[0:], l.Index)
	binary.BigEndian.PutUint64(body[8:], l.Term)
	body[16] = byte(l.Type)
	// Seconds and nanoseconds rather than UnixNano: UnixNano overflows
	// outside 1678..2262, and the zero time is far outside that.
	binary.BigEndian.PutUint64(body[17:], uint64(l.AppendedAt.Unix()))
	binary.BigEndian.PutUint32(body[25:], uint32(l.AppendedAt.Nanosecond()))
	body = binary.AppendUvarint(body, uint64(len(l.Data)))
	body = append(body, l.Data...)
	body = binary.AppendUvarint(body, uint64(len(l.Extensions)))
	body = append(body, l.Extensions...)
	return frame(key, body)
}

// decodeLog decodes the stored value of the log entry at index into l. It
// owns value: Data and Extensions alias it. On error l is left unchanged.
func decodeLog(index uint64, value []byte, l *raft.Log) error {
	key := logKey(index)
	what := fmt.Sprintf("log entry %d", index)
	body, err := unframe(key, value, what)
	if err != nil {
		return err
	}
	if len(body) < logBodyFixedLen {
		return fmt.Errorf("%w: %s has a %d-byte body, shorter than the %d fixed bytes", ErrCorruptRecord, what, len(body), logBodyFixedLen)
	}
	var out raft.Log
	out.Index = binary.BigEndian.Uint64(body[0:])
	out.Term = binary.BigEndian.Uint64(body[8:])
	out.Type = raft.LogType(body[16])
	sec := int64(binary.BigEndian.Uint64(body[17:]))
	nsec := binary.BigEndian.Uint32(body[25:])
	if nsec >= uint32(time.Second) {
		return fmt.Errorf("%w: %s has AppendedAt nanoseconds %d, not below one second", ErrCorruptRecord, what, nsec)
	}
	out.AppendedAt = time.Unix(sec, int64(nsec)).UTC()
	rest := body[logBodyFixedLen:]
	if out.Data, rest, err = readBytes(rest); err != nil {
		return fmt.Errorf("%w: %s data: %v", ErrCorruptRecord, what, err)
	}
	if out.Extensions, rest, err = readBytes(rest); err != nil {
		return fmt.Errorf("%w: %s extensions: %v", ErrCorruptRecord, what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s has %d unexpected bytes after its fields", ErrCorruptRecord, what, len(rest))
	}
	if out.Index != index {
		return fmt.Errorf("%w: %s is stored under index %d but holds index %d", ErrCorruptRecord, what, index, out.Index)
	}
	*l = out
	return nil
}

// readBytes reads one uvarint-length-prefixed byte string from b. An empty
// string is returned as nil. The result's capacity is its length, so that a
// caller appending to Data cannot overwrite Extensions.
func readBytes(b []byte) (s, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, errors.New("bad length prefix")
	}
	b = b[w:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d exceeds the %d bytes left", n, len(b))
	}
	if n == 0 {
		return nil, b, nil
	}
	return b[:n:n], b[n:], nil
}

func encodeUint64(key []byte, v uint64) []byte {
	return frame(key, binary.BigEndian.AppendUint64(nil, v))
}

func decodeUint64(key, value []byte) (uint64, error) {
	what := fmt.Sprintf("stable integer %q", key[1:])
	body, err := unframe(key, value, what)
	if err != nil {
		return 0, err
	}
	if len(body) != 8 {
		return 0, fmt.Errorf("%w: %s has %d bytes, want 8", ErrCorruptRecord, what, len(body))
	}
	return binary.BigEndian.Uint64(body), nil
}

// decodeBytes returns the stored bytes value; it owns value and the result
// aliases it. The result is never nil: a stored empty value is a present
// key (a nil Set removes the key instead).
func decodeBytes(key, value []byte) ([]byte, error) {
	body, err := unframe(key, value, fmt.Sprintf("stable value %q", key[1:]))
	if err != nil {
		return nil, err
	}
	return body[:len(body):len(body)], nil
}
