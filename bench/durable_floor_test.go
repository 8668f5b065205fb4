package bench

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

// durableKV is the two floors composed, with nothing of Causeway's between
// them: a KVService whose Put commits the request's key and value as a
// single-key Pebble batch with pebble.Sync (what floor=pebble does) and
// then answers res (what floor=rpc-reply does). A Put of the node does
// this and more, so durableKV is the most a durable Put can reach through
// this RPC stack and this disk.
//
// Its store paces WAL fsyncs under load exactly as a node's does
// (replica.DefaultGroupCommitDelay once replica.DefaultGroupCommitWriters
// writes are in progress), so that the two differ only by Causeway's own
// work: timestamps, sibling resolution, the replication log, tokens.
type durableKV struct {
	causewayv1connect.UnimplementedKVServiceHandler
	db     *pebble.DB
	res    *v1.PutResponse
	active *atomic.Int64 // Puts between entry and their fsync
}

func (h durableKV) Put(_ context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	h.active.Add(1)
	defer h.active.Add(-1)
	batch := h.db.NewBatch()
	defer batch.Close()
	if err := batch.Set([]byte(req.Msg.GetKey()), req.Msg.GetValue(), nil); err != nil {
		return nil, err
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return nil, err
	}
	return connect.NewResponse(h.res), nil
}

// serveDurableFloor opens durableKV's store and serves it, both stopped by
// b's cleanup, and returns the base URL.
func serveDurableFloor(b *testing.B) (string, error) {
	active := new(atomic.Int64)
	pace := func() time.Duration {
		if active.Load() < replica.DefaultGroupCommitWriters {
			return 0
		}
		return replica.DefaultGroupCommitDelay
	}
	db, err := openPebbleFloor(b, pace)
	if err != nil {
		return "", err
	}
	return serveKV(b, durableKV{db: db, res: putSizedResponse(), active: active})
}

// benchDurableFloor runs Put at every client count against durableKV,
// started on first use and shared by the client counts.
func benchDurableFloor(b *testing.B, httpClient *http.Client) {
	client := sync.OnceValues(func() (causewayv1connect.KVServiceClient, error) {
		url, err := serveDurableFloor(b)
		if err != nil {
			return nil, err
		}
		return causewayv1connect.NewKVServiceClient(httpClient, url), nil
	})
	eachConcurrency(b, func(b *testing.B, clients int) {
		measure(b, clients, putOp(must(b, client), nil))
	})
}
