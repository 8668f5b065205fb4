package replica_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// A watch over the wire ends, with unavailable and its resume token, when
// the server shuts down; Shutdown does not wait for the client to leave.
func TestWatchEndsWhenTheServerShutsDown(t *testing.T) {
	r := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", uuid.New(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := r.kv.Watch(ctx, connect.NewRequest(&v1.WatchRequest{Prefix: "k/"}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatalf("watch did not start: %v", stream.Err())
	}
	if _, err := r.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k/1", Value: []byte("v")})); err != nil {
		t.Fatal(err)
	}
	if !stream.Receive() || len(stream.Msg().GetEvents()) != 1 {
		t.Fatalf("no event for the put: %v", stream.Err())
	}
	last := stream.Msg().GetResumeToken()
	shutdown := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		shutdown <- r.srv.Shutdown(sctx)
	}()
	for stream.Receive() {
		last = stream.Msg().GetResumeToken()
	}
	var ce *connect.Error
	if !errors.As(stream.Err(), &ce) || ce.Code() != connect.CodeUnavailable {
		t.Fatalf("watch ended with %v, want unavailable", stream.Err())
	}
	var token string
	for _, d := range ce.Details() {
		if m, err := d.Value(); err == nil {
			if rt, ok := m.(*v1.WatchResumeToken); ok {
				token = rt.GetResumeToken()
			}
		}
	}
	if token == "" || token != last {
		t.Fatalf("resume token in the error %q, want the last one received %q", token, last)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
