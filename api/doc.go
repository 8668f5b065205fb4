// Package api holds Causeway's public protocol: the protobuf definitions under
// causeway/v1 (with their generated Go and Connect code) and the single place
// where Causeway's errors become Connect error codes.
//
// # Error model
//
// Every error a handler returns passes through [ConnectError]. Domain packages
// return sentinel errors (wrapped with %w, so errors.Is works through any
// amount of context) and ConnectError maps each sentinel to one code:
//
//	invalid_argument     bad key, value, request id or causal token; token from another cluster
//	not_found            the named thing does not exist
//	already_exists       a unique claim is taken
//	aborted              a compare-and-set did not match
//	failed_precondition  a stale fencing token; a timestamp too far ahead of this node's clock; a replication peer of another cluster, or one that holds writes this region lost
//	unavailable          the causal past of a token has not reached this region yet; no quorum; a region joining or shutting down
//	deadline_exceeded    the request deadline passed
//	resource_exhausted   a request or queue beyond its limit (requests in flight; writes waiting for their causal past)
//	permission_denied    fault injection asked of a node started without it
//	internal             anything else, such as damaged storage (the message is generic; the cause goes to the node's log)
//
// Error messages reach clients: they say what happened and what to do, and
// never include stored values.
//
// # Who maps what
//
// One function, [Code], decides every code, in this order: a *connect.Error
// already in the chain (an answer a peer sent, forwarded as it is) keeps its
// code; otherwise the first row of codeTable that errors.Is matches wins;
// otherwise internal. [ConnectError] turns the result into the error a
// handler returns, and it is the only place that builds one: a test
// (TestConnectErrorsComeFromAPI) fails on connect.NewError anywhere else
// outside generated code.
//
// Which package's sentinels sit in codeTable follows the import graph. api
// imports clocks and causal (both pure, below api: importing them adds no
// dependency and no cycle), so their sentinels are rows of codeTable.
// replica and linear import api, so api cannot name their sentinels; a
// sentinel there that a client should see with a code other than internal
// wraps one of api's kinds where it is defined
// (var ErrX = fmt.Errorf("%w: ...", api.ErrUnavailable), or [Errorf]), and a
// package that does not know api (gossip, internal/link, linear's internals)
// has its errors labelled by the package that calls it, at its boundary
// (api.Errorf(api.ErrInvalidArgument, ...)). A registry filled in init was
// rejected: the code would depend on which packages a binary happens to link.
//
// api's tests keep the ledger (sentinels_test.go): every exported Err*
// variable of the module with the code a client gets for it and why. A scan
// of the module's source fails on a sentinel the ledger does not list, so a
// new one cannot reach clients as internal by accident. internal is a
// deliberate answer for errors that say the node itself is broken (damaged
// storage, bad configuration at start): the client cannot act on them.
//
// # Details
//
// [WithDetails] attaches protobuf messages that ConnectError sends as the
// error's details, for clients that act on data rather than on a message:
// LogTruncated (a replication log no longer holds the writes asked for; the
// subscriber merges a snapshot) and CompareFailed (a compare-and-set did not
// match; the current version). The code still comes from the error's kind.
package api
