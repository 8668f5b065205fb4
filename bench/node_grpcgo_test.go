package bench

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/replica"
)

// causewayGRPCGoServer, as the binary of startCauseway, serves a region's
// node over gRPC from grpc-go's own transport (serveNodeGRPCGo) instead of
// `causeway serve`'s net/http and connect-go: the same node and store,
// behind the server stack etcd uses. Beside the causeway grpc row it
// measures what that stack would change for a real Put and Get, where the
// noop-grpcgo row measures the stack alone.
const causewayGRPCGoServer = "causeway-grpcgo"

// serveNodeGRPCGo opens a node as `causeway serve --linear off
// --gossip-listen off` does (region "bench", data in a temporary
// directory, the garbage collector's target at serve's default) and serves
// its Put and Get over gRPC from grpc.Server (serveKVOverGRPCGo). It has
// none of serve's interceptors (authentication, admission, metrics: about
// 1% of serve's CPU per Put, docs/bench/peer.md), and an error reaches the
// client as gRPC's Unknown with its message.
func serveNodeGRPCGo() error {
	debug.SetGCPercent(300) // cmd/causeway's defaultGCPercent
	dir, err := os.MkdirTemp("", "causeway-grpcgo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	node, err := replica.Open(replica.Config{Region: "bench", DataDir: dir, Logger: logger})
	if err != nil {
		return err
	}
	defer node.Close()
	return serveKVOverGRPCGo(causewayGRPCGoServer,
		func(ctx context.Context, m *v1.PutRequest) (*v1.PutResponse, error) {
			res, err := node.Write(ctx, []causal.Op{{Key: m.GetKey(), Kind: causal.KindValue, Value: m.GetValue()}},
				m.GetCausalToken(), m.GetRequestId(), replica.WriteOptions{})
			if err != nil {
				return nil, err
			}
			return &v1.PutResponse{Version: versionMessage(&res.Version), CausalToken: res.Token}, nil
		},
		func(ctx context.Context, m *v1.GetRequest) (*v1.GetResponse, error) {
			res, token, err := node.Get(ctx, m.GetKey(), m.GetCausalToken(), false)
			if err != nil {
				return nil, err
			}
			out := &v1.GetResponse{Found: res.Found, CausalToken: token}
			if !res.Version.Timestamp.IsZero() {
				out.Version = versionMessage(&res.Version)
			}
			if res.Found {
				out.Value = res.Version.Value
			}
			return out, nil
		})
}

// versionMessage is a version as the KV service answers it.
func versionMessage(v *causal.Version) *v1.Version {
	return &v1.Version{
		Timestamp:    &v1.Timestamp{WallMs: v.Timestamp.WallMs, Logical: v.Timestamp.Logical},
		OriginRegion: v.Timestamp.Region,
		OriginSeq:    v.Seq,
	}
}
