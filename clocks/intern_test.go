package clocks

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"unsafe"

	"github.com/google/uuid"
)

// resetInternedRegions empties the region table for one test and restores
// it afterwards, so that tests see a known table whatever ran before them.
func resetInternedRegions(t *testing.T) {
	saved := internedRegions.Load()
	internedRegions.Store(nil)
	t.Cleanup(func() { internedRegions.Store(saved) })
}

func internedLen() int {
	if names := internedRegions.Load(); names != nil {
		return len(*names)
	}
	return 0
}

func decodeVector(t *testing.T, v Vector) Vector {
	t.Helper()
	got, rest, err := ReadVector(AppendVector(nil, v))
	if err != nil || len(rest) != 0 {
		t.Fatalf("ReadVector(AppendVector(%v)) = %v, %d bytes left, %v", v, got, len(rest), err)
	}
	if !maps.Equal(got, v) {
		t.Fatalf("ReadVector(AppendVector(%v)) = %v", v, got)
	}
	return got
}

func TestInternedRegionsShared(t *testing.T) {
	resetInternedRegions(t)
	v := Vector{"us-east": 12, "eu-west": 3, "ap-south": 1}
	first, second := decodeVector(t, v), decodeVector(t, v)
	// key returns the map's own copy of region r, not the argument.
	key := func(v Vector, r string) string {
		for k := range v {
			if k == r {
				return k
			}
		}
		return ""
	}
	for r := range v {
		if unsafe.StringData(key(first, r)) != unsafe.StringData(key(second, r)) {
			t.Errorf("region %q decoded twice into two copies", r)
		}
	}
	if n := internedLen(); n != len(v) {
		t.Errorf("table has %d names after decoding %d regions", n, len(v))
	}
}

func TestInternedRegionsRejectsInvalid(t *testing.T) {
	resetInternedRegions(t)
	// "US" is not a valid region name: ReadVector rejects it, and the
	// table must not keep it either.
	src := []byte{1, 2, 'U', 'S', 1}
	if _, _, err := ReadVector(src); err == nil {
		t.Fatal("ReadVector accepted an invalid region name")
	}
	if n := internedLen(); n != 0 {
		t.Errorf("table has %d names after decoding only invalid ones", n)
	}
}

// TestInternedRegionsBounded decodes far more distinct names than the table
// holds, from several goroutines at once (run with -race): the table stops at
// its cap and decoding stays correct past it.
func TestInternedRegionsBounded(t *testing.T) {
	resetInternedRegions(t)
	const workers = 4
	batches := 2 * maxInternedRegions / MaxRegions / workers
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				v := Vector{}
				for i := range MaxRegions {
					v[fmt.Sprintf("w%d-b%d-r%d", w, b, i)] = uint64(i + 1)
				}
				// Twice: the second decode reads names back from the
				// table, or allocates them once it is full.
				decodeVector(t, v)
				decodeVector(t, v)
			}
		})
	}
	wg.Wait()
	if n := internedLen(); n != maxInternedRegions {
		t.Errorf("table has %d names after decoding %d distinct ones, want the cap %d",
			n, workers*batches*MaxRegions, maxInternedRegions)
	}
}

// TestTokenCodecAllocs pins the allocations of what every request does with
// its token: DecodeToken and Encode. Decoding allocates the decoded bytes and
// the vector's map (header and one group), encoding the token bytes and the
// returned string; region names come from the table.
// Allocation counts are deterministic, so this catches a codec change that
// adds one to the hot path. The table is reset first so that the regions are
// sure to fit in it whatever earlier tests decoded.
func TestTokenCodecAllocs(t *testing.T) {
	resetInternedRegions(t)
	cluster := uuid.MustParse("6f1c2a0e-3b7d-4c59-9a1e-2d8f5b6c7e90")
	s := Token{
		Cluster: cluster,
		Vector:  Vector{"us-east": 1_000_012, "eu-west": 1_000_003, "ap-south": 1_000_001},
		Seen:    Timestamp{WallMs: 1732349923123, Logical: 4, Region: "us-east"},
	}.Encode()
	const want = 5
	got := testing.AllocsPerRun(100, func() {
		tok, err := DecodeToken(s, cluster)
		if err != nil {
			t.Fatal(err)
		}
		if again := tok.Encode(); again != s {
			t.Fatalf("token re-encodes as %q, want %q", again, s)
		}
	})
	if got > want {
		t.Errorf("DecodeToken and Encode allocate %v times per token, want at most %d", got, want)
	}
}
