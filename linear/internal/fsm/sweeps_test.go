package fsm

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"pgregory.net/rapid"
)

// sweepAlways makes every sweep of the next Apply scan its whole index
// from the start, as expireLeases and evictOutcomes did before they had
// bounds: a machine reset with it before every entry is the reference the
// bounds must never be told apart from.
func sweepAlways(m *Machine) {
	m.applied.sweeps = sweepBounds{
		expiryFloor:     []byte{prefixExpiry},
		outcomeFloor:    []byte{prefixOutcomeAge},
		oldestOutcomeMs: math.MinInt64,
	}
}

// checkSweepBounds checks that the machine's bounds are lower bounds of
// what its database holds.
func checkSweepBounds(t tb, m *Machine) {
	t.Helper()
	sw := m.applied.sweeps
	exact, err := loadSweepBounds(m.db, max(len(sw.outcomesAhead), 1))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Compare(sw.expiryFloor, exact.expiryFloor) > 0 {
		t.Fatalf("expiry floor %x is past the first expiry %x", sw.expiryFloor, exact.expiryFloor)
	}
	if bytes.Compare(sw.outcomeFloor, exact.outcomeFloor) > 0 || sw.oldestOutcomeMs > exact.oldestOutcomeMs {
		t.Fatalf("outcome bounds %x at %d ms are past the oldest outcome %x at %d ms",
			sw.outcomeFloor, sw.oldestOutcomeMs, exact.outcomeFloor, exact.oldestOutcomeMs)
	}
	if len(sw.outcomesAhead) > 0 && !(reflect.DeepEqual(sw.outcomesAhead, exact.outcomesAhead) &&
		bytes.Equal(sw.outcomeFloor, exact.outcomeFloor) && sw.oldestOutcomeMs == exact.oldestOutcomeMs) {
		t.Fatalf("the outcomes read ahead %v (bounds %x at %d ms) are not the first of the age index %v",
			sw.outcomesAhead, sw.outcomeFloor, sw.oldestOutcomeMs, exact.outcomesAhead)
	}
}

// TestSweepBoundsNeverChangeAnAnswer applies a random log (as
// TestDeterminism draws it, with the same shrunk retention, cap and
// bounds) to a machine that uses its sweep bounds and to one that sweeps
// every index in full at every entry. The first is closed and reopened
// part way, and applies the rest in random ApplyBatch chunks. Results and
// snapshot bytes must match, and the bounds must stay lower bounds of the
// indexes.
func TestSweepBoundsNeverChangeAnAnswer(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		g := &logGen{rt: rt, nowMs: startMs, lastToken: map[string]uint64{}}
		full := openTuned(rt)
		defer full.Close()
		n := rapid.IntRange(1, 80).Draw(rt, "entries")
		var logs []*raft.Log
		var want []interface{}
		for range n {
			l := g.next()
			sweepAlways(full)
			res := full.Apply(l)
			g.observe(full, l, res)
			logs, want = append(logs, l), append(want, res)
		}

		fs := vfs.NewMem()
		readAhead := rapid.IntRange(1, 3).Draw(rt, "outcomes read ahead")
		bounded := openTunedOn(rt, fs)
		bounded.outcomeReadAhead = readAhead
		restart := rapid.IntRange(0, n).Draw(rt, "restart after")
		var got []interface{}
		for i, l := range logs[:restart] {
			got = append(got, bounded.Apply(l))
			checkSweepBounds(rt, bounded)
			if !reflect.DeepEqual(got[i], want[i]) {
				rt.Fatalf("entry %d (%s) gave %+v, sweeping in full %+v", l.Index, describe(l), got[i], want[i])
			}
		}
		if err := bounded.Close(); err != nil {
			rt.Fatal(err)
		}
		bounded = openTunedOn(rt, fs)
		bounded.outcomeReadAhead = readAhead
		defer bounded.Close()
		checkSweepBounds(rt, bounded)
		for rest := logs[restart:]; len(rest) > 0; {
			k := rapid.IntRange(1, len(rest)).Draw(rt, "batch")
			got = append(got, bounded.ApplyBatch(rest[:k])...)
			checkSweepBounds(rt, bounded)
			rest = rest[k:]
		}
		compareResults(rt, "with sweep bounds", logs, got, want)
		if !bytes.Equal(snapshotBytes(rt, bounded), snapshotBytes(rt, full)) {
			rt.Fatal("the machine with sweep bounds reached a different state")
		}
	})
}

// openTunedOn opens a machine on fs that keeps outcomes 3s, at most 4 of
// them, and expires or evicts at most 2 per entry, so sweeps and their
// bounds matter within a short command sequence.
func openTunedOn(t tb, fs vfs.FS) *Machine {
	m, err := Open("state", fs, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	m.outcomeRetentionMs = 3000
	m.maxOutcomes = 4
	m.expiriesPerApply = 2
	m.evictionsPerApply = 2
	return m
}

// TestSweepsAfterOpen: a reopened machine knows when its leases and
// outcomes are due, from its database alone.
func TestSweepsAfterOpen(t *testing.T) {
	fs := vfs.NewMem()
	m, err := Open("state", fs, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, m: m, nowMs: startMs}
	h.apply(grantCmd(1000))
	h.apply(claimCmd("n", "a", "o"))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	if h.m, err = Open("state", fs, quietLogger()); err != nil {
		t.Fatal(err)
	}
	defer h.m.Close()
	h.m.outcomeRetentionMs = 1000
	sw := h.m.applied.sweeps
	if !bytes.Equal(sw.expiryFloor, expiryKey(startMs+1000, 1)) ||
		!bytes.Equal(sw.outcomeFloor, outcomeAgeKey(1)) || sw.oldestOutcomeMs != startMs {
		t.Fatalf("after Open the bounds are %x, %x at %d ms; want the lease and the grant's outcome", sw.expiryFloor, sw.outcomeFloor, sw.oldestOutcomeMs)
	}
	h.advance(999)
	if countPrefix(t, h.m, prefixLease) != 1 || countPrefix(t, h.m, prefixOutcome) != 2 {
		t.Fatal("a lease or outcome went before its time")
	}
	h.advance(1)
	if countPrefix(t, h.m, prefixLease) != 0 || countPrefix(t, h.m, prefixOutcome) != 0 {
		t.Fatal("the lease or the outcomes outlived their time after a restart")
	}
	if _, ok := h.m.NextExpiryMs(); ok {
		t.Fatal("NextExpiryMs reports a lease after the last one expired")
	}
	checkOutcomeCount(t, h.m)
	checkSweepBounds(t, h.m)
}

// TestSweepsAfterRestore restores, over a machine whose leases and
// outcomes are all due late, a snapshot whose lease and outcome are due
// early: they go at their time, not at the replaced state's.
func TestSweepsAfterRestore(t *testing.T) {
	early := newHarness(t)
	early.m.outcomeRetentionMs = 1000
	early.apply(grantCmd(1000))
	early.apply(claimCmd("n", "a", "o"))
	early.apply(Command{Op: OpTick})
	image := snapshotBytes(t, early.m)

	late := newHarness(t)
	late.m.outcomeRetentionMs = 1000
	late.nowMs += 500
	late.apply(grantCmd(60_000))
	if err := restoreBytes(late.m, image); err != nil {
		t.Fatal(err)
	}
	checkSweepBounds(t, late.m)
	late.index, late.nowMs = early.index, early.nowMs
	late.advance(1000)
	if countPrefix(t, late.m, prefixLease) != 0 || countPrefix(t, late.m, prefixOutcome) != 0 {
		t.Fatal("after Restore a lease or outcome outlived its time")
	}
	checkOutcomeCount(t, late.m)
	early.advance(1000)
	if !bytes.Equal(snapshotBytes(t, late.m), snapshotBytes(t, early.m)) {
		t.Fatal("the restored machine and the original differ")
	}
}

// TestSweepsWithinABatch: an entry of an ApplyBatch sweeps what earlier
// entries of the same batch added.
func TestSweepsWithinABatch(t *testing.T) {
	h := newHarness(t)
	h.m.outcomeRetentionMs = 1000
	entry := func(c Command) *raft.Log {
		h.index++
		c = h.fill(c)
		return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: c.Encode()}
	}
	logs := []*raft.Log{entry(grantCmd(1000)), entry(claimCmd("n", "a", "o"))}
	h.nowMs += 1000
	logs = append(logs, entry(Command{Op: OpTick}))
	h.m.ApplyBatch(logs)
	if countPrefix(t, h.m, prefixLease) != 0 || countPrefix(t, h.m, prefixOutcome) != 0 {
		t.Fatal("a lease or outcome added earlier in the batch outlived its time")
	}
	checkOutcomeCount(t, h.m)
	checkSweepBounds(t, h.m)
}

// TestSweepBoundsOfAFailedBatch: a batch that fails part way (here on a
// corrupt claim record, after an entry that expired a lease and evicted
// outcomes) commits nothing, and leaves the bounds as they were, so the
// next entry still finds the lease and the outcomes due.
func TestSweepBoundsOfAFailedBatch(t *testing.T) {
	h := newHarness(t)
	h.m.outcomeRetentionMs = 1000
	h.apply(grantCmd(1000))
	h.apply(claimCmd("n", "a", "o"))
	if err := h.m.db.Set(claimKey("n", "corrupt"), []byte{1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	before := h.m.applied
	committed := h.index

	h.nowMs += 1000
	tick := h.fill(Command{Op: OpTick})
	bad := h.fill(claimCmd("n", "corrupt", "o"))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a batch reading a corrupt record did not panic")
			}
		}()
		h.m.ApplyBatch([]*raft.Log{
			{Index: committed + 1, Type: raft.LogCommand, Data: tick.Encode()},
			{Index: committed + 2, Type: raft.LogCommand, Data: bad.Encode()},
		})
	}()
	if !reflect.DeepEqual(h.m.applied, before) {
		t.Fatalf("the failed batch changed the committed metadata: %+v, was %+v", h.m.applied, before)
	}
	if countPrefix(t, h.m, prefixLease) != 1 || countPrefix(t, h.m, prefixOutcome) != 2 {
		t.Fatal("the failed batch changed the state")
	}
	checkSweepBounds(t, h.m)

	h.apply(Command{Op: OpTick})
	if countPrefix(t, h.m, prefixLease) != 0 || countPrefix(t, h.m, prefixOutcome) != 0 {
		t.Fatal("after the failed batch a lease or outcome outlived its time")
	}
	checkOutcomeCount(t, h.m)
}

// TestEvictionBoundWithOutcomesReadAhead: the outcomes read ahead are
// evicted at most evictionsPerApply at a time too, whether the records
// read ahead run out before, at or after the bound.
func TestEvictionBoundWithOutcomesReadAhead(t *testing.T) {
	for _, readAhead := range []int{1, 2, 3, 64} {
		t.Run(fmt.Sprintf("read ahead %d", readAhead), func(t *testing.T) {
			h := newHarness(t)
			h.m.outcomeRetentionMs = 1000
			h.m.evictionsPerApply = 2
			h.m.outcomeReadAhead = readAhead
			for i := range 6 {
				h.apply(claimCmd("n", fmt.Sprint(i), "o"))
			}
			h.nowMs += 500
			h.apply(claimCmd("n", "late", "o"))
			h.nowMs += 500
			for _, want := range []int{5, 3, 1, 1} {
				h.apply(Command{Op: OpTick})
				if got := countPrefix(t, h.m, prefixOutcome); got != want {
					t.Fatalf("%d outcomes after a tick, want %d", got, want)
				}
				checkOutcomeCount(t, h.m)
				checkSweepBounds(t, h.m)
			}
		})
	}
}
