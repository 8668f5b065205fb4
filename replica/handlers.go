package replica

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/buildinfo"
)

// kvHandler serves causeway.v1.KVService on a Node.
type kvHandler struct{ node *Node }

var _ causewayv1connect.KVServiceHandler = kvHandler{}

func (h kvHandler) Put(ctx context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	m := req.Msg
	opts := writeOptions(m.GetFence())
	for _, u := range m.GetUnique() {
		opts.Unique = append(opts.Unique, Unique{Namespace: u.GetNamespace(), Name: u.GetName()})
	}
	res, err := h.node.Write(ctx, []causal.Op{{Key: m.GetKey(), Kind: causal.KindValue, Value: m.GetValue()}},
		m.GetCausalToken(), m.GetRequestId(), opts)
	if err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.PutResponse{Version: versionProto(&res.Version), CausalToken: res.Token}), nil
}

func (h kvHandler) Get(ctx context.Context, req *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	m := req.Msg
	res, token, err := h.node.Get(ctx, m.GetKey(), m.GetCausalToken(), m.GetSiblings())
	if err != nil {
		return nil, h.node.connectError(err)
	}
	kr := keyResultProto(&res)
	return connect.NewResponse(&v1.GetResponse{
		Found: kr.Found, Value: kr.Value, Version: kr.Version, CausalToken: token,
		HasSiblings: kr.HasSiblings, Siblings: kr.Siblings,
	}), nil
}

func (h kvHandler) Delete(ctx context.Context, req *connect.Request[v1.DeleteRequest]) (*connect.Response[v1.DeleteResponse], error) {
	m := req.Msg
	res, err := h.node.Write(ctx, []causal.Op{{Key: m.GetKey(), Kind: causal.KindTombstone}},
		m.GetCausalToken(), m.GetRequestId(), writeOptions(m.GetFence()))
	if err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.DeleteResponse{Version: versionProto(&res.Version), CausalToken: res.Token}), nil
}

func (h kvHandler) ReadMany(ctx context.Context, req *connect.Request[v1.ReadManyRequest]) (*connect.Response[v1.ReadManyResponse], error) {
	m := req.Msg
	res, token, err := h.node.ReadMany(ctx, m.GetKeys(), m.GetCausalToken(), m.GetSiblings())
	if err != nil {
		return nil, h.node.connectError(err)
	}
	out := &v1.ReadManyResponse{CausalToken: token, Results: make([]*v1.KeyResult, len(res))}
	for i := range res {
		out.Results[i] = keyResultProto(&res[i])
	}
	return connect.NewResponse(out), nil
}

func (h kvHandler) WriteMany(ctx context.Context, req *connect.Request[v1.WriteManyRequest]) (*connect.Response[v1.WriteManyResponse], error) {
	m := req.Msg
	ops := make([]causal.Op, len(m.GetOps()))
	for i, op := range m.GetOps() {
		ops[i] = causal.Op{Key: op.GetKey(), Kind: causal.KindValue, Value: op.GetValue()}
		if op.GetDelete() {
			if len(op.GetValue()) > 0 {
				return nil, h.node.connectError(api.Errorf(api.ErrInvalidArgument, "op %d deletes key %q but also carries a value", i, op.GetKey()))
			}
			ops[i] = causal.Op{Key: op.GetKey(), Kind: causal.KindTombstone}
		}
	}
	res, err := h.node.Write(ctx, ops, m.GetCausalToken(), m.GetRequestId(), writeOptions(m.GetFence()))
	if err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.WriteManyResponse{Version: versionProto(&res.Version), CausalToken: res.Token}), nil
}

// writeOptions carries a request's fence, if any.
func writeOptions(f *v1.Fence) WriteOptions {
	if f == nil {
		return WriteOptions{}
	}
	return WriteOptions{Fence: &Fence{Lock: f.GetLock(), Token: f.GetToken()}}
}

// adminHandler serves causeway.v1.AdminService on a Node.
type adminHandler struct{ node *Node }

var _ causewayv1connect.AdminServiceHandler = adminHandler{}

func (h adminHandler) Status(context.Context, *connect.Request[v1.StatusRequest]) (*connect.Response[v1.StatusResponse], error) {
	st := h.node.Status()
	out := &v1.StatusResponse{
		NodeId:         st.NodeID,
		Region:         st.Region,
		ClusterId:      st.ClusterID.String(),
		Vector:         st.Vector,
		Clock:          timestampProto(st.Clock),
		Uptime:         durationpb.New(st.Uptime.Truncate(time.Millisecond)),
		StoreSizeBytes: st.StoreSizeBytes,
		BuildVersion:   buildinfo.Read().Short(),
		PendingWrites:  uint64(st.PendingWrites),
		Linear:         &v1.LinearStatus{},
		ClockOffset:    h.node.clockFence.clockOffsetProto(),
	}
	if h.node.linear != nil {
		out.Linear = h.node.linear.Status()
	}
	out.CausalState, out.CausalStateReason = h.node.CausalState()
	for _, p := range st.Peers {
		lag := uint64(0)
		if p.Head > p.Applied {
			lag = p.Head - p.Applied
		}
		out.Peers = append(out.Peers, &v1.PeerStatus{Region: p.Region, Address: p.Addr, AppliedSeq: p.Applied, AckedSeq: p.Acked,
			HeadSeq: p.Head, LagWrites: lag, ProtocolVersion: p.Protocol, VersionRefused: p.Refused})
	}
	for _, l := range h.node.Links() {
		out.Links = append(out.Links, linkProto(&l))
	}
	out.FaultInjection = h.node.cfg.FaultInjection
	for _, m := range h.node.repl.members() {
		out.Members = append(out.Members, &v1.MemberStatus{
			Region: m.Region, NodeId: m.NodeID, State: m.State, Since: timestamppb.New(m.Since),
			GossipAddress: m.GossipAddr, ApiAddress: m.APIAddr, Applied: m.Applied, Removed: m.Removed,
		})
	}
	if ms := h.node.repl.membershipNow(); ms != nil {
		out.StableVector = ms.StableVector()
	}
	return connect.NewResponse(out), nil
}

func (h adminHandler) RemoveRegion(_ context.Context, req *connect.Request[v1.RemoveRegionRequest]) (*connect.Response[v1.RemoveRegionResponse], error) {
	if err := h.node.RemoveRegion(req.Msg.GetRegion(), req.Msg.GetForce()); err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.RemoveRegionResponse{}), nil
}

func (h adminHandler) SetLink(_ context.Context, req *connect.Request[v1.SetLinkRequest]) (*connect.Response[v1.SetLinkResponse], error) {
	m := req.Msg
	// Absent delay or jitter keep their current values; the cut is always
	// set (unspecified heals).
	l := h.node.cfg.Links.Get(m.GetRegion())
	l.CutOut, l.CutIn = false, false
	if m.Delay != nil {
		l.Delay = m.GetDelay().AsDuration()
	}
	if m.Jitter != nil {
		l.Jitter = m.GetJitter().AsDuration()
	}
	switch m.GetCut() {
	case v1.LinkCut_LINK_CUT_UNSPECIFIED:
	case v1.LinkCut_LINK_CUT_BOTH:
		l.CutOut, l.CutIn = true, true
	case v1.LinkCut_LINK_CUT_OUTGOING:
		l.CutOut = true
	case v1.LinkCut_LINK_CUT_INCOMING:
		l.CutIn = true
	default:
		return nil, h.node.connectError(api.Errorf(api.ErrInvalidArgument, "unknown cut %v", m.GetCut()))
	}
	if err := m.GetDelay().CheckValid(); m.GetDelay() != nil && err != nil {
		return nil, h.node.connectError(api.Errorf(api.ErrInvalidArgument, "delay: %v", err))
	}
	if err := m.GetJitter().CheckValid(); m.GetJitter() != nil && err != nil {
		return nil, h.node.connectError(api.Errorf(api.ErrInvalidArgument, "jitter: %v", err))
	}
	if err := h.node.SetLink(m.GetRegion(), l); err != nil {
		return nil, h.node.connectError(err)
	}
	st := LinkStatus{Region: m.GetRegion(), Link: l, Counters: h.node.cfg.Links.Counters(m.GetRegion())}
	return connect.NewResponse(&v1.SetLinkResponse{Link: linkProto(&st)}), nil
}

func (h adminHandler) SetDrain(_ context.Context, req *connect.Request[v1.SetDrainRequest]) (*connect.Response[v1.SetDrainResponse], error) {
	if err := h.node.SetDrain(req.Msg.GetDrain()); err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.SetDrainResponse{}), nil
}

func linkProto(l *LinkStatus) *v1.LinkStatus {
	return &v1.LinkStatus{
		Region: l.Region, Delay: durationpb.New(l.Delay), Jitter: durationpb.New(l.Jitter),
		CutOutgoing: l.CutOut, CutIncoming: l.CutIn,
		BytesSent: l.Sent, BytesReceived: l.Received, BytesDroppedOutgoing: l.DroppedOut, BytesDroppedIncoming: l.DroppedIn,
	}
}

func keyResultProto(r *ReadResult) *v1.KeyResult {
	out := &v1.KeyResult{Key: r.Key, Found: r.Found, HasSiblings: r.HasSiblings}
	if !r.Version.Timestamp.IsZero() {
		out.Version = versionProto(&r.Version)
	}
	if r.Found {
		out.Value = r.Version.Value
	}
	for i := range r.Siblings {
		s := &r.Siblings[i]
		sib := &v1.Sibling{Found: s.Kind == causal.KindValue, Version: versionProto(s)}
		if sib.Found {
			sib.Value = s.Value
		}
		out.Siblings = append(out.Siblings, sib)
	}
	return out
}

func versionProto(v *causal.Version) *v1.Version {
	return &v1.Version{
		Timestamp:    timestampProto(v.Timestamp),
		OriginRegion: v.Timestamp.Region,
		OriginSeq:    v.Seq,
	}
}

func timestampProto(t clocks.Timestamp) *v1.Timestamp {
	return &v1.Timestamp{WallMs: t.WallMs, Logical: t.Logical}
}

// connectError maps err for the client; internal errors, whose details the
// client does not see, are logged here with their cause.
func (n *Node) connectError(err error) error {
	if api.Code(err) == connect.CodeInternal {
		n.log.Error("request failed", "err", err)
	}
	return api.ConnectError(err)
}
