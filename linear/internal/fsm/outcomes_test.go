package fsm

import (
	"reflect"
	"testing"
)

// TestDuplicatesReturnTheOriginalOutcome applies a mutation, changes the
// state so that executing it again would answer differently, then retries
// it with the same request id (and a later clock, as a retry has): the
// retry returns the original outcome, marked Duplicate, and changes nothing.
func TestDuplicatesReturnTheOriginalOutcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   []Command // applied first
		request Command
		between []Command // applied between the request and its retry
		check   Command   // a read whose answer must not change with the retry
	}{
		{
			name:    "claim",
			request: claimCmd("n", "a", "c1"),
			between: []Command{releaseCmd("n", "a", "c1")},
			check:   lookupCmd("n", "a"),
		},
		{
			name:    "refused claim",
			setup:   []Command{claimCmd("n", "a", "c1")},
			request: claimCmd("n", "a", "c2"),
			between: []Command{releaseCmd("n", "a", "c1")},
			check:   lookupCmd("n", "a"),
		},
		{
			name:    "release",
			setup:   []Command{claimCmd("n", "a", "c1")},
			request: releaseCmd("n", "a", "c1"),
			between: []Command{claimCmd("n", "a", "c1")},
			check:   lookupCmd("n", "a"),
		},
		{
			name:    "cas",
			request: putCmd("k", "v1"),
			between: []Command{putCmd("k", "v2")},
			check:   getCmd("k"),
		},
		{
			name:    "delete",
			setup:   []Command{putCmd("k", "v1")},
			request: Command{Op: OpCAS, Key: "k", Delete: true, Compare: CompareVersion, ExpectVersion: 1},
			between: []Command{casVersionCmd("k", "v2", 0)},
			check:   getCmd("k"),
		},
		{
			name:    "grant",
			request: grantCmd(1000),
			check:   Command{Op: OpTick},
		},
		{
			name:    "lock",
			setup:   []Command{grantCmd(60_000)},
			request: lockCmd("L", 1, "a"),
			between: []Command{unlockCmd("L", 1)},
			check:   Command{Op: OpTick},
		},
		{
			name:    "unlock",
			setup:   []Command{grantCmd(60_000), lockCmd("L", 1, "a")},
			request: unlockCmd("L", 1),
			between: []Command{lockCmd("L", 1, "a")},
			check:   Command{Op: OpTick},
		},
		{
			name:    "keepalive",
			setup:   []Command{grantCmd(1000)},
			request: keepAliveCmd(1),
			between: []Command{{Op: OpTick, NowMs: startMs + 500}, keepAliveCmd(1)},
			check:   Command{Op: OpTick},
		},
		{
			name:    "revoke",
			setup:   []Command{grantCmd(1000)},
			request: revokeCmd(1),
			check:   Command{Op: OpTick},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tc.setup {
				h.apply(c)
			}
			req := h.fill(tc.request)
			original := h.apply(req)
			for _, c := range tc.between {
				h.apply(c)
			}
			before := h.apply(tc.check)
			tokenBefore := h.m.LatestToken("L")
			leasesBefore := countPrefix(t, h.m, prefixLease)

			h.nowMs += 100
			req.NowMs = h.nowMs
			retry := h.apply(req)

			if !retry.Duplicate {
				t.Fatalf("retry was executed again: %+v", retry)
			}
			retry.Duplicate = false
			if !reflect.DeepEqual(retry, original) {
				t.Fatalf("retry returned %+v, want the original %+v", retry, original)
			}
			after := h.apply(tc.check)
			after.Index = before.Index
			if !reflect.DeepEqual(after, before) {
				t.Errorf("the retry changed state: %+v, then %+v", before, after)
			}
			if h.m.LatestToken("L") != tokenBefore || countPrefix(t, h.m, prefixLease) != leasesBefore {
				t.Errorf("the retry changed locks or leases")
			}
		})
	}
}

func TestRequestIDReusedForADifferentRequest(t *testing.T) {
	h := newHarness(t)
	id := requestID(7)
	first := h.apply(Command{Op: OpCAS, RequestID: id, Key: "k", Value: []byte("v1")})
	for _, c := range []Command{
		{Op: OpCAS, RequestID: id, Key: "k", Value: []byte("v2")},
		{Op: OpCAS, RequestID: id, Key: "other", Value: []byte("v1")},
		{Op: OpClaim, RequestID: id, Namespace: "n", Name: "a", Owner: "o"},
	} {
		res := h.apply(c)
		checkResult(t, "reuse for "+c.Op.String(), res, h.index, want{Code: CodeInvalidArgument,
			Msg: "request id reused for a different request: " + id + " was applied at log index 1"})
	}
	h.expect("state kept", getCmd("k"), want{Code: CodeOK, Value: "v1", Version: first.Version})
	h.expect("claim not made", lookupCmd("n", "a"), want{Code: CodeNotFound, Msg: "not claimed"})
	// The original outcome is still there for a genuine retry.
	retry := h.apply(Command{Op: OpCAS, RequestID: id, Key: "k", Value: []byte("v1")})
	checkResult(t, "genuine retry", retry, h.index, want{Code: CodeOK, Version: 1, Index: 1, Duplicate: true})
	checkOutcomeCount(t, h.m)
}

func TestOutcomeRetention(t *testing.T) {
	h := newHarness(t)
	h.m.outcomeRetentionMs = 1000
	id := requestID(1)
	claim := Command{Op: OpClaim, RequestID: id, Namespace: "n", Name: "a", Owner: "o"}
	h.apply(claim)
	h.nowMs += 999
	h.expect("retry within retention", claim, want{Code: CodeOK, Owner: "o", Version: 1, Index: 1, Duplicate: true})
	h.nowMs++
	// Executed again: a claim by its holder succeeds with the claim's version.
	h.expect("retry after retention", claim, want{Code: CodeOK, Owner: "o", Version: 1})
	checkOutcomeCount(t, h.m)
	if got := countPrefix(t, h.m, prefixOutcome); got != 1 {
		t.Fatalf("%d outcomes stored, want 1 (the expired one evicted, the new one kept)", got)
	}
	h.nowMs += 1000
	// After retention the id may even name a different request.
	h.expect("id reused after retention", Command{Op: OpGrant, RequestID: id, TTLms: 1000},
		want{Code: CodeOK, LeaseID: h.index + 1, ExpiresMs: h.nowMs + 1000})
	checkOutcomeCount(t, h.m)
}

func TestOutcomeCap(t *testing.T) {
	h := newHarness(t)
	h.m.maxOutcomes = 3
	cmds := make([]Command, 5)
	for i := range cmds {
		cmds[i] = Command{Op: OpCAS, RequestID: requestID(i), Key: "k", Value: []byte{byte(i)}}
		h.apply(cmds[i])
	}
	checkOutcomeCount(t, h.m)
	if h.m.applied.outcomes != 3 {
		t.Fatalf("%d outcomes kept, want the cap of 3", h.m.applied.outcomes)
	}
	for i := 4; i >= 2; i-- {
		res := h.apply(cmds[i])
		checkResult(t, "retry of a kept outcome", res, h.index, want{Code: CodeOK, Version: uint64(i + 1), Index: uint64(i + 1), Duplicate: true})
	}
	// The oldest two were evicted: their retries execute again.
	res := h.apply(cmds[0])
	checkResult(t, "retry of an evicted outcome", res, h.index, want{Code: CodeOK, Version: h.index})
	checkOutcomeCount(t, h.m)
}

// TestOutcomeEvictionIsBounded: more outcomes expire at once than one
// Apply evicts (the bound is shrunk to 2); those past retention already
// count as gone.
func TestOutcomeEvictionIsBounded(t *testing.T) {
	h := newHarness(t)
	h.m.outcomeRetentionMs = 1000
	h.m.evictionsPerApply = 2
	var cmds []Command
	for i := range 6 {
		cmds = append(cmds, Command{Op: OpClaim, RequestID: requestID(i), Namespace: "n", Name: string(rune('a' + i)), Owner: "o"})
		h.apply(cmds[i])
	}
	h.advance(1000)
	if got := countPrefix(t, h.m, prefixOutcome); got != 4 {
		t.Fatalf("%d outcomes after one Apply, want 4", got)
	}
	checkOutcomeCount(t, h.m)
	// Outcome 5 is past retention but not evicted yet: the retry executes
	// again (evicting two more first, then replacing outcome 5's record).
	res := h.apply(cmds[5])
	checkResult(t, "retry of an expired, unevicted outcome", res, h.index, want{Code: CodeOK, Owner: "o", Version: 6})
	checkOutcomeCount(t, h.m)
	h.apply(Command{Op: OpTick})
	if got := countPrefix(t, h.m, prefixOutcome); got != 1 {
		t.Fatalf("%d outcomes after three Applies, want only the fresh one", got)
	}
	checkOutcomeCount(t, h.m)
}

// checkOutcomeCount checks the outcome table's bookkeeping: one age entry
// per outcome, and the persisted count matching both.
func checkOutcomeCount(t tb, m *Machine) {
	t.Helper()
	outcomes, ages := countPrefix(t, m, prefixOutcome), countPrefix(t, m, prefixOutcomeAge)
	if uint64(outcomes) != m.applied.outcomes || ages != outcomes {
		t.Fatalf("outcome table: %d records, %d age entries, count %d", outcomes, ages, m.applied.outcomes)
	}
}
