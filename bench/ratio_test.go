package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

const (
	// ratioClients is the concurrency the write-path target is set at.
	ratioClients = 64
	// ratioSlice is how long each leg runs in one round: long enough for
	// tens of group commits and a few thousand RPCs, short enough that
	// the machine changes little between the legs of one round.
	ratioSlice = 500 * time.Millisecond
	// ratioWarmup is the untimed first slice of each leg: connections are
	// dialled and the stores' first memtables filled before any round.
	ratioWarmup = 200 * time.Millisecond
)

// ratioLeg is one of the loads BenchmarkPutRatio alternates.
type ratioLeg struct {
	name string
	do   op
}

// The legs of BenchmarkPutRatio, by index.
const (
	legRPC = iota
	legPebble
	legDurable
	legPut
	numLegs
)

// williams returns a Williams design for n treatments: n orders (2n for odd
// n) of 0..n-1 in which each ordered pair of distinct treatments stands
// side by side equally often. The first order is 0, 1, n-1, 2, n-2, ...;
// order i adds i to each of its entries, mod n; odd n adds each order
// reversed.
func williams(n int) [][]int {
	first := make([]int, n)
	for i, lo, hi := 1, 1, n-1; i < n; i++ {
		if i%2 == 1 {
			first[i], lo = lo, lo+1
		} else {
			first[i], hi = hi, hi-1
		}
	}
	var orders [][]int
	for shift := range n {
		o := make([]int, n)
		for i, t := range first {
			o[i] = (t + shift) % n
		}
		orders = append(orders, o)
	}
	if n%2 == 1 {
		for _, o := range orders[:n] {
			r := slices.Clone(o)
			slices.Reverse(r)
			orders = append(orders, r)
		}
	}
	return orders
}

// BenchmarkPutRatio measures the write path's target as a ratio taken
// within each round:
//
//	put/floor = ops/s(put) / min(ops/s(rpc), ops/s(pebble)), 64 clients each
//
// The 64-client loads of BenchmarkStack floor=rpc, floor=pebble,
// floor=durable and op=put run here in alternating slices of ratioSlice
// each, one round being one slice of every leg, against servers and stores
// that stay up for the whole benchmark. BenchmarkStack runs each row for
// seconds, minutes apart from the others, so on a shared machine its ratios
// move with whatever else the machine does meanwhile (0.41 to 0.66 between
// three runs of the same code); a slowdown here hits the legs of a round
// alike. b.N is the number of rounds: run with -benchtime=Nx, N a multiple
// of 4 so that every order of the legs runs equally often (see alternate:
// the orders form a Williams design, in which every leg runs right after
// every other equally often, so that the background work one leg leaves
// behind, Pebble flushes and compactions, weighs on the others alike).
//
// Reported, each the median over rounds: every leg's ops/s; put/floor;
// durable/floor, what the two floors composed with nothing of Causeway's
// reach against the same yardstick; and put/durable, what Causeway's own
// work leaves of that. put/floor's lowest and highest round are reported
// too.
func BenchmarkPutRatio(b *testing.B) {
	httpClient := newHTTPClient(b, ratioClients)
	rpcURL, err := serveRPCFloor(b, &v1.PutResponse{})
	if err != nil {
		b.Fatal(err)
	}
	db, err := openPebbleFloor(b, nil)
	if err != nil {
		b.Fatal(err)
	}
	durableURL, err := serveDurableFloor(b)
	if err != nil {
		b.Fatal(err)
	}
	putURL, _, err := serveReplica(b)
	if err != nil {
		b.Fatal(err)
	}
	legs := [numLegs]ratioLeg{
		legRPC:     {"rpc", putOp(causewayv1connect.NewKVServiceClient(httpClient, rpcURL), nil)},
		legPebble:  {"pebble", pebblePut(db)},
		legDurable: {"durable", putOp(causewayv1connect.NewKVServiceClient(httpClient, durableURL), nil)},
		legPut:     {"put", putOp(causewayv1connect.NewKVServiceClient(httpClient, putURL), make([]string, ratioClients))},
	}
	rates := alternate(b, legs[:])
	var putFloor, durableFloor, putDurable []float64
	for r := range b.N {
		floor := min(rates[legRPC][r], rates[legPebble][r])
		putFloor = append(putFloor, rates[legPut][r]/floor)
		durableFloor = append(durableFloor, rates[legDurable][r]/floor)
		putDurable = append(putDurable, rates[legPut][r]/rates[legDurable][r])
	}
	for i, leg := range legs {
		b.ReportMetric(median(rates[i]), leg.name+"-ops/s")
	}
	b.ReportMetric(median(putFloor), "put/floor")
	b.ReportMetric(slices.Min(putFloor), "put/floor-min")
	b.ReportMetric(slices.Max(putFloor), "put/floor-max")
	b.ReportMetric(median(durableFloor), "durable/floor")
	b.ReportMetric(median(putDurable), "put/durable")
	if testing.Verbose() {
		for r := range b.N {
			b.Logf("round %d: rpc %.0f, pebble %.0f, durable %.0f, put %.0f ops/s: put/floor %.3f, durable/floor %.3f",
				r, rates[legRPC][r], rates[legPebble][r], rates[legDurable][r], rates[legPut][r], putFloor[r], durableFloor[r])
		}
	}
}

// alternate warms every leg up with one untimed slice of ratioWarmup, then
// runs b.N rounds under the benchmark timer, each round one slice of
// ratioSlice of every leg at ratioClients clients, in the round's order of
// williams(len(legs)). It returns the ops/s of every leg (first index) in
// every round (second index).
func alternate(b *testing.B, legs []ratioLeg) [][]float64 {
	b.Helper()
	ctx := context.Background()
	for _, leg := range legs {
		if _, err := driveFor(ctx, ratioWarmup, ratioClients, leg.do); err != nil {
			b.Fatalf("warm up %s: %v", leg.name, err)
		}
	}
	orders := williams(len(legs))
	rates := make([][]float64, len(legs))
	for i := range rates {
		rates[i] = make([]float64, b.N)
	}
	b.ResetTimer()
	for round := range b.N {
		for _, i := range orders[round%len(orders)] {
			l, err := driveFor(ctx, ratioSlice, ratioClients, legs[i].do)
			if err != nil {
				b.Fatalf("round %d, %s: %v", round, legs[i].name, err)
			}
			rates[i][round] = float64(l.ops) / l.elapsed.Seconds()
		}
	}
	b.StopTimer()
	return rates
}

// median returns the middle value of xs (the mean of the two middle values
// for an even count), without reordering xs. It panics on an empty slice.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		panic("median of no values")
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{0.5, 0.5, 0.9, 0.1}, 0.5},
	} {
		in := slices.Clone(tt.in)
		if got := median(in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("median reordered its input: %v, was %v", in, tt.in)
		}
	}
}

func TestWilliamsDesignIsBalanced(t *testing.T) {
	for n := 2; n <= 7; n++ {
		orders := williams(n)
		if want := n + n%2*n; len(orders) != want {
			t.Errorf("n=%d: %d orders, want %d", n, len(orders), want)
		}
		follows := map[[2]int]int{}
		for _, o := range orders {
			if s := slices.Sorted(slices.Values(o)); !slices.Equal(s, seq(n)) {
				t.Errorf("n=%d: order %v is not a permutation of 0..%d", n, o, n-1)
			}
			for i := 1; i < len(o); i++ {
				follows[[2]int{o[i-1], o[i]}]++
			}
		}
		// Every ordered pair of distinct treatments stands side by side
		// the same number of times: once for even n, twice for odd n.
		want := 1 + n%2
		for a := range n {
			for b := range n {
				if a != b && follows[[2]int{a, b}] != want {
					t.Errorf("n=%d: %d right after %d in %d orders, want %d", n, b, a, follows[[2]int{a, b}], want)
				}
			}
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
