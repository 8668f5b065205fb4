package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// The outcome table makes every mutation apply at most once per request
// id. An outcome record holds u64 log index, u64 machine time at which it
// applied (ms), the request's fingerprint and its encoded Result. The age
// index (prefixOutcomeAge) lists outcomes by log index, and so also by
// applied time, because the clock never goes back: the outcomes to evict
// are always a prefix of it.
//
// An outcome lives OutcomeRetentionMs of machine time; after that, or when
// the table holds more than MaxOutcomes, the oldest are evicted, at most
// maxEvictionsPerApply per Apply. An outcome past its retention that is
// not evicted yet counts as gone, so the bound never changes an answer.

type outcomeRecord struct {
	index       uint64
	appliedMs   int64
	fingerprint [sha256.Size]byte
	result      *Result
}

func (r *outcomeRecord) encode() []byte {
	var e encoder
	e.u64(r.index)
	e.u64(uint64(r.appliedMs))
	e.raw(r.fingerprint[:])
	e.raw(encodeResult(r.result))
	return e.buf
}

// findOutcome returns the stored outcome of a request id, or nil.
func (t *tx) findOutcome(requestID string) (*outcomeRecord, error) {
	v, found, err := getRaw(t.b, outcomeKey(requestID))
	if err != nil || !found {
		return nil, err
	}
	d := decoder{buf: v}
	r := &outcomeRecord{index: d.u64(), appliedMs: int64(d.u64())}
	copy(r.fingerprint[:], d.take(sha256.Size))
	if d.err != nil {
		return nil, fmt.Errorf("corrupt outcome record for request id %q: %w", requestID, d.err)
	}
	if r.result, err = decodeResult(d.buf); err != nil {
		return nil, fmt.Errorf("corrupt outcome record for request id %q: %w", requestID, err)
	}
	return r, nil
}

// outcomeLive reports whether an outcome is within its retention.
func (t *tx) outcomeLive(appliedMs int64) bool {
	return t.now() < appliedMs+t.m.outcomeRetentionMs
}

// recordOutcome stores a mutation's outcome. prev is the expired outcome
// of an earlier use of the same request id, if it has not been evicted.
func (t *tx) recordOutcome(requestID string, fingerprint [sha256.Size]byte, res *Result, prev *outcomeRecord) error {
	if prev != nil {
		prevAge := outcomeAgeKey(prev.index)
		if err := t.del(prevAge); err != nil {
			return err
		}
		t.st.outcomes--
		t.st.sweeps.outcomeRemoved(prevAge)
	}
	rec := outcomeRecord{index: t.index, appliedMs: t.now(), fingerprint: fingerprint, result: res}
	if err := t.set(outcomeKey(requestID), rec.encode()); err != nil {
		return err
	}
	ageKey := outcomeAgeKey(t.index)
	age := binary.BigEndian.AppendUint64(nil, uint64(rec.appliedMs))
	if err := t.set(ageKey, append(age, requestID...)); err != nil {
		return err
	}
	t.st.outcomes++
	t.st.sweeps.outcomeAdded(ageKey, rec.appliedMs)
	return nil
}

// evictOutcomes removes the oldest outcomes while the table is over its
// cap or they are past their retention. It returns at once when the table
// is within its cap and the outcome bounds show that its oldest outcome is
// within retention, and takes the records to evict from those read ahead
// when it can (sweeps.go).
func (t *tx) evictOutcomes() error {
	sw := &t.st.sweeps
	if t.st.outcomes <= t.m.maxOutcomes && (bytes.Equal(sw.outcomeFloor, noOutcome) || t.outcomeLive(sw.oldestOutcomeMs)) {
		return nil
	}
	due, rest, ok := sw.takeOutcomes(t.m.evictionsPerApply, t.outcomeDue())
	if !ok {
		var err error
		due, rest, err = sweepScan(t.b, sw.outcomeFloor, noOutcome, t.m.evictionsPerApply, t.outcomeDue(), t.m.outcomeReadAhead)
		if err != nil {
			return err
		}
	}
	for _, a := range due {
		if len(a.value) < 8 {
			return fmt.Errorf("corrupt outcome age record %x", a.key)
		}
		requestID := string(a.value[8:])
		if err := t.del(a.key); err != nil {
			return err
		}
		if err := t.del(outcomeKey(requestID)); err != nil {
			return err
		}
		t.st.outcomes--
	}
	// Every record before rest was just deleted.
	sw.setOutcomesAhead(rest)
	return nil
}

// outcomeDue returns the test evictOutcomes applies to the age records in
// order: evict while the table is over its cap or the record is past its
// retention. It counts the records it passes, so a sweep needs a new one.
func (t *tx) outcomeDue() func(key, value []byte) bool {
	count := t.st.outcomes
	return func(_, value []byte) bool {
		if len(value) < 8 {
			return true // reported as corrupt by evictOutcomes
		}
		appliedMs := int64(binary.BigEndian.Uint64(value))
		if count <= t.m.maxOutcomes && t.outcomeLive(appliedMs) {
			return false
		}
		count--
		return true
	}
}
