package wanbench

import (
	"context"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// fakeKV is two regions' key-value maps: a Put into src shows in dst after
// the given number of dst reads of that key.
type fakeKV struct {
	causewayv1connect.KVServiceClient // the methods the probes do not call panic
	mu                                sync.Mutex
	data                              map[string][]byte
	pending                           map[string][]byte // written to src, not yet in dst
	readsBeforeArrival                int
	reads                             map[string]int
}

type fakeRegion struct {
	causewayv1connect.KVServiceClient
	kv *fakeKV
}

func (r fakeRegion) Put(_ context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	r.kv.mu.Lock()
	defer r.kv.mu.Unlock()
	r.kv.pending[req.Msg.Key] = req.Msg.Value
	return connect.NewResponse(&v1.PutResponse{}), nil
}

func (r fakeRegion) Get(_ context.Context, req *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	r.kv.mu.Lock()
	defer r.kv.mu.Unlock()
	k := req.Msg.Key
	r.kv.reads[k]++
	if v, ok := r.kv.pending[k]; ok && r.kv.reads[k] > r.kv.readsBeforeArrival {
		r.kv.data[k] = v
		delete(r.kv.pending, k)
	}
	v, ok := r.kv.data[k]
	return connect.NewResponse(&v1.GetResponse{Found: ok, Value: v}), nil
}

// A key that an earlier phase or run left in the destination is not the
// probe's write: the probe waits until its own value arrives.
func TestProbeWaitsForItsOwnWrite(t *testing.T) {
	kv := &fakeKV{data: map[string][]byte{"k": []byte("left by an earlier phase")}, pending: map[string][]byte{},
		readsBeforeArrival: 3, reads: map[string]int{}}
	src, dst := fakeRegion{kv: kv}, fakeRegion{kv: kv}
	if _, _, err := probe(context.Background(), src, dst, "k", 0); err != nil {
		t.Fatal(err)
	}
	if got := kv.reads["k"]; got != 4 {
		t.Fatalf("probe stopped after %d reads; its write arrived at the 4th", got)
	}
	e := faultProbe(context.Background(), src, dst, "k2", 0, time.Now())
	if !e.seen || kv.reads["k2"] != 4 {
		t.Fatalf("fault probe: seen %v after %d reads; its write arrived at the 4th", e.seen, kv.reads["k2"])
	}
}

// Every call of visibility probes keys of its own.
func TestProbeValuesNameTheirKey(t *testing.T) {
	a, b := probeValue("bench/r/vis/1/a/b/0"), probeValue("bench/r/vis/2/a/b/0")
	if string(a) == string(b) {
		t.Fatal("two probes wrote the same value")
	}
	if !sawProbe(&v1.GetResponse{Found: true, Value: a}, a) || sawProbe(&v1.GetResponse{Found: true, Value: b}, a) || sawProbe(&v1.GetResponse{Value: a}, a) {
		t.Fatal("sawProbe does not tell the probe's own write apart")
	}
}
