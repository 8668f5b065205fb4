package fsm

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Leases, locks and fencing tokens.
//
// A lease record holds u64 TTL (ms), u64 expiry (unix ms, machine clock)
// and u64 count of locks held. Its id is the log index of its Grant. The
// expiry index (prefixExpiry) orders leases by expiry then id, so the
// leases due at the start of an Apply are a prefix of it.
//
// A lock record holds u64 lease id, u64 token and the owner's bytes. Its
// token is the log index of the Lock command that acquired it, and the
// newest token ever issued for a lock name is kept (prefixToken) after the
// lock is released, so a fenced CAS can tell a stale holder from the
// current one at any later time. doc.go gives the argument why tokens
// strictly increase.
//
// A lease is live while its expiry is after the machine clock. A lease
// whose expiry has passed but that the bounded sweep has not reached yet is
// treated as expired everywhere, and ended on the spot when a command
// touches it, so the bound never changes an answer.

type leaseRecord struct {
	ttlMs     int64
	expiresMs int64
	locks     uint64
}

func (r leaseRecord) encode() []byte {
	var e encoder
	e.u64(uint64(r.ttlMs))
	e.u64(uint64(r.expiresMs))
	e.u64(r.locks)
	return e.buf
}

type lockRecord struct {
	lease uint64
	token uint64
	owner string
}

func (r lockRecord) encode() []byte {
	var e encoder
	e.u64(r.lease)
	e.u64(r.token)
	e.raw([]byte(r.owner))
	return e.buf
}

func readLease(r pebble.Reader, id uint64) (leaseRecord, bool, error) {
	v, found, err := getRaw(r, leaseKey(id))
	if err != nil || !found {
		return leaseRecord{}, false, err
	}
	d := decoder{buf: v}
	rec := leaseRecord{ttlMs: int64(d.u64()), expiresMs: int64(d.u64()), locks: d.u64()}
	if err := d.finish(); err != nil {
		return leaseRecord{}, false, fmt.Errorf("corrupt lease record %d: %w", id, err)
	}
	return rec, true, nil
}

func readLock(r pebble.Reader, lock string) (lockRecord, bool, error) {
	v, found, err := getRaw(r, lockKey(lock))
	if err != nil || !found {
		return lockRecord{}, false, err
	}
	d := decoder{buf: v}
	rec := lockRecord{lease: d.u64(), token: d.u64(), owner: string(d.buf)}
	if d.err != nil || rec.owner == "" {
		return lockRecord{}, false, fmt.Errorf("corrupt lock record %q", lock)
	}
	return rec, true, nil
}

func (t *tx) live(r leaseRecord) bool { return r.expiresMs > t.now() }

func (t *tx) writeLease(id uint64, r leaseRecord) error { return t.set(leaseKey(id), r.encode()) }

// expireLeases ends the leases whose expiry is at or before the clock, in
// order of expiry then lease id, at most maxExpiriesPerApply of them. It
// returns at once when the expiry floor shows none is due (sweeps.go).
func (t *tx) expireLeases() error {
	sw := &t.st.sweeps
	dueEnd := expiryUpTo(t.now())
	if bytes.Compare(sw.expiryFloor, dueEnd) >= 0 {
		return nil
	}
	due, rest, err := sweepScan(t.b, sw.expiryFloor, noExpiry, t.m.expiriesPerApply,
		func(key, _ []byte) bool { return bytes.Compare(key, dueEnd) < 0 }, 1)
	if err != nil {
		return err
	}
	exact := true
	for _, e := range due {
		_, id, ok := parseExpiryKey(e.key)
		if !ok {
			return fmt.Errorf("corrupt lease expiry key %x", e.key)
		}
		rec, err := t.endLease(id)
		if err != nil {
			return err
		}
		// endLease deletes the expiry key its lease record names; a record
		// that disagrees with the index leaves e.key behind, below rest.
		exact = exact && bytes.Equal(expiryKey(rec.expiresMs, id), e.key)
	}
	if exact {
		sw.setExpiryFloor(rest)
	}
	return nil
}

// indexExpiry adds a lease to the expiry index.
func (t *tx) indexExpiry(expiresMs int64, id uint64) error {
	key := expiryKey(expiresMs, id)
	if err := t.set(key, nil); err != nil {
		return err
	}
	t.st.sweeps.expiryAdded(key)
	return nil
}

// endLease deletes a lease, its expiry entry and the locks it holds, and
// returns the record it deleted. Its work is bounded by MaxLocksPerLease.
func (t *tx) endLease(id uint64) (leaseRecord, error) {
	rec, found, err := readLease(t.b, id)
	if err != nil {
		return leaseRecord{}, err
	}
	if !found {
		return leaseRecord{}, fmt.Errorf("lease %d is indexed but has no record", id)
	}
	prefix := heldPrefix(id)
	held, err := scan(t.b, prefix, prefixEnd(prefix), MaxLocksPerLease+1, nil)
	if err != nil {
		return leaseRecord{}, err
	}
	if len(held) > MaxLocksPerLease {
		return leaseRecord{}, fmt.Errorf("lease %d holds more than %d locks", id, MaxLocksPerLease)
	}
	for _, h := range held {
		lock := string(h.key[len(prefix):])
		lk, found, err := readLock(t.b, lock)
		if err != nil {
			return leaseRecord{}, err
		}
		if !found || lk.lease != id {
			return leaseRecord{}, fmt.Errorf("lease %d lists lock %q, which it does not hold", id, lock)
		}
		if err := t.del(lockKey(lock)); err != nil {
			return leaseRecord{}, err
		}
		if err := t.del(h.key); err != nil {
			return leaseRecord{}, err
		}
	}
	if err := t.del(expiryKey(rec.expiresMs, id)); err != nil {
		return leaseRecord{}, err
	}
	return rec, t.del(leaseKey(id))
}

// grant creates a lease whose id is this log index.
func (t *tx) grant(c *Command) (*Result, error) {
	rec := leaseRecord{ttlMs: c.TTLms, expiresMs: t.now() + c.TTLms}
	if err := t.writeLease(t.index, rec); err != nil {
		return nil, err
	}
	if err := t.indexExpiry(rec.expiresMs, t.index); err != nil {
		return nil, err
	}
	return &Result{Code: CodeOK, LeaseID: t.index, ExpiresMs: rec.expiresMs}, nil
}

// leaseGone explains why a lease cannot be used.
func (t *tx) leaseGone(id uint64, rec leaseRecord, found bool) *Result {
	msg := fmt.Sprintf("lease %d is not live: it was never granted, has expired or was revoked; grant a new lease", id)
	if found {
		msg = fmt.Sprintf("lease %d expired at %d ms (the clock is at %d ms); grant a new lease", id, rec.expiresMs, t.now())
	}
	return &Result{Code: CodeNotFound, LeaseID: id, Message: msg}
}

// keepAlive extends a live lease to now plus its TTL.
func (t *tx) keepAlive(c *Command) (*Result, error) {
	rec, found, err := readLease(t.b, c.LeaseID)
	if err != nil {
		return nil, err
	}
	if !found || !t.live(rec) {
		return t.leaseGone(c.LeaseID, rec, found), nil
	}
	if err := t.del(expiryKey(rec.expiresMs, c.LeaseID)); err != nil {
		return nil, err
	}
	rec.expiresMs = t.now() + rec.ttlMs
	if err := t.writeLease(c.LeaseID, rec); err != nil {
		return nil, err
	}
	if err := t.indexExpiry(rec.expiresMs, c.LeaseID); err != nil {
		return nil, err
	}
	return &Result{Code: CodeOK, LeaseID: c.LeaseID, ExpiresMs: rec.expiresMs}, nil
}

// revoke ends a lease and releases its locks.
func (t *tx) revoke(c *Command) (*Result, error) {
	rec, found, err := readLease(t.b, c.LeaseID)
	if err != nil {
		return nil, err
	}
	if !found {
		return t.leaseGone(c.LeaseID, rec, false), nil
	}
	if _, err := t.endLease(c.LeaseID); err != nil {
		return nil, err
	}
	if !t.live(rec) {
		return t.leaseGone(c.LeaseID, rec, true), nil
	}
	return &Result{Code: CodeOK, LeaseID: c.LeaseID}, nil
}

// lock acquires a lock under a live lease. The token of a new acquisition
// is this log index.
func (t *tx) lock(c *Command) (*Result, error) {
	lease, found, err := readLease(t.b, c.LeaseID)
	if err != nil {
		return nil, err
	}
	if !found || !t.live(lease) {
		return t.leaseGone(c.LeaseID, lease, found), nil
	}
	lk, held, err := readLock(t.b, c.Lock)
	if err != nil {
		return nil, err
	}
	if held {
		if lk.lease == c.LeaseID {
			return &Result{Code: CodeOK, Owner: lk.owner, LeaseID: lk.lease, ExpiresMs: lease.expiresMs, Token: lk.token}, nil
		}
		holder, found, err := readLease(t.b, lk.lease)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("lock %q is held by lease %d, which has no record", c.Lock, lk.lease)
		}
		if t.live(holder) {
			return &Result{
				Code:      CodeAborted,
				Owner:     lk.owner,
				LeaseID:   lk.lease,
				ExpiresMs: holder.expiresMs,
				Token:     lk.token,
				Message: fmt.Sprintf("lock %q is held by %q under lease %d (token %d) until it is unlocked or the lease expires at %d ms; retry later",
					c.Lock, lk.owner, lk.lease, lk.token, holder.expiresMs),
			}, nil
		}
		// The holder's lease is past its expiry but the bounded sweep has
		// not reached it: end it now, as the sweep would have.
		if _, err := t.endLease(lk.lease); err != nil {
			return nil, err
		}
	}
	if lease.locks >= MaxLocksPerLease {
		return &Result{
			Code:    CodeFailedPrecondition,
			LeaseID: c.LeaseID,
			Message: fmt.Sprintf("lease %d already holds %d locks, the most one lease may hold; unlock one or use another lease", c.LeaseID, lease.locks),
		}, nil
	}
	latest, _, err := getU64(t.b, tokenKey(c.Lock))
	if err != nil {
		return nil, err
	}
	if latest >= t.index {
		// Tokens are log indices of earlier entries; see doc.go.
		return nil, fmt.Errorf("lock %q: token %d was issued at or after log index %d", c.Lock, latest, t.index)
	}
	lk = lockRecord{lease: c.LeaseID, token: t.index, owner: c.Owner}
	lease.locks++
	for _, err := range []error{
		t.set(lockKey(c.Lock), lk.encode()),
		t.set(heldKey(c.LeaseID, c.Lock), nil),
		t.writeLease(c.LeaseID, lease),
		t.set(tokenKey(c.Lock), u64Bytes(lk.token)),
	} {
		if err != nil {
			return nil, err
		}
	}
	return &Result{Code: CodeOK, Owner: lk.owner, LeaseID: lk.lease, ExpiresMs: lease.expiresMs, Token: lk.token}, nil
}

// unlock releases a lock held under the given lease.
func (t *tx) unlock(c *Command) (*Result, error) {
	lk, held, err := readLock(t.b, c.Lock)
	if err != nil {
		return nil, err
	}
	notHeld := &Result{Code: CodeNotFound, Message: fmt.Sprintf("lock %q is not held, so there is nothing to unlock", c.Lock)}
	if !held {
		return notHeld, nil
	}
	holder, found, err := readLease(t.b, lk.lease)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("lock %q is held by lease %d, which has no record", c.Lock, lk.lease)
	}
	if !t.live(holder) {
		if _, err := t.endLease(lk.lease); err != nil {
			return nil, err
		}
		notHeld.Message = fmt.Sprintf("lock %q is not held: lease %d, which held it, expired at %d ms", c.Lock, lk.lease, holder.expiresMs)
		return notHeld, nil
	}
	if lk.lease != c.LeaseID {
		return &Result{
			Code:      CodeFailedPrecondition,
			Owner:     lk.owner,
			LeaseID:   lk.lease,
			ExpiresMs: holder.expiresMs,
			Token:     lk.token,
			Message: fmt.Sprintf("lock %q is held by %q under lease %d, not under lease %d; only its holder can unlock it",
				c.Lock, lk.owner, lk.lease, c.LeaseID),
		}, nil
	}
	holder.locks--
	for _, err := range []error{
		t.del(lockKey(c.Lock)),
		t.del(heldKey(lk.lease, c.Lock)),
		t.writeLease(lk.lease, holder),
	} {
		if err != nil {
			return nil, err
		}
	}
	return &Result{Code: CodeOK, Owner: lk.owner, LeaseID: lk.lease, ExpiresMs: holder.expiresMs, Token: lk.token}, nil
}
