package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
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

// ratioLeg is one of the three loads BenchmarkPutRatio alternates.
type ratioLeg struct {
	name string
	do   op
}

// ratioOrders are the orders the legs run in, round after round: every
// permutation, so that each leg follows each other leg equally often and
// the background work one leg leaves behind (Pebble flushes and
// compactions) weighs on the others alike over every 6 rounds.
var ratioOrders = [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}

// BenchmarkPutRatio measures the write path's target as a ratio taken
// within each round:
//
//	put/floor = ops/s(put) / min(ops/s(rpc), ops/s(pebble)), 64 clients each
//
// The three loads of BenchmarkStack at 64 clients (floor=rpc, floor=pebble,
// op=put) run here in alternating slices of ratioSlice each, one round being
// one slice of every leg, against servers and a store that stay up for the
// whole benchmark. BenchmarkStack runs each row for seconds, minutes apart
// from the others, so on a shared machine its ratio moves with whatever
// else the machine does meanwhile (0.41 to 0.66 between three runs of the
// same code); a slowdown here hits the three legs of a round alike. b.N is
// the number of rounds: run with -benchtime=Nx, N a multiple of 6 so that
// every order of the legs (ratioOrders) runs equally often.
//
// Reported: the median over rounds of each leg's ops/s and of put/floor,
// and put/floor's lowest and highest round.
func BenchmarkPutRatio(b *testing.B) {
	httpClient := newHTTPClient(b, ratioClients)
	rpcURL, err := serveRPCFloor(b, &v1.PutResponse{})
	if err != nil {
		b.Fatal(err)
	}
	db, err := openPebbleFloor(b)
	if err != nil {
		b.Fatal(err)
	}
	putURL, _, err := serveReplica(b)
	if err != nil {
		b.Fatal(err)
	}
	legs := [3]ratioLeg{
		{"rpc", putOp(causewayv1connect.NewKVServiceClient(httpClient, rpcURL), nil)},
		{"pebble", pebblePut(db)},
		{"put", putOp(causewayv1connect.NewKVServiceClient(httpClient, putURL), make([]string, ratioClients))},
	}
	ctx := context.Background()
	for _, leg := range legs {
		if _, err := driveFor(ctx, ratioWarmup, ratioClients, leg.do); err != nil {
			b.Fatalf("warm up %s: %v", leg.name, err)
		}
	}

	b.ResetTimer()
	rates := make([][]float64, len(legs))
	ratios := make([]float64, 0, b.N)
	for round := range b.N {
		var rate [3]float64
		for _, i := range ratioOrders[round%len(ratioOrders)] {
			l, err := driveFor(ctx, ratioSlice, ratioClients, legs[i].do)
			if err != nil {
				b.Fatalf("round %d, %s: %v", round, legs[i].name, err)
			}
			rate[i] = float64(l.ops) / l.elapsed.Seconds()
			rates[i] = append(rates[i], rate[i])
		}
		ratios = append(ratios, rate[2]/min(rate[0], rate[1]))
	}
	b.StopTimer()

	for i, leg := range legs {
		b.ReportMetric(median(rates[i]), leg.name+"-ops/s")
	}
	b.ReportMetric(median(ratios), "put/floor")
	b.ReportMetric(slices.Min(ratios), "put/floor-min")
	b.ReportMetric(slices.Max(ratios), "put/floor-max")
	if testing.Verbose() {
		for r, ratio := range ratios {
			b.Logf("round %d: rpc %.0f, pebble %.0f, put %.0f ops/s: put/floor %.3f",
				r, rates[0][r], rates[1][r], rates[2][r], ratio)
		}
	}
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

func TestRatioOrdersArePermutations(t *testing.T) {
	seen := map[[3]int]bool{}
	follows := map[[2]int]int{}
	for _, o := range ratioOrders {
		if seen[o] {
			t.Errorf("order %v listed twice", o)
		}
		seen[o] = true
		s := slices.Sorted(slices.Values(o[:]))
		if !slices.Equal(s, []int{0, 1, 2}) {
			t.Errorf("order %v is not a permutation of the 3 legs", o)
		}
		for i := 1; i < len(o); i++ {
			follows[[2]int{o[i-1], o[i]}]++
		}
	}
	// Each ordered pair of distinct legs must be adjacent equally often.
	want := -1
	for a := range 3 {
		for b := range 3 {
			if a == b {
				continue
			}
			n := follows[[2]int{a, b}]
			if want < 0 {
				want = n
			}
			if n != want || n == 0 {
				t.Errorf("leg %d runs right after leg %d in %d orders, want %s", b, a, n, fmt.Sprint(want))
			}
		}
	}
}
