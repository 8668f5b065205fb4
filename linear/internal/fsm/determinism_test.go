package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"pgregory.net/rapid"
)

// TestDeterminism applies a random log (commands of every kind, retries
// and reused request ids, invalid and undecodable entries, configuration
// entries and index gaps, a leader clock that jumps and goes back) to
// three machines:
//   - one entry at a time, checking invariants after each;
//   - in random ApplyBatch chunks: results and snapshot bytes must match;
//   - from a snapshot taken part way, then the rest of the log: the
//     results of the rest and the final snapshot bytes must match.
//
// All machines run with shrunk outcome retention, outcome cap and per-Apply
// bounds, so the log exercises eviction and the bounded sweeps.
func TestDeterminism(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		g := &logGen{rt: rt, nowMs: startMs, lastToken: map[string]uint64{}}
		single := openTuned(rt)
		defer single.Close()
		n := rapid.IntRange(1, 60).Draw(rt, "entries")
		split := rapid.IntRange(0, n).Draw(rt, "snapshot after")
		var logs []*raft.Log
		var results []interface{}
		var image []byte
		if split == 0 {
			image = snapshotBytes(rt, single)
		}
		for i := range n {
			l := g.next()
			res := single.Apply(l)
			logs, results = append(logs, l), append(results, res)
			g.observe(single, l, res)
			if i+1 == split {
				image = snapshotBytes(rt, single)
			}
		}
		final := snapshotBytes(rt, single)
		checkOutcomeCount(rt, single)

		batched := openTuned(rt)
		defer batched.Close()
		var got []interface{}
		for rest := logs; len(rest) > 0; {
			k := rapid.IntRange(1, len(rest)).Draw(rt, "batch")
			got = append(got, batched.ApplyBatch(rest[:k])...)
			rest = rest[k:]
		}
		compareResults(rt, "batched", logs, got, results)
		if !bytes.Equal(snapshotBytes(rt, batched), final) {
			rt.Fatal("batched application reached a different state")
		}

		restored := openTuned(rt)
		defer restored.Close()
		if err := restoreBytes(restored, image); err != nil {
			rt.Fatalf("Restore: %v", err)
		}
		compareResults(rt, "restored", logs[split:], applyAll(restored, logs[split:]), results[split:])
		if !bytes.Equal(snapshotBytes(rt, restored), final) {
			rt.Fatal("the restored machine reached a different state")
		}
	})
}

// openTuned opens a machine on a fresh in-memory filesystem with the
// small retention and per-apply limits of openTunedOn.
func openTuned(t tb) *Machine { return openTunedOn(t, vfs.NewMem()) }

func compareResults(t tb, what string, logs []*raft.Log, got, want []interface{}) {
	t.Helper()
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: entry %d (%s) gave %+v, one at a time %+v", what, logs[i].Index, describe(logs[i]), got[i], want[i])
		}
	}
}

func describe(l *raft.Log) string {
	if l.Type != raft.LogCommand {
		return l.Type.String()
	}
	c, err := DecodeCommand(l.Data)
	if err != nil {
		return "undecodable"
	}
	return fmt.Sprintf("%+v", *c)
}

// logGen draws log entries from small pools, so that commands collide:
// the same names, keys and locks, leases that exist, tokens that were
// issued, and request ids that were used.
type logGen struct {
	rt        *rapid.T
	index     uint64
	nowMs     int64
	requests  int
	leases    []uint64
	tokens    []uint64
	mutations []Command
	lastToken map[string]uint64 // lock -> newest token seen acquired
}

var (
	genNames  = []string{"a", "b", "c"}
	genOwners = []string{"o1", "o2", "o3"}
	genKeys   = []string{"k1", "k2"}
	genValues = []string{"", "x", "y"}
	genLocks  = []string{"L", "M"}
	genTTLs   = []int64{100, 500, 1000, 2500} // 100 is invalid
)

func (g *logGen) next() *raft.Log {
	rt := g.rt
	g.index++
	if rapid.IntRange(0, 9).Draw(rt, "gap") == 0 {
		g.index++ // an entry raft does not hand to the FSM, e.g. a no-op
	}
	l := &raft.Log{Index: g.index, Term: 1, Type: raft.LogCommand}
	g.nowMs += rapid.Int64Range(-400, 1500).Draw(rt, "clock step")
	kind := rapid.IntRange(0, 99).Draw(rt, "kind")
	var c Command
	switch {
	case kind < 3:
		l.Type = raft.LogConfiguration
		return l
	case kind < 6:
		l.Data = rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(rt, "garbage")
		return l
	case kind < 20 && len(g.mutations) > 0:
		c = rapid.SampledFrom(g.mutations).Draw(rt, "retry")
		if rapid.Bool().Draw(rt, "reuse id for another request") {
			c.Owner, c.Key, c.Value = "", "", nil
			c.Op, c.Key, c.Value, c.Compare, c.ExpectVersion, c.ExpectValue, c.FenceLock, c.FenceToken =
				OpCAS, "k1", []byte("reused"), CompareNone, 0, nil, "", 0
			c.Namespace, c.Name, c.LeaseID, c.TTLms, c.Lock, c.Delete = "", "", 0, 0, "", false
		}
	default:
		c = g.fresh()
	}
	c.NowMs = max(g.nowMs, 0)
	if c.Op.IsMutation() && c.RequestID == "" {
		g.requests++
		c.RequestID = requestID(g.requests)
	}
	if c.Op.IsMutation() {
		g.mutations = append(g.mutations, c)
	}
	l.Data = c.Encode()
	return l
}

func (g *logGen) lease() uint64 {
	if len(g.leases) > 0 && rapid.IntRange(0, 3).Draw(g.rt, "known lease") > 0 {
		return rapid.SampledFrom(g.leases).Draw(g.rt, "lease")
	}
	return rapid.Uint64Range(1, g.index+1).Draw(g.rt, "any lease")
}

func (g *logGen) fresh() Command {
	rt := g.rt
	pick := func(label string, pool []string) string { return rapid.SampledFrom(pool).Draw(rt, label) }
	switch op := rapid.SampledFrom([]Op{OpClaim, OpRelease, OpLookup, OpCAS, OpGet, OpGrant, OpKeepAlive,
		OpRevoke, OpLock, OpUnlock, OpTick}).Draw(rt, "op"); op {
	case OpClaim, OpRelease:
		return Command{Op: op, Namespace: "ns", Name: pick("name", genNames), Owner: pick("owner", genOwners)}
	case OpLookup:
		return Command{Op: op, Namespace: "ns", Name: pick("name", genNames)}
	case OpCAS:
		c := Command{Op: op, Key: pick("key", genKeys)}
		if rapid.IntRange(0, 4).Draw(rt, "delete") == 0 {
			c.Delete = true
		} else {
			c.Value = []byte(pick("value", genValues))
		}
		switch c.Compare = CompareKind(rapid.IntRange(0, 2).Draw(rt, "compare")); c.Compare {
		case CompareVersion:
			c.ExpectVersion = rapid.Uint64Range(0, g.index).Draw(rt, "expect version")
		case CompareValue:
			c.ExpectValue = []byte(pick("expect value", genValues))
		}
		if rapid.IntRange(0, 3).Draw(rt, "fenced") == 0 {
			c.FenceLock = pick("fence lock", genLocks)
			c.FenceToken = rapid.Uint64Range(1, g.index+1).Draw(rt, "any token")
			if len(g.tokens) > 0 && rapid.Bool().Draw(rt, "issued token") {
				c.FenceToken = rapid.SampledFrom(g.tokens).Draw(rt, "token")
			}
		}
		return c
	case OpGet:
		return Command{Op: op, Key: pick("key", genKeys)}
	case OpGrant:
		return Command{Op: op, TTLms: rapid.SampledFrom(genTTLs).Draw(rt, "ttl")}
	case OpKeepAlive, OpRevoke:
		return Command{Op: op, LeaseID: g.lease()}
	case OpLock:
		return Command{Op: op, Lock: pick("lock", genLocks), LeaseID: g.lease(), Owner: pick("owner", genOwners)}
	case OpUnlock:
		return Command{Op: op, Lock: pick("lock", genLocks), LeaseID: g.lease()}
	default:
		return Command{Op: OpTick}
	}
}

// observe records what the entry produced for later draws and checks
// invariants that hold after every entry.
func (g *logGen) observe(m *Machine, l *raft.Log, out interface{}) {
	rt := g.rt
	if l.Type != raft.LogCommand {
		if out != nil {
			rt.Fatalf("entry %d of type %s returned %v", l.Index, l.Type, out)
		}
		return
	}
	res, ok := out.(*Result)
	if !ok || res == nil {
		rt.Fatalf("entry %d returned %T, want *Result", l.Index, out)
	}
	if m.LastApplied() != l.Index {
		rt.Fatalf("LastApplied = %d after entry %d", m.LastApplied(), l.Index)
	}
	if res.Duplicate == (res.Index == l.Index) {
		rt.Fatalf("entry %d: Index %d with Duplicate %v", l.Index, res.Index, res.Duplicate)
	}
	c, err := DecodeCommand(l.Data)
	if err != nil || c.Validate() != nil {
		return
	}
	if res.Code == CodeOK && c.Op == OpGrant && !res.Duplicate {
		g.leases = append(g.leases, res.LeaseID)
	}
	if res.Code == CodeOK && c.Op == OpLock && !res.Duplicate && res.Token == l.Index {
		// A new acquisition: its token exceeds every earlier one for the lock.
		if res.Token <= g.lastToken[c.Lock] {
			rt.Fatalf("lock %s: token %d issued after token %d", c.Lock, res.Token, g.lastToken[c.Lock])
		}
		g.lastToken[c.Lock] = res.Token
		g.tokens = append(g.tokens, res.Token)
	}
	for _, lock := range genLocks {
		if got := m.LatestToken(lock); got != g.lastToken[lock] {
			rt.Fatalf("LatestToken(%s) = %d, newest acquisition seen %d", lock, got, g.lastToken[lock])
		}
	}
}
