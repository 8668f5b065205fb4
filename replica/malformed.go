package replica

import (
	"context"
	"errors"
	"io"
	"strings"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
)

// malformedStreams answers a stream whose messages cannot be read — an
// incomplete envelope, random bytes, a body that ends before the first
// message — with `invalid_argument` saying so. Connect reports the first
// as `internal` ("protocol error") and a handler that meets the second
// would return a bare EOF (`unknown`): both are the caller's mistake, not
// the node's. (Unary gRPC requests are read before any interceptor runs;
// the process rewrites their answer, internal/process.)
func malformedStreams() connect.Interceptor { return malformedInterceptor{} }

type malformedInterceptor struct{}

func (malformedInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }

func (malformedInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (malformedInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(ctx, &malformedConn{StreamingHandlerConn: conn})
	}
}

type malformedConn struct {
	connect.StreamingHandlerConn
	received bool
}

func (c *malformedConn) Receive(msg any) error {
	err := c.StreamingHandlerConn.Receive(msg)
	first := !c.received
	if err == nil {
		c.received = true
		return nil
	}
	if errors.Is(err, io.EOF) {
		if first {
			return api.ConnectError(api.Errorf(api.ErrInvalidArgument,
				"malformed request: the stream ended before its first message"))
		}
		return err // the caller finished sending: not an error
	}
	return MalformedRequest(err)
}

// MalformedRequest maps an error reading a request's envelope to
// `invalid_argument`; other errors pass unchanged.
func MalformedRequest(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) && IsProtocolError(ce) {
		return api.ConnectError(api.Errorf(api.ErrInvalidArgument, "malformed request: %s", ce.Message()))
	}
	return err
}

// IsProtocolError reports an error that Connect raises for bytes that are
// not a well-formed message envelope.
func IsProtocolError(ce *connect.Error) bool {
	msg := ce.Message()
	switch ce.Code() {
	case connect.CodeInternal, connect.CodeUnknown:
		return strings.HasPrefix(msg, "protocol error:")
	case connect.CodeUnimplemented:
		return msg == "unary request has zero messages"
	}
	return false
}
