package replica

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dto "github.com/prometheus/client_model/go"
)

// BenchmarkNodePut measures the node's write path without RPC: 64
// goroutines calling Node.Put, each waiting for its fsync. Beside the
// full-stack figures of package bench it separates the cost of the node
// (timestamping, sibling resolution, group commit) from that of HTTP.
func BenchmarkNodePut(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			n, err := Open(Config{Region: "bench", DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			value := make([]byte, 100)
			ctx := context.Background()
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				wg.Go(func() {
					token := ""
					for i := c; i < b.N; i += clients {
						res, err := n.Put(ctx, fmt.Sprintf("key-%d", i%10000), value, token, "")
						if err != nil {
							b.Error(err)
							return
						}
						token = res.Token
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			m := &dto.Metric{}
			if err := n.store.db.Metrics().LogWriter.FsyncLatency.Write(m); err == nil && m.GetHistogram().GetSampleCount() > 0 {
				h := m.GetHistogram()
				b.ReportMetric(float64(b.N)/float64(h.GetSampleCount()), "writes/fsync")
				b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount())/1e3, "fsync-us")
			}
		})
	}
}

// BenchmarkNodePutNewKeys is the write path under the peer benchmark's
// load without RPC: 64 goroutines putting 100-byte values under keys never
// written before, until b.N Puts. It reports the process's CPU per Put
// measured until the compactions the Puts started have finished, so the
// store's background work counts, and the bytes Pebble wrote per Put
// (flushes and compactions: the write amplification behind that work).
// Run it with -benchtime=300000x for a store past its first few levels.
func BenchmarkNodePutNewKeys(b *testing.B) {
	n, err := Open(Config{Region: "bench", DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte(i * 7)
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	db := n.store.db
	before := db.Metrics()
	cpu0 := processCPU()
	b.ResetTimer()
	for range 64 {
		wg.Go(func() {
			token := ""
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				res, err := n.Put(ctx, "bench/put/"+strconv.FormatInt(i, 10), value, token, "")
				if err != nil {
					b.Error(err)
					return
				}
				token = res.Token
			}
		})
	}
	wg.Wait()
	// The compactions the Puts started are part of their cost.
	for db.Metrics().Compact.NumInProgress > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	after := db.Metrics()
	written := func(m *pebble.Metrics) (n uint64) {
		for _, l := range m.Levels {
			n += l.TableBytesFlushed + l.TableBytesCompacted
		}
		return n
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(written(after)-written(before))/float64(b.N), "table-bytes/op")
	b.ReportMetric(float64(after.WAL.BytesIn-before.WAL.BytesIn)/float64(b.N), "wal-bytes/op")
}
