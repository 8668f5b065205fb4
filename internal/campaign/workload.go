package campaign

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"

	"connectrpc.com/connect"
)

// Env is what a workload gets to drive the cluster.
type Env struct {
	// Regions lists the regions, in configuration order.
	Regions []string
	// URL returns the base URL of a region's API (http://host:port), for
	// clients of services beyond the causal tier.
	URL func(region string) string
	// HTTP is the HTTP client to build Connect clients on; the cluster
	// closes its idle connections when a region restarts.
	HTTP *http.Client
	// Cluster is the running cluster, for Status and final reads.
	Cluster *Cluster
	// Recorder records every operation: Invoke before the request,
	// Complete after it.
	Recorder *Recorder
	// Seed seeds the workload's choices (derive one stream per client).
	Seed uint64
	// RequestTimeout bounds one request.
	RequestTimeout time.Duration
	// ConvergeTimeout bounds the wait for replication to converge in the
	// final phase.
	ConvergeTimeout time.Duration
	// Logf prints a progress line.
	Logf func(format string, args ...any)
}

// Workload drives one tier of the store with concurrent clients and
// records every operation in the history. To add one (say, linear claims,
// compare-and-set and locks), implement Workload, record operations with
// Tier set to the tier's name and the tier's arguments and results in
// Event.Extra (or the typed fields where they fit), and add it to
// Config.Workloads next to a Checker that reads them back.
type Workload interface {
	// Name identifies the workload in the history and the summary.
	Name() string
	// Tier is the tier the workload exercises (TierCausal, TierLinear);
	// availability is reported per tier.
	Tier() string
	// Run issues operations until ctx is done, then waits for its
	// outstanding operations to complete (each bounded by the request
	// timeout) and returns. Every operation is recorded: an invoke before
	// the request and exactly one completion after.
	Run(ctx context.Context, env *Env) error
}

// Preparer is implemented by workloads that need the cluster in some state
// before their clients start (the linear tier waits until every region's
// voter has joined the Raft group and a leader is elected). Prepare runs
// after the cluster started and before the campaign's clock does, so
// clients and faults begin together; an error is reported as a problem of
// the campaign, which runs anyway.
type Preparer interface {
	Prepare(ctx context.Context, env *Env) error
}

// Finalizer is implemented by workloads that read a final state once every
// fault is healed and writes have stopped (the causal tier reads every key
// in every region to check convergence). Final records EventFinal events.
type Finalizer interface {
	Final(ctx context.Context, env *Env) error
}

// DefiniteFailure reports the outcome of a failed write: whether it
// definitely did not happen (the campaign and the demo judge alike).
//
// A request the server refused (invalid_argument, failed_precondition,
// resource_exhausted, ...) wrote nothing: Causeway documents that a request
// that fails writes nothing. A request that never reached a server
// (connection refused) wrote nothing either. Everything else (a timeout, a
// connection reset after the request was sent, unavailable, which the
// transport also reports for a dropped connection) may have been applied.
func DefiniteFailure(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeResourceExhausted,
		connect.CodePermissionDenied, connect.CodeUnimplemented, connect.CodeAlreadyExists,
		connect.CodeAborted, connect.CodeNotFound, connect.CodeOutOfRange, connect.CodeUnauthenticated:
		return true
	}
	return false
}

// ErrorCode is the Connect code of err, or "connection_refused".
func ErrorCode(err error) string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "connection_refused"
	}
	return connect.CodeOf(err).String()
}
