package bench

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

// noopServeEnv makes this test binary, re-executed, serve one of
// BenchmarkPeer's in-house servers as a process of its own, so that the
// benchmark reads the CPU it costs from /proc as it does for causeway and
// etcd. Its value names the server:
//
//	1                the RPC floor: noopKV answering Put- and Get-sized
//	                 responses with serve's HTTP settings (serveNoop)
//	noop-grpcgo      the same answers from grpc-go (noop_grpcgo_test.go)
//	causeway-grpcgo  a node behind grpc-go (node_grpcgo_test.go)
const noopServeEnv = "CAUSEWAY_BENCH_NOOP_SERVE"

func TestMain(m *testing.M) {
	serve := map[string]func() error{"1": serveNoop, noopGRPCGoServer: serveNoopGRPCGo, causewayGRPCGoServer: serveNodeGRPCGo}[os.Getenv(noopServeEnv)]
	if serve != nil {
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, os.Getenv(noopServeEnv), "server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveNoop serves noopKV on a loopback port as serveKV does, prints
// "serving on http://ADDR" and returns on SIGTERM.
func serveNoop() error {
	mux := http.NewServeMux()
	mux.Handle(causewayv1connect.NewKVServiceHandler(noopKV{res: putSizedResponse()},
		connect.WithReadMaxBytes(replica.MaxRequestBytes), connect.WithCompressMinBytes(4<<10)))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if err := serveLoopback("noop", srv.Serve, func() { srv.Close() }); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveLoopback listens on a loopback port, prints "NAME: serving on
// http://ADDR" (what startCauseway waits for) and serves the port until
// SIGTERM or an interrupt, when stop ends serve; it returns serve's error.
func serveLoopback(name string, serve func(net.Listener) error, stop func()) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		stop()
	}()
	fmt.Printf("%s: serving on http://%s\n", name, ln.Addr())
	return serve(ln)
}
