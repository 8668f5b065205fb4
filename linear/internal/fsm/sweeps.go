package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// Every Apply starts by expiring the leases that are due and ends by
// evicting the outcomes that are due. Both are prefixes of an index (the
// lease expiry index, the outcome age index), and almost always empty
// ones: a lease expires once per TTL, an outcome after ten minutes. Opening
// an iterator to find that out costs a seek in every level of the LSM, and
// once the state has been flushed every sstable spans both indexes, because
// each Apply writes a claim or register, an outcome and an age record
// together: measured before sweepBounds existed, the two empty sweeps were
// half of the CPU of an Apply.
//
// sweepBounds lets a sweep with nothing to do return without reading. It
// holds lower bounds on the first record of each index; a sweep runs only
// when the bound says a record might be due, and starts its iterator at the
// bound, so it also skips the tombstones that evictions leave at the head
// of the age index. When a sweep runs it sees the index exactly and leaves
// the bound exact; between sweeps the bound only moves down (a new lease
// or outcome below it) or stays where it is (a deletion, which a lower
// bound survives). Since a skipped sweep is one that would have found
// nothing, the bounds change the work Apply does but never what it
// returns or writes, and a replica whose bounds differ (because it
// restarted, say) still reaches the same state.
//
// The bounds travel with appliedState: an ApplyBatch works on a copy, so
// each entry sees those of the entries before it, and the copy is
// published only when the batch commits. They are not persisted; load
// rebuilds them from the database at Open and after Restore.
//
// Records written by this package are well formed; a record that is not
// (only a corrupt snapshot or disk could hold one) pins its bound so that
// every Apply sweeps, and the sweep reports it when it reaches it, as it
// would without bounds.
type sweepBounds struct {
	// expiryFloor sorts at or before every key of the lease expiry index.
	// It is noExpiry when the index is known to be empty.
	expiryFloor []byte
	// outcomeFloor sorts at or before every key of the outcome age index;
	// noOutcome when the index is known to be empty.
	outcomeFloor []byte
	// oldestOutcomeMs is at or before the applied time of every outcome in
	// the table: math.MaxInt64 when outcomeFloor is noOutcome,
	// math.MinInt64 when the first age record is malformed.
	oldestOutcomeMs int64
}

// noExpiry and noOutcome sort after every key of their index.
var (
	noExpiry  = []byte{prefixExpiry + 1}
	noOutcome = []byte{prefixOutcomeAge + 1}
)

// loadSweepBounds reads the exact bounds from r.
func loadSweepBounds(r pebble.Reader) (sweepBounds, error) {
	var sw sweepBounds
	_, next, found, err := sweepScan(r, []byte{prefixExpiry}, noExpiry, 0, nil)
	if err != nil {
		return sweepBounds{}, err
	}
	sw.setExpiryFloor(next, found)
	_, next, found, err = sweepScan(r, []byte{prefixOutcomeAge}, noOutcome, 0, nil)
	if err != nil {
		return sweepBounds{}, err
	}
	sw.setOutcomeFloor(next, found)
	return sw, nil
}

// setExpiryFloor makes the expiry floor exact: first is the index's first
// record, if found.
func (sw *sweepBounds) setExpiryFloor(first kv, found bool) {
	if !found {
		sw.expiryFloor = noExpiry
		return
	}
	sw.expiryFloor = first.key
}

// setOutcomeFloor makes the outcome bounds exact: first is the age index's
// first record, if found.
func (sw *sweepBounds) setOutcomeFloor(first kv, found bool) {
	switch {
	case !found:
		sw.outcomeFloor, sw.oldestOutcomeMs = noOutcome, math.MaxInt64
	case len(first.value) < 8:
		sw.outcomeFloor, sw.oldestOutcomeMs = first.key, math.MinInt64
	default:
		sw.outcomeFloor, sw.oldestOutcomeMs = first.key, int64(binary.BigEndian.Uint64(first.value))
	}
}

// expiryAdded lowers the expiry floor for a key added to the index.
func (sw *sweepBounds) expiryAdded(key []byte) {
	if bytes.Compare(key, sw.expiryFloor) < 0 {
		sw.expiryFloor = key
	}
}

// outcomeAdded lowers the outcome bounds for an outcome added to the table.
func (sw *sweepBounds) outcomeAdded(ageKey []byte, appliedMs int64) {
	if bytes.Compare(ageKey, sw.outcomeFloor) < 0 {
		sw.outcomeFloor = ageKey
	}
	sw.oldestOutcomeMs = min(sw.oldestOutcomeMs, appliedMs)
}

// sweepScan returns copies of the records of [lower, upper) in key order
// for which due (if not nil) returns true, at most limit of them, stopping
// at the first record that is not due. It also returns a copy of the first
// record it did not return, and whether there was one. Callers mutate the
// batch only after scanning, never while an iterator is open on it.
func sweepScan(r pebble.Reader, lower, upper []byte, limit int, due func(key, value []byte) bool) (taken []kv, next kv, found bool, err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, kv{}, false, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, kv{}, false, err
		}
		rec := kv{key: append([]byte(nil), it.Key()...), value: append([]byte(nil), v...)}
		if len(taken) == limit || (due != nil && !due(rec.key, rec.value)) {
			next, found = rec, true
			break
		}
		taken = append(taken, rec)
	}
	return taken, next, found, errors.Join(it.Error(), it.Close())
}
