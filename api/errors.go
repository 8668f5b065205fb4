package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/clocks"
)

// Error kinds. Domain packages wrap these (fmt.Errorf("%w: ...", api.ErrInvalidArgument))
// or define their own sentinels, listed in codeTable.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrAborted            = errors.New("aborted")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrPermissionDenied   = errors.New("permission denied")
)

// codeTable is checked in order; the first sentinel that errors.Is matches wins.
var codeTable = []struct {
	sentinel error
	code     connect.Code
}{
	{ErrInvalidArgument, connect.CodeInvalidArgument},
	{clocks.ErrInvalidToken, connect.CodeInvalidArgument},
	{clocks.ErrForeignToken, connect.CodeInvalidArgument},
	{clocks.ErrInvalidRegion, connect.CodeInvalidArgument},
	{clocks.ErrClockOffset, connect.CodeFailedPrecondition},
	{ErrNotFound, connect.CodeNotFound},
	{ErrAlreadyExists, connect.CodeAlreadyExists},
	{ErrAborted, connect.CodeAborted},
	{ErrFailedPrecondition, connect.CodeFailedPrecondition},
	{ErrUnavailable, connect.CodeUnavailable},
	{ErrResourceExhausted, connect.CodeResourceExhausted},
	{ErrPermissionDenied, connect.CodePermissionDenied},
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
// known kind keep their message (it is written for the client); unknown
// errors become CodeInternal with a generic message. nil stays nil.
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
	return connect.NewError(code, err)
}

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
