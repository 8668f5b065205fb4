package clocks

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Timestamp is a hybrid logical clock timestamp issued by one region.
//
// Timestamps are totally ordered by WallMs, then Logical, then Region. The
// region tie-break makes the order total across regions, which
// last-writer-wins needs: two regions can issue the same (WallMs, Logical)
// pair, and every region must pick the same winner without talking to the
// others. The tie-break is deterministic, not fair; that is acceptable because
// such writes are concurrent and any fixed choice is correct.
type Timestamp struct {
	// WallMs is physical time in milliseconds since the Unix epoch, as seen by
	// the issuing region's hybrid clock (never less than any timestamp that
	// clock issued or observed before).
	WallMs uint64
	// Logical orders events within one WallMs.
	Logical uint32
	// Region is the region that issued the timestamp. It is set on every
	// timestamp a Clock issues; only the zero Timestamp has it empty.
	Region string
}

// Compare returns -1 if t orders before o, +1 if after, and 0 if they are
// identical.
func (t Timestamp) Compare(o Timestamp) int {
	if c := cmp.Compare(t.WallMs, o.WallMs); c != 0 {
		return c
	}
	if c := cmp.Compare(t.Logical, o.Logical); c != 0 {
		return c
	}
	return strings.Compare(t.Region, o.Region)
}

// Less reports whether t orders strictly before o.
func (t Timestamp) Less(o Timestamp) bool { return t.Compare(o) < 0 }

// IsZero reports whether t is the zero Timestamp, which orders before every
// other timestamp and stands for "nothing seen yet".
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// String formats t as WALLMS.LOGICAL@REGION, e.g. "1732349923123.4@us-east",
// and the zero Timestamp as "0". The "@REGION" part is left out when Region is
// empty. ParseTimestamp reverses it.
func (t Timestamp) String() string {
	if t.IsZero() {
		return "0"
	}
	s := strconv.FormatUint(t.WallMs, 10) + "." + strconv.FormatUint(uint64(t.Logical), 10)
	if t.Region != "" {
		s += "@" + t.Region
	}
	return s
}

// ParseTimestamp parses the format produced by Timestamp.String. It is meant
// for command-line input and tests; the wire uses AppendTimestamp.
func ParseTimestamp(s string) (Timestamp, error) {
	if s == "0" {
		return Timestamp{}, nil
	}
	body, region, hasRegion := strings.Cut(s, "@")
	if hasRegion {
		if err := ValidateRegion(region); err != nil {
			return Timestamp{}, fmt.Errorf("timestamp %s: %w", quoteShort(s), err)
		}
	}
	wallText, logicalText, ok := strings.Cut(body, ".")
	if !ok {
		return Timestamp{}, fmt.Errorf("timestamp %s: want WALLMS.LOGICAL@REGION, e.g. 1732349923123.4@us-east", quoteShort(s))
	}
	wall, err := strconv.ParseUint(wallText, 10, 64)
	if err != nil {
		return Timestamp{}, fmt.Errorf("timestamp %s: wall time %s is not an unsigned 64-bit integer", quoteShort(s), quoteShort(wallText))
	}
	logical, err := strconv.ParseUint(logicalText, 10, 32)
	if err != nil {
		return Timestamp{}, fmt.Errorf("timestamp %s: logical counter %s is not an unsigned 32-bit integer", quoteShort(s), quoteShort(logicalText))
	}
	return Timestamp{WallMs: wall, Logical: uint32(logical), Region: region}, nil
}

// maxTimestamp returns the later of a and b.
func maxTimestamp(a, b Timestamp) Timestamp {
	if a.Less(b) {
		return b
	}
	return a
}
