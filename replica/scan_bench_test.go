package replica

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Scan and Watch benchmarks (issue 18's figures). Run:
//
//	go test ./replica -run '^$' -bench 'Scan1000|Watch' -benchtime 2s

func openBenchNode(b *testing.B, mutate ...func(*Config)) *Node {
	b.Helper()
	cfg := Config{Region: "bench", DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

// BenchmarkScan1000 reads 1,000 keys of 100-byte values: one Scan page,
// the same keys by ReadMany (at most 128 keys a call, so 8 calls of 125),
// by 1,000 Gets, and by a raw Pebble iterator over their versions (the
// floor: no decoding, no snapshot bookkeeping).
func BenchmarkScan1000(b *testing.B) {
	n := openBenchNode(b)
	ctx := context.Background()
	value := make([]byte, 100)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("scan/%04d", i)
		if _, err := n.Put(ctx, keys[i], value, "", ""); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			res, err := n.Scan(ctx, KeyRange{Prefix: "scan/"}, "", ScanOptions{Limit: 1000})
			if err != nil || len(res.Keys) != 1000 || res.NextCursor != "" {
				b.Fatalf("scan: %d keys, cursor %q, %v", len(res.Keys), res.NextCursor, err)
			}
		}
	})
	b.Run("readmany-8x125", func(b *testing.B) {
		for b.Loop() {
			for chunk := range slices.Chunk(keys, 125) {
				if _, _, err := n.ReadMany(ctx, chunk, "", false); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("get-1000", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				if _, _, err := n.Get(ctx, k, "", false); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pebble-iterator", func(b *testing.B) {
		lower, upper := KeyRange{Prefix: "scan/"}.bounds()
		for b.Loop() {
			it, err := n.store.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
			if err != nil {
				b.Fatal(err)
			}
			count := 0
			for ok := it.First(); ok; ok = it.Next() {
				if _, err := it.ValueAndErr(); err != nil {
					b.Fatal(err)
				}
				count++
			}
			it.Close()
			if count != 1000 {
				b.Fatalf("iterated %d versions", count)
			}
		}
	})
}

// BenchmarkWatchPut is Put throughput at 64 writing clients with 0, 1 and
// 100 watchers of the written keys (each consuming every event), and for
// the watched runs the delivery latency from the write's acknowledgement
// to the watcher (p50, p99; negative when the watcher had it first, since
// a watcher is woken as the write becomes durable, before Put returns).
func BenchmarkWatchPut(b *testing.B) {
	for _, watchers := range []int{0, 1, 100} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			n := openBenchNode(b, func(c *Config) { c.Feed.MaxWatchers = 200 })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var acked, received sync.Map // key -> when Put returned, when watcher 0 had it
			var wg sync.WaitGroup
			ready := make(chan struct{}, watchers)
			for w := range watchers {
				wg.Go(func() {
					first := true
					_ = n.Watch(ctx, KeyRange{Prefix: "key-"}, WatchOptions{}, func(m WatchMessage) error {
						if first {
							first = false
							ready <- struct{}{}
						}
						if w != 0 {
							return nil
						}
						now := time.Now()
						for _, e := range m.Events {
							received.Store(e.Changes[0].Key, now)
						}
						return nil
					})
				})
			}
			for range watchers {
				<-ready
			}
			value := make([]byte, 100)
			const clients = 64
			var writers sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				writers.Go(func() {
					for i := c; i < b.N; i += clients {
						key := fmt.Sprintf("key-%d", i)
						if _, err := n.Put(ctx, key, value, "", ""); err != nil {
							b.Error(err)
							return
						}
						if watchers > 0 {
							acked.Store(key, time.Now())
						}
					}
				})
			}
			writers.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "puts/s")
			if watchers > 0 {
				// Every write reaches watcher 0 before the watch ends.
				_, err := n.Put(ctx, "key-last", value, "", "")
				if err != nil {
					b.Fatal(err)
				}
			}
			for watchers > 0 {
				if _, ok := received.Load("key-last"); ok {
					break
				}
				time.Sleep(time.Millisecond) // a benchmark's wait, not a test's
			}
			cancel()
			wg.Wait()
			var lat []time.Duration
			acked.Range(func(k, v any) bool {
				if r, ok := received.Load(k); ok {
					lat = append(lat, r.(time.Time).Sub(v.(time.Time)))
				}
				return true
			})
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "deliver-p50-us")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "deliver-p99-us")
			}
		})
	}
}
