package wanbench

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// YCSB's core workloads A (50% reads, 50% updates) and B (95% reads, 5%
// updates) in their published shape: recordcount 1000, 100-byte values
// here (YCSB's are ten 100-byte fields), keys drawn from YCSB's scrambled
// Zipfian distribution with constant 0.99, so that results compare with
// published ones. Every region's clients run against the same records,
// loaded once (and replicated everywhere) before the first YCSB row. Reads
// and updates carry the session's causal token; a row's latency mixes
// both operations, as YCSB's overall figure does.
const (
	ycsbRecords  = 1000
	ycsbZipfian  = 0.99
	ycsbLoadKeys = 100 // keys per WriteMany of the load
)

// ycsbMix is the share of reads of each workload.
var ycsbMix = map[string]float64{"ycsb-a": 0.5, "ycsb-b": 0.95}

// zipfian is YCSB's ZipfianGenerator (Gray et al., "Quickly generating
// billion-record synthetic databases", SIGMOD 1994) over items [0, n),
// item 0 the most popular, with a per-client xorshift source.
type zipfian struct {
	n                        float64
	theta, alpha, zetan, eta float64
	half                     float64 // 1 + 0.5^theta
	state                    uint64
}

func zeta(n int, theta float64) float64 {
	var sum float64
	for i := 1; i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// ycsbZeta is zeta(ycsbRecords, ycsbZipfian), computed once.
var ycsbZeta = zeta(ycsbRecords, ycsbZipfian)

func newZipfian(n int, theta, zetan float64, seed uint64) *zipfian {
	zeta2 := zeta(2, theta)
	return &zipfian{
		n: float64(n), theta: theta, zetan: zetan,
		alpha: 1 / (1 - theta),
		eta:   (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan),
		half:  1 + math.Pow(0.5, theta),
		state: seed | 1,
	}
}

// uniform is a float in [0, 1).
func (z *zipfian) uniform() float64 {
	z.state ^= z.state << 13
	z.state ^= z.state >> 7
	z.state ^= z.state << 17
	return float64(z.state>>11) / (1 << 53)
}

func (z *zipfian) next() int {
	u := z.uniform()
	uz := u * z.zetan
	switch {
	case uz < 1:
		return 0
	case uz < z.half:
		return 1
	}
	return min(int(z.n*math.Pow(z.eta*u-z.eta+1, z.alpha)), int(z.n)-1)
}

// scrambled maps a Zipfian rank to a record, as YCSB's
// ScrambledZipfianGenerator does, so the popular records are spread over
// the key space rather than adjacent.
func scrambled(rank int) int {
	h := fnv.New64a()
	h.Write([]byte(strconv.Itoa(rank)))
	return int(h.Sum64() % ycsbRecords)
}

func (b *bench) ycsbKey(record int) string {
	return "bench/" + b.run + "/ycsb/user" + strconv.Itoa(record)
}

// ycsbLoad writes every record from the first region in one session, then
// reads with that session's token in every region, which waits until the
// region holds them all.
func (b *bench) ycsbLoad(ctx context.Context) error {
	first := b.target.Regions[0]
	kv := b.target.kv(first)
	token := ""
	for start := 0; start < ycsbRecords; start += ycsbLoadKeys {
		req := &v1.WriteManyRequest{CausalToken: token}
		for i := start; i < min(start+ycsbLoadKeys, ycsbRecords); i++ {
			req.Ops = append(req.Ops, &v1.WriteOp{Key: b.ycsbKey(i), Value: value})
		}
		res, err := kv.WriteMany(ctx, connect.NewRequest(req))
		if err != nil {
			return fmt.Errorf("load YCSB records in %s: %w", first, err)
		}
		token = res.Msg.GetCausalToken()
	}
	for _, r := range b.target.Regions {
		lctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := b.target.kv(r).Get(lctx, connect.NewRequest(&v1.GetRequest{Key: b.ycsbKey(ycsbRecords - 1), CausalToken: token}))
		cancel()
		if err != nil {
			return fmt.Errorf("wait for the YCSB records in %s: %w", r, err)
		}
	}
	return nil
}

// ycsbOp returns the NewOp of workload name from region.
func (b *bench) ycsbOp(name, region string) NewOp {
	kv := b.target.kv(region)
	reads := ycsbMix[name]
	return func(client int) Op {
		z := newZipfian(ycsbRecords, ycsbZipfian, ycsbZeta, uint64(client+1)*0x9E3779B97F4A7C15^uint64(len(region)))
		s := &session{}
		return func(ctx context.Context) (time.Duration, error) {
			key := b.ycsbKey(scrambled(z.next()))
			if z.uniform() < reads {
				res, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: s.token}))
				if err != nil {
					return 0, err
				}
				s.token = res.Msg.GetCausalToken()
				return 0, nil
			}
			res, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: value, CausalToken: s.token}))
			if err != nil {
				return 0, err
			}
			s.token = res.Msg.GetCausalToken()
			return 0, nil
		}
	}
}
