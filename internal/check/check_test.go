package check_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/causewaydb/causeway/internal/check"
)

// history builds small histories: each method appends one acknowledged op
// of the named session at the next index.
type history struct {
	ops  []check.Op
	next map[string]int
}

func newHistory() *history { return &history{next: map[string]int{}} }

func (h *history) add(op check.Op) *check.Op {
	op.Index = h.next[op.Session]
	h.next[op.Session]++
	op.OK = true
	h.ops = append(h.ops, op)
	return &h.ops[len(h.ops)-1]
}

// v is the version (origin, seq) with timestamp wall.0@origin.
func v(origin string, seq, wall uint64) check.VersionRef {
	return check.VersionRef{Origin: origin, Seq: seq, WallMs: wall}
}

func (h *history) put(session, region, key, value string, ref check.VersionRef) check.VersionRef {
	h.add(check.Op{Session: session, Region: region, Kind: check.OpPut, Key: key, Value: value, Written: ref})
	ref.Value = value
	return ref
}

func (h *history) del(session, region, key string, ref check.VersionRef) check.VersionRef {
	ref.Tombstone = true
	h.add(check.Op{Session: session, Region: region, Kind: check.OpDelete, Key: key, Written: ref})
	return ref
}

func (h *history) get(session, region, key string, got check.VersionRef) {
	h.add(check.Op{Session: session, Region: region, Kind: check.OpGet, Reads: map[string]check.VersionRef{key: got}})
}

func (h *history) readMany(session, region string, got map[string]check.VersionRef) {
	h.add(check.Op{Session: session, Region: region, Kind: check.OpReadMany, Reads: got})
}

// everywhere is a final state in which regions a, b and c all hold state.
func everywhere(state map[string]check.VersionRef) check.Final {
	return check.Final{"a": state, "b": state, "c": state}
}

var none check.VersionRef

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		build func(h *history) check.Final
		want  []string // kinds reported, in any order, without repetition
	}{
		{
			name: "correct history",
			build: func(h *history) check.Final {
				x1 := h.put("s1", "a", "x", "1", v("a", 1, 100))
				h.get("s1", "a", "x", x1)
				h.get("s2", "b", "x", none) // not replicated yet: fine
				h.get("s2", "b", "x", x1)
				x2 := h.put("s2", "b", "x", "2", v("b", 1, 200)) // overwrites x1
				x3 := h.put("s3", "c", "x", "3", v("c", 1, 150)) // concurrent with both, older than x2
				h.get("s3", "c", "x", x3)
				h.get("s1", "a", "x", x2)
				h.get("s1", "a", "x", x2) // x3 arrives later, loses to x2
				h.get("s3", "a", "x", x2) // x2 wins over the session's own x3
				acl := h.put("alice", "a", "acl", "friends", v("a", 2, 300))
				photo := h.put("alice", "b", "photo", "beach", v("b", 2, 310))
				h.readMany("bob", "c", map[string]check.VersionRef{"acl": acl, "photo": none})
				h.readMany("bob", "c", map[string]check.VersionRef{"acl": acl, "photo": photo})
				gone := h.del("bob", "c", "acl", v("c", 2, 320))
				h.get("alice", "a", "acl", acl) // alice did not read the delete
				h.get("bob", "a", "acl", gone)
				// A put whose acknowledgement was lost, seen by another session.
				h.ops = append(h.ops, check.Op{Session: "s4", Index: 0, Region: "a", Kind: check.OpPut, Key: "y", Value: "lost ack", Indeterminate: true})
				h.next["s4"] = 1
				h.get("s4", "a", "y", none) // the session never learned of its write
				y := v("a", 3, 400)
				y.Value = "lost ack"
				h.get("s5", "a", "y", y)
				// A put that failed outright: never visible, never a violation.
				h.ops = append(h.ops, check.Op{Session: "s5", Index: 1, Region: "b", Kind: check.OpPut, Key: "z", Value: "refused"})
				h.next["s5"] = 2
				return everywhere(map[string]check.VersionRef{"x": x2, "acl": gone, "photo": photo, "y": y})
			},
		},
		{
			name: "read-your-writes: own write missing",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", v("a", 1, 100))
				h.get("s1", "b", "x", none)
				return nil
			},
			want: []string{check.KindReadYourWrites},
		},
		{
			name: "read-your-writes: concurrent older version returned",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", v("a", 1, 200))
				old := h.put("s2", "b", "x", "2", v("b", 1, 100))
				h.get("s1", "b", "x", old)
				return nil
			},
			want: []string{check.KindReadYourWrites},
		},
		{
			name: "monotonic-reads: overwritten version read after the newer one",
			build: func(h *history) check.Final {
				x1 := h.put("s1", "a", "x", "1", v("a", 1, 100))
				x2 := h.put("s1", "a", "x", "2", v("a", 2, 110))
				h.get("s2", "a", "x", x2)
				h.get("s2", "b", "x", x1)
				return nil
			},
			want: []string{check.KindMonotonicReads},
		},
		{
			name: "monotonic-writes: later write of a session seen, earlier one missed",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", v("a", 1, 100))
				y := h.put("s1", "a", "y", "1", v("a", 2, 110))
				h.get("s2", "b", "y", y)
				h.get("s2", "b", "x", none)
				return nil
			},
			want: []string{check.KindMonotonicWrites},
		},
		{
			name: "writes-follow-reads: a write seen without what its writer read",
			build: func(h *history) check.Final {
				x := h.put("s1", "a", "x", "1", v("a", 1, 100))
				h.get("s2", "b", "x", x)
				y := h.put("s2", "b", "y", "1", v("b", 1, 120))
				h.get("s3", "c", "y", y)
				h.get("s3", "c", "x", none)
				return nil
			},
			want: []string{check.KindWritesFollowReads},
		},
		{
			name: "causal-snapshot: photo visible without the acl written before it",
			build: func(h *history) check.Final {
				h.put("alice", "a", "acl", "friends", v("a", 1, 100))
				photo := h.put("alice", "b", "photo", "beach", v("b", 1, 120))
				h.readMany("bob", "c", map[string]check.VersionRef{"acl": none, "photo": photo})
				return nil
			},
			want: []string{check.KindCausalSnapshot},
		},
		{
			name: "causal-snapshot: old acl returned with the new photo",
			build: func(h *history) check.Final {
				old := h.put("alice", "a", "acl", "public", v("a", 1, 100))
				h.put("alice", "a", "acl", "friends", v("a", 2, 110))
				photo := h.put("alice", "b", "photo", "beach", v("b", 1, 120))
				h.readMany("bob", "c", map[string]check.VersionRef{"acl": old, "photo": photo})
				return nil
			},
			want: []string{check.KindCausalSnapshot},
		},
		{
			name: "unwritten-version: a version nobody wrote",
			build: func(h *history) check.Final {
				h.get("s1", "a", "x", v("c", 9, 100))
				return nil
			},
			want: []string{check.KindUnwrittenVersion},
		},
		{
			name: "unwritten-version: the value of a failed put",
			build: func(h *history) check.Final {
				h.ops = append(h.ops, check.Op{Session: "s1", Region: "a", Kind: check.OpPut, Key: "x", Value: "refused"})
				h.next["s1"] = 1
				ref := v("a", 1, 100)
				ref.Value = "refused"
				h.get("s2", "a", "x", ref)
				return nil
			},
			want: []string{check.KindUnwrittenVersion},
		},
		{
			name: "version-mismatch: version of another key",
			build: func(h *history) check.Final {
				x := h.put("s1", "a", "x", "1", v("a", 1, 100))
				h.get("s2", "a", "y", x)
				return nil
			},
			want: []string{check.KindVersionMismatch},
		},
		{
			name: "version-mismatch: wrong value for a version",
			build: func(h *history) check.Final {
				x := h.put("s1", "a", "x", "1", v("a", 1, 100))
				x.Value = "2"
				h.get("s2", "a", "x", x)
				return nil
			},
			want: []string{check.KindVersionMismatch},
		},
		{
			name: "duplicate-version: one sequence number acknowledged twice",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", v("a", 1, 100))
				h.put("s2", "a", "y", "1", v("a", 1, 120))
				return nil
			},
			want: []string{check.KindDuplicateVersion},
		},
		{
			name: "causality-cycle: a read returns the session's next write",
			build: func(h *history) check.Final {
				ref := v("a", 1, 100)
				ref.Value = "1"
				h.get("s1", "a", "x", ref)
				h.put("s1", "a", "x", "1", v("a", 1, 100))
				return nil
			},
			want: []string{check.KindCausalityCycle},
		},
		{
			name: "timestamp-order: a write older than what its session read",
			build: func(h *history) check.Final {
				x := h.put("s1", "a", "x", "1", v("a", 1, 200))
				h.get("s2", "b", "x", x)
				h.put("s2", "b", "y", "1", v("b", 1, 150))
				return nil
			},
			want: []string{check.KindTimestampOrder},
		},
		{
			name: "timestamp-order: a region's clock went backwards",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", v("a", 1, 200))
				h.put("s2", "a", "y", "1", v("a", 2, 150))
				return nil
			},
			want: []string{check.KindTimestampOrder},
		},
		{
			name: "divergence: regions hold different winners",
			build: func(h *history) check.Final {
				x1 := h.put("s1", "a", "x", "1", v("a", 1, 100))
				x2 := h.put("s2", "b", "x", "2", v("b", 1, 200))
				return check.Final{"a": {"x": x2}, "b": {"x": x2}, "c": {"x": x1}}
			},
			// c also lost x2.
			want: []string{check.KindDivergence, check.KindLostWrite},
		},
		{
			name: "lost-write: older concurrent write won",
			build: func(h *history) check.Final {
				x1 := h.put("s1", "a", "x", "1", v("a", 1, 100))
				h.put("s2", "b", "x", "2", v("b", 1, 200))
				return everywhere(map[string]check.VersionRef{"x": x1})
			},
			want: []string{check.KindLostWrite},
		},
		{
			name: "lost-write: acknowledged write gone everywhere",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", v("a", 1, 100))
				return everywhere(map[string]check.VersionRef{})
			},
			want: []string{check.KindLostWrite},
		},
		{
			name: "lost-write: write seen by a read although never acknowledged",
			build: func(h *history) check.Final {
				h.ops = append(h.ops, check.Op{Session: "s1", Region: "a", Kind: check.OpDelete, Key: "x", Indeterminate: true})
				h.next["s1"] = 1
				ref := v("a", 1, 100)
				ref.Tombstone = true
				h.get("s2", "a", "x", ref)
				return everywhere(map[string]check.VersionRef{})
			},
			want: []string{check.KindLostWrite},
		},
		{
			name: "malformed-history: acknowledged put without its version",
			build: func(h *history) check.Final {
				h.put("s1", "a", "x", "1", none)
				return nil
			},
			want: []string{check.KindMalformed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory()
			final := tt.build(h)
			got := check.Check(h.ops, final)
			var kinds []string
			for _, v := range got {
				if !slices.Contains(kinds, v.Kind) {
					kinds = append(kinds, v.Kind)
				}
				t.Log(v)
			}
			slices.Sort(kinds)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(kinds, want) {
				t.Errorf("kinds reported = %v, want %v", kinds, want)
			}
		})
	}
}

// TestCheckNamesTheGuarantee pins the message of a typical violation: it
// must say what was read, what was missed, and why that is wrong.
func TestCheckNamesTheGuarantee(t *testing.T) {
	h := newHistory()
	h.put("s1", "us-east", "x", "1", v("us-east", 1, 100))
	h.get("s1", "eu-west", "x", none)
	got := check.Check(h.ops, nil)
	if len(got) != 1 {
		t.Fatalf("got %v, want one violation", got)
	}
	want := `read-your-writes [op 1, session s1] key "x": get at eu-west returned nothing for "x", but us-east/1 "1" @100.0@us-east written by session s1 at op 0 in us-east; the session wrote it before this read: it must be visible`
	if s := got[0].String(); s != want {
		t.Errorf("message\n got: %s\nwant: %s", s, want)
	}
}

// TestCheckOrderIndependent: the checker orders each session by Index and
// everything else by causality, so shuffling the history changes nothing.
func TestCheckOrderIndependent(t *testing.T) {
	h := newHistory()
	x := h.put("s1", "a", "x", "1", v("a", 1, 100))
	h.get("s2", "b", "x", x)
	y := h.put("s2", "b", "y", "1", v("b", 1, 120))
	h.get("s3", "c", "y", y)
	h.get("s3", "c", "x", none)
	want := check.Check(h.ops, nil)
	if len(want) != 1 {
		t.Fatalf("got %v, want one violation", want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		ops := slices.Clone(h.ops)
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		got := check.Check(ops, nil)
		if len(got) != 1 || got[0].Kind != want[0].Kind || got[0].Key != want[0].Key {
			t.Fatalf("shuffled history: %v, want %v", got, want)
		}
	}
}

// sequentialHistory is a history of one copy of the data that applies every
// op at once: trivially causally consistent, with n ops over sessions
// sessions and keys keys.
func sequentialHistory(n, sessions, keys int, seed uint64) ([]check.Op, check.Final) {
	rng := rand.New(rand.NewPCG(seed, 0))
	state := map[string]check.VersionRef{}
	index := map[string]int{}
	var ops []check.Op
	for i := range n {
		s := fmt.Sprintf("s%d", rng.IntN(sessions))
		op := check.Op{Session: s, Index: index[s], Region: "a", OK: true}
		index[s]++
		key := fmt.Sprintf("k%d", rng.IntN(keys))
		switch r := rng.IntN(10); {
		case r < 3:
			op.Kind, op.Key, op.Value = check.OpPut, key, fmt.Sprintf("v%d", i)
			op.Written = check.VersionRef{Origin: "a", Seq: uint64(i + 1), WallMs: uint64(i + 1), Value: op.Value}
			state[key] = op.Written
		case r < 4:
			op.Kind, op.Key = check.OpDelete, key
			op.Written = check.VersionRef{Origin: "a", Seq: uint64(i + 1), WallMs: uint64(i + 1), Tombstone: true}
			state[key] = op.Written
		case r < 7:
			op.Kind, op.Reads = check.OpGet, map[string]check.VersionRef{key: state[key]}
		default:
			op.Kind, op.Reads = check.OpReadMany, map[string]check.VersionRef{}
			for range 3 {
				k := fmt.Sprintf("k%d", rng.IntN(keys))
				op.Reads[k] = state[k]
			}
		}
		ops = append(ops, op)
	}
	return ops, check.Final{"a": state}
}

func TestCheckLargeCorrectHistory(t *testing.T) {
	ops, final := sequentialHistory(10_000, 50, 20, 1)
	if got := check.Check(ops, final); len(got) != 0 {
		t.Fatalf("%d violations in a sequential history, first: %v", len(got), got[0])
	}
	// Lose the last acknowledged write from the final state: the checker
	// notices.
	for i := len(ops) - 1; ; i-- {
		if ops[i].Kind == check.OpPut || ops[i].Kind == check.OpDelete {
			delete(final["a"], ops[i].Key)
			got := check.Check(ops, final)
			if len(got) != 1 || got[0].Kind != check.KindLostWrite || got[0].Key != ops[i].Key {
				t.Fatalf("after losing %v: %v", ops[i].Written, got)
			}
			return
		}
	}
}

func BenchmarkCheck10kOps(b *testing.B) {
	ops, final := sequentialHistory(10_000, 50, 20, 1)
	for b.Loop() {
		check.Check(ops, final)
	}
}
