package clocks_test

import (
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/clocks"
)

// regionPool is small on purpose: vectors drawn from it share regions often
// enough that every Ordering, including Concurrent, shows up in a run.
var regionPool = []string{"ap-south", "eu-west", "us-east", "us-west"}

// regionGen draws any valid region name.
func regionGen() *rapid.Generator[string] {
	return rapid.StringMatching(`[a-z][a-z0-9-]{0,31}`)
}

// smallVectorGen draws vectors over regionPool with small values, including
// explicit zero entries (which must behave like missing ones) and nil.
func smallVectorGen() *rapid.Generator[clocks.Vector] {
	return rapid.Custom(func(t *rapid.T) clocks.Vector {
		if rapid.IntRange(0, 9).Draw(t, "nil") == 0 {
			return nil
		}
		m := rapid.MapOf(rapid.SampledFrom(regionPool), rapid.Uint64Range(0, 3)).Draw(t, "entries")
		return clocks.Vector(m)
	})
}

// wideVectorGen draws vectors with arbitrary valid names and values, up to
// MaxRegions entries.
func wideVectorGen() *rapid.Generator[clocks.Vector] {
	return rapid.Custom(func(t *rapid.T) clocks.Vector {
		m := rapid.MapOfN(regionGen(), rapid.Uint64(), 0, clocks.MaxRegions).Draw(t, "entries")
		return clocks.Vector(m)
	})
}

// smallTimestampGen draws timestamps from a small space so that ties in
// WallMs and Logical are common and the region tie-break is exercised.
func smallTimestampGen() *rapid.Generator[clocks.Timestamp] {
	return rapid.Custom(func(t *rapid.T) clocks.Timestamp {
		return clocks.Timestamp{
			WallMs:  rapid.Uint64Range(0, 2).Draw(t, "wall"),
			Logical: rapid.Uint32Range(0, 2).Draw(t, "logical"),
			Region:  rapid.SampledFrom(append([]string{""}, regionPool...)).Draw(t, "region"),
		}
	})
}

// wideTimestampGen draws timestamps with arbitrary fields and a valid (or,
// only for the zero timestamp, empty) region.
func wideTimestampGen() *rapid.Generator[clocks.Timestamp] {
	return rapid.Custom(func(t *rapid.T) clocks.Timestamp {
		if rapid.IntRange(0, 9).Draw(t, "zero") == 0 {
			return clocks.Timestamp{}
		}
		return clocks.Timestamp{
			WallMs:  rapid.Uint64().Draw(t, "wall"),
			Logical: rapid.Uint32().Draw(t, "logical"),
			Region:  regionGen().Draw(t, "region"),
		}
	})
}

func clusterGen() *rapid.Generator[uuid.UUID] {
	return rapid.Custom(func(t *rapid.T) uuid.UUID {
		var id uuid.UUID
		copy(id[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "cluster"))
		return id
	})
}

func tokenGen() *rapid.Generator[clocks.Token] {
	return rapid.Custom(func(t *rapid.T) clocks.Token {
		return clocks.Token{
			Cluster: clusterGen().Draw(t, "cluster"),
			Vector:  wideVectorGen().Draw(t, "vector"),
			Seen:    wideTimestampGen().Draw(t, "seen"),
		}
	})
}
