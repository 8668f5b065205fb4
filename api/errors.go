package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// Error kinds. Domain packages wrap these (fmt.Errorf("%w: ...", api.ErrInvalidArgument)),
// use Errorf, or, for the pure packages below api (clocks, causal), define
// their own sentinels, listed in codeTable. See the package documentation
// for which package maps its errors where.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrAborted            = errors.New("aborted")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
)

// codeTable is checked in order; the first sentinel that errors.Is matches wins.
// It lists api's kinds and the sentinels of the packages below api that a
// handler may return unwrapped. A sentinel of any other package maps through
// the kind it wraps (or is wrapped in at its package's boundary), else to
// CodeInternal; api's tests keep the ledger of every exported sentinel in the
// module and the code it deliberately gets.
var codeTable = []struct {
	sentinel error
	code     connect.Code
}{
	{ErrInvalidArgument, connect.CodeInvalidArgument},
	{clocks.ErrInvalidToken, connect.CodeInvalidArgument},
	{clocks.ErrForeignToken, connect.CodeInvalidArgument},
	{clocks.ErrInvalidRegion, connect.CodeInvalidArgument},
	{clocks.ErrClockOffset, connect.CodeFailedPrecondition},
	// A remote write that can never apply: the sending region's fault.
	{causal.ErrInvalidWrite, connect.CodeInvalidArgument},
	{causal.ErrBadFrame, connect.CodeInvalidArgument},
	{causal.ErrBadAck, connect.CodeInvalidArgument},
	// The token's past arrived between the wait and the write's turn to be
	// stamped: the same answer as a wait that ran out (retry, or use a
	// region that has the writes).
	{causal.ErrNotCaughtUp, connect.CodeUnavailable},
	// A subscriber holds writes of this region that this region lost.
	{causal.ErrLostWrites, connect.CodeFailedPrecondition},
	{causal.ErrPendingFull, connect.CodeResourceExhausted},
	// A watch's resume token is older than the change feed: the client
	// re-reads with Scan and watches from the scan's token.
	{causal.ErrFeedTruncated, connect.CodeFailedPrecondition},
	{ErrNotFound, connect.CodeNotFound},
	{ErrAlreadyExists, connect.CodeAlreadyExists},
	{ErrAborted, connect.CodeAborted},
	{ErrFailedPrecondition, connect.CodeFailedPrecondition},
	{ErrUnavailable, connect.CodeUnavailable},
	{ErrResourceExhausted, connect.CodeResourceExhausted},
	{ErrPermissionDenied, connect.CodePermissionDenied},
	{ErrUnauthenticated, connect.CodeUnauthenticated},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
	{context.Canceled, connect.CodeCanceled},
}

// InternalMessage is what a client sees for an error that maps to no known
// kind; the full error belongs in the node's log, not on the wire.
const InternalMessage = "internal error; see the node's log"

// Code returns the Connect code for err: that of a *connect.Error, that of
// the first matching sentinel, or CodeInternal.
func Code(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	for _, row := range codeTable {
		if errors.Is(err, row.sentinel) {
			return row.code
		}
	}
	return connect.CodeInternal
}

// ConnectError converts err into the error a handler returns. Errors of a
// known kind keep their message (it is written for the client) and carry
// every detail WithDetails attached anywhere in their chain; unknown errors
// become CodeInternal with a generic message and no details. A
// *connect.Error in the chain (one a peer returned) passes through as it is.
// nil stays nil.
//
// This is the only place in Causeway, generated code aside, that builds a
// *connect.Error: a test fails on a connect.NewError anywhere else.
func ConnectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	code := Code(err)
	if code == connect.CodeInternal {
		return connect.NewError(code, errors.New(InternalMessage))
	}
	ce = connect.NewError(code, err)
	var de *detailsError
	for rest := err; errors.As(rest, &de); rest = de.err {
		for _, m := range de.details {
			// NewErrorDetail fails only for a message proto cannot
			// marshal, which no generated message is: the error still
			// carries its code and message.
			if d, derr := connect.NewErrorDetail(m); derr == nil {
				ce.AddDetail(d)
			}
		}
	}
	return ce
}

// WithDetails returns err with protobuf messages attached that ConnectError
// sends as the error's details, for a client that acts on them rather than
// on the message (a truncated replication log names where it now starts; a
// failed compare-and-set names the current version). The code still comes
// from err's kind; the message is err's. Details of an error that maps to
// CodeInternal are dropped with its message.
func WithDetails(err error, details ...proto.Message) error {
	if err == nil {
		return nil
	}
	return &detailsError{err: err, details: details}
}

type detailsError struct {
	err     error
	details []proto.Message
}

func (e *detailsError) Error() string { return e.err.Error() }
func (e *detailsError) Unwrap() error { return e.err }

// Errorf returns an error of the given kind (one of the Err* sentinels above)
// whose message is exactly the formatted text: the kind decides the Connect
// code, so the message need not repeat it. %w in format wraps as usual.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }
