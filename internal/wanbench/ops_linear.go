package wanbench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// linearOps are the linearizable tier's operations, by name.
var linearOps = []string{"claim", "cas", "linear-get", "lock"}

// lockLeaseTTL is the lease a lock client holds its locks under: longer
// than any run, so it never expires during one.
const lockLeaseTTL = 30 * time.Minute

// linearOp returns the NewOp of linearizable operation name from region.
func (b *bench) linearOp(name, region string) NewOp {
	lin := b.target.linear(region)
	switch name {
	case "claim":
		return func(int) Op {
			return func(ctx context.Context) (time.Duration, error) {
				n := "n" + strconv.FormatUint(b.seq.Add(1), 10)
				res, err := lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: "bench-" + b.run, Name: n, Owner: region}))
				if err != nil {
					return 0, err
				}
				if res.Msg.GetOwner() != region {
					return 0, fmt.Errorf("claim %s: owner %q, want %s", n, res.Msg.GetOwner(), region)
				}
				return 0, nil
			}
		}
	case "cas", "linear-get":
		// One register per client, written with the version the previous
		// write returned, so every write succeeds and none contends. The
		// linear-get rows read the registers the cas rows wrote.
		return func(client int) Op {
			key := fmt.Sprintf("bench/%s/cas/%s/%d", b.run, region, client)
			var version uint64
			if name == "linear-get" {
				return func(ctx context.Context) (time.Duration, error) {
					_, err := lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: key}))
					return 0, err
				}
			}
			return func(ctx context.Context) (time.Duration, error) {
				if version == 0 {
					// The register may exist from an earlier phase of this run:
					// read its version first (untimed set-up of a new client).
					if g, err := lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: key})); err == nil {
						version = g.Msg.GetVersion()
					}
				}
				start := time.Now()
				res, err := lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{
					Key: key, Value: value,
					Expect: &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: version},
				}))
				if err != nil {
					version = 0 // read it again: the write may have applied
					return 0, err
				}
				version = res.Msg.GetVersion()
				return max(time.Since(start), 1), nil
			}
		}
	case "lock":
		// Each client acquires a lock of its own under its own lease and
		// releases it (untimed) before the next acquire.
		return func(client int) Op {
			// A lock of its own for every client of every row: a lock left held
			// by a client of an earlier row (its unlock cut off) blocks no one.
			lock := fmt.Sprintf("bench/%s/lock/%s/%d-%d", b.run, region, client, b.seq.Add(1))
			var lease uint64
			return func(ctx context.Context) (time.Duration, error) {
				if lease == 0 {
					g, err := lin.GrantLease(ctx, connect.NewRequest(&v1.GrantLeaseRequest{TtlMs: lockLeaseTTL.Milliseconds()}))
					if err != nil {
						return 0, fmt.Errorf("grant lease: %w", err)
					}
					lease = g.Msg.GetLeaseId()
				}
				start := time.Now()
				_, err := lin.Lock(ctx, connect.NewRequest(&v1.LockRequest{Lock: lock, LeaseId: lease, Owner: region}))
				if err != nil {
					return 0, err
				}
				took := time.Since(start)
				if _, err := lin.Unlock(ctx, connect.NewRequest(&v1.UnlockRequest{Lock: lock, LeaseId: lease})); err != nil {
					return 0, fmt.Errorf("unlock: %w", err)
				}
				return max(took, 1), nil
			}
		}
	}
	panic("wanbench: unknown linear op " + name)
}
