package wanbench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// keysPerRegion is the key space each region's clients write and read:
// uniform over it, so a hot key does not make a row measure contention.
const keysPerRegion = 10_000

// valueSize is the size of every value written, in bytes.
const valueSize = 100

// manyKeys is the number of keys of one ReadMany or WriteMany.
const manyKeys = 8

var value = make([]byte, valueSize)

// keyGen picks keys of one region's key space from a per-client xorshift
// generator (no shared state, no global rand).
type keyGen struct {
	prefix string
	state  uint64
}

func newKeyGen(run, region string, client int) *keyGen {
	return &keyGen{prefix: "bench/" + run + "/" + region + "/k", state: uint64(client+1)*0x9E3779B97F4A7C15 | 1}
}

func (g *keyGen) next() string {
	g.state ^= g.state << 13
	g.state ^= g.state >> 7
	g.state ^= g.state << 17
	return g.prefix + strconv.FormatUint(g.state%keysPerRegion, 10)
}

// causalOps are the causal tier's operations, by name.
var causalOps = []string{"put", "get", "read-many", "write-many", "move-read", "unique-put", "ycsb-a", "ycsb-b", "ycsb-e"}

// session is one client's causal token, carried from response to request
// as a real session does.
type session struct{ token string }

// causalOp returns the NewOp of causal operation name from region. run
// makes keys and unique names fresh per run; seq numbers unique names.
func (b *bench) causalOp(name, region string) NewOp {
	kv := b.target.kv(region)
	switch name {
	case "ycsb-a", "ycsb-b", "ycsb-e":
		return b.ycsbOp(name, region)
	case "put":
		return func(client int) Op {
			keys, s := newKeyGen(b.run, region, client), &session{}
			return func(ctx context.Context) (time.Duration, error) {
				res, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: keys.next(), Value: value, CausalToken: s.token}))
				if err != nil {
					return 0, err
				}
				s.token = res.Msg.GetCausalToken()
				return 0, nil
			}
		}
	case "get":
		return func(client int) Op {
			keys, s := newKeyGen(b.run, region, client), &session{}
			return func(ctx context.Context) (time.Duration, error) {
				res, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: keys.next(), CausalToken: s.token}))
				if err != nil {
					return 0, err
				}
				s.token = res.Msg.GetCausalToken()
				return 0, nil
			}
		}
	case "read-many":
		return func(client int) Op {
			keys, s := newKeyGen(b.run, region, client), &session{}
			return func(ctx context.Context) (time.Duration, error) {
				req := &v1.ReadManyRequest{CausalToken: s.token}
				for range manyKeys {
					req.Keys = append(req.Keys, keys.next())
				}
				res, err := kv.ReadMany(ctx, connect.NewRequest(req))
				if err != nil {
					return 0, err
				}
				s.token = res.Msg.GetCausalToken()
				return 0, nil
			}
		}
	case "write-many":
		return func(client int) Op {
			keys, s := newKeyGen(b.run, region, client), &session{}
			return func(ctx context.Context) (time.Duration, error) {
				req := &v1.WriteManyRequest{CausalToken: s.token}
				seen := map[string]bool{}
				for len(req.Ops) < manyKeys {
					if k := keys.next(); !seen[k] {
						seen[k] = true
						req.Ops = append(req.Ops, &v1.WriteOp{Key: k, Value: value})
					}
				}
				res, err := kv.WriteMany(ctx, connect.NewRequest(req))
				if err != nil {
					return 0, err
				}
				s.token = res.Msg.GetCausalToken()
				return 0, nil
			}
		}
	case "move-read":
		// A session writes in the region before this one (in start order),
		// then moves here and reads what it wrote: the read waits until the
		// write's causal past has arrived. Only the read is timed.
		from := b.moveFrom(region)
		src := b.target.kv(from)
		return func(client int) Op {
			keys := newKeyGen(b.run, from, client)
			return func(ctx context.Context) (time.Duration, error) {
				key := keys.next()
				w, err := src.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: value}))
				if err != nil {
					return 0, fmt.Errorf("write in %s before the move: %w", from, err)
				}
				start := time.Now()
				r, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: w.Msg.GetCausalToken()}))
				if err != nil {
					return 0, err
				}
				took := time.Since(start)
				if !r.Msg.GetFound() {
					return 0, fmt.Errorf("read in %s after the move did not find %s, written in %s", region, key, from)
				}
				return max(took, 1), nil
			}
		}
	case "unique-put":
		return func(client int) Op {
			keys, s := newKeyGen(b.run, region, client), &session{}
			return func(ctx context.Context) (time.Duration, error) {
				n := b.seq.Add(1)
				res, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{
					Key: keys.next(), Value: value, CausalToken: s.token,
					Unique: []*v1.UniqueConstraint{{Namespace: "bench-" + b.run, Name: "u" + strconv.FormatUint(n, 10)}},
				}))
				if err != nil {
					return 0, err
				}
				s.token = res.Msg.GetCausalToken()
				return 0, nil
			}
		}
	}
	panic("wanbench: unknown causal op " + name)
}

// moveFrom is the region a session moves from to region: the one before
// it in start order (the last, for the first).
func (b *bench) moveFrom(region string) string {
	rs := b.target.Regions
	for i, r := range rs {
		if r == region {
			return rs[(i+len(rs)-1)%len(rs)]
		}
	}
	return region
}
