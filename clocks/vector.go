package clocks

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Vector is a vector clock: for each region, how many of that region's writes
// are in the causal past (the sequence number of the newest one). A missing
// entry means 0, and an entry with value 0 is indistinguishable from a missing
// one in every method: comparison, merge, encoding and String all ignore it.
//
// Vectors form a join-semilattice under element-wise <= with Merge
// (element-wise max) as the join; see the package documentation.
//
// Methods that return a Vector never return nil and never return zero
// entries. A nil Vector is a valid empty vector for every method except
// MergeInPlace.
type Vector map[string]uint64

// Ordering is the result of comparing two vectors.
type Ordering int

const (
	// Equal: same value for every region.
	Equal Ordering = iota
	// Before: the receiver happened before the argument (<= everywhere, < somewhere).
	Before
	// After: the receiver happened after the argument.
	After
	// Concurrent: neither includes the other; the writes conflict.
	Concurrent
)

// String returns "equal", "before", "after" or "concurrent".
func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// Get returns the entry for region, 0 if there is none.
func (v Vector) Get(region string) uint64 { return v[region] }

// Clone returns a copy of v without zero entries. It never returns nil, so
// the copy can be merged into in place.
func (v Vector) Clone() Vector {
	out := make(Vector, len(v))
	for r, n := range v {
		if n != 0 {
			out[r] = n
		}
	}
	return out
}

// Merge returns the element-wise maximum of v and o: the causal past that
// includes both. Neither input is modified.
func (v Vector) Merge(o Vector) Vector {
	out := v.Clone()
	out.MergeInPlace(o)
	return out
}

// MergeInPlace sets v to the element-wise maximum of v and o. It panics if v
// is nil, even when o is empty, so that a missing initialization shows up on
// the first call rather than on the first non-empty one.
func (v Vector) MergeInPlace(o Vector) {
	if v == nil {
		panic("clocks: MergeInPlace on a nil Vector")
	}
	for r, n := range o {
		if n > v[r] {
			v[r] = n
		}
	}
}

// Compare returns how v relates to o in the happened-before partial order:
// Before means v < o (v <= o element-wise and v != o).
func (v Vector) Compare(o Vector) Ordering {
	var less, greater bool
	for r, n := range v {
		switch m := o[r]; {
		case n > m:
			greater = true
		case n < m:
			less = true
		}
	}
	if !less {
		// Entries only in o make v smaller. Entries in both were handled
		// above, so only look for the ones v lacks.
		for r, m := range o {
			if m != 0 && v[r] == 0 {
				less = true
				break
			}
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Equal reports whether v and o have the same value for every region.
func (v Vector) Equal(o Vector) bool { return v.Compare(o) == Equal }

// Dominates reports whether v >= o element-wise (Equal or After): whether a
// region that has applied v has everything o depends on.
func (v Vector) Dominates(o Vector) bool {
	for r, m := range o {
		if v[r] < m {
			return false
		}
	}
	return true
}

// Gap is one region in which a vector lacks writes another depends on.
type Gap struct {
	Region string
	Have   uint64 // the receiver's entry
	Need   uint64 // the argument's entry, greater than Have
}

// Missing returns the regions where v < o, sorted by region: exactly what v
// lacks to dominate o. It is empty (nil) if and only if v.Dominates(o). A
// region that cannot serve a token uses it to say whose writes it waits for.
func (v Vector) Missing(o Vector) []Gap {
	var gaps []Gap
	for r, need := range o {
		if have := v[r]; have < need {
			gaps = append(gaps, Gap{Region: r, Have: have, Need: need})
		}
	}
	slices.SortFunc(gaps, func(a, b Gap) int { return strings.Compare(a.Region, b.Region) })
	return gaps
}

// Regions returns the regions with a non-zero entry, sorted.
func (v Vector) Regions() []string {
	return v.sortedRegions(make([]string, 0, len(v)))
}

// sortedRegions is Regions using the storage of buf while it has room, so
// that a caller can pass a buffer that stays on its stack.
func (v Vector) sortedRegions(buf []string) []string {
	regions := buf[:0]
	for r, n := range v {
		if n != 0 {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	return regions
}

// String formats v deterministically with regions sorted and zero entries
// left out, e.g. "{ap-south:3 us-east:12}"; the empty vector is "{}".
func (v Vector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range v.Regions() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(v[r], 10))
	}
	b.WriteByte('}')
	return b.String()
}

// Validate reports whether v can be encoded into something ReadVector and
// DecodeToken accept: at most MaxRegions non-zero entries, each under a valid
// region name. Vectors built from this region's own writes and from decoded
// input always pass; Validate is for vectors assembled from configuration or
// tests. The error wraps ErrInvalidRegion for a bad name and ErrCorrupt for
// too many entries.
func (v Vector) Validate() error {
	regions := v.Regions()
	if len(regions) > MaxRegions {
		return fmt.Errorf("%w: vector has %d regions, more than MaxRegions (%d)", ErrCorrupt, len(regions), MaxRegions)
	}
	for _, r := range regions {
		if err := ValidateRegion(r); err != nil {
			return fmt.Errorf("vector entry %s: %w", quoteShort(r), err)
		}
	}
	return nil
}
