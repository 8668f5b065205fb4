package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

// noopGRPCGoServer, as the binary of startCauseway, starts the no-op
// KVService of serveNoopGRPCGo: the same answers as the noop server's, from
// grpc-go's own HTTP/2 transport instead of net/http and connect-go. etcd
// serves its gRPC API from that transport, so this row is what the gRPC
// protocol would cost Causeway per request if it served gRPC the way etcd
// does (a second server stack beside connect-go), beside what it costs
// today (the noop server's grpc row).
const noopGRPCGoServer = "noop-grpcgo"

// serveNoopGRPCGo serves a KVService answering Put and Get with prebuilt
// responses of the peer benchmark's sizes, from grpc.Server on a loopback
// port (cleartext HTTP/2, as the other rows), prints "serving on
// http://ADDR" and returns on SIGTERM.
func serveNoopGRPCGo() error {
	put := putSizedResponse()
	get := &v1.GetResponse{Found: true, Value: value, Version: put.GetVersion(), CausalToken: put.GetCausalToken()}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(replica.MaxRequestBytes))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: causewayv1connect.KVServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Put", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(new(v1.PutRequest)); err != nil {
					return nil, err
				}
				return put, nil
			}},
			{MethodName: "Get", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(new(v1.GetRequest)); err != nil {
					return nil, err
				}
				return get, nil
			}},
		},
	}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		srv.Stop()
	}()
	fmt.Printf("noop: serving on http://%s\n", ln.Addr())
	return srv.Serve(ln)
}
