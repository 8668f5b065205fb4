package clocks_test

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

// The property tests below check Vector against a model written directly
// from the definitions: a vector is a function from region to count, zero
// where there is no entry, and it is <= another where it is <= everywhere.

func modelLeq(a, b clocks.Vector) bool {
	for r, n := range a {
		if n > b[r] {
			return false
		}
	}
	return true
}

func modelEqual(a, b clocks.Vector) bool { return modelLeq(a, b) && modelLeq(b, a) }

func hasZeroEntry(v clocks.Vector) bool {
	for _, n := range v {
		if n == 0 {
			return true
		}
	}
	return false
}

func TestOrderingString(t *testing.T) {
	want := map[clocks.Ordering]string{
		clocks.Equal: "equal", clocks.Before: "before", clocks.After: "after",
		clocks.Concurrent: "concurrent", clocks.Ordering(9): "Ordering(9)",
	}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("Ordering(%d).String() = %q, want %q", int(o), o.String(), s)
		}
	}
}

func TestVectorCompare(t *testing.T) {
	tests := []struct {
		a, b clocks.Vector
		want clocks.Ordering
	}{
		{nil, nil, clocks.Equal},
		{nil, clocks.Vector{"us-east": 0}, clocks.Equal},
		{clocks.Vector{"us-east": 1}, clocks.Vector{"us-east": 1, "eu-west": 0}, clocks.Equal},
		{clocks.Vector{"us-east": 1}, clocks.Vector{"us-east": 2}, clocks.Before},
		{nil, clocks.Vector{"us-east": 1}, clocks.Before},
		{clocks.Vector{"us-east": 1, "eu-west": 0}, clocks.Vector{"us-east": 1, "eu-west": 1}, clocks.Before},
		{clocks.Vector{"us-east": 2, "eu-west": 1}, clocks.Vector{"us-east": 1}, clocks.After},
		{clocks.Vector{"us-east": 2}, clocks.Vector{"eu-west": 1}, clocks.Concurrent},
		{clocks.Vector{"us-east": 2, "eu-west": 1}, clocks.Vector{"us-east": 1, "eu-west": 2}, clocks.Concurrent},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestVectorMissingAndString(t *testing.T) {
	have := clocks.Vector{"us-east": 12, "eu-west": 4, "ap-south": 0}
	need := clocks.Vector{"us-east": 10, "eu-west": 6, "ap-south": 3, "us-west": 0}
	want := []clocks.Gap{
		{Region: "ap-south", Have: 0, Need: 3},
		{Region: "eu-west", Have: 4, Need: 6},
	}
	if got := have.Missing(need); !reflect.DeepEqual(got, want) {
		t.Fatalf("Missing = %v, want %v", got, want)
	}
	if got := have.String(); got != "{eu-west:4 us-east:12}" {
		t.Fatalf("String = %q", got)
	}
	if got := clocks.Vector(nil).String(); got != "{}" {
		t.Fatalf("nil String = %q, want {}", got)
	}
	if got := need.Regions(); !slices.Equal(got, []string{"ap-south", "eu-west", "us-east"}) {
		t.Fatalf("Regions = %q", got)
	}
}

func TestVectorMergeInPlaceNilPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MergeInPlace on a nil Vector did not panic")
		}
	}()
	var v clocks.Vector
	v.MergeInPlace(nil)
}

func TestVectorValidate(t *testing.T) {
	if err := (clocks.Vector{"us-east": 1, "BAD": 0}).Validate(); err != nil {
		t.Errorf("zero entry with a bad name should be ignored, got %v", err)
	}
	if err := (clocks.Vector{"BAD": 1}).Validate(); err == nil {
		t.Error("Validate accepted an invalid region name")
	}
	big := clocks.Vector{}
	for i := range clocks.MaxRegions + 1 {
		big[regionName(i)] = 1
	}
	if err := big.Validate(); err == nil {
		t.Error("Validate accepted more than MaxRegions entries")
	}
}

func TestVectorLattice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := smallVectorGen().Draw(t, "a")
		b := smallVectorGen().Draw(t, "b")
		c := smallVectorGen().Draw(t, "c")
		aBefore, bBefore := maps.Clone(a), maps.Clone(b)

		ab := a.Merge(b)
		if !reflect.DeepEqual(a, aBefore) || !reflect.DeepEqual(b, bBefore) {
			t.Fatalf("Merge modified its inputs: %v %v", a, b)
		}
		if ab == nil || hasZeroEntry(ab) {
			t.Fatalf("Merge returned nil or a zero entry: %#v", ab)
		}
		// Merge is the element-wise maximum.
		for _, r := range regionPool {
			if ab.Get(r) != max(a.Get(r), b.Get(r)) {
				t.Fatalf("%v.Merge(%v)[%s] = %d", a, b, r, ab.Get(r))
			}
		}
		// Commutative, associative, idempotent. Merge output is normalized,
		// so structural equality must hold, not just modelEqual.
		if !reflect.DeepEqual(ab, b.Merge(a)) {
			t.Fatalf("Merge not commutative: %v, %v", ab, b.Merge(a))
		}
		if !reflect.DeepEqual(ab.Merge(c), a.Merge(b.Merge(c))) {
			t.Fatalf("Merge not associative for %v %v %v", a, b, c)
		}
		if !modelEqual(a.Merge(a), a) {
			t.Fatalf("Merge not idempotent: %v.Merge(itself) = %v", a, a.Merge(a))
		}
		// Upper bound, and least: any c above both is above the merge.
		if !modelLeq(a, ab) || !modelLeq(b, ab) {
			t.Fatalf("%v does not dominate %v and %v", ab, a, b)
		}
		if modelLeq(a, c) && modelLeq(b, c) && !modelLeq(ab, c) {
			t.Fatalf("%v is above %v and %v but not above their merge %v", c, a, b, ab)
		}
		// MergeInPlace agrees with Merge.
		inPlace := a.Clone()
		inPlace.MergeInPlace(b)
		if !reflect.DeepEqual(inPlace, ab) {
			t.Fatalf("MergeInPlace = %v, Merge = %v", inPlace, ab)
		}
	})
}

func TestVectorCompareProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := smallVectorGen().Draw(t, "a")
		b := smallVectorGen().Draw(t, "b")
		got := a.Compare(b)

		// Compare against the definition.
		var want clocks.Ordering
		switch le, ge := modelLeq(a, b), modelLeq(b, a); {
		case le && ge:
			want = clocks.Equal
		case le:
			want = clocks.Before
		case ge:
			want = clocks.After
		default:
			want = clocks.Concurrent
		}
		if got != want {
			t.Fatalf("%v.Compare(%v) = %v, want %v", a, b, got, want)
		}

		// Consistent with Merge.
		m := a.Merge(b)
		if (got == clocks.Before || got == clocks.Equal) != m.Equal(b) {
			t.Fatalf("%v.Compare(%v) = %v but merge %v equal to b: %v", a, b, got, m, m.Equal(b))
		}
		if (got == clocks.After || got == clocks.Equal) != m.Equal(a) {
			t.Fatalf("%v.Compare(%v) = %v but merge %v equal to a: %v", a, b, got, m, m.Equal(a))
		}

		// Antisymmetric.
		reverse := map[clocks.Ordering]clocks.Ordering{
			clocks.Equal: clocks.Equal, clocks.Before: clocks.After,
			clocks.After: clocks.Before, clocks.Concurrent: clocks.Concurrent,
		}
		if b.Compare(a) != reverse[got] {
			t.Fatalf("%v.Compare(%v) = %v but reverse is %v", a, b, got, b.Compare(a))
		}

		// Dominates and Missing agree with Compare.
		if a.Dominates(b) != (got == clocks.Equal || got == clocks.After) {
			t.Fatalf("%v.Dominates(%v) = %v, Compare = %v", a, b, a.Dominates(b), got)
		}
		gaps := a.Missing(b)
		if (len(gaps) == 0) != a.Dominates(b) {
			t.Fatalf("%v.Missing(%v) = %v, Dominates = %v", a, b, gaps, a.Dominates(b))
		}
		filled := a.Clone()
		for i, g := range gaps {
			if i > 0 && gaps[i-1].Region >= g.Region {
				t.Fatalf("Missing not sorted: %v", gaps)
			}
			if g.Have != a.Get(g.Region) || g.Need != b.Get(g.Region) || g.Have >= g.Need {
				t.Fatalf("bad gap %+v for %v vs %v", g, a, b)
			}
			filled[g.Region] = g.Need
		}
		if !filled.Equal(m) {
			t.Fatalf("filling the gaps of %v gives %v, want the merge %v", a, filled, m)
		}
	})
}

func TestVectorZeroEntriesIrrelevant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := smallVectorGen().Draw(t, "a")
		b := smallVectorGen().Draw(t, "b")
		padded := a.Clone()
		for _, r := range rapid.SliceOf(rapid.SampledFrom(regionPool)).Draw(t, "zeros") {
			if padded[r] == 0 {
				padded[r] = 0
			}
		}
		if padded.Compare(b) != a.Compare(b) || b.Compare(padded) != b.Compare(a) {
			t.Fatalf("zero entries changed Compare: %#v vs %#v against %v", padded, a, b)
		}
		if padded.Dominates(b) != a.Dominates(b) || b.Dominates(padded) != b.Dominates(a) {
			t.Fatalf("zero entries changed Dominates: %#v vs %#v against %v", padded, a, b)
		}
		if !reflect.DeepEqual(padded.Missing(b), a.Missing(b)) || !reflect.DeepEqual(b.Missing(padded), b.Missing(a)) {
			t.Fatalf("zero entries changed Missing: %#v vs %#v against %v", padded, a, b)
		}
		if !reflect.DeepEqual(padded.Merge(b), a.Merge(b)) {
			t.Fatalf("zero entries changed Merge: %#v vs %#v against %v", padded, a, b)
		}
		if padded.String() != a.String() || !slices.Equal(padded.Regions(), a.Regions()) {
			t.Fatalf("zero entries changed String/Regions: %q vs %q", padded, a)
		}
		if string(clocks.AppendVector(nil, padded)) != string(clocks.AppendVector(nil, a)) {
			t.Fatalf("zero entries changed the encoding of %v", a)
		}
		if !reflect.DeepEqual(padded.Clone(), a.Clone()) {
			t.Fatalf("Clone kept zero entries: %#v", padded.Clone())
		}
	})
}

// regionName returns a distinct valid region name for each i.
func regionName(i int) string {
	return "r" + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
}
