package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// encoder and decoder implement the one binary encoding used for commands,
// stored results and record values: varints for integers, a uvarint length
// before every string or byte slice. It is hand-written rather than JSON or
// protobuf because the outcome table compares encodings byte for byte, and
// both of those leave freedom (field order, omitted defaults) that this
// package would then have to pin down anyway.
type encoder struct{ buf []byte }

func (e *encoder) u8(v uint8)       { e.buf = append(e.buf, v) }
func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) u64(v uint64)     { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) raw(b []byte)     { e.buf = append(e.buf, b...) }
func (e *encoder) bool(v bool)      { e.u8(boolByte(v)) }

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// decoder reads what encoder wrote. The first error sticks; later reads
// return zero values, and finish reports it. Every length is checked
// against the bytes that remain, so corrupt input cannot cause a large
// allocation.
type decoder struct {
	buf []byte
	err error
}

var errTruncated = errors.New("truncated")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.buf = nil
}

func (d *decoder) u8() uint8 {
	if len(d.buf) < 1 {
		d.fail(errTruncated)
		return 0
	}
	v := d.buf[0]
	d.buf = d.buf[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(errors.New("boolean is neither 0 nor 1"))
	return false
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(errors.New("bad or truncated varint"))
		return 0
	}
	if n != uvarintLen(v) {
		d.fail(errors.New("non-canonical varint"))
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(errors.New("bad or truncated varint"))
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		d.fail(errors.New("non-canonical varint"))
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.buf) < 8 {
		d.fail(errTruncated)
		return 0
	}
	v := binary.BigEndian.Uint64(d.buf)
	d.buf = d.buf[8:]
	return v
}

// take returns the next n bytes without copying.
func (d *decoder) take(n uint64) []byte {
	if n > uint64(len(d.buf)) {
		d.fail(fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.buf)))
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

// bytes returns a copy, nil when empty.
func (d *decoder) bytes() []byte { return cloneBytes(d.take(d.uvarint())) }
func (d *decoder) str() string   { return string(d.take(d.uvarint())) }

// finish reports the first error, or trailing bytes.
func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.buf))
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// cloneBytes copies b; empty becomes nil, so that "no value" has one
// representation in results compared across replicas.
func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
