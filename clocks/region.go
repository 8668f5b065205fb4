package clocks

import "fmt"

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
