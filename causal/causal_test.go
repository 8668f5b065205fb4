package causal

import (
	"errors"
	"testing"
	"time"

	"github.com/causewaydb/causeway/clocks"
)

func newReplica(t *testing.T, region string, mutate ...func(*Config)) *Replica {
	t.Helper()
	now := time.UnixMilli(1_000_000)
	cfg := Config{Region: region, Clock: clocks.NewClock(region, func() time.Time { return now }, time.Second)}
	for _, m := range mutate {
		m(&cfg)
	}
	return NewReplica(cfg)
}

func write(origin string, seq uint64, wall uint64, vec clocks.Vector) *Write {
	v := vec.Clone()
	v[origin] = seq
	return &Write{Timestamp: clocks.Timestamp{WallMs: wall, Region: origin}, Seq: seq, Vector: v,
		Ops: []Op{{Key: "k", Kind: KindValue, Value: []byte(origin)}}}
}

func seqs(ws []*Write) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Origin()+":"+string(rune('0'+w.Seq)))
	}
	return out
}

func TestReadyWaitsForCausalPast(t *testing.T) {
	r := newReplica(t, "c")
	a1 := write("a", 1, 10, nil)
	b1 := write("b", 1, 20, clocks.Vector{"a": 1}) // b1 depends on a1
	b2 := write("b", 2, 30, nil)
	a2 := write("a", 2, 40, clocks.Vector{"b": 2})

	for _, w := range []*Write{b2, b1, a2} {
		if err := r.Receive(w); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Ready(); len(got) != 0 {
		t.Fatalf("ready without a1: %v", seqs(got))
	}
	if w := r.Waiting(); len(w["b"]) != 1 || w["b"][0].Region != "a" || w["b"][0].Need != 1 {
		t.Fatalf("Waiting = %v, want b waiting for a:1", w)
	}
	if err := r.Receive(a1); err != nil {
		t.Fatal(err)
	}
	got := seqs(r.Ready())
	want := []string{"a:1", "b:1", "b:2", "a:2"}
	if len(got) != len(want) {
		t.Fatalf("ready = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ready = %v, want %v", got, want)
		}
	}
	if r.Pending() != 0 || !r.Applied().Equal(clocks.Vector{"a": 2, "b": 2}) {
		t.Fatalf("pending %d, applied %v", r.Pending(), r.Applied())
	}
	// The clock observed the remote timestamps.
	if r.clock.Last().WallMs < 40 {
		t.Fatalf("clock %v did not observe remote writes", r.clock.Last())
	}
}

func TestReceiveIgnoresDuplicatesAndRejectsNonsense(t *testing.T) {
	r := newReplica(t, "c")
	a1 := write("a", 1, 10, nil)
	for range 3 {
		if err := r.Receive(a1); err != nil {
			t.Fatal(err)
		}
	}
	if r.Pending() != 1 {
		t.Fatalf("pending %d after duplicates, want 1", r.Pending())
	}
	if len(r.Ready()) != 1 {
		t.Fatal("a1 not ready")
	}
	if err := r.Receive(a1); err != nil || r.Pending() != 0 {
		t.Fatalf("resent applied write: err %v, pending %d", err, r.Pending())
	}
	bad := write("a", 3, 10, nil)
	bad.Vector["a"] = 2
	for _, w := range []*Write{write("c", 1, 1, nil), bad, {Timestamp: clocks.Timestamp{Region: "a"}}} {
		if err := r.Receive(w); !errors.Is(err, ErrInvalidWrite) {
			t.Errorf("Receive(%+v) = %v, want ErrInvalidWrite", w, err)
		}
	}
}

func TestPendingIsBounded(t *testing.T) {
	r := newReplica(t, "c", func(c *Config) { c.MaxPending = 2 })
	// Writes 2..4 of a wait for write 1.
	for seq := uint64(2); seq <= 3; seq++ {
		if err := r.Receive(write("a", seq, seq, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Receive(write("a", 4, 4, nil)); !errors.Is(err, ErrPendingFull) {
		t.Fatalf("third pending write: %v, want ErrPendingFull", err)
	}
	if err := r.Receive(write("b", 2, 1, nil)); !errors.Is(err, ErrPendingFull) {
		t.Fatalf("full buffer accepted b2 (which waits for b1): %v", err)
	}
	// a1 is applicable at once, so it is accepted even now, and drains the buffer.
	if err := r.Receive(write("a", 1, 1, nil)); err != nil {
		t.Fatalf("full buffer refused the write that drains it: %v", err)
	}
	if got := r.Ready(); len(got) != 3 || r.Pending() != 0 {
		t.Fatalf("ready %v, pending %d; want a1..a3 and nothing left", seqs(got), r.Pending())
	}
}

func TestUnsafeSkipDependenciesIgnoresOtherRegions(t *testing.T) {
	r := newReplica(t, "c", func(c *Config) { c.UnsafeSkipDependencies = true })
	if err := r.Receive(write("b", 1, 20, clocks.Vector{"a": 1})); err != nil {
		t.Fatal(err)
	}
	if got := r.Ready(); len(got) != 1 {
		t.Fatalf("with dependencies skipped b1 should apply before a1; ready = %v", seqs(got))
	}
}

func TestLocalWriteFollowsSession(t *testing.T) {
	r := newReplica(t, "c", func(c *Config) { c.Applied = clocks.Vector{"c": 7, "a": 4} })
	if _, err := r.Local(clocks.Token{Vector: clocks.Vector{"a": 5}}, nil, [16]byte{}); !errors.Is(err, ErrNotCaughtUp) {
		t.Fatalf("token ahead of the applied vector: %v, want ErrNotCaughtUp", err)
	}
	seen := clocks.Timestamp{WallMs: 1_000_500, Logical: 3, Region: "a"} // ahead of the local clock, within the offset
	w, err := r.Local(clocks.Token{Vector: clocks.Vector{"a": 4}, Seen: seen}, []Op{{Key: "k", Kind: KindValue}}, [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Seq != 8 || !w.Vector.Equal(clocks.Vector{"a": 4, "c": 8}) || !seen.Less(w.Timestamp) {
		t.Fatalf("local write %+v: want seq 8, vector {a:4 c:8}, timestamp after %v", w, seen)
	}
	far := clocks.Timestamp{WallMs: 1_000_000 + 5_000, Region: "a"}
	if _, err := r.Local(clocks.Token{Seen: far}, nil, [16]byte{}); !errors.Is(err, clocks.ErrClockOffset) {
		t.Fatalf("token 5s ahead: %v, want ErrClockOffset", err)
	}
	if r.AppliedSeq("c") != 8 {
		t.Fatalf("refused write advanced the sequence to %d", r.AppliedSeq("c"))
	}
}

func version(origin string, seq uint64, wall uint64, vec clocks.Vector) Version {
	w := write(origin, seq, wall, vec)
	return VersionOf(w, w.Ops[0])
}

func TestResolve(t *testing.T) {
	a1 := version("a", 1, 10, nil)
	b1 := version("b", 1, 20, nil)                   // concurrent with a1
	a2 := version("a", 2, 30, clocks.Vector{"b": 1}) // covers a1 (same region) and b1
	c1 := version("c", 1, 25, clocks.Vector{"a": 1}) // covers a1, concurrent with b1
	stale := version("b", 1, 20, nil)                // b1 again

	s, _, ok := Resolve(nil, a1)
	if !ok || len(s) != 1 {
		t.Fatalf("first version: %v", s)
	}
	s, _, ok = Resolve(s, b1)
	if !ok || len(s) != 2 || !s[0].Same(&b1) {
		t.Fatalf("concurrent versions: %v, want [b1 a1] (newest first)", s)
	}
	if _, _, ok := Resolve(s, stale); ok {
		t.Fatal("duplicate applied twice")
	}
	s2, superseded, ok := Resolve(s, c1)
	if !ok || len(s2) != 2 || !s2[0].Same(&c1) || !s2[1].Same(&b1) || len(superseded) != 1 || !superseded[0].Same(&a1) {
		t.Fatalf("c1 over {b1 a1}: siblings %v superseded %v, want [c1 b1] superseding a1", s2, superseded)
	}
	s3, superseded, ok := Resolve(s, a2)
	if !ok || len(s3) != 1 || !s3[0].Same(&a2) || len(superseded) != 2 {
		t.Fatalf("a2 over {b1 a1}: %v superseded %v, want only a2", s3, superseded)
	}
	if _, _, ok := Resolve(s3, a1); ok {
		t.Fatal("a covered version was resurrected")
	}
}
