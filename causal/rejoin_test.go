package causal

import (
	"errors"
	"slices"
	"testing"

	"github.com/causewaydb/causeway/clocks"
)

func TestCheckResume(t *testing.T) {
	for _, c := range []struct {
		head, from uint64
		lost       bool
	}{
		{head: 0, from: 1},
		{head: 5, from: 1},
		{head: 5, from: 6},
		{head: 5, from: 7, lost: true},
		{head: 0, from: 2, lost: true},
	} {
		err := CheckResume("us-east", c.head, c.from)
		if got := errors.Is(err, ErrLostWrites); got != c.lost {
			t.Errorf("CheckResume(head %d, from %d) = %v, want lost writes %v", c.head, c.from, err, c.lost)
		}
	}
}

func TestJoinWaitsForEveryRegion(t *testing.T) {
	j := NewJoin("ap-south")
	peers := []string{"us-east", "eu-west", "ap-south"}
	if j.Done(peers) {
		t.Fatal("a join with nothing merged is done")
	}
	j.Merged("eu-west", clocks.Vector{"ap-south": 7, "eu-west": 3})
	if got, want := j.Missing(peers), []string{"us-east"}; !slices.Equal(got, want) {
		t.Fatalf("Missing = %v, want %v", got, want)
	}
	j.Merged("us-east", clocks.Vector{"ap-south": 9})
	if !j.Done(peers) {
		t.Fatalf("not done with every peer merged: missing %v", j.Missing(peers))
	}
	if got := j.Recovered(); got != 9 {
		t.Fatalf("Recovered = %d, want the greatest held, 9", got)
	}
	// A region that joins the membership later must be merged too.
	if j.Done(append(peers, "sa-east")) {
		t.Fatal("done although a region of the cluster was never merged")
	}
}

func ver(region string, seq uint64, wallMs uint64, vec clocks.Vector) Version {
	vec = vec.Clone()
	vec[region] = seq
	return Version{Kind: KindValue, Timestamp: clocks.Timestamp{WallMs: wallMs, Region: region}, Seq: seq, Vector: vec}
}

func refs(vs []Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Timestamp.Region + "/" + string(rune('0'+v.Seq))
	}
	return out
}

func TestMergeSnapshot(t *testing.T) {
	// us-east/1 was superseded at the source by eu-west/2, and eu-west/2 by
	// eu-west/3, whose vector does not name us-east/1.
	u1 := ver("us-east", 1, 10, nil)
	e3 := ver("eu-west", 3, 30, nil)
	a1 := ver("ap-south", 1, 20, nil)
	for _, c := range []struct {
		name          string
		local         []Version
		applied       clocks.Vector
		snap          []Version
		vector        clocks.Vector
		want          []string
		removed, adds int
	}{
		{name: "into an empty region", snap: []Version{e3, u1}, vector: clocks.Vector{"eu-west": 3, "us-east": 1},
			want: []string{"eu-west/3", "us-east/1"}, adds: 2},
		{name: "a local sibling the source superseded is dropped", local: []Version{u1}, applied: clocks.Vector{"us-east": 1},
			snap: []Version{e3}, vector: clocks.Vector{"eu-west": 3, "us-east": 1},
			want: []string{"eu-west/3"}, removed: 1, adds: 1},
		{name: "a snapshot version superseded here is not added", local: []Version{e3}, applied: clocks.Vector{"eu-west": 3, "us-east": 1},
			snap: []Version{u1}, vector: clocks.Vector{"us-east": 1},
			want: []string{"eu-west/3"}},
		{name: "concurrent versions the other side has not seen stay siblings", local: []Version{a1}, applied: clocks.Vector{"ap-south": 1},
			snap: []Version{e3}, vector: clocks.Vector{"eu-west": 3},
			want: []string{"eu-west/3", "ap-south/1"}, adds: 1},
		{name: "the same version on both sides", local: []Version{e3}, applied: clocks.Vector{"eu-west": 3},
			snap: []Version{e3}, vector: clocks.Vector{"eu-west": 3},
			want: []string{"eu-west/3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			next, removed, added := MergeSnapshot(c.local, c.applied, c.snap, c.vector)
			if got := refs(next); !slices.Equal(got, c.want) {
				t.Errorf("siblings %v, want %v", got, c.want)
			}
			if len(removed) != c.removed || len(added) != c.adds {
				t.Errorf("removed %v added %v, want %d removed and %d added", refs(removed), refs(added), c.removed, c.adds)
			}
		})
	}
}
