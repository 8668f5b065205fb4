package linear

import (
	"context"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	causewayv1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/linear/internal/fsm"
)

// service implements causewayv1connect.LinearServiceHandler.
type service struct{ n *Node }

// Handler returns the path and handler of LinearService on this node.
func (n *Node) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return causewayv1connect.NewLinearServiceHandler(&service{n}, opts...)
}

// serve validates cmd, then applies it here if this node leads, or
// forwards the request to the node that does. build turns the state
// machine's result into the response (or the error it stands for).
func serve[Req, Res any](ctx context.Context, s *service, req *connect.Request[Req], procedure string,
	cmd *fsm.Command, build func(*fsm.Result) (*Res, error)) (*connect.Response[Res], error) {
	if err := cmd.Validate(); err != nil {
		return nil, api.ConnectError(api.Errorf(api.ErrInvalidArgument, "%v", err))
	}
	target, local, err := s.n.route(req.Header())
	if err != nil {
		return nil, api.ConnectError(err)
	}
	if !local {
		return forward[Req, Res](ctx, s.n, target, procedure, req)
	}
	res, err := s.n.apply(ctx, cmd)
	if err != nil {
		return nil, api.ConnectError(err)
	}
	out, err := build(res)
	if err != nil {
		return nil, api.ConnectError(err)
	}
	return connect.NewResponse(out), nil
}

// Progress answers with this node's own Raft position, never forwarded:
// the leader asks a non-voter before promoting it.
func (s *service) Progress(context.Context, *connect.Request[causewayv1.ProgressRequest]) (*connect.Response[causewayv1.ProgressResponse], error) {
	res := &causewayv1.ProgressResponse{ServerId: s.n.ServerID()}
	if s.n.raft != nil {
		res.LastIndex, res.AppliedIndex = s.n.raft.LastIndex(), s.n.raft.AppliedIndex()
	}
	return connect.NewResponse(res), nil
}

// resultError is the error a non-OK result stands for.
func resultError(res *fsm.Result) error {
	var kind error
	switch res.Code {
	case fsm.CodeOK:
		return nil
	case fsm.CodeAlreadyExists:
		kind = api.ErrAlreadyExists
	case fsm.CodeNotFound:
		kind = api.ErrNotFound
	case fsm.CodeAborted:
		kind = api.ErrAborted
	case fsm.CodeFailedPrecondition:
		kind = api.ErrFailedPrecondition
	case fsm.CodeInvalidArgument:
		kind = api.ErrInvalidArgument
	default:
		return api.Errorf(api.ErrUnavailable, "linearizable tier: unknown result code %d: %s", res.Code, res.Message)
	}
	return api.Errorf(kind, "%s", res.Message)
}

// requestID fills in a missing request id, so that a forwarded request and
// the caller's retry of the response's id name the same request.
func requestID(id *string) {
	if *id == "" {
		*id = uuid.NewString()
	}
}

func (s *service) Claim(ctx context.Context, req *connect.Request[causewayv1.ClaimRequest]) (*connect.Response[causewayv1.ClaimResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	if reserved(m.Namespace) {
		return nil, reservedError("namespace", m.Namespace)
	}
	cmd := &fsm.Command{Op: fsm.OpClaim, RequestID: m.RequestId, Namespace: m.Namespace, Name: m.Name, Owner: m.Owner}
	return serve(ctx, s, req, causewayv1connect.LinearServiceClaimProcedure, cmd, func(r *fsm.Result) (*causewayv1.ClaimResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.ClaimResponse{Owner: r.Owner, Version: r.Version, RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) Release(ctx context.Context, req *connect.Request[causewayv1.ReleaseRequest]) (*connect.Response[causewayv1.ReleaseResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	if reserved(m.Namespace) {
		return nil, reservedError("namespace", m.Namespace)
	}
	cmd := &fsm.Command{Op: fsm.OpRelease, RequestID: m.RequestId, Namespace: m.Namespace, Name: m.Name, Owner: m.Owner}
	return serve(ctx, s, req, causewayv1connect.LinearServiceReleaseProcedure, cmd, func(r *fsm.Result) (*causewayv1.ReleaseResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.ReleaseResponse{RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) Lookup(ctx context.Context, req *connect.Request[causewayv1.LookupRequest]) (*connect.Response[causewayv1.LookupResponse], error) {
	m := req.Msg
	cmd := &fsm.Command{Op: fsm.OpLookup, Namespace: m.Namespace, Name: m.Name}
	return serve(ctx, s, req, causewayv1connect.LinearServiceLookupProcedure, cmd, func(r *fsm.Result) (*causewayv1.LookupResponse, error) {
		if r.Code == fsm.CodeNotFound {
			return &causewayv1.LookupResponse{}, nil
		}
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.LookupResponse{Found: true, Owner: r.Owner, Version: r.Version}, nil
	})
}

func (s *service) CompareAndSet(ctx context.Context, req *connect.Request[causewayv1.CompareAndSetRequest]) (*connect.Response[causewayv1.CompareAndSetResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	if reserved(m.Key) {
		return nil, reservedError("key", m.Key)
	}
	cmd := &fsm.Command{Op: fsm.OpCAS, RequestID: m.RequestId, Key: m.Key, Value: m.Value, Delete: m.Delete}
	switch e := m.Expect.(type) {
	case *causewayv1.CompareAndSetRequest_ExpectVersion:
		cmd.Compare, cmd.ExpectVersion = fsm.CompareVersion, e.ExpectVersion
	case *causewayv1.CompareAndSetRequest_ExpectValue:
		cmd.Compare, cmd.ExpectValue = fsm.CompareValue, e.ExpectValue
	default:
		cmd.Compare = fsm.CompareNone
	}
	if m.Fence != nil {
		cmd.FenceLock, cmd.FenceToken = m.Fence.Lock, m.Fence.Token
	}
	return serve(ctx, s, req, causewayv1connect.LinearServiceCompareAndSetProcedure, cmd, func(r *fsm.Result) (*causewayv1.CompareAndSetResponse, error) {
		if r.Code == fsm.CodeAborted {
			return nil, api.WithDetails(api.Errorf(api.ErrAborted, "%s", r.Message),
				&causewayv1.CompareFailed{Found: r.Version != 0, CurrentVersion: r.Version})
		}
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.CompareAndSetResponse{Version: r.Version, RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) Get(ctx context.Context, req *connect.Request[causewayv1.LinearServiceGetRequest]) (*connect.Response[causewayv1.LinearServiceGetResponse], error) {
	cmd := &fsm.Command{Op: fsm.OpGet, Key: req.Msg.Key}
	return serve(ctx, s, req, causewayv1connect.LinearServiceGetProcedure, cmd, func(r *fsm.Result) (*causewayv1.LinearServiceGetResponse, error) {
		if r.Code == fsm.CodeNotFound {
			return &causewayv1.LinearServiceGetResponse{}, nil
		}
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.LinearServiceGetResponse{Found: true, Value: r.Value, Version: r.Version}, nil
	})
}

func (s *service) GrantLease(ctx context.Context, req *connect.Request[causewayv1.GrantLeaseRequest]) (*connect.Response[causewayv1.GrantLeaseResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	cmd := &fsm.Command{Op: fsm.OpGrant, RequestID: m.RequestId, TTLms: m.TtlMs}
	return serve(ctx, s, req, causewayv1connect.LinearServiceGrantLeaseProcedure, cmd, func(r *fsm.Result) (*causewayv1.GrantLeaseResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.GrantLeaseResponse{LeaseId: r.LeaseID, ExpiresUnixMs: r.ExpiresMs, RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) KeepAlive(ctx context.Context, req *connect.Request[causewayv1.KeepAliveRequest]) (*connect.Response[causewayv1.KeepAliveResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	cmd := &fsm.Command{Op: fsm.OpKeepAlive, RequestID: m.RequestId, LeaseID: m.LeaseId}
	return serve(ctx, s, req, causewayv1connect.LinearServiceKeepAliveProcedure, cmd, func(r *fsm.Result) (*causewayv1.KeepAliveResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.KeepAliveResponse{ExpiresUnixMs: r.ExpiresMs, RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) Revoke(ctx context.Context, req *connect.Request[causewayv1.RevokeRequest]) (*connect.Response[causewayv1.RevokeResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	cmd := &fsm.Command{Op: fsm.OpRevoke, RequestID: m.RequestId, LeaseID: m.LeaseId}
	return serve(ctx, s, req, causewayv1connect.LinearServiceRevokeProcedure, cmd, func(r *fsm.Result) (*causewayv1.RevokeResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.RevokeResponse{RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) Lock(ctx context.Context, req *connect.Request[causewayv1.LockRequest]) (*connect.Response[causewayv1.LockResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	cmd := &fsm.Command{Op: fsm.OpLock, RequestID: m.RequestId, Lock: m.Lock, LeaseID: m.LeaseId, Owner: m.Owner}
	return serve(ctx, s, req, causewayv1connect.LinearServiceLockProcedure, cmd, func(r *fsm.Result) (*causewayv1.LockResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.LockResponse{FencingToken: r.Token, RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

func (s *service) Unlock(ctx context.Context, req *connect.Request[causewayv1.UnlockRequest]) (*connect.Response[causewayv1.UnlockResponse], error) {
	m := req.Msg
	requestID(&m.RequestId)
	cmd := &fsm.Command{Op: fsm.OpUnlock, RequestID: m.RequestId, Lock: m.Lock, LeaseID: m.LeaseId}
	return serve(ctx, s, req, causewayv1connect.LinearServiceUnlockProcedure, cmd, func(r *fsm.Result) (*causewayv1.UnlockResponse, error) {
		if err := resultError(r); err != nil {
			return nil, err
		}
		return &causewayv1.UnlockResponse{RequestId: m.RequestId, Duplicate: r.Duplicate}, nil
	})
}

// hopsHeader counts how many nodes have forwarded a request; a request is
// forwarded at most maxHops times (forwarder → voter → leader), so a
// leadership change in flight cannot bounce it around.
const (
	hopsHeader = "Causeway-Linear-Hops"
	maxHops    = 2
)

func hopsOf(h http.Header) int {
	n, err := strconv.Atoi(h.Get(hopsHeader))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
