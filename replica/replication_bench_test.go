package replica

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// benchRegion runs a node and its server on loopback for a benchmark.
func benchRegion(b *testing.B, name string, cluster uuid.UUID, peers map[string]string, addr string) (*Node, string) {
	b.Helper()
	n, err := Open(Config{Region: name, DataDir: b.TempDir(), ClusterID: cluster, Peers: peers,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(n)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	b.Cleanup(func() {
		srv.Close()
		<-done
		n.Close()
	})
	return n, ln.Addr().String()
}

// waitDurable blocks until n has made origin's writes up to seq durable.
func waitDurable(b *testing.B, n *Node, origin string, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.awaitCausalPast(ctx, clocks.Vector{origin: seq}); err != nil {
		b.Fatalf("%s never received %s:%d: %v", n.Region(), origin, seq, err)
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// BenchmarkVisibilityLatency measures, over loopback with no emulated
// delay, the time from a write's acknowledgement in us-east to its
// durable visibility in eu-west: one write at a time, so each measures the
// path stream -> apply -> fsync, not queueing.
func BenchmarkVisibilityLatency(b *testing.B) {
	cluster := uuid.New()
	origin, addr := benchRegion(b, "us-east", cluster, nil, "127.0.0.1:0")
	remote, _ := benchRegion(b, "eu-west", cluster, map[string]string{"us-east": addr}, "127.0.0.1:0")
	ctx := context.Background()
	value := make([]byte, 100)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		res, err := origin.Put(ctx, fmt.Sprintf("key-%d", i%1000), value, "", "")
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		waitDurable(b, remote, "us-east", res.Version.Seq)
		lat = append(lat, time.Since(acked))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-us")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-us")
}

// BenchmarkApplyThroughput measures how fast a region applies a stream:
// us-east holds b.N writes before eu-west starts; the timer covers eu-west
// catching up over its replication stream (decode, causal ordering,
// sibling resolution, group-committed fsyncs). us-east knows eu-west as a
// peer from the start, so it keeps its log for it (no snapshot).
func BenchmarkApplyThroughput(b *testing.B) {
	cluster := uuid.New()
	reserved, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	remoteAddr := reserved.Addr().String()
	reserved.Close()
	origin, addr := benchRegion(b, "us-east", cluster, map[string]string{"eu-west": remoteAddr}, "127.0.0.1:0")
	ctx := context.Background()
	value := make([]byte, 100)
	// Load concurrently, as clients would, so loading is not the slow part.
	const loaders = 32
	errs := make(chan error, loaders)
	for l := range loaders {
		go func() {
			var err error
			for i := l; i < b.N; i += loaders {
				if _, err = origin.Put(ctx, fmt.Sprintf("key-%d", i%10000), value, "", ""); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range loaders {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	remote, _ := benchRegion(b, "eu-west", cluster, map[string]string{"us-east": addr}, remoteAddr)
	waitDurable(b, remote, "us-east", uint64(b.N))
	if testingApplied(remote) != float64(b.N) {
		b.Fatalf("eu-west applied %v writes from the stream, want %d (did it bootstrap instead?)", testingApplied(remote), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
}

// BenchmarkMetadataSize reports the bytes Causeway adds per write and the
// size of a causal token, with every region's sequence number in the
// millions (so varints are at their typical width). It measures sizes, not
// time.
func BenchmarkMetadataSize(b *testing.B) {
	for _, regions := range []int{3, 5, 7} {
		b.Run(fmt.Sprintf("regions=%d", regions), func(b *testing.B) {
			vec := clocks.Vector{}
			for r := range regions {
				vec[fmt.Sprintf("region-%d", r)] = 3_000_000 + uint64(r)
			}
			ts := clocks.Timestamp{WallMs: uint64(time.Now().UnixMilli()), Logical: 3, Region: "region-0"}
			key, value := "user:12345:profile", make([]byte, 100)
			w := &causal.Write{Timestamp: ts, Seq: vec["region-0"], Vector: vec,
				Ops: []causal.Op{{Key: key, Kind: causal.KindValue, Value: value}}}
			v := causal.VersionOf(w, w.Ops[0])
			var frame, stored []byte
			var token string
			for range b.N {
				frame = encodeWrite(frame[:0], w)
				stored = encodeVersion(stored[:0], &v)
				token = clocks.Token{Cluster: uuid.New(), Vector: vec, Seen: ts}.Encode()
			}
			payload := len(key) + len(value)
			b.ReportMetric(float64(len(frame)-payload), "frame-overhead-bytes")
			b.ReportMetric(float64(len(stored)-len(value)), "version-overhead-bytes")
			b.ReportMetric(float64(len(token)), "token-chars")
		})
	}
}

func testingApplied(n *Node) float64 {
	m := &dto.Metric{}
	if err := n.metrics.applied.Write(m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
