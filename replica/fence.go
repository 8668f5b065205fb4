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

// tierToken is the newest token for f's lock that this node's replica of
// the linearizable tier has applied (0 without the tier). It is read
// before the node's write lock is taken, so that the write path never
// waits on another component while holding it; the answer is the
// region's view of the grants a moment earlier, which is all a fenced
// causal write ever promised (see Fence). An error is kept for
// checkFence, so that a retry whose outcome is stored still gets it.
func (n *Node) tierToken(f *Fence) tierToken {
	if f == nil || n.linear == nil {
		return tierToken{}
	}
	issued, err := n.linear.LatestToken(f.Lock)
	return tierToken{issued, err}
}

type tierToken struct {
	issued uint64
	err    error
}

// checkFence refuses f if a newer token for its lock has been seen (stored
// here, or issued as far as the tier knew), and otherwise stages it as the
// newest seen. Called under mu, so fenced writes are checked in the order
// they are committed.
func (n *Node) checkFence(wb *writeBatch, f *Fence, tier tierToken) error {
	seen, err := n.store.fenceSeen(f.Lock)
	if err != nil {
		return err
	}
	if tier.err != nil {
		return fmt.Errorf("fence: linearizable tier state: %w", tier.err)
	}
	seen = max(seen, tier.issued)
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
