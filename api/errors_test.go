package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want connect.Code
	}{
		{"kind", api.ErrNotFound, connect.CodeNotFound},
		{"kind wrapped with %w", fmt.Errorf("lookup: %w", api.ErrAlreadyExists), connect.CodeAlreadyExists},
		{"Errorf", api.Errorf(api.ErrAborted, "version %d is not %d", 3, 4), connect.CodeAborted},
		{"Errorf wrapping another error", api.Errorf(api.ErrInvalidArgument, "key: %w", errors.New("too long")), connect.CodeInvalidArgument},
		{"token", fmt.Errorf("%w: truncated", clocks.ErrInvalidToken), connect.CodeInvalidArgument},
		{"causal past missing", fmt.Errorf("%w: token needs {a:3}", causal.ErrNotCaughtUp), connect.CodeUnavailable},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		{"details keep the kind", api.WithDetails(api.Errorf(api.ErrFailedPrecondition, "gone"), &v1.LogTruncated{}), connect.CodeFailedPrecondition},
		{"connect error", connect.NewError(connect.CodeUnimplemented, errors.New("no")), connect.CodeUnimplemented},
		{"unknown", errors.New("disk on fire"), connect.CodeInternal},
		{"nil details", api.WithDetails(errors.New("disk on fire")), connect.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.Code(tt.err); got != tt.want {
				t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestConnectError(t *testing.T) {
	if api.ConnectError(nil) != nil {
		t.Fatal("ConnectError(nil) != nil")
	}
	if api.WithDetails(nil, &v1.LogTruncated{}) != nil {
		t.Fatal("WithDetails(nil) != nil")
	}

	// A known kind keeps its message, written for the client.
	err := api.Errorf(api.ErrInvalidArgument, "key is %d bytes; the limit is %d bytes", 5000, 4096)
	ce := asConnectError(t, api.ConnectError(err))
	if ce.Code() != connect.CodeInvalidArgument || ce.Message() != err.Error() {
		t.Errorf("ConnectError(%v) = %v %q", err, ce.Code(), ce.Message())
	}

	// An unknown error says nothing of its cause on the wire, and drops its
	// details with its message.
	err = api.WithDetails(fmt.Errorf("read /data/000012.sst: %w", errors.New("input/output error")), &v1.LogTruncated{Region: "a"})
	ce = asConnectError(t, api.ConnectError(err))
	if ce.Code() != connect.CodeInternal || ce.Message() != api.InternalMessage || len(ce.Details()) != 0 {
		t.Errorf("ConnectError(%v) = %v %q with %d details, want internal %q without details",
			err, ce.Code(), ce.Message(), len(ce.Details()), api.InternalMessage)
	}

	// An error a peer returned passes through as it is.
	peer := connect.NewError(connect.CodeAborted, errors.New("version 3 is not 4"))
	if got := api.ConnectError(fmt.Errorf("forward: %w", peer)); got != peer {
		t.Errorf("ConnectError(wrapped peer error) = %v, want the peer's error itself", got)
	}

	// Details attached at any depth are all sent, the innermost last.
	err = fmt.Errorf("stream: %w", api.WithDetails(
		fmt.Errorf("log: %w", api.WithDetails(api.Errorf(api.ErrFailedPrecondition, "log starts at 9"), &v1.LogTruncated{Region: "b", FirstSeq: 9})),
		&v1.CompareFailed{Found: true, CurrentVersion: 4}))
	ce = asConnectError(t, api.ConnectError(err))
	if ce.Code() != connect.CodeFailedPrecondition || ce.Message() != err.Error() {
		t.Errorf("ConnectError(%v) = %v %q", err, ce.Code(), ce.Message())
	}
	want := []proto.Message{&v1.CompareFailed{Found: true, CurrentVersion: 4}, &v1.LogTruncated{Region: "b", FirstSeq: 9}}
	checkDetails(t, ce, want)
}

// TestDetailsOnTheWire sends errors with details through a real Connect
// handler and client: what replica's truncated() and the CLI's
// compare-and-set read back.
func TestDetailsOnTheWire(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(causewayv1connect.NewLinearServiceHandler(detailsLinear{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := causewayv1connect.NewLinearServiceClient(srv.Client(), srv.URL)

	_, err := client.CompareAndSet(context.Background(), connect.NewRequest(&v1.CompareAndSetRequest{Key: "k"}))
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("CompareAndSet: %v, want a *connect.Error", err)
	}
	if ce.Code() != connect.CodeFailedPrecondition || ce.Message() != "region a no longer holds its writes from 3" {
		t.Errorf("CompareAndSet: %v %q", ce.Code(), ce.Message())
	}
	checkDetails(t, ce, []proto.Message{&v1.LogTruncated{Region: "a", FirstSeq: 7}})
}

type detailsLinear struct {
	causewayv1connect.UnimplementedLinearServiceHandler
}

func (detailsLinear) CompareAndSet(context.Context, *connect.Request[v1.CompareAndSetRequest]) (*connect.Response[v1.CompareAndSetResponse], error) {
	return nil, api.ConnectError(api.WithDetails(
		api.Errorf(api.ErrFailedPrecondition, "region %s no longer holds its writes from %d", "a", 3),
		&v1.LogTruncated{Region: "a", FirstSeq: 7}))
}

func asConnectError(t *testing.T, err error) *connect.Error {
	t.Helper()
	ce, ok := err.(*connect.Error)
	if !ok {
		t.Fatalf("ConnectError returned %T (%v), want *connect.Error", err, err)
	}
	return ce
}

func checkDetails(t *testing.T, ce *connect.Error, want []proto.Message) {
	t.Helper()
	got := ce.Details()
	if len(got) != len(want) {
		t.Fatalf("%d details, want %d", len(got), len(want))
	}
	for i, d := range got {
		m, err := d.Value()
		if err != nil {
			t.Fatalf("detail %d: %v", i, err)
		}
		if !proto.Equal(m, want[i]) {
			t.Errorf("detail %d = %v, want %v", i, m, want[i])
		}
	}
}
