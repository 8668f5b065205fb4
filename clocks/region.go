package clocks

import (
	"fmt"
	"maps"
	"sync/atomic"
)

// MaxRegionLen is the longest region name, in bytes. Region names travel in
// every vector entry of every replicated write and every causal token, so they
// are kept short; the bound also caps what a decoder reads for one name.
const MaxRegionLen = 32

// MaxRegions bounds the number of entries in a Vector that arrives from outside
// the process (causal tokens, storage records, replication messages). A vector
// has one entry per region that ever wrote, so a real deployment stays far
// below it. The bound exists so that a decoder never allocates more than a few
// kilobytes for untrusted input, and so that every valid token fits in
// MaxTokenLen.
const MaxRegions = 64

// ValidateRegion reports whether name is a valid region name: 1 to
// MaxRegionLen bytes of lowercase ASCII letters, digits and '-', starting with
// a letter. The rules keep names safe to embed in keys, file names, metric
// labels and the "WALL.LOGICAL@REGION" timestamp syntax without escaping.
// The error wraps ErrInvalidRegion.
func ValidateRegion(name string) error {
	if name == "" {
		return fmt.Errorf("%w: name is empty; use 1 to %d lowercase letters, digits or '-', starting with a letter (e.g. us-east)",
			ErrInvalidRegion, MaxRegionLen)
	}
	if len(name) > MaxRegionLen {
		return fmt.Errorf("%w %s: %d bytes long, the maximum is %d",
			ErrInvalidRegion, quoteShort(name), len(name), MaxRegionLen)
	}
	if c := name[0]; c < 'a' || c > 'z' {
		return fmt.Errorf("%w %q: must start with a lowercase letter a-z", ErrInvalidRegion, name)
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			continue
		}
		return fmt.Errorf("%w %q: byte %d (%q) is not a lowercase letter, digit or '-'",
			ErrInvalidRegion, name, i, c)
	}
	return nil
}

// quoteShort quotes s for an error message, cutting it so that a huge name
// from a corrupt record or a hostile client does not end up in logs whole.
func quoteShort(s string) string {
	const limit = MaxRegionLen + 8
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:limit])
}

// maxInternedRegions caps the table of region names that decoders share. A
// cluster has at most MaxRegions regions; the slack leaves room for renamed
// and retired ones.
const maxInternedRegions = 256

// internedRegions maps each region name decoded so far to one shared copy of
// it. Every request decodes a token and every replicated write a vector, each
// naming the same few regions, so handing out shared strings saves an
// allocation per name per decode. The map is never modified once published:
// readers load it without locking, and a writer publishes an extended copy.
//
// Token content comes from clients, so anyone can fill the table with names
// of regions that do not exist. The cap bounds the memory that costs; once
// the table is full, names not in it are allocated per decode as if there
// were no table.
var internedRegions atomic.Pointer[map[string]string]

// internRegion returns b as a string, shared with earlier decodes of the same
// name when there were any. Only valid region names enter the table: the
// caller rejects any other name, which would just take up room.
func internRegion(b []byte) string {
	if len(b) == 0 {
		return "" // the region of the zero Timestamp
	}
	for {
		old := internedRegions.Load()
		var names map[string]string
		if old != nil {
			names = *old
		}
		// Indexing a map with string(b) does not allocate.
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		if len(names) >= maxInternedRegions || ValidateRegion(s) != nil {
			return s
		}
		grown := make(map[string]string, len(names)+1)
		maps.Copy(grown, names)
		grown[s] = s
		if internedRegions.CompareAndSwap(old, &grown) {
			return s
		}
		// Another decode published a table first; look in that one. Every
		// failed swap means a name was added, so the cap bounds the retries.
	}
}
