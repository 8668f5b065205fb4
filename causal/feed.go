package causal

import (
	"errors"
	"fmt"

	"github.com/causewaydb/causeway/clocks"
)

// The change feed's rules: which of a region's applied writes a watcher
// must be given, and what token lets it resume, here or in any other
// region, with nothing lost and nothing repeated.
//
// A region applies writes in a causal order (Replica.Ready, Local), and
// records each in its change feed in that order together with its applied
// vector right after it. The set of writes a vector names, {w : w.Seq <=
// v[origin(w)]}, is what the vector has seen. A watcher's resume token is
// such a vector, and it is always downward closed (a causal past): it is
// a merge of applied vectors, and of tokens, which are causal pasts.
//
// FeedCursor walks a region's feed from a resume vector r: it delivers
// exactly the writes not in r, in the region's apply order, and after each
// feed entry its token is r merged with the region's applied vector after
// that entry. Proof sketch that a watcher moving between regions gets a
// linear extension of happens-before, with no gap and no repeat:
//
//   - No repeat: a write is delivered only if the token has not seen it,
//     and the token then covers it (the applied vector after it does).
//   - No gap: the token grows only by applied vectors of entries the cursor
//     has stepped over (each either delivered, or already seen, or outside
//     the watched keys), so a write enters the token only once it was
//     handled; a region's feed holds every write it applied after the
//     feed's floor, and a cursor starts only from a token that covers the
//     floor (ErrFeedTruncated otherwise).
//   - Causal order: let x happen before y, y delivered. If x is in the
//     token when y is delivered, it was delivered earlier (previous
//     segment or earlier in this one) or was seen by the starting token,
//     whose causal past is closed. Otherwise x is not in the token; the
//     region applied x before y (it applies in causal order), so x's entry
//     precedes y's in this region's feed and was delivered before it.
//
// The rules need no per-region position: a token from region A resumes in
// region B because it names writes, not places in A's feed. Region B need
// not even have applied all of the token's writes yet: those it applies
// later are skipped as seen.

// ErrFeedTruncated: the change feed no longer holds every write a resume
// token has not seen (the writes were applied before the feed's floor).
// The watcher re-reads the keys (Scan) and watches from the scan's token.
var ErrFeedTruncated = errors.New("change feed truncated past the resume token")

// FeedCursor is one watcher's position in a region's change feed. It is a
// value with no I/O: package replica drives it over the feed it stores,
// the simulator over the feed its regions keep.
type FeedCursor struct {
	seen clocks.Vector
	// aligned: seen is the appliedAfter vector of the last Step, shared
	// with the caller (never mutated here: cloned before a merge). A live
	// watcher in its own region is aligned at every entry, so following
	// the feed allocates nothing per entry, and callers may share one
	// encoded token among such watchers.
	aligned bool
}

// NewFeedCursor starts a cursor after resume (the writes it has seen) in a
// feed whose writes before floor are no longer retained (floor: the
// applied vector at the oldest entry dropped; empty when nothing was).
func NewFeedCursor(resume, floor clocks.Vector) (*FeedCursor, error) {
	c := &FeedCursor{seen: resume.Clone()}
	if err := c.CheckFloor(floor); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckFloor reports ErrFeedTruncated when the feed's floor has moved past
// writes the cursor has not handled (a truncation or a snapshot merge
// while the watcher was behind).
func (c *FeedCursor) CheckFloor(floor clocks.Vector) error {
	if c.seen.Dominates(floor) {
		return nil
	}
	return fmt.Errorf("%w: the resume token lacks %s, which this region no longer holds one by one",
		ErrFeedTruncated, gapsString(c.seen.Missing(floor)))
}

// Step advances the cursor over the next feed entry: write w, after which
// the region's applied vector was appliedAfter. deliver reports whether
// the watcher must be given w (if w touches its keys); either way the
// token then covers w.
func (c *FeedCursor) Step(origin string, seq uint64, appliedAfter clocks.Vector) (deliver bool) {
	deliver = seq > c.seen.Get(origin)
	if appliedAfter.Get(origin) >= seq && appliedAfter.Dominates(c.seen) {
		c.seen, c.aligned = appliedAfter, true
		return deliver
	}
	if c.aligned {
		c.seen, c.aligned = c.seen.Clone(), false
	}
	c.seen.MergeInPlace(appliedAfter)
	if c.seen.Get(origin) < seq {
		// appliedAfter always covers the entry's own write; a feed that
		// says otherwise is damaged, and the token must not stay behind a
		// write the watcher was given.
		c.seen[origin] = seq
	}
	return deliver
}

// Skippable reports whether every entry up to one whose applied vector is
// appliedAt has been seen: a cursor may then start after that entry. The
// predicate is monotone along a feed (applied vectors only grow), so the
// start of a resume is found by binary search.
func (c *FeedCursor) Skippable(appliedAt clocks.Vector) bool {
	return c.seen.Dominates(appliedAt)
}

// Aligned reports whether the token's vector is exactly the appliedAfter
// of the last Step.
func (c *FeedCursor) Aligned() bool { return c.aligned }

// Token is the vector of writes the watcher has handled: the resume
// token's vector after the last step (a copy).
func (c *FeedCursor) Token() clocks.Vector { return c.seen.Clone() }

func gapsString(gaps []clocks.Gap) string {
	out := ""
	for i, g := range gaps {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s writes %d..%d", g.Region, g.Have+1, g.Need)
	}
	return out
}
