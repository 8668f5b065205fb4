package replica

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

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
