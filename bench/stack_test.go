package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/replica"
)

const (
	// numKeys is the key space every benchmark spreads its operations over.
	numKeys = 10_000
	// valueBytes is the size of every value written.
	valueBytes = 100
	// shutdownTimeout bounds the wait for a server's in-flight requests at
	// the end of the run.
	shutdownTimeout = 10 * time.Second
)

// concurrencies are the client counts every benchmark runs at. The largest
// also sizes the HTTP client's idle connection pool.
var concurrencies = []int{1, 64}

var (
	keys  = makeKeys(numKeys)
	value = makeValue(valueBytes)
)

func makeKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("bench/key/%05d", i)
	}
	return out
}

func makeValue(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

func keyOf(i int) string { return keys[i%numKeys] }

// BenchmarkStack runs the full-stack Put and Get benchmarks and the RPC and
// storage floors they are compared with; see the package documentation.
//
// Each group (floor=rpc, floor=rpc-reply, floor=pebble, floor=durable,
// op=put, op=get) starts its own server or store on first use, shares it
// between its client counts and the rounds of each (the testing package
// calls a benchmark with growing b.N), and stops it before the next group
// starts, so that no group's background work (Pebble flushes and
// compactions, idle connections) runs during another's measurement, and
// -bench can select any subset without starting what it does not run.
func BenchmarkStack(b *testing.B) {
	httpClient := newHTTPClient(b, slices.Max(concurrencies))

	b.Run("floor=rpc", func(b *testing.B) { benchRPCFloor(b, httpClient, &v1.PutResponse{}) })

	// The RPC floor again, answering every Put with a response of the size
	// and shape a real Put returns (a version and a causal token), built
	// once before the timer starts: what a reply costs the client and the
	// server beyond an empty one, with still no work behind it.
	b.Run("floor=rpc-reply", func(b *testing.B) { benchRPCFloor(b, httpClient, putSizedResponse()) })

	b.Run("floor=pebble", func(b *testing.B) {
		db := sync.OnceValues(func() (*pebble.DB, error) { return openPebbleFloor(b, nil) })
		eachConcurrency(b, func(b *testing.B, clients int) {
			measure(b, clients, pebblePut(must(b, db)))
		})
	})

	// The two floors composed (durableKV): an RPC whose Put commits one
	// synced Pebble batch and nothing else.
	b.Run("floor=durable", func(b *testing.B) { benchDurableFloor(b, httpClient) })

	b.Run("op=put", func(b *testing.B) {
		client := sync.OnceValues(func() (causewayv1connect.KVServiceClient, error) {
			url, _, err := serveReplica(b)
			if err != nil {
				return nil, err
			}
			return causewayv1connect.NewKVServiceClient(httpClient, url), nil
		})
		eachConcurrency(b, func(b *testing.B, clients int) {
			measure(b, clients, putOp(must(b, client), make([]string, clients)))
		})
	})

	b.Run("op=get", func(b *testing.B) {
		// Every key is written once before the first measurement, straight
		// through the node: only the reads go through the network.
		client := sync.OnceValues(func() (causewayv1connect.KVServiceClient, error) {
			url, node, err := serveReplica(b)
			if err != nil {
				return nil, err
			}
			_, err = drive(context.Background(), numKeys, slices.Max(concurrencies), func(ctx context.Context, _, i int) error {
				_, err := node.Put(ctx, keyOf(i), value, "", "")
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("preload keys: %w", err)
			}
			return causewayv1connect.NewKVServiceClient(httpClient, url), nil
		})
		eachConcurrency(b, func(b *testing.B, clients int) {
			client := must(b, client)
			tokens := make([]string, clients)
			measure(b, clients, func(ctx context.Context, c, i int) error {
				res, err := client.Get(ctx, connect.NewRequest(&v1.GetRequest{
					Key:         keyOf(i),
					CausalToken: tokens[c],
				}))
				if err != nil {
					return err
				}
				if !res.Msg.GetFound() || len(res.Msg.GetValue()) != valueBytes {
					return fmt.Errorf("get %q: found=%v with %d bytes, want the %d-byte value written before the benchmark",
						keyOf(i), res.Msg.GetFound(), len(res.Msg.GetValue()), valueBytes)
				}
				tokens[c] = res.Msg.GetCausalToken()
				return nil
			})
		})
	})
}

// benchRPCFloor runs Put at every client count against a noopKV answering
// res, started on first use and shared by the client counts.
func benchRPCFloor(b *testing.B, httpClient *http.Client, res *v1.PutResponse) {
	client := sync.OnceValues(func() (causewayv1connect.KVServiceClient, error) {
		url, err := serveRPCFloor(b, res)
		if err != nil {
			return nil, err
		}
		return causewayv1connect.NewKVServiceClient(httpClient, url), nil
	})
	eachConcurrency(b, func(b *testing.B, clients int) {
		measure(b, clients, putOp(must(b, client), nil))
	})
}

// eachConcurrency runs bench as sub-benchmark clients=N for every N in
// concurrencies.
func eachConcurrency(b *testing.B, bench func(b *testing.B, clients int)) {
	for _, clients := range concurrencies {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { bench(b, clients) })
	}
}

// must returns the value of a shared setup step or fails the benchmark.
func must[T any](b *testing.B, setup func() (T, error)) T {
	b.Helper()
	v, err := setup()
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// pebblePut is the storage floor's operation: value under key i in a
// single-key batch committed with pebble.Sync.
func pebblePut(db *pebble.DB) op {
	return func(_ context.Context, _, i int) error {
		batch := db.NewBatch()
		defer batch.Close()
		if err := batch.Set([]byte(keyOf(i)), value, nil); err != nil {
			return err
		}
		return batch.Commit(pebble.Sync)
	}
}

// putOp writes value under key i. With tokens non-nil, client c behaves as
// a session: it sends the causal token of its previous response (the token
// starts empty) and keeps the new one.
func putOp(client causewayv1connect.KVServiceClient, tokens []string) op {
	return func(ctx context.Context, c, i int) error {
		req := &v1.PutRequest{Key: keyOf(i), Value: value}
		if tokens != nil {
			req.CausalToken = tokens[c]
		}
		res, err := client.Put(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		if tokens != nil {
			tokens[c] = res.Msg.GetCausalToken()
		}
		return nil
	}
}

// newHTTPClient returns the client every benchmark shares: HTTP/1.1 over
// loopback, keeping an idle connection for each of up to maxClients
// concurrent callers so that no operation pays for a TCP handshake. (The
// default of 2 idle connections per host would make most of 64 clients dial
// a new connection per request and leave it in TIME_WAIT.)
func newHTTPClient(b *testing.B, maxClients int) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.Protocols = protocols
	transport.ForceAttemptHTTP2 = false
	transport.MaxIdleConns = 0 // no limit across hosts
	transport.MaxIdleConnsPerHost = maxClients
	b.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

// serveReplica starts a node and its server on a loopback port, stopped and
// closed by b's cleanup, and returns the server's base URL and the node.
func serveReplica(b *testing.B) (string, *replica.Node, error) {
	node, err := replica.Open(replica.Config{
		Region:  "bench",
		DataDir: b.TempDir(),
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return "", nil, err
	}
	srv := process.NewServer(node)
	url, err := serve(b, srv.Serve, srv.Shutdown)
	if err != nil {
		return "", nil, errors.Join(err, node.Close())
	}
	// Cleanups run last-registered first: the server stops before the node
	// closes under it.
	b.Cleanup(func() {
		if err := node.Close(); err != nil {
			b.Errorf("close node: %v", err)
		}
	})
	return url, node, nil
}

// noopKV is the RPC floor: a KVService that does no work at all. Its Put
// answers res, built before the benchmark.
type noopKV struct {
	causewayv1connect.UnimplementedKVServiceHandler
	res *v1.PutResponse
}

func (h noopKV) Put(context.Context, *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	return connect.NewResponse(h.res), nil
}

// Get answers a found value of the benchmark's size, with Put's version
// and token, for BenchmarkPeer's Get floor.
func (h noopKV) Get(context.Context, *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	return connect.NewResponse(&v1.GetResponse{Found: true, Value: value, Version: h.res.GetVersion(), CausalToken: h.res.GetCausalToken()}), nil
}

// putSizedResponse is a PutResponse as a node returns it in this benchmark:
// a version from region "bench" and a session token covering one region.
func putSizedResponse() *v1.PutResponse {
	now := clocks.Timestamp{WallMs: uint64(time.Now().UnixMilli()), Region: "bench"}
	token := clocks.Token{Cluster: uuid.New(), Vector: clocks.Vector{"bench": 1_000_000}, Seen: now}
	return &v1.PutResponse{
		Version:     &v1.Version{Timestamp: &v1.Timestamp{WallMs: now.WallMs}, OriginRegion: now.Region, OriginSeq: 1_000_000},
		CausalToken: token.Encode(),
	}
}

// serveRPCFloor serves noopKV answering res (see serveKV) and returns its
// base URL.
func serveRPCFloor(b *testing.B, res *v1.PutResponse) (string, error) {
	return serveKV(b, noopKV{res: res})
}

// serveKV serves h the way process.Server serves a node (same read limit,
// HTTP/1.1 and cleartext HTTP/2 on one port) and returns its base URL.
func serveKV(b *testing.B, h causewayv1connect.KVServiceHandler) (string, error) {
	mux := http.NewServeMux()
	mux.Handle(causewayv1connect.NewKVServiceHandler(h,
		connect.WithReadMaxBytes(replica.MaxRequestBytes), connect.WithCompressMinBytes(4<<10))) // as replica.Server builds it
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           mux,
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	serveFn := func(ln net.Listener) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return serve(b, serveFn, srv.Shutdown)
}

// serve runs serveFn on a new loopback listener until b's cleanup calls
// shutdown, and returns the base URL.
func serve(b *testing.B, serveFn func(net.Listener) error, shutdown func(context.Context) error) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- serveFn(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			b.Errorf("shut down server: %v", err)
		}
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), nil
}

// openPebbleFloor opens a bare Pebble store, closed by b's cleanup. It uses
// Pebble's default options except for the two the node also sets: the newest
// format, and a logger that keeps Pebble's informational lines out of the
// benchmark output. A non-nil pace is the store's WALMinSyncInterval.
func openPebbleFloor(b *testing.B, pace func() time.Duration) (*pebble.DB, error) {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{b},
		WALMinSyncInterval: pace,
	})
	if err != nil {
		return nil, err
	}
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Errorf("close pebble: %v", err)
		}
	})
	return db, nil
}

// quietLogger drops Pebble's informational lines and reports its errors.
type quietLogger struct{ tb testing.TB }

func (quietLogger) Infof(string, ...any)                {}
func (l quietLogger) Errorf(format string, args ...any) { l.tb.Errorf("pebble: "+format, args...) }
func (l quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
