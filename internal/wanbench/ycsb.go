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

// YCSB's core workloads A (50% reads, 50% updates), B (95% reads, 5%
// updates) and E (95% short scans, 5% inserts) in their published shape:
// recordcount 1000, 100-byte values here (YCSB's are ten 100-byte fields),
// keys drawn from YCSB's scrambled Zipfian distribution with constant
// 0.99, so that results compare with published ones. Every region's
// clients run against the same records, loaded once (and replicated
// everywhere) before the first YCSB row. Every operation carries the
// session's causal token; a row's latency mixes its operations, as YCSB's
// overall figure does.
//
// E as YCSB defines it: a scan starts at a record drawn from the scrambled
// Zipfian and reads up to maxscanlength (100) records, the length uniform
// in [1, 100]; an insert adds a record after the last one (insertorder
// ordered), numbered from a counter shared by every region's clients, so
// later scans that reach the end of the key space see it. Keys are
// zero-padded ("user0000042", YCSB's zeropadding), so that key order is
// record order and a scan of records [s, s+n) is the key range
// [key(s), key(s+n)): a bounded range with page limit n, which the node
// answers in one page without retaining a snapshot for a cursor. (A scan
// limited by its page limit alone, with keys left after it in the range,
// makes the node keep that snapshot 60 s for the next page, at most 256
// per node; a benchmark issuing thousands a second would measure that
// limit, not scans.) One simplification: the scan's start is drawn over
// the loaded records, not over the loaded and inserted ones as YCSB's
// growing key chooser does; the inserts are a few hundred beside 1000.
const (
	ycsbRecords  = 1000
	ycsbZipfian  = 0.99
	ycsbLoadKeys = 100 // keys per WriteMany of the load
	// ycsbMaxScan is YCSB E's maxscanlength.
	ycsbMaxScan = 100
	// ycsbKeyDigits pads record numbers (zeropadding): room for every
	// record a run could insert.
	ycsbKeyDigits = 10
)

// ycsbMix is the share of reads of each workload.
// In E the reads are scans and the writes inserts.
var ycsbMix = map[string]float64{"ycsb-a": 0.5, "ycsb-b": 0.95, "ycsb-e": 0.95}

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
	return fmt.Sprintf("bench/%s/ycsb/user%0*d", b.run, ycsbKeyDigits, record)
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
	scans := name == "ycsb-e"
	return func(client int) Op {
		z := newZipfian(ycsbRecords, ycsbZipfian, ycsbZeta, uint64(client+1)*0x9E3779B97F4A7C15^uint64(len(region)))
		s := &session{}
		return func(ctx context.Context) (time.Duration, error) {
			record := scrambled(z.next())
			var token string
			var err error
			switch read := z.uniform() < reads; {
			case read && scans:
				n := 1 + int(z.uniform()*ycsbMaxScan)
				var res *connect.Response[v1.ScanResponse]
				res, err = kv.Scan(ctx, connect.NewRequest(&v1.ScanRequest{
					Start: b.ycsbKey(record), End: b.ycsbKey(record + n), Limit: uint32(n), CausalToken: s.token,
				}))
				if err == nil && res.Msg.GetNextCursor() != "" {
					// The range holds at most n records; a cursor means the
					// key layout is not what the scan assumes.
					return 0, fmt.Errorf("scan of %d records from %s returned a cursor: more than %d keys in the range", n, b.ycsbKey(record), n)
				}
				if err == nil {
					token = res.Msg.GetCausalToken()
				}
			case read:
				var res *connect.Response[v1.GetResponse]
				res, err = kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: b.ycsbKey(record), CausalToken: s.token}))
				if err == nil {
					token = res.Msg.GetCausalToken()
				}
			default:
				if scans { // an insert: a new record after the last
					record = ycsbRecords + int(b.ycsbInserted.Add(1)) - 1
				}
				var res *connect.Response[v1.PutResponse]
				res, err = kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: b.ycsbKey(record), Value: value, CausalToken: s.token}))
				if err == nil {
					token = res.Msg.GetCausalToken()
				}
			}
			if err != nil {
				return 0, err
			}
			s.token = token
			return 0, nil
		}
	}
}
