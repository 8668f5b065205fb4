//go:build unix

package process_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/internal/supervisor"
	"github.com/causewaydb/causeway/replica"
)

// What TLS costs. Each benchmark runs the same work with TLS off ("plain")
// and on ("tls": TLS on the API, mutual TLS between the regions), so that
// one run gives the ratio on one machine at one moment:
//
//	go test -run '^$' -bench 'TLS' -benchtime 3s ./internal/process/
//
// Clients keep their connections (HTTP/1.1 keep-alive, one HTTP/2
// connection for gRPC) and resume TLS sessions, as a long-lived client
// does; a handshake per request is not what is measured.

// benchCerts creates a cluster's certificates for regions (and the admin
// client's) once per benchmark.
func benchCerts(b *testing.B, regions ...string) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "certs")
	if err := supervisor.PrepareCerts(dir, regions...); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchProcess runs a region's process on addr ("127.0.0.1:0" for any),
// with TLS from certs (RegionCertsDir) when certs is not "", until the
// benchmark ends. It returns the node and its API address.
func benchProcess(b *testing.B, region string, cluster uuid.UUID, peers map[string]string, addr, certs string) (*replica.Node, string) {
	b.Helper()
	cfg := process.Config{Node: replica.Config{Region: region, DataDir: b.TempDir(), ClusterID: cluster, Peers: peers,
		Logger: slog.New(slog.DiscardHandler)}}
	if certs != "" {
		nodeCerts, err := pki.LoadNode(supervisor.RegionCertsDir(certs, region))
		if err != nil {
			b.Fatal(err)
		}
		cfg.Security = &process.Security{Certs: nodeCerts}
	}
	p, err := process.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.Close()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	b.Cleanup(func() {
		p.Close()
		<-done
	})
	return p.Node(), ln.Addr().String()
}

// benchClient is a client of the API at addr: Connect over HTTP/1.1 with
// up to conns kept-alive connections, or gRPC over one HTTP/2 connection;
// over TLS with the admin client certificate when certs is not "".
// dials counts the connections it opens.
func benchClient(b *testing.B, addr, certs string, grpc bool, conns int, dials *atomic.Int64) causewayv1connect.KVServiceClient {
	b.Helper()
	dialer := &net.Dialer{}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		}}
	p := new(http.Protocols)
	url := "http://" + addr
	if certs != "" {
		cfg, err := pki.ClientTLS(certs, supervisor.AdminClient)
		if err != nil {
			b.Fatal(err)
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(conns)
		tr.TLSClientConfig = cfg
		url = "https://" + addr
		if grpc {
			p.SetHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
	} else if grpc {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr.Protocols = p
	b.Cleanup(tr.CloseIdleConnections)
	var opts []connect.ClientOption
	if grpc {
		opts = append(opts, connect.WithGRPC())
	}
	return causewayv1connect.NewKVServiceClient(&http.Client{Transport: tr}, url, opts...)
}

// runClients runs op b.N times in all from clients goroutines and reports
// the throughput, and the connections opened while timed (dials counts
// them): 0 when every client keeps its connection.
func runClients(b *testing.B, clients int, dials *atomic.Int64, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	// Warm up: every client's connection (and TLS session) exists before
	// the timer starts.
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			if err := op(ctx, c); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	dialed := dials.Load()
	cpu := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) || failed.Load() != nil {
					return
				}
				if err := op(ctx, int(i)); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu = cpuTime() - cpu
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(dials.Load()-dialed), "dials")
}

// cpuTime is the CPU time this process (server and clients alike) has
// used. On a machine shared with other work, CPU per operation tells what
// TLS costs more steadily than throughput, which the other work moves.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClientTLS: Put and Get at 1 and 64 clients, Connect over
// HTTP/1.1 and gRPC, without and with TLS. A Put waits for its fsync
// (group-committed), a Get reads one of 1000 keys written once.
func BenchmarkClientTLS(b *testing.B) {
	certs := benchCerts(b, "us-east")
	addrs := map[string]string{}
	dirs := map[string]string{"plain": "", "tls": certs}
	value := make([]byte, 100)
	for _, security := range []string{"plain", "tls"} {
		var node *replica.Node
		node, addrs[security] = benchProcess(b, "us-east", uuid.New(), nil, "127.0.0.1:0", dirs[security])
		// Gets read keys written once, so that what they read does not
		// depend on how many Puts ran before (Puts from fresh sessions
		// to one key are concurrent, and their siblings pile up).
		for i := range 1000 {
			if _, err := node.Put(context.Background(), fmt.Sprintf("get-%d", i), value, "", ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Each case runs without TLS then with it, one after the other, so
	// that the two see the same machine (load from elsewhere comes and
	// goes within a run).
	for _, op := range []string{"put", "get"} {
		for _, proto := range []string{"connect-http1", "grpc"} {
			for _, clients := range []int{1, 64} {
				for _, security := range []string{"plain", "tls"} {
					var dials atomic.Int64
					kv := benchClient(b, addrs[security], dirs[security], proto == "grpc", clients, &dials)
					b.Run(fmt.Sprintf("op=%s/proto=%s/clients=%d/%s", op, proto, clients, security), func(b *testing.B) {
						runClients(b, clients, &dials, func(ctx context.Context, i int) error {
							if op == "put" {
								_, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: fmt.Sprintf("put-%d", i%1000), Value: value}))
								return err
							}
							_, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: fmt.Sprintf("get-%d", i%1000)}))
							return err
						})
					})
				}
			}
		}
	}
}

// BenchmarkReplicationTLS: replication between two regions on loopback,
// over HTTP/2 without TLS and over mutual TLS.
//
// apply: us-east holds b.N writes before eu-west starts; the timer covers
// eu-west catching up over its stream (it is us-east's peer from the
// start, so us-east keeps its log for it), until a read with the last
// write's token finds it. visibility: one write at a time, the time from
// its acknowledgement in us-east to a read in eu-west that waits for it.
func BenchmarkReplicationTLS(b *testing.B) {
	certs := benchCerts(b, "us-east", "eu-west")
	dirs := map[string]string{"plain": "", "mtls": certs}
	// Without and with TLS back to back for each measurement, so that the
	// two see the same machine.
	for _, security := range []string{"plain", "mtls"} {
		dir := dirs[security]
		b.Run("apply/"+security, func(b *testing.B) {
			cluster := uuid.New()
			reserved, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			remoteAddr := reserved.Addr().String()
			reserved.Close()
			origin, addr := benchProcess(b, "us-east", cluster, map[string]string{"eu-west": remoteAddr}, "127.0.0.1:0", dir)
			ctx := context.Background()
			value := make([]byte, 100)
			const loaders = 32
			var wg sync.WaitGroup
			var last atomic.Pointer[replica.WriteResult]
			for l := range loaders {
				wg.Go(func() {
					for i := l; i < b.N; i += loaders {
						res, err := origin.Put(ctx, fmt.Sprintf("key-%d", i%10000), value, "", "")
						if err != nil {
							b.Error(err)
							return
						}
						for {
							cur := last.Load()
							if cur != nil && cur.Version.Seq >= res.Version.Seq {
								break
							}
							if last.CompareAndSwap(cur, &res) {
								break
							}
						}
					}
				})
			}
			wg.Wait()
			if b.Failed() || last.Load() == nil {
				b.FailNow()
			}
			cpu := cpuTime()
			b.ResetTimer()
			start := time.Now()
			remote, _ := benchProcess(b, "eu-west", cluster, map[string]string{"us-east": addr}, remoteAddr, dir)
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if _, _, err := remote.Get(rctx, "key-0", last.Load().Token, false); err != nil {
				b.Fatalf("eu-west never caught up: %v", err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-us/write")
		})
	}
	for _, security := range []string{"plain", "mtls"} {
		dir := dirs[security]
		b.Run("visibility/"+security, func(b *testing.B) {
			cluster := uuid.New()
			origin, addr := benchProcess(b, "us-east", cluster, nil, "127.0.0.1:0", dir)
			remote, _ := benchProcess(b, "eu-west", cluster, map[string]string{"us-east": addr}, "127.0.0.1:0", dir)
			ctx := context.Background()
			value := make([]byte, 100)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				key := fmt.Sprintf("key-%d", i%1000)
				res, err := origin.Put(ctx, key, value, "", "")
				if err != nil {
					b.Fatal(err)
				}
				acked := time.Now()
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				_, _, err = remote.Get(rctx, key, res.Token, false)
				cancel()
				if err != nil {
					b.Fatalf("eu-west never saw write %d: %v", res.Version.Seq, err)
				}
				lat = append(lat, time.Since(acked))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-us")
		})
	}
}
