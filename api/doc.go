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
//	failed_precondition  a stale fencing token; a timestamp too far ahead of this node's clock
//	unavailable          the causal past of a token has not reached this region yet; no quorum
//	deadline_exceeded    the request deadline passed
//	resource_exhausted   a request or queue beyond its limit
//	permission_denied    fault injection asked of a node started without it
//	internal             anything else (the message is generic; details go to the node's log)
//
// Error messages reach clients: they say what happened and what to do, and
// never include stored values.
package api
