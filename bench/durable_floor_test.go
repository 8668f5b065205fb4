package bench

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/groupcommit"
	"github.com/causewaydb/causeway/replica"
)

// durableKV is the two floors composed, with nothing of Causeway's between
// them: a KVService whose Put commits the request's key and value as a
// single-key Pebble batch with pebble.Sync (what floor=pebble does) and
// then answers res (what floor=rpc-reply does). A Put of the node does
// this and more, so durableKV is the most a durable Put can reach through
// this RPC stack and this disk.
//
// Its store paces WAL fsyncs with the node's own mechanism
// (internal/groupcommit), with a node's defaults unless a benchmark asks
// for another pause, so that the two differ only by Causeway's own work:
// timestamps, sibling resolution, the replication log, tokens.
type durableKV struct {
	causewayv1connect.UnimplementedKVServiceHandler
	db    *pebble.DB
	res   *v1.PutResponse
	pacer *groupcommit.Pacer // a Put is in progress from entry to its fsync
}

func (h durableKV) Put(_ context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	defer h.pacer.Enter()()
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

// serveDurableFloor opens durableKV's store, pausing between WAL fsyncs as
// a node with default settings does, and serves it; see serveDurable.
func serveDurableFloor(b *testing.B) (string, error) {
	return serveDurable(b, replica.DefaultGroupCommitDelay)
}

// serveDurable opens durableKV's store and serves it, both stopped by b's
// cleanup, and returns the base URL. While replica.DefaultGroupCommitWriters
// Puts or more are in progress the store waits pause after each WAL fsync
// before the next (0: never).
func serveDurable(b *testing.B, pause time.Duration) (string, error) {
	pacer := groupcommit.New(pause, replica.DefaultGroupCommitWriters)
	db, err := openPebbleFloor(b, pacer.MinSyncInterval)
	if err != nil {
		return "", err
	}
	return serveKV(b, durableKV{db: db, res: putSizedResponse(), pacer: pacer})
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

// durablePauses are the fsync pauses BenchmarkDurablePacing tries.
var durablePauses = []time.Duration{0, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}

// BenchmarkDurablePacing asks whether any pause between WAL fsyncs lets the
// two floors composed reach the write path's target: floor=durable at 64
// clients with each of durablePauses, beside floor=rpc, in alternating
// slices as BenchmarkPutRatio runs them (floor=pebble, several times faster
// than floor=rpc at 64 clients, is left out: the yardstick is floor=rpc).
// A short pause means more fsyncs, each costing CPU the RPCs need; a long
// one leaves clients waiting while cores idle. Reported: the median over
// rounds of each pause's ops/s as a fraction of floor=rpc's in the same
// round. Run with -benchtime=Nx, N a multiple of 14: the 7 legs run in
// the 14 orders of williams(7).
func BenchmarkDurablePacing(b *testing.B) {
	httpClient := newHTTPClient(b, ratioClients)
	rpcURL, err := serveRPCFloor(b, &v1.PutResponse{})
	if err != nil {
		b.Fatal(err)
	}
	legs := []ratioLeg{{"rpc", putOp(causewayv1connect.NewKVServiceClient(httpClient, rpcURL), nil)}}
	for _, pause := range durablePauses {
		url, err := serveDurable(b, pause)
		if err != nil {
			b.Fatal(err)
		}
		legs = append(legs, ratioLeg{"durable/rpc@" + pause.String(), putOp(causewayv1connect.NewKVServiceClient(httpClient, url), nil)})
	}
	rates := alternate(b, legs)
	for i := 1; i < len(legs); i++ {
		ratios := make([]float64, b.N)
		for r := range b.N {
			ratios[r] = rates[i][r] / rates[0][r]
		}
		b.ReportMetric(median(ratios), legs[i].name)
	}
	b.ReportMetric(median(rates[0]), "rpc-ops/s")
}

// TestDurableFloorSyncsEachPut: floor=durable bounds a durable Put only if
// its Put is durable when it answers. Every answered Put survives a crash
// that drops whatever was not synced.
func TestDurableFloorSyncsEachPut(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{t}}
	db, err := pebble.Open("floor", opts)
	if err != nil {
		t.Fatal(err)
	}
	h := durableKV{db: db, res: putSizedResponse(), pacer: groupcommit.New(time.Millisecond, 1)}
	for i := range 10 {
		if _, err := h.Put(context.Background(), connect.NewRequest(&v1.PutRequest{Key: keyOf(i), Value: value})); err != nil {
			t.Fatal(err)
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	opts.FS = crashed
	db, err = pebble.Open("floor", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 10 {
		got, closer, err := db.Get([]byte(keyOf(i)))
		if err != nil {
			t.Fatalf("key %q answered but lost in the crash: %v", keyOf(i), err)
		}
		if !bytes.Equal(got, value) {
			t.Errorf("key %q = %q after the crash, want %q", keyOf(i), got, value)
		}
		closer.Close()
	}
}
