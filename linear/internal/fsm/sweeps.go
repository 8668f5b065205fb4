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
// A table at its cap (MaxOutcomes) has an outcome to evict at every
// mutation, so there the bound cannot help. The outcome sweep therefore
// also keeps the records that follow the last ones it evicted
// (outcomesAhead): the next sweeps take their records from there and
// decide exactly as a scan would, and open an iterator only when those run
// out. Outcomes are added at the end of the age index (keys are log
// indices), so only a deletion elsewhere in it (a request id reused after
// its retention) can make them stale, and it drops them.
//
// The bounds travel with appliedState: an ApplyBatch works on a copy, so
// each entry sees those of the entries before it, and the copy is
// published only when the batch commits. Nothing in them is modified in
// place (a copy shares their slices), only replaced. They are not
// persisted; load rebuilds them from the database at Open and after
// Restore.
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
	// outcomesAhead, when not empty, is exactly the first records of the
	// outcome age index, in key order, and outcomeFloor and oldestOutcomeMs
	// are those of its first record.
	outcomesAhead []kv
}

// readAheadOutcomes is how many records of the outcome age index a sweep
// keeps for the sweeps after it: with the table at its cap, one iterator
// per this many mutations.
const readAheadOutcomes = 64

// noExpiry and noOutcome sort after every key of their index.
var (
	noExpiry  = []byte{prefixExpiry + 1}
	noOutcome = []byte{prefixOutcomeAge + 1}
)

// loadSweepBounds reads the exact bounds from r, with up to readAhead
// records of the age index.
func loadSweepBounds(r pebble.Reader, readAhead int) (sweepBounds, error) {
	var sw sweepBounds
	_, first, err := sweepScan(r, []byte{prefixExpiry}, noExpiry, 0, nil, 1)
	if err != nil {
		return sweepBounds{}, err
	}
	sw.setExpiryFloor(first)
	_, ahead, err := sweepScan(r, []byte{prefixOutcomeAge}, noOutcome, 0, nil, readAhead)
	if err != nil {
		return sweepBounds{}, err
	}
	sw.setOutcomesAhead(ahead)
	return sw, nil
}

// setExpiryFloor makes the expiry floor exact: rest holds the index's first
// record, or nothing when the index is empty.
func (sw *sweepBounds) setExpiryFloor(rest []kv) {
	if len(rest) == 0 {
		sw.expiryFloor = noExpiry
		return
	}
	sw.expiryFloor = rest[0].key
}

// setOutcomesAhead makes the outcome bounds exact: ahead is the first
// records of the age index, empty only when the index is.
func (sw *sweepBounds) setOutcomesAhead(ahead []kv) {
	sw.outcomesAhead = ahead
	switch {
	case len(ahead) == 0:
		sw.outcomeFloor, sw.oldestOutcomeMs = noOutcome, math.MaxInt64
	case len(ahead[0].value) < 8:
		sw.outcomeFloor, sw.oldestOutcomeMs = ahead[0].key, math.MinInt64
	default:
		sw.outcomeFloor, sw.oldestOutcomeMs = ahead[0].key, int64(binary.BigEndian.Uint64(ahead[0].value))
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
	if n := len(sw.outcomesAhead); n > 0 && bytes.Compare(ageKey, sw.outcomesAhead[n-1].key) <= 0 {
		sw.outcomesAhead = nil // not at the end of the index, which log indices rule out
	}
	if bytes.Compare(ageKey, sw.outcomeFloor) < 0 {
		sw.outcomeFloor = ageKey
	}
	sw.oldestOutcomeMs = min(sw.oldestOutcomeMs, appliedMs)
}

// outcomeRemoved drops the records read ahead if the age key removed
// outside a sweep is among them. The bounds stay lower bounds.
func (sw *sweepBounds) outcomeRemoved(ageKey []byte) {
	if n := len(sw.outcomesAhead); n > 0 && bytes.Compare(ageKey, sw.outcomesAhead[n-1].key) <= 0 {
		sw.outcomesAhead = nil
	}
}

// takeOutcomes decides a sweep from the records read ahead, as sweepScan
// would from the index: the records due, at most limit, and the records
// after them. It reports false when the records ahead run out before the
// sweep is decided, and the caller scans.
func (sw *sweepBounds) takeOutcomes(limit int, due func(key, value []byte) bool) (taken, rest []kv, ok bool) {
	ahead := sw.outcomesAhead
	n := 0
	for n < len(ahead) && n < limit && due(ahead[n].key, ahead[n].value) {
		n++
	}
	if n == len(ahead) {
		return nil, nil, false
	}
	return ahead[:n], ahead[n:], true
}

// sweepScan returns copies of the records of [lower, upper) in key order
// for which due (if not nil) returns true, at most limit of them, stopping
// at the first record that is not due; and copies of up to ahead (at least
// 1) records that follow them, which are none only when the range holds no
// more. Callers mutate the batch only after scanning, never while an
// iterator is open on it.
func sweepScan(r pebble.Reader, lower, upper []byte, limit int, due func(key, value []byte) bool, ahead int) (taken, rest []kv, err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, nil, err
		}
		rec := kv{key: append([]byte(nil), it.Key()...), value: append([]byte(nil), v...)}
		if len(rest) == 0 && len(taken) < limit && (due == nil || due(rec.key, rec.value)) {
			taken = append(taken, rec)
			continue
		}
		if rest = append(rest, rec); len(rest) >= ahead {
			break
		}
	}
	return taken, rest, errors.Join(it.Error(), it.Close())
}
