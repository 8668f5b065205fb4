package causal

import (
	"errors"
	"fmt"
	"slices"

	"github.com/causewaydb/causeway/clocks"
)

// ErrLostWrites: another region holds writes of this region that this
// region does not. Its data directory was lost, wiped or restored from an
// older copy, and it started as if it were new: every write it issues now
// reuses a sequence number another region already holds, so that region
// drops it as a duplicate while the writer has acknowledged it. The region
// must stop accepting writes; the one repair is to empty its data directory
// and start it again with --join, so that it rejoins (Join).
var ErrLostWrites = errors.New("another region holds writes this region has lost")

// CheckResume is the origin's rule for a subscriber that asks to resume
// region's stream from sequence number from, when region's own newest
// durable write is head. A subscriber only ever holds writes the origin
// sent, and the origin only sends durable writes, so a subscriber ahead of
// head proves that the origin lost writes it had acknowledged.
func CheckResume(region string, head, from uint64) error {
	if from > head+1 {
		return fmt.Errorf("%w: a subscriber holds writes of %s up to %d, but %s holds only up to %d",
			ErrLostWrites, region, from-1, region, head)
	}
	return nil
}

// Join is the state of a region that starts with no data of its own inside
// a cluster that already exists: a new region, or one that lost its data
// directory.
//
// Such a region must not accept a write until it knows the last sequence
// number any region holds of it. Otherwise it numbers its writes from 1
// again, and every region that holds its earlier writes drops the new ones as
// duplicates: acknowledged writes silently lost, vectors that never converge,
// tokens that name one write and get another. So a joining region copies a
// snapshot of every other region it knows of (Merged) and only then serves
// (Done). A snapshot's vector names the joining region's writes that the
// other region holds; after all of them are merged, the region's applied
// vector holds the greatest of those, its next write takes the number after
// it, and its data holds the effect of every write of its earlier life that
// survives anywhere.
//
// Why not a new incarnation instead (a fresh sequence space under a new
// name, serving at once)? The writes of the earlier life that other regions
// hold would then have no origin left to send them on: a region holding
// fewer of them than another could never catch up, and the cluster would
// diverge for good. Copying every region first repairs that too.
//
// Join waits for every region, not a quorum: the one it skipped could be the
// one that holds the most of this region's writes. A region that is gone for
// good is removed by an operator (remove-region), which lets the join finish.
type Join struct {
	region string
	merged map[string]clocks.Vector
}

// NewJoin starts the join of region.
func NewJoin(region string) *Join {
	return &Join{region: region, merged: map[string]clocks.Vector{}}
}

// Merged records that the snapshot of peer, with vector v, is stored here and
// counted as applied (Replica.Bootstrap).
func (j *Join) Merged(peer string, v clocks.Vector) {
	if peer != j.region {
		j.merged[peer] = v.Clone()
	}
}

// Missing lists, sorted, the regions among peers whose snapshot has not been
// merged yet. Peers are every other region the cluster has (members of any
// state but removed); this region itself is ignored.
func (j *Join) Missing(peers []string) []string {
	var out []string
	for _, p := range peers {
		if _, ok := j.merged[p]; !ok && p != j.region && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Done reports whether the snapshot of every region in peers is merged, so
// the region may serve and write.
func (j *Join) Done(peers []string) bool { return len(j.Missing(peers)) == 0 }

// Recovered is the greatest sequence number of this region's own writes
// that the merged snapshots held: its next write is Recovered()+1.
func (j *Join) Recovered() uint64 {
	var seq uint64
	for _, v := range j.merged {
		seq = max(seq, v.Get(j.region))
	}
	return seq
}
