package fsm

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// restartLog is a log whose entries answer differently if applied twice:
// by the time it ends every outcome has left the (shortened) retention, so
// a second application of the Grant makes a new lease and a second
// application of the Lock (after the Unlock) issues a new token.
func restartLog(t testing.TB) []*raft.Log {
	b := &harness{t: t, nowMs: startMs}
	var logs []*raft.Log
	add := func(c Command) {
		b.index++
		c = b.fill(c)
		logs = append(logs, &raft.Log{Index: b.index, Term: 1, Type: raft.LogCommand, Data: c.Encode()})
	}
	add(grantCmd(1000))       // 1: lease 1
	add(lockCmd("L", 1, "a")) // 2: token 2
	add(putCmd("k", "v1"))    // 3
	b.nowMs += 2000           //
	add(Command{Op: OpTick})  // 4: lease 1 expires, L is free
	b.index++                 //
	logs = append(logs, &raft.Log{Index: b.index, Term: 2, Type: raft.LogConfiguration})
	add(grantCmd(10_000))     // 6: lease 6
	add(lockCmd("L", 6, "b")) // 7: token 7
	add(unlockCmd("L", 6))    // 8
	b.nowMs += 2000           //
	add(Command{Op: OpTick})  // 9: every outcome is past retention
	return logs
}

const restartRetentionMs = 1000

func applyAll(m *Machine, logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		out[i] = m.Apply(l)
	}
	return out
}

// TestRestartDoesNotApplyTwice closes a machine over a real directory,
// reopens it and replays the log as raft does after a restart: the entries
// already applied return nil and change nothing; the next one applies.
func TestRestartDoesNotApplyTwice(t *testing.T) {
	dir := t.TempDir()
	logs := restartLog(t)
	last := logs[len(logs)-1].Index

	m, err := Open(dir, vfs.Default, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	m.outcomeRetentionMs = restartRetentionMs
	applyAll(m, logs)
	before := snapshotBytes(t, m)
	if m.LatestToken("L") != 7 || m.LastApplied() != last {
		t.Fatalf("LatestToken(L) = %d, LastApplied = %d; want 7, %d", m.LatestToken("L"), m.LastApplied(), last)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m, err = Open(dir, vfs.Default, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.outcomeRetentionMs = restartRetentionMs
	if got := m.LastApplied(); got != last {
		t.Fatalf("LastApplied after reopening = %d, want %d", got, last)
	}
	for i, res := range applyAll(m, logs) {
		if res != nil {
			t.Errorf("replayed entry %d returned %+v, want nil", logs[i].Index, res)
		}
	}
	if !bytes.Equal(snapshotBytes(t, m), before) {
		t.Fatal("replaying applied entries changed the state")
	}
	if got := m.LatestToken("L"); got != 7 {
		t.Fatalf("LatestToken(L) = %d after the replay, want 7", got)
	}
	next := lockCmd("M", 6, "b")
	next.NowMs, next.RequestID = startMs+4000, requestID(99)
	res := m.Apply(&raft.Log{Index: last + 1, Type: raft.LogCommand, Data: next.Encode()})
	checkResult(t, "entry after the replay", res.(*Result), last+1,
		want{Code: CodeOK, Owner: "b", LeaseID: 6, ExpiresMs: startMs + 2000 + 10_000, Token: last + 1})
}

// TestReplayWithoutTheGuardWouldDiverge shows the log above is a real
// test of the guard: applying its commands a second time (at new indices,
// which the guard cannot recognise) changes the state and the tokens.
func TestReplayWithoutTheGuardWouldDiverge(t *testing.T) {
	m := openMem(t)
	m.outcomeRetentionMs = restartRetentionMs
	logs := restartLog(t)
	applyAll(m, logs)
	once := snapshotBytes(t, m)
	next := logs[len(logs)-1].Index
	for _, l := range logs {
		next++
		m.Apply(&raft.Log{Index: next, Type: l.Type, Data: l.Data})
	}
	if bytes.Equal(snapshotBytes(t, m), once) {
		t.Fatal("applying the log twice left the state unchanged: the restart test would prove nothing")
	}
	if m.LatestToken("L") == 7 {
		t.Fatal("applying the log twice issued no new token")
	}
}

// TestCrashLosesOnlyASuffix crashes the filesystem under a machine that
// committed without fsync, keeping none, some or all unsynced writes: the
// reopened state is the state after some prefix of the log, and replaying
// the whole log (raft's job) applies exactly the missing suffix, reaching
// the state of a machine that never crashed. A WAL sync part way through
// (as the operating system's writeback would do at some point) sets how
// much of the log must survive.
func TestCrashLosesOnlyASuffix(t *testing.T) {
	logs := restartLog(t)
	ref := openMem(t)
	ref.outcomeRetentionMs = restartRetentionMs
	wantResults := applyAll(ref, logs)
	wantState := snapshotBytes(t, ref)

	for _, tc := range []struct {
		name      string
		syncAfter int // entries applied before the WAL is synced; 0: never
		percent   int // unsynced writes kept by the crash
		seed      uint64
	}{
		{"nothing synced, nothing unsynced survives", 0, 0, 0},
		{"nothing synced, all unsynced file data survives", 0, 100, 0},
		{"four entries synced, nothing unsynced survives", 4, 0, 0},
		{"four entries synced, some unsynced writes survive", 4, 50, 1},
		{"four entries synced, other unsynced writes survive", 4, 50, 2},
		{"all synced", len(logs), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			m, err := Open("state", fs, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			m.outcomeRetentionMs = restartRetentionMs
			var synced uint64
			for i, l := range logs {
				m.Apply(l)
				if i+1 == tc.syncAfter {
					if err := m.db.LogData(nil, pebble.Sync); err != nil {
						t.Fatal(err)
					}
					synced = l.Index
				}
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: tc.percent, RNG: rand.New(rand.NewPCG(tc.seed, 7))})
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			m, err = Open("state", crashed, quietLogger())
			if err != nil {
				t.Fatalf("reopening after the crash: %v", err)
			}
			defer m.Close()
			m.outcomeRetentionMs = restartRetentionMs
			kept := m.LastApplied()
			t.Logf("the crash kept entries through index %d", kept)
			if kept < synced {
				t.Fatalf("the crash lost synced entries: kept through %d, synced through %d", kept, synced)
			}
			for i, l := range logs {
				res := m.Apply(l)
				switch {
				case l.Type != raft.LogCommand || l.Index <= kept:
					if res != nil {
						t.Errorf("entry %d (kept by the crash) returned %+v on replay", l.Index, res)
					}
				case !reflect.DeepEqual(res, wantResults[i]):
					t.Errorf("entry %d replayed to %+v, originally %+v", l.Index, res, wantResults[i])
				}
			}
			if !bytes.Equal(snapshotBytes(t, m), wantState) {
				t.Fatal("after the replay the state differs from a machine that never crashed")
			}
		})
	}
}
