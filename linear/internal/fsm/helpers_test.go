package fsm

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// startMs is the machine time tests start at (unix ms).
const startMs = 1_700_000_000_000

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openMem opens a machine on an in-memory filesystem and closes it at the
// end of the test.
func openMem(t testing.TB) *Machine {
	t.Helper()
	m, err := Open("state", vfs.NewMem(), quietLogger())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// harness feeds a machine log entries with consecutive indices, stamping
// the harness clock and fresh request ids where a command leaves them
// empty.
type harness struct {
	t     testing.TB
	m     *Machine
	index uint64
	nowMs int64
	reqs  int
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, m: openMem(t), nowMs: startMs}
}

// requestID returns the n-th deterministic request id.
func requestID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

func (h *harness) fill(c Command) Command {
	if c.NowMs == 0 {
		c.NowMs = h.nowMs
	}
	if c.Op.IsMutation() && c.RequestID == "" {
		h.reqs++
		c.RequestID = requestID(1_000_000 + h.reqs)
	}
	return c
}

// apply applies c as the next log entry and returns its result.
func (h *harness) apply(c Command) *Result {
	h.t.Helper()
	c = h.fill(c)
	return h.applyData(c.Encode())
}

func (h *harness) applyData(data []byte) *Result {
	h.t.Helper()
	h.index++
	out := h.m.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data})
	res, ok := out.(*Result)
	if !ok || res == nil {
		h.t.Fatalf("Apply(index %d) returned %T %v, want a *Result", h.index, out, out)
	}
	return res
}

// advance moves the harness clock and applies a Tick stamped with it.
func (h *harness) advance(ms int64) *Result {
	h.t.Helper()
	h.nowMs += ms
	return h.apply(Command{Op: OpTick})
}

// want describes the fields of a Result a test checks. Index 0 means
// "the entry's own index"; Msg is a substring the message must contain.
type want struct {
	Code      Code
	Owner     string
	Version   uint64
	Value     string
	LeaseID   uint64
	ExpiresMs int64
	Token     uint64
	Duplicate bool
	Index     uint64
	Msg       string
}

func checkResult(t testing.TB, step string, got *Result, index uint64, w want) {
	t.Helper()
	if w.Index == 0 {
		w.Index = index
	}
	var diffs []string
	diff := func(field string, g, x any) {
		if g != x {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, x))
		}
	}
	diff("Code", got.Code, w.Code)
	diff("Owner", got.Owner, w.Owner)
	diff("Version", got.Version, w.Version)
	diff("Value", string(got.Value), w.Value)
	diff("LeaseID", got.LeaseID, w.LeaseID)
	diff("ExpiresMs", got.ExpiresMs, w.ExpiresMs)
	diff("Token", got.Token, w.Token)
	diff("Duplicate", got.Duplicate, w.Duplicate)
	diff("Index", got.Index, w.Index)
	if !strings.Contains(got.Message, w.Msg) {
		diffs = append(diffs, fmt.Sprintf("Message = %q, want it to contain %q", got.Message, w.Msg))
	}
	if (got.Code == CodeOK) != (got.Message == "") {
		diffs = append(diffs, fmt.Sprintf("Message = %q with code %s: only a failure has a message", got.Message, got.Code))
	}
	if len(diffs) > 0 {
		t.Errorf("%s: %s", step, strings.Join(diffs, "; "))
	}
}

// step is one row of an operation table: a command and what it must
// return. Advance moves the clock (by a Tick) before the command.
type step struct {
	name    string
	advance int64
	cmd     Command
	want    want
}

func runSteps(t *testing.T, h *harness, steps []step) {
	t.Helper()
	for _, s := range steps {
		if s.advance != 0 {
			h.advance(s.advance)
		}
		got := h.apply(s.cmd)
		checkResult(t, s.name, got, h.index, s.want)
	}
}

// tb is what helpers need of a test; both *testing.T and *rapid.T have it.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// snapshotBytes returns the machine's snapshot stream.
func snapshotBytes(t tb, m *Machine) []byte {
	t.Helper()
	s, err := m.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer s.Release()
	var sink memSink
	if err := s.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func restoreBytes(m *Machine, b []byte) error {
	return m.Restore(io.NopCloser(bytes.NewReader(b)))
}

// Command constructors, to keep tables short.
func claimCmd(ns, name, owner string) Command {
	return Command{Op: OpClaim, Namespace: ns, Name: name, Owner: owner}
}
func releaseCmd(ns, name, owner string) Command {
	return Command{Op: OpRelease, Namespace: ns, Name: name, Owner: owner}
}
func lookupCmd(ns, name string) Command { return Command{Op: OpLookup, Namespace: ns, Name: name} }
func putCmd(key, value string) Command  { return Command{Op: OpCAS, Key: key, Value: []byte(value)} }
func casVersionCmd(key, value string, version uint64) Command {
	return Command{Op: OpCAS, Key: key, Value: []byte(value), Compare: CompareVersion, ExpectVersion: version}
}
func casValueCmd(key, value, expect string) Command {
	return Command{Op: OpCAS, Key: key, Value: []byte(value), Compare: CompareValue, ExpectValue: []byte(expect)}
}
func fencedPutCmd(key, value, lock string, token uint64) Command {
	return Command{Op: OpCAS, Key: key, Value: []byte(value), FenceLock: lock, FenceToken: token}
}
func getCmd(key string) Command         { return Command{Op: OpGet, Key: key} }
func grantCmd(ttlMs int64) Command      { return Command{Op: OpGrant, TTLms: ttlMs} }
func keepAliveCmd(lease uint64) Command { return Command{Op: OpKeepAlive, LeaseID: lease} }
func revokeCmd(lease uint64) Command    { return Command{Op: OpRevoke, LeaseID: lease} }
func unlockCmd(lock string, lease uint64) Command {
	return Command{Op: OpUnlock, Lock: lock, LeaseID: lease}
}
func lockCmd(lock string, lease uint64, owner string) Command {
	return Command{Op: OpLock, Lock: lock, LeaseID: lease, Owner: owner}
}

// expect applies c as the next entry and checks its result; Index 0 in w
// means the entry's own index.
func (h *harness) expect(name string, c Command, w want) *Result {
	h.t.Helper()
	res := h.apply(c)
	checkResult(h.t, name, res, h.index, w)
	return res
}
