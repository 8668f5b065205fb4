package replica

import (
	"fmt"
	"unicode/utf8"

	"github.com/causewaydb/causeway/api"
)

// Fence guards a write with a lock of the linearizable tier (see
// causewayv1.Fence): the write is refused when a newer token for the lock
// has been seen.
//
// Seen where: the region that accepts the write checks the token against
// the highest token it has seen for the lock, in the fenced writes it
// accepted (kept durably, 'f' keyspace) and in the lock grants its own
// replica of the linearizable tier has applied. A region that has not yet
// learnt of a newer grant (its Raft replica lags, or it is cut off from the
// voters) accepts a write with the older token: the causal tier stays
// available, so fencing there is as fresh as that region's view. Writes that
// must be fenced against every grant go through LinearService (CAS with a
// fence), where the check is linearizable.
type Fence struct {
	Lock  string
	Token uint64
}

// MaxLockBytes bounds a lock name (as in the linearizable tier).
const MaxLockBytes = 512

func (f *Fence) validate() error {
	if f.Lock == "" || len(f.Lock) > MaxLockBytes || !utf8.ValidString(f.Lock) {
		return api.Errorf(api.ErrInvalidArgument, "fence lock name must be 1 to %d bytes of UTF-8", MaxLockBytes)
	}
	if f.Token == 0 {
		return api.Errorf(api.ErrInvalidArgument, "fence token 0 is never issued; use the fencing_token LinearService/Lock returned")
	}
	return nil
}

func fenceKey(lock string) []byte {
	return append([]byte{spaceFence}, lock...)
}

// checkFence refuses f if a newer token for its lock has been seen, and
// otherwise stages it as the newest seen. Called under mu, so fenced writes
// are checked in the order they are committed.
func (n *Node) checkFence(wb *writeBatch, f *Fence) error {
	seen, err := n.store.fenceSeen(f.Lock)
	if err != nil {
		return err
	}
	if n.linear != nil {
		issued, err := n.linear.LatestToken(f.Lock)
		if err != nil {
			return fmt.Errorf("fence: linearizable tier state: %w", err)
		}
		seen = max(seen, issued)
	}
	if f.Token < seen {
		return api.Errorf(api.ErrFailedPrecondition,
			"fencing token %d for lock %q is stale: token %d has been issued since, so the writer no longer holds the lock; nothing was written",
			f.Token, f.Lock, seen)
	}
	if f.Token > seen {
		wb.putFence(f.Lock, f.Token)
	}
	return nil
}
