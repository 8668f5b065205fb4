package fsm

import (
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

func TestClaims(t *testing.T) {
	h := newHarness(t)
	runSteps(t, h, []step{
		{name: "lookup free", cmd: lookupCmd("users", "alice"), want: want{Code: CodeNotFound, Msg: `"users"/"alice" is not claimed`}},
		{name: "claim free", cmd: claimCmd("users", "alice", "c1"), want: want{Code: CodeOK, Owner: "c1", Version: 2}},
		{name: "claim again by holder", cmd: claimCmd("users", "alice", "c1"), want: want{Code: CodeOK, Owner: "c1", Version: 2}},
		{name: "claim by another", cmd: claimCmd("users", "alice", "c2"), want: want{Code: CodeAlreadyExists, Owner: "c1", Version: 2, Msg: `already claimed by "c1"`}},
		{name: "same name in another namespace", cmd: claimCmd("teams", "alice", "c2"), want: want{Code: CodeOK, Owner: "c2", Version: 5}},
		// The key encodes the namespace's length, so ("ab","c") and ("a","bc") differ.
		{name: "namespace/name boundary", cmd: claimCmd("teamsa", "lice", "c3"), want: want{Code: CodeOK, Owner: "c3", Version: 6}},
		{name: "lookup held", cmd: lookupCmd("users", "alice"), want: want{Code: CodeOK, Owner: "c1", Version: 2}},
		{name: "release by another", cmd: releaseCmd("users", "alice", "c2"), want: want{Code: CodeFailedPrecondition, Owner: "c1", Version: 2, Msg: `claimed by "c1", not by "c2"`}},
		{name: "release by holder", cmd: releaseCmd("users", "alice", "c1"), want: want{Code: CodeOK, Owner: "c1", Version: 2}},
		{name: "release free", cmd: releaseCmd("users", "alice", "c1"), want: want{Code: CodeNotFound, Msg: "nothing to release"}},
		{name: "lookup released", cmd: lookupCmd("users", "alice"), want: want{Code: CodeNotFound}},
		{name: "claim after release gets a new version", cmd: claimCmd("users", "alice", "c2"), want: want{Code: CodeOK, Owner: "c2", Version: 12}},
	})
}

func TestRegisters(t *testing.T) {
	h := newHarness(t)
	runSteps(t, h, []step{
		{name: "get absent", cmd: getCmd("k"), want: want{Code: CodeNotFound, Msg: `key "k" does not exist`}},
		{name: "create if absent", cmd: casVersionCmd("k", "v1", 0), want: want{Code: CodeOK, Version: 2}},
		{name: "create if absent when present", cmd: casVersionCmd("k", "x", 0), want: want{Code: CodeAborted, Value: "v1", Version: 2, Msg: "already exists at version 2"}},
		{name: "stale version", cmd: casVersionCmd("k", "x", 1), want: want{Code: CodeAborted, Value: "v1", Version: 2, Msg: "is at version 2, expected version 1"}},
		{name: "matching version", cmd: casVersionCmd("k", "v2", 2), want: want{Code: CodeOK, Version: 5}},
		{name: "get", cmd: getCmd("k"), want: want{Code: CodeOK, Value: "v2", Version: 5}},
		{name: "value mismatch", cmd: casValueCmd("k", "x", "v1"), want: want{Code: CodeAborted, Value: "v2", Version: 5, Msg: "does not hold the expected value"}},
		{name: "value match", cmd: casValueCmd("k", "v3", "v2"), want: want{Code: CodeOK, Version: 8}},
		{name: "unconditional", cmd: putCmd("k", "v4"), want: want{Code: CodeOK, Version: 9}},
		{name: "write empty value", cmd: putCmd("e", ""), want: want{Code: CodeOK, Version: 10}},
		{name: "empty value is present", cmd: casValueCmd("e", "x", ""), want: want{Code: CodeOK, Version: 11}},
		{name: "absent never matches a value", cmd: casValueCmd("absent", "x", ""), want: want{Code: CodeAborted, Msg: "does not exist, so it cannot hold the expected value"}},
		{name: "version on absent", cmd: casVersionCmd("absent", "x", 3), want: want{Code: CodeAborted, Msg: "does not exist (version 0), expected version 3"}},
		{name: "delete with stale version", cmd: Command{Op: OpCAS, Key: "k", Delete: true, Compare: CompareVersion, ExpectVersion: 8}, want: want{Code: CodeAborted, Value: "v4", Version: 9}},
		{name: "delete with version", cmd: Command{Op: OpCAS, Key: "k", Delete: true, Compare: CompareVersion, ExpectVersion: 9}, want: want{Code: CodeOK}},
		{name: "get deleted", cmd: getCmd("k"), want: want{Code: CodeNotFound}},
		{name: "delete absent", cmd: Command{Op: OpCAS, Key: "k", Delete: true}, want: want{Code: CodeOK}},
		{name: "recreate: version still increases", cmd: casVersionCmd("k", "v5", 0), want: want{Code: CodeOK, Version: 18}},
	})
}

// TestFencedCAS walks a lock through two holders: the first holder's token
// turns stale once the second acquires, also after the lock is released
// and its lease is gone, and a token never issued is refused.
func TestFencedCAS(t *testing.T) {
	h := newHarness(t)
	h.apply(grantCmd(1000)) // lease 1
	h.apply(grantCmd(5000)) // lease 2
	runSteps(t, h, []step{
		{name: "fence on a lock never taken", cmd: fencedPutCmd("k", "x", "L", 1), want: want{Code: CodeInvalidArgument, Msg: `fencing token 1 for lock "L" was never issued (the newest is 0)`}},
		{name: "first holder", cmd: lockCmd("L", 1, "a"), want: want{Code: CodeOK, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 4}},
		{name: "current token writes", cmd: fencedPutCmd("k", "a1", "L", 4), want: want{Code: CodeOK, Version: 5}},
		{name: "future token", cmd: fencedPutCmd("k", "x", "L", 5), want: want{Code: CodeInvalidArgument, Token: 4, Msg: "fencing token 5 for lock \"L\" was never issued (the newest is 4)"}},
		{name: "fence checked before compare", cmd: Command{Op: OpCAS, Key: "k", Value: []byte("x"), Compare: CompareVersion, ExpectVersion: 99, FenceLock: "L", FenceToken: 9}, want: want{Code: CodeInvalidArgument, Token: 4}},
		// Lease 1 expires; the lock is released by the Tick.
		{name: "second holder after expiry", advance: 1000, cmd: lockCmd("L", 2, "b"), want: want{Code: CodeOK, Owner: "b", LeaseID: 2, ExpiresMs: startMs + 5000, Token: 9}},
		{name: "first holder's token is stale", cmd: fencedPutCmd("k", "a2", "L", 4), want: want{Code: CodeFailedPrecondition, Token: 9, Msg: `fencing token 4 for lock "L" is stale: token 9 was issued since`}},
		{name: "stale fence wins over a matching compare", cmd: Command{Op: OpCAS, Key: "k", Value: []byte("x"), Compare: CompareVersion, ExpectVersion: 5, FenceLock: "L", FenceToken: 4}, want: want{Code: CodeFailedPrecondition, Token: 9}},
		{name: "second holder writes", cmd: fencedPutCmd("k", "b1", "L", 9), want: want{Code: CodeOK, Version: 12}},
		{name: "unlock", cmd: unlockCmd("L", 2), want: want{Code: CodeOK, Owner: "b", LeaseID: 2, ExpiresMs: startMs + 5000, Token: 9}},
		// Fencing compares against the newest token issued, not the holder:
		// the last holder's token stays valid until someone else locks.
		{name: "newest token after unlock", cmd: fencedPutCmd("k", "b2", "L", 9), want: want{Code: CodeOK, Version: 14}},
		{name: "old token after unlock", cmd: fencedPutCmd("k", "a3", "L", 4), want: want{Code: CodeFailedPrecondition, Token: 9}},
		{name: "value untouched by refused writes", cmd: getCmd("k"), want: want{Code: CodeOK, Value: "b2", Version: 14}},
	})
	if got := h.m.LatestToken("L"); got != 9 {
		t.Errorf("LatestToken(L) = %d, want 9", got)
	}
	if got := h.m.LatestToken("other"); got != 0 {
		t.Errorf("LatestToken(other) = %d, want 0", got)
	}
}

func TestLeases(t *testing.T) {
	h := newHarness(t)
	runSteps(t, h, []step{
		{name: "grant", cmd: grantCmd(1000), want: want{Code: CodeOK, LeaseID: 1, ExpiresMs: startMs + 1000}},
		{name: "grant below the minimum", cmd: grantCmd(MinLeaseTTLms - 1), want: want{Code: CodeInvalidArgument, Msg: "TTLms 499 is outside"}},
		{name: "grant above the maximum", cmd: grantCmd(MaxLeaseTTLms + 1), want: want{Code: CodeInvalidArgument, Msg: "TTLms 86400001 is outside"}},
		{name: "keepalive", advance: 600, cmd: keepAliveCmd(1), want: want{Code: CodeOK, LeaseID: 1, ExpiresMs: startMs + 600 + 1000}},
		{name: "still live after the first ttl", advance: 600, cmd: keepAliveCmd(1), want: want{Code: CodeOK, LeaseID: 1, ExpiresMs: startMs + 1200 + 1000}},
		{name: "keepalive unknown", cmd: keepAliveCmd(99), want: want{Code: CodeNotFound, LeaseID: 99, Msg: "lease 99 is not live"}},
		{name: "expired", advance: 1000, cmd: keepAliveCmd(1), want: want{Code: CodeNotFound, LeaseID: 1, Msg: "lease 1 is not live"}},
		{name: "grant 2", cmd: grantCmd(2000), want: want{Code: CodeOK, LeaseID: 11, ExpiresMs: startMs + 2200 + 2000}},
		{name: "revoke", cmd: revokeCmd(11), want: want{Code: CodeOK, LeaseID: 11}},
		{name: "revoke again", cmd: revokeCmd(11), want: want{Code: CodeNotFound, LeaseID: 11}},
		{name: "keepalive revoked", cmd: keepAliveCmd(11), want: want{Code: CodeNotFound, LeaseID: 11}},
	})
	if _, ok := h.m.NextExpiryMs(); ok {
		t.Error("NextExpiryMs reports an expiry with no lease left")
	}
}

func TestNextExpiryMs(t *testing.T) {
	h := newHarness(t)
	if _, ok := h.m.NextExpiryMs(); ok {
		t.Fatal("NextExpiryMs on an empty machine reports an expiry")
	}
	h.apply(grantCmd(5000)) // lease 1
	h.apply(grantCmd(2000)) // lease 2
	if got, ok := h.m.NextExpiryMs(); !ok || got != startMs+2000 {
		t.Fatalf("NextExpiryMs = %d, %v; want %d", got, ok, startMs+2000)
	}
	h.advance(2000)
	if got, ok := h.m.NextExpiryMs(); !ok || got != startMs+5000 {
		t.Fatalf("after lease 2 expired, NextExpiryMs = %d, %v; want %d", got, ok, startMs+5000)
	}
	h.apply(keepAliveCmd(1))
	if got, ok := h.m.NextExpiryMs(); !ok || got != startMs+2000+5000 {
		t.Fatalf("after keepalive, NextExpiryMs = %d, %v; want %d", got, ok, startMs+7000)
	}
}

func TestLocks(t *testing.T) {
	h := newHarness(t)
	h.apply(grantCmd(1000)) // lease 1
	h.apply(grantCmd(3000)) // lease 2
	runSteps(t, h, []step{
		{name: "lock under an unknown lease", cmd: lockCmd("L", 99, "a"), want: want{Code: CodeNotFound, LeaseID: 99, Msg: "lease 99 is not live"}},
		{name: "unlock free", cmd: unlockCmd("L", 1), want: want{Code: CodeNotFound, Msg: `lock "L" is not held`}},
		{name: "acquire", cmd: lockCmd("L", 1, "a"), want: want{Code: CodeOK, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 5}},
		{name: "acquire again under the same lease", cmd: lockCmd("L", 1, "a"), want: want{Code: CodeOK, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 5}},
		{name: "held by another lease", cmd: lockCmd("L", 2, "b"), want: want{Code: CodeAborted, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 5, Msg: `held by "a" under lease 1 (token 5)`}},
		{name: "unlock by another lease", cmd: unlockCmd("L", 2), want: want{Code: CodeFailedPrecondition, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 5, Msg: "not under lease 2"}},
		{name: "unlock", cmd: unlockCmd("L", 1), want: want{Code: CodeOK, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 5}},
		{name: "unlock twice", cmd: unlockCmd("L", 1), want: want{Code: CodeNotFound}},
		{name: "other lease acquires: new token", cmd: lockCmd("L", 2, "b"), want: want{Code: CodeOK, Owner: "b", LeaseID: 2, ExpiresMs: startMs + 3000, Token: 11}},
		{name: "first lease takes a second lock", cmd: lockCmd("M", 1, "a"), want: want{Code: CodeOK, Owner: "a", LeaseID: 1, ExpiresMs: startMs + 1000, Token: 12}},
		// Lease 1 expires at the start of this Apply, releasing M.
		{name: "expiry releases the lease's locks", advance: 1000, cmd: lockCmd("M", 2, "b"), want: want{Code: CodeOK, Owner: "b", LeaseID: 2, ExpiresMs: startMs + 3000, Token: 14}},
		{name: "lock under an expired lease", cmd: lockCmd("N", 1, "a"), want: want{Code: CodeNotFound, LeaseID: 1, Msg: "lease 1 is not live"}},
		{name: "revoke releases the lease's locks", cmd: revokeCmd(2), want: want{Code: CodeOK, LeaseID: 2}},
		{name: "grant 3", cmd: grantCmd(1000), want: want{Code: CodeOK, LeaseID: 17, ExpiresMs: startMs + 2000}},
		{name: "L free after revoke", cmd: lockCmd("L", 17, "c"), want: want{Code: CodeOK, Owner: "c", LeaseID: 17, ExpiresMs: startMs + 2000, Token: 18}},
		{name: "M free after revoke", cmd: lockCmd("M", 17, "c"), want: want{Code: CodeOK, Owner: "c", LeaseID: 17, ExpiresMs: startMs + 2000, Token: 19}},
	})
	for lock, token := range map[string]uint64{"L": 18, "M": 19, "N": 0} {
		if got := h.m.LatestToken(lock); got != token {
			t.Errorf("LatestToken(%s) = %d, want %d", lock, got, token)
		}
	}
}

func TestLockLimitPerLease(t *testing.T) {
	h := newHarness(t)
	lease := h.apply(grantCmd(60_000)).LeaseID
	for i := range MaxLocksPerLease {
		if res := h.apply(lockCmd(string(rune('A'+i%26))+string(rune('a'+i/26)), lease, "o")); res.Code != CodeOK {
			t.Fatalf("lock %d: %s %s", i, res.Code, res.Message)
		}
	}
	res := h.apply(lockCmd("one-more", lease, "o"))
	checkResult(t, "lock beyond the limit", res, h.index, want{Code: CodeFailedPrecondition, LeaseID: lease, Msg: "already holds 64 locks"})
	h.apply(unlockCmd("Aa", lease))
	if res := h.apply(lockCmd("one-more", lease, "o")); res.Code != CodeOK {
		t.Fatalf("lock after an unlock: %s %s", res.Code, res.Message)
	}
	if res := h.apply(revokeCmd(lease)); res.Code != CodeOK {
		t.Fatalf("revoke: %s %s", res.Code, res.Message)
	}
	if res := h.apply(lockCmd("one-more", h.apply(grantCmd(1000)).LeaseID, "p")); res.Code != CodeOK {
		t.Fatalf("lock after revoking a full lease: %s %s", res.Code, res.Message)
	}
}

// TestExpiryIsBoundedPerApply expires more leases at once than one Apply
// may (the bound is shrunk to 2); the rest expire on later Applies, and
// until then they already count as expired.
func TestExpiryIsBoundedPerApply(t *testing.T) {
	h := newHarness(t)
	h.m.expiriesPerApply = 2
	for range 7 {
		h.apply(grantCmd(1000)) // leases 1..7
	}
	h.expect("lock under lease 7", lockCmd("L", 7, "a"),
		want{Code: CodeOK, Owner: "a", LeaseID: 7, ExpiresMs: startMs + 1000, Token: 8})
	h.expect("grant lease 9", grantCmd(10_000),
		want{Code: CodeOK, LeaseID: 9, ExpiresMs: startMs + 10_000})

	h.advance(1000) // index 10 expires leases 1 and 2
	if got := countPrefix(t, h.m, prefixLease); got != 6 {
		t.Fatalf("%d leases left after one Apply, want 6", got)
	}
	if due, ok := h.m.NextExpiryMs(); !ok || due != startMs+1000 {
		t.Fatalf("NextExpiryMs = %d, %v; want the overdue %d", due, ok, startMs+1000)
	}
	// Index 11 expires 3 and 4; lease 7 is past its expiry but not swept.
	h.expect("keepalive of an overdue lease", keepAliveCmd(7),
		want{Code: CodeNotFound, LeaseID: 7, Msg: "lease 7 expired at"})
	// Index 12 expires 5 and 6; lease 7 still holds L in storage, but it
	// has expired, so L is free.
	h.expect("lock held by an overdue lease", lockCmd("L", 9, "b"),
		want{Code: CodeOK, Owner: "b", LeaseID: 9, ExpiresMs: startMs + 10_000, Token: 12})
	if got := countPrefix(t, h.m, prefixLease); got != 1 {
		t.Fatalf("%d leases left, want only lease 9", got)
	}
	if due, ok := h.m.NextExpiryMs(); !ok || due != startMs+10_000 {
		t.Fatalf("NextExpiryMs = %d, %v; want %d", due, ok, startMs+10_000)
	}
}

func countPrefix(t tb, m *Machine, prefix byte) int {
	t.Helper()
	kvs, err := scan(m.db, []byte{prefix}, []byte{prefix + 1}, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(kvs)
}

func TestTickOnlyAdvancesTime(t *testing.T) {
	h := newHarness(t)
	before := snapshotBytes(t, h.m)
	res := h.advance(0)
	checkResult(t, "tick", res, h.index, want{Code: CodeOK})
	if h.m.clockMs() != startMs {
		t.Fatalf("clock = %d, want %d", h.m.clockMs(), startMs)
	}
	// A leader whose clock is behind does not move time back.
	h.nowMs = startMs - 10_000
	h.apply(Command{Op: OpTick})
	if h.m.clockMs() != startMs {
		t.Fatalf("clock went back to %d", h.m.clockMs())
	}
	after := snapshotBytes(t, h.m)
	if len(before) == len(after) && string(before) == string(after) {
		t.Fatal("a tick did not record its index")
	}
}

// TestInvalidEntriesAdvanceLastApplied: an entry that does not decode or
// validate gets CodeInvalidArgument, counts as applied, and changes no
// other state (the clock included).
func TestInvalidEntriesAdvanceLastApplied(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"garbage", []byte("not a command"), "unknown command format version"},
		{"empty", nil, "empty log entry"},
		{"invalid", (&Command{Op: OpClaim, RequestID: validRequestID, NowMs: startMs + 99_999}).Encode(), "Namespace is required"},
	} {
		res := h.applyData(tc.data)
		checkResult(t, tc.name, res, h.index, want{Code: CodeInvalidArgument, Msg: tc.msg})
		if got := h.m.LastApplied(); got != h.index {
			t.Errorf("%s: LastApplied = %d, want %d", tc.name, got, h.index)
		}
	}
	if h.m.clockMs() != 0 {
		t.Errorf("an invalid command moved the clock to %d", h.m.clockMs())
	}
}

func TestNonCommandEntries(t *testing.T) {
	h := newHarness(t)
	h.apply(grantCmd(1000))
	for _, typ := range []raft.LogType{raft.LogConfiguration, raft.LogNoop, raft.LogBarrier} {
		if got := h.m.Apply(&raft.Log{Index: 2, Type: typ, Data: []byte("x")}); got != nil {
			t.Errorf("Apply(%s) = %v, want nil", typ, got)
		}
	}
	if got := h.m.LastApplied(); got != 1 {
		t.Fatalf("LastApplied = %d after non-command entries, want 1", got)
	}
	// The next command may come after a gap left by those entries.
	h.index = 3
	h.expect("command after a gap", grantCmd(1000), want{Code: CodeOK, LeaseID: 4, ExpiresMs: startMs + 1000})
}

func TestApplyBatchMatchesApply(t *testing.T) {
	single := newHarness(t)
	batched := openMem(t)
	var logs []*raft.Log
	cmds := []Command{
		grantCmd(1000), lockCmd("L", 1, "a"), claimCmd("n", "a", "o"), putCmd("k", "v"),
		lockCmd("L", 1, "a"), {Op: OpTick, NowMs: startMs + 5000}, grantCmd(1000), lockCmd("L", 8, "b"),
	}
	// Entry 5 is a configuration change; entry 6 retries entry 2.
	var want []*Result
	for i, c := range cmds {
		c = single.fill(c)
		if i == 4 {
			c.RequestID = requestID(1_000_002) // a retry of entry 2
		}
		want = append(want, single.applyData(c.Encode()))
		logs = append(logs, &raft.Log{Index: single.index, Type: raft.LogCommand, Data: c.Encode()})
		if i == 3 {
			single.index++
			logs = append(logs, &raft.Log{Index: single.index, Type: raft.LogConfiguration})
		}
	}
	got := batched.ApplyBatch(logs[:3])
	got = append(got, batched.ApplyBatch(logs[3:])...)
	var results []*Result
	for i, g := range got {
		if logs[i].Type != raft.LogCommand {
			if g != nil {
				t.Errorf("response %d for a configuration entry = %v, want nil", i, g)
			}
			continue
		}
		results = append(results, g.(*Result))
	}
	for i := range want {
		if !reflect.DeepEqual(results[i], want[i]) {
			t.Errorf("entry %d: batched %+v, single %+v", i+1, results[i], want[i])
		}
	}
	if !want[4].Duplicate {
		t.Errorf("the retried lock was not a duplicate: %+v", want[4])
	}
	if string(snapshotBytes(t, batched)) != string(snapshotBytes(t, single.m)) {
		t.Error("batched and single application reached different states")
	}
}
