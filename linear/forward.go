package linear

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	causewayv1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// route decides where a request is served: here (local) when this node
// leads, otherwise at target, the API address of the leader (or, from a
// forwarder, of a voter). It fails fast, without waiting, when no leader
// is known: that is the minority side of a partition, or an election.
func (n *Node) route(h http.Header) (target string, local bool, err error) {
	if n.isLeader() {
		return "", true, nil
	}
	if hopsOf(h) >= maxHops {
		return "", false, n.unavailable("the request was forwarded %d times without reaching the leader (an election is under way); retry", maxHops)
	}
	peers := n.cfg.Peers()
	if n.raft != nil {
		_, id := n.raft.LeaderWithID()
		if id == "" {
			return "", false, n.unavailable("no leader reachable")
		}
		if !n.leaderFresh() {
			// Cut off from the leader: refuse now rather than forward
			// into the cut and wait out the timeout.
			return "", false, n.unavailable("the leader, region %s, has not been heard from for %v", regionOf(id), n.timing.lease)
		}
		// The node that announces the leader's server id: a region that
		// lost its data directory may still be listed under its old node
		// too, dead.
		for _, p := range peers {
			if peerServerID(p) == id && p.APIAddr != "" && !p.Removed {
				return p.APIAddr, false, nil
			}
		}
		return "", false, n.unavailable("the leader is region %s (server %s), whose API address gossip has not announced yet; retry", regionOf(id), id)
	}
	for _, p := range peers {
		if p.RaftAddr != "" && p.Alive && !p.Removed && p.APIAddr != "" {
			return p.APIAddr, false, nil
		}
	}
	return "", false, n.unavailable("no voter reachable")
}

// forward sends req to the node at target and returns its answer. Errors
// the other node returned pass through unchanged; a failure to get an
// answer at all becomes `unavailable`, saying the request may have been
// applied.
func forward[Req, Res any](ctx context.Context, n *Node, target, procedure string, req *connect.Request[Req]) (*connect.Response[Res], error) {
	ctx, cancel := context.WithTimeout(ctx, n.timing.call)
	defer cancel()
	client := connect.NewClient[Req, Res](n.cfg.HTTPClient, "http://"+target+procedure)
	fr := connect.NewRequest(req.Msg)
	fr.Header().Set(hopsHeader, strconv.Itoa(hopsOf(req.Header())+1))
	res, err := client.CallUnary(ctx, fr)
	if err != nil {
		if connect.IsWireError(err) {
			return nil, err
		}
		return nil, api.ConnectError(n.unavailable(
			"forwarding to %s failed (%v); the request may or may not have been applied: retry with the same request_id to learn its outcome",
			target, errors.Unwrap(err)))
	}
	return connect.NewResponse(res.Msg), nil
}

// Claim takes namespace/name for owner through the tier (forwarding as
// needed), as a Put with unique constraints does. It returns the claim's
// version.
func (n *Node) Claim(ctx context.Context, namespace, name, owner, requestID string) (uint64, error) {
	res, err := (&service{n}).Claim(ctx, connect.NewRequest(&causewayv1.ClaimRequest{
		Namespace: namespace, Name: name, Owner: owner, RequestId: requestID,
	}))
	if err != nil {
		return 0, err
	}
	return res.Msg.Version, nil
}

// CallTimeout is how long one request may wait on the tier: about two
// election timeouts.
func (n *Node) CallTimeout() time.Duration { return n.timing.call }
