package replica

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
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
// "readers" runs without the hub (watch_hub.go): each watcher's reader
// goroutine follows the feed itself, as before the hub, for a comparison
// in the same run. On a shared machine, compare medians of -count 5.
func BenchmarkWatchPut(b *testing.B) {
	for _, run := range []struct {
		watchers int
		readers  bool
	}{{0, false}, {1, false}, {100, false}, {100, true}} {
		watchers := run.watchers
		name := fmt.Sprintf("watchers=%d", watchers)
		if run.readers {
			name += "/readers"
		}
		b.Run(name, func(b *testing.B) {
			n := openBenchNode(b, func(c *Config) { c.Feed.MaxWatchers = 200 })
			n.hub.off = run.readers
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var acked, received sync.Map // key -> when Put returned, when watcher 0 had it
			var wg sync.WaitGroup
			ready := make(chan struct{}, watchers)
			ended := make(chan error, watchers) // a watch that ended early
			for w := range watchers {
				wg.Go(func() {
					first := true
					err := n.Watch(ctx, KeyRange{Prefix: "key-"}, WatchOptions{}, func(m WatchMessage) error {
						if first {
							first = false
							ready <- struct{}{}
						}
						if w != 0 {
							return nil
						}
						now := time.Now()
						for _, e := range m.Events {
							if key := e.Changes[0].Key; sampled(key) {
								received.Store(key, now)
							}
						}
						return nil
					})
					if ctx.Err() == nil {
						ended <- fmt.Errorf("watcher %d: %w", w, err)
					}
				})
			}
			for range watchers {
				<-ready
			}
			value := make([]byte, 100)
			const clients = 64
			var writers sync.WaitGroup
			b.ResetTimer()
			cpuStart := processCPU()
			start := time.Now()
			for c := range clients {
				writers.Go(func() {
					for i := c; i < b.N; i += clients {
						key := fmt.Sprintf("key-%d", i)
						if _, err := n.Put(ctx, key, value, "", ""); err != nil {
							b.Error(err)
							return
						}
						if watchers > 0 && sampled(key) {
							acked.Store(key, time.Now())
						}
					}
				})
			}
			writers.Wait()
			elapsed := time.Since(start)
			cpu := processCPU() - cpuStart
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "puts/s")
			// CPU time of the process per put: on a machine shared with
			// other work, steadier than throughput (which it bounds on
			// 2 cores: puts/s <= 2s / cpu-us-per-put).
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/put")
			if watchers > 0 && !run.readers {
				n.hub.mu.Lock()
				b.ReportMetric(float64(b.N)/float64(max(n.hub.rounds, 1)), "puts/round")
				n.hub.mu.Unlock()
			}
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
				select {
				case err := <-ended:
					// A watcher that falls behind the writers by more than
					// FeedConfig.WatchBuffer events is cut off: on an
					// overloaded machine, run again.
					b.Fatalf("a watch ended before the last write reached it: %v", err)
				case <-time.After(time.Millisecond): // a benchmark's wait, not a test's
				}
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

// sampled picks the writes whose delivery latency BenchmarkWatchPut
// measures (1 in 16, and the last): recording every one would add the
// measurement's own cost to the watchers'.
func sampled(key string) bool {
	i, err := strconv.Atoi(strings.TrimPrefix(key, "key-"))
	return err != nil || i%16 == 0
}

// BenchmarkRemoteWatchLatency measures, over loopback with no emulated
// delay, how long after a write's acknowledgement in us-east a watcher in
// eu-west is given it, beside the write's durable visibility in eu-west
// (what BenchmarkVisibilityLatency measures), for the same writes: one at
// a time, so each measures the path stream -> apply -> fsync -> feed ->
// watcher, not queueing. deliver-minus-visible is the median, over the
// writes, of delivery minus visibility: what the feed adds.
func BenchmarkRemoteWatchLatency(b *testing.B) {
	cluster := uuid.New()
	origin, addr := benchRegion(b, "us-east", cluster, nil, "127.0.0.1:0")
	remote, _ := benchRegion(b, "eu-west", cluster, map[string]string{"us-east": addr}, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	delivered := make(chan time.Time, 1024)
	established := make(chan struct{})
	watchDone := make(chan error, 1)
	go func() {
		first := true
		watchDone <- remote.Watch(ctx, KeyRange{Prefix: "key-"}, WatchOptions{}, func(m WatchMessage) error {
			if first {
				first = false
				close(established)
			}
			now := time.Now()
			for range m.Events {
				delivered <- now
			}
			return nil
		})
	}()
	<-established
	value := make([]byte, 100)
	visible := make([]time.Duration, 0, b.N)
	deliver := make([]time.Duration, 0, b.N)
	diff := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		res, err := origin.Put(ctx, fmt.Sprintf("key-%d", i%1000), value, "", "")
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		waitDurable(b, remote, "us-east", res.Version.Seq)
		vis := time.Since(acked)
		var at time.Time
		select {
		case at = <-delivered:
		case err := <-watchDone:
			b.Fatalf("the watch ended: %v", err)
		case <-time.After(time.Minute):
			b.Fatal("no event within a minute of the write")
		}
		visible = append(visible, vis)
		deliver = append(deliver, at.Sub(acked))
		diff = append(diff, at.Sub(acked)-vis)
	}
	b.StopTimer()
	cancel()
	<-watchDone
	for _, s := range [][]time.Duration{visible, deliver, diff} {
		slices.Sort(s)
	}
	b.ReportMetric(float64(percentile(visible, 0.50).Microseconds()), "visible-p50-us")
	b.ReportMetric(float64(percentile(visible, 0.99).Microseconds()), "visible-p99-us")
	b.ReportMetric(float64(percentile(deliver, 0.50).Microseconds()), "deliver-p50-us")
	b.ReportMetric(float64(percentile(deliver, 0.99).Microseconds()), "deliver-p99-us")
	b.ReportMetric(float64(percentile(diff, 0.50).Microseconds()), "deliver-minus-visible-p50-us")
	b.ReportMetric(float64(percentile(diff, 0.99).Microseconds()), "deliver-minus-visible-p99-us")
}
