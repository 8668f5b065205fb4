package fsm

import "testing"

// TestFutureCommandVersionIsRefusedNotApplied: a log entry in a command
// format of a later release is refused by every node of this release
// alike (the result says which versions), never misread as a command of
// this one: it changes no state, and its request id stays free. This is why
// a release must not write a new command format before every voter reads
// it (README, "Upgrading").
func TestFutureCommandVersionIsRefusedNotApplied(t *testing.T) {
	h := newHarness(t)
	claim := h.fill(claimCmd("users", "alice", "c1"))
	data := claim.Encode()
	data[0] = commandFormatV1 + 1
	res := h.applyData(data)
	checkResult(t, "claim in format 2", res, h.index, want{Code: CodeInvalidArgument, Msg: "unknown command format version 2 (this node understands 1)"})
	h.expect("lookup after the refused entry", lookupCmd("users", "alice"), want{Code: CodeNotFound, Msg: "is not claimed"})
	h.expect("the same request in format 1", claim, want{Code: CodeOK, Owner: "c1", Version: h.index + 1})
}

// TestUnknownOperationIsRefusedNotApplied: an operation a later release
// added, in this release's command format, is refused alike and changes no
// state (the machine's clock included).
func TestUnknownOperationIsRefusedNotApplied(t *testing.T) {
	h := newHarness(t)
	before := h.m.clockMs()
	future := h.fill(Command{Op: opEnd + 3, Namespace: "users", Name: "alice", Owner: "c1", NowMs: startMs + 60_000})
	res := h.applyData(future.Encode())
	checkResult(t, "a future operation", res, h.index, want{Code: CodeInvalidArgument, Msg: "unknown operation"})
	if h.m.clockMs() != before {
		t.Errorf("a refused entry moved the machine's clock from %d to %d", before, h.m.clockMs())
	}
	h.expect("lookup after the refused entry", lookupCmd("users", "alice"), want{Code: CodeNotFound, Msg: "is not claimed"})
}
