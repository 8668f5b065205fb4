package fsm

import (
	"fmt"
	"reflect"
	"testing"
)

// strictlyIncreasing reports where a sequence of fencing tokens, in the
// order the acquisitions happened, fails to increase.
func strictlyIncreasing(tokens []uint64) error {
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			return fmt.Errorf("acquisition %d got token %d after token %d", i, tokens[i], tokens[i-1])
		}
	}
	return nil
}

// TestTokensFollowTheLogNotTheClock moves leadership to a node whose clock
// is behind, between two acquisitions of one lock. The machine's tokens
// (log indices) still increase, and the first holder is fenced out.
// Tokens taken from the proposing leader's clock, a tempting alternative,
// go backwards in the same history: the check below catches that, so it
// is the property, not the test, that holds.
func TestTokensFollowTheLogNotTheClock(t *testing.T) {
	h := newHarness(t)
	leaderA := int64(startMs + 60_000) // a leader whose clock runs ahead
	leaderB := int64(startMs)          // the next leader, a minute behind

	var machineTokens, clockTokens []uint64
	acquire := func(lease uint64, owner string, leaderMs int64) {
		t.Helper()
		h.nowMs = leaderMs
		res := h.apply(lockCmd("L", lease, owner))
		if res.Code != CodeOK {
			t.Fatalf("lock by %s: %s %s", owner, res.Code, res.Message)
		}
		machineTokens = append(machineTokens, res.Token)
		clockTokens = append(clockTokens, uint64(leaderMs))
	}

	h.nowMs = leaderA
	first := h.apply(grantCmd(1000)).LeaseID
	acquire(first, "a", leaderA)
	// The first holder stalls; its lease expires on leader A's clock.
	h.nowMs = leaderA + 1000
	h.apply(Command{Op: OpTick})
	// Leadership moves to B. The machine's clock does not go back.
	h.nowMs = leaderB
	second := h.apply(grantCmd(5000)).LeaseID
	acquire(second, "b", leaderB)
	if h.m.clockMs() != leaderA+1000 {
		t.Fatalf("machine clock %d, want it held at %d", h.m.clockMs(), leaderA+1000)
	}

	if err := strictlyIncreasing(machineTokens); err != nil {
		t.Fatalf("machine tokens %v: %v", machineTokens, err)
	}
	if err := strictlyIncreasing(clockTokens); err == nil {
		t.Fatalf("clock-derived tokens %v pass the check: it cannot tell", clockTokens)
	}
	if got := h.m.LatestToken("L"); got != machineTokens[1] {
		t.Fatalf("LatestToken = %d, want %d", got, machineTokens[1])
	}
	// The stalled first holder wakes up and writes with its token.
	h.expect("stale holder's write", fencedPutCmd("k", "a", "L", machineTokens[0]), want{
		Code: CodeFailedPrecondition, Token: machineTokens[1],
		Msg: fmt.Sprintf("fencing token %d for lock \"L\" is stale: token %d was issued since", machineTokens[0], machineTokens[1]),
	})
	h.expect("current holder's write", fencedPutCmd("k", "b", "L", machineTokens[1]), want{Code: CodeOK, Version: h.index + 1})
}

func TestRead(t *testing.T) {
	h := newHarness(t)
	history(h)
	for _, c := range []Command{getCmd("k"), getCmd("absent"), lookupCmd("users", "alice"), lookupCmd("users", "nobody")} {
		read, err := h.m.Read(&c)
		if err != nil {
			t.Fatal(err)
		}
		applied := h.apply(c)
		if read.Index != h.index-1 {
			t.Errorf("Read(%s).Index = %d, want the last applied %d", c.Op, read.Index, h.index-1)
		}
		read.Index = applied.Index
		if !reflect.DeepEqual(read, applied) {
			t.Errorf("Read(%+v) = %+v, through the log %+v", c, read, applied)
		}
	}
	for _, tc := range []struct {
		name string
		cmd  Command
		msg  string
	}{
		{"mutation", h.fill(putCmd("k", "v")), "must go through the log"},
		{"invalid", Command{Op: OpGet}, "Key is required"},
	} {
		res, err := h.m.Read(&tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, tc.name, res, res.Index, want{Code: CodeInvalidArgument, Msg: tc.msg})
	}
}
