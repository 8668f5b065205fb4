package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/causal"
)

// TestReplicationErrorsOnTheWire: the errors an origin's replication
// handler builds through api reach a subscriber as the subscriber's
// truncated() and damagedMessage() expect: a truncated log is
// failed_precondition with its LogTruncated detail; lost writes are
// failed_precondition without it; what the origin itself refuses is never
// taken for a message damaged on the way.
func TestReplicationErrorsOnTheWire(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		code          connect.Code
		truncated     bool
		firstSeq      uint64
		damaged       bool
		messageIsSame bool
	}{
		{
			name: "log truncated",
			err: api.WithDetails(api.Errorf(api.ErrFailedPrecondition,
				"region a no longer holds its writes from 3 (region b asked for them); b must merge a snapshot"),
				&v1.LogTruncated{Region: "a", FirstSeq: 7}),
			code: connect.CodeFailedPrecondition, truncated: true, firstSeq: 7, messageIsSame: true,
		},
		{
			name: "log truncated, empty",
			err: api.WithDetails(api.Errorf(api.ErrFailedPrecondition, "region a no longer holds its writes from 1"),
				&v1.LogTruncated{Region: "a"}),
			code: connect.CodeFailedPrecondition, truncated: true, firstSeq: 0, messageIsSame: true,
		},
		{
			name: "lost writes",
			err:  causal.CheckResume("a", 4, 9),
			code: connect.CodeFailedPrecondition, messageIsSame: true,
		},
		{
			name: "acknowledgement beyond what was sent",
			err:  api.Errorf(api.ErrInvalidArgument, "region b acknowledged write 9 of a, which sent it writes up to 4 only"),
			code: connect.CodeInvalidArgument, messageIsSame: true,
		},
		{
			name: "shutting down",
			err:  api.Errorf(api.ErrUnavailable, "node is shutting down"),
			code: connect.CodeUnavailable, messageIsSame: true,
		},
		{
			name: "corrupt record in the origin's log",
			err:  fmt.Errorf("%w: replication log jumps from 3 to 5", ErrCorruptRecord),
			code: connect.CodeInternal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(causewayv1connect.NewReplicationServiceHandler(failingOrigin{err: tt.err}))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			client := causewayv1connect.NewReplicationServiceClient(srv.Client(), srv.URL)

			stream, err := client.Snapshot(context.Background(), connect.NewRequest(&v1.SnapshotRequest{}))
			if err == nil {
				for stream.Receive() {
				}
				err = stream.Err()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := connect.CodeOf(err); got != tt.code {
				t.Errorf("code %v, want %v (%v)", got, tt.code, err)
			}
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("%T %v, want a *connect.Error", err, err)
			}
			if tt.messageIsSame && ce.Message() != tt.err.Error() {
				t.Errorf("message %q, want %q", ce.Message(), tt.err.Error())
			}
			if !tt.messageIsSame && ce.Message() != api.InternalMessage {
				t.Errorf("message %q, want %q", ce.Message(), api.InternalMessage)
			}
			first, ok := truncated(err)
			if ok != tt.truncated || first != tt.firstSeq {
				t.Errorf("truncated() = %d, %v; want %d, %v", first, ok, tt.firstSeq, tt.truncated)
			}
			if got := damagedMessage(err); got != tt.damaged {
				t.Errorf("damagedMessage() = %v, want %v", got, tt.damaged)
			}
		})
	}
}

type failingOrigin struct {
	err error
	causewayv1connect.UnimplementedReplicationServiceHandler
}

func (o failingOrigin) Snapshot(context.Context, *connect.Request[v1.SnapshotRequest], *connect.ServerStream[v1.SnapshotResponse]) error {
	return api.ConnectError(o.err)
}
