package bench

import (
	"context"

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
// responses of the peer benchmark's sizes (serveKVOverGRPCGo).
func serveNoopGRPCGo() error {
	put := putSizedResponse()
	get := &v1.GetResponse{Found: true, Value: value, Version: put.GetVersion(), CausalToken: put.GetCausalToken()}
	return serveKVOverGRPCGo("noop",
		func(context.Context, *v1.PutRequest) (*v1.PutResponse, error) { return put, nil },
		func(context.Context, *v1.GetRequest) (*v1.GetResponse, error) { return get, nil })
}

// serveKVOverGRPCGo serves KVService's Put and Get, answered by put and
// get, from grpc.Server on a loopback port (cleartext HTTP/2, as the other
// rows) until SIGTERM (serveLoopback). Requests are decoded before put and
// get see them, as a generated grpc-go service would.
func serveKVOverGRPCGo(name string, put func(context.Context, *v1.PutRequest) (*v1.PutResponse, error),
	get func(context.Context, *v1.GetRequest) (*v1.GetResponse, error)) error {
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(replica.MaxRequestBytes))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: causewayv1connect.KVServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Put", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := new(v1.PutRequest)
				if err := dec(req); err != nil {
					return nil, err
				}
				return put(ctx, req)
			}},
			{MethodName: "Get", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := new(v1.GetRequest)
				if err := dec(req); err != nil {
					return nil, err
				}
				return get(ctx, req)
			}},
		},
	}, nil)
	return serveLoopback(name, srv.Serve, srv.Stop)
}
