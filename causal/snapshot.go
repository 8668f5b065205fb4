package causal

import "github.com/causewaydb/causeway/clocks"

// MergeSnapshot returns a key's sibling set after another region's snapshot
// of that key is merged into it: local is the key's sibling set here and
// applied the writes applied here; snap is the key's sibling set in the
// snapshot and vector the writes the snapshot holds (its applied vector).
// The result is what a region holds that applied the writes of both, one
// by one: the versions neither side has seen superseded.
//
// Resolving the snapshot's versions one by one is not enough. A snapshot
// carries only the versions that survive at its source, not the writes that
// superseded older ones on the way: a local sibling x may have been
// superseded there by a write y, and y in turn by a later write of y's own
// region whose vector does not name x (a region's own writes are ordered by
// sequence, not by vector). Resolving the survivor would then leave x beside
// it, a sibling no region that applied the writes one by one holds. So a
// local sibling the snapshot's vector covers, but that is not among the
// snapshot's siblings, was superseded at the source and is dropped; and,
// the same way round, a snapshot version that applied covers but that is not
// among the local siblings was superseded here and is not added.
//
// Keys absent from the snapshot need no such step: at the source, a key with
// no siblings had its tombstone collected, which happens only once every
// region has applied it, and a region that applied it no longer holds what
// it superseded.
//
// local and snap are sorted newest first; so is next. removed lists the local
// versions dropped, added the snapshot's versions that were not here.
func MergeSnapshot(local []Version, applied clocks.Vector, snap []Version, vector clocks.Vector) (next, removed, added []Version) {
	next = make([]Version, 0, len(local)+len(snap))
	for _, x := range local {
		if vector.Get(x.Timestamp.Region) >= x.Seq && !containsVersion(snap, &x) {
			removed = append(removed, x)
			continue
		}
		next = append(next, x)
	}
	for _, v := range snap {
		if applied.Get(v.Timestamp.Region) >= v.Seq && !containsVersion(local, &v) {
			continue
		}
		var superseded []Version
		var applied bool
		next, superseded, applied = Resolve(next, v)
		if applied {
			added = append(added, v)
		}
		removed = append(removed, superseded...)
	}
	return next, removed, added
}

func containsVersion(vs []Version, v *Version) bool {
	for i := range vs {
		if vs[i].Same(v) {
			return true
		}
	}
	return false
}
