package clocks

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// The binary forms below are used inside causal tokens and by storage and
// replication records. They are canonical: a value has exactly one encoding
// (minimal varints, vector entries sorted, zero entries omitted) and the
// readers reject every other byte string. Canonical bytes let records be
// compared and deduplicated by their bytes, and let a token be re-encoded to
// the same string it was decoded from.

// AppendTimestamp appends the binary form of t to dst: uvarint WallMs,
// uvarint Logical, uvarint length of Region, Region bytes.
func AppendTimestamp(dst []byte, t Timestamp) []byte {
	dst = binary.AppendUvarint(dst, t.WallMs)
	dst = binary.AppendUvarint(dst, uint64(t.Logical))
	return appendString(dst, t.Region)
}

// ReadTimestamp decodes a timestamp written by AppendTimestamp from the start
// of src and returns it with the bytes that follow. An empty region is
// accepted (the zero Timestamp has one); a non-empty one must be valid. Errors
// wrap ErrCorrupt.
func ReadTimestamp(src []byte) (Timestamp, []byte, error) {
	wall, rest, err := readUvarint(src, "timestamp wall time")
	if err != nil {
		return Timestamp{}, nil, err
	}
	logical, rest, err := readUvarint(rest, "timestamp logical counter")
	if err != nil {
		return Timestamp{}, nil, err
	}
	if logical > math.MaxUint32 {
		return Timestamp{}, nil, fmt.Errorf("%w: timestamp logical counter %d does not fit in 32 bits", ErrCorrupt, logical)
	}
	region, rest, err := readString(rest, "timestamp region")
	if err != nil {
		return Timestamp{}, nil, err
	}
	if region != "" {
		if err := ValidateRegion(region); err != nil {
			return Timestamp{}, nil, fmt.Errorf("%w: timestamp region: %w", ErrCorrupt, err)
		}
	}
	return Timestamp{WallMs: wall, Logical: uint32(logical), Region: region}, rest, nil
}

// AppendVector appends the binary form of v to dst: uvarint number of
// entries, then for each non-zero entry in increasing region order the
// uvarint length of the region name, its bytes, and the uvarint sequence
// number. Zero entries are omitted, so equal vectors encode identically.
//
// AppendVector does not validate region names or count entries; use
// Vector.Validate for vectors that did not come from a decoder or a Clock.
func AppendVector(dst []byte, v Vector) []byte {
	// Every replicated write and every token encodes a vector, and real
	// vectors have a handful of entries: sorting the names in a stack array
	// saves an allocation per call. Larger vectors spill to the heap.
	var buf [8]string
	regions := v.sortedRegions(buf[:])
	dst = binary.AppendUvarint(dst, uint64(len(regions)))
	for _, r := range regions {
		dst = appendString(dst, r)
		dst = binary.AppendUvarint(dst, v[r])
	}
	return dst
}

// ReadVector decodes a vector written by AppendVector from the start of src
// and returns it with the bytes that follow. It rejects more than MaxRegions
// entries, invalid region names, regions that are duplicated or out of order,
// and zero sequence numbers: none of them can come from AppendVector, and
// accepting them would give one vector several encodings. The result is never
// nil. Errors wrap ErrCorrupt.
func ReadVector(src []byte) (Vector, []byte, error) {
	count, rest, err := readUvarint(src, "vector length")
	if err != nil {
		return nil, nil, err
	}
	if count > MaxRegions {
		// Checked before allocating: count comes from outside.
		return nil, nil, fmt.Errorf("%w: vector has %d entries, more than MaxRegions (%d)", ErrCorrupt, count, MaxRegions)
	}
	v := make(Vector, count)
	previous := ""
	for i := range int(count) {
		var region string
		region, rest, err = readString(rest, "vector region")
		if err != nil {
			return nil, nil, fmt.Errorf("vector entry %d: %w", i, err)
		}
		if err := ValidateRegion(region); err != nil {
			return nil, nil, fmt.Errorf("%w: vector entry %d: %w", ErrCorrupt, i, err)
		}
		if i > 0 && region == previous {
			return nil, nil, fmt.Errorf("%w: vector entry %d: duplicate region %q", ErrCorrupt, i, region)
		}
		if i > 0 && region < previous {
			return nil, nil, fmt.Errorf("%w: vector entry %d: region %q is out of order after %q", ErrCorrupt, i, region, previous)
		}
		var seq uint64
		seq, rest, err = readUvarint(rest, "vector sequence number")
		if err != nil {
			return nil, nil, fmt.Errorf("vector entry %d: %w", i, err)
		}
		if seq == 0 {
			return nil, nil, fmt.Errorf("%w: vector entry %d: region %q has sequence number 0, which is encoded by leaving the entry out", ErrCorrupt, i, region)
		}
		v[region] = seq
		previous = region
	}
	return v, rest, nil
}

// appendString appends a uvarint length and the bytes of s.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// readString reads what appendString wrote. Lengths above MaxRegionLen are
// rejected before slicing: the only strings in these encodings are region
// names.
func readString(src []byte, what string) (string, []byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || k != uvarintLen(n) {
		// The description is only built on failure: concatenating it up
		// front would cost an allocation per name read.
		return "", nil, uvarintError(what+" length", k)
	}
	rest := src[k:]
	if n > MaxRegionLen {
		return "", nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrCorrupt, what, n, MaxRegionLen)
	}
	if uint64(len(rest)) < n {
		return "", nil, fmt.Errorf("%w: %s is truncated (%d of %d bytes)", ErrCorrupt, what, len(rest), n)
	}
	return internRegion(rest[:n]), rest[n:], nil
}

// readUvarint reads a minimally encoded uvarint. encoding/binary accepts
// padded forms such as 0x80 0x00 for 0; rejecting them keeps the encoding
// canonical.
func readUvarint(src []byte, what string) (uint64, []byte, error) {
	x, n := binary.Uvarint(src)
	if n <= 0 || n != uvarintLen(x) {
		return 0, nil, uvarintError(what, n)
	}
	return x, src[n:], nil
}

// uvarintError describes why readUvarint rejected a uvarint, given the length
// binary.Uvarint returned for it.
func uvarintError(what string, n int) error {
	switch {
	case n == 0:
		return fmt.Errorf("%w: %s is truncated", ErrCorrupt, what)
	case n < 0:
		return fmt.Errorf("%w: %s overflows 64 bits", ErrCorrupt, what)
	}
	return fmt.Errorf("%w: %s is not minimally encoded", ErrCorrupt, what)
}

// uvarintLen is the length of the minimal uvarint encoding of x.
func uvarintLen(x uint64) int {
	return max(1, (bits.Len64(x)+6)/7)
}
