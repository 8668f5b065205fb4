package replica

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/clocks"
)

// BuildVersion is reported by AdminService/Status; the binary sets it.
var BuildVersion = "dev"

// kvHandler serves causeway.v1.KVService on a Node.
type kvHandler struct{ node *Node }

var _ causewayv1connect.KVServiceHandler = kvHandler{}

func (h kvHandler) Put(ctx context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	m := req.Msg
	res, err := h.node.Put(ctx, m.GetKey(), m.GetValue(), m.GetCausalToken(), m.GetRequestId())
	if err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.PutResponse{Version: versionProto(&res.Record), CausalToken: res.Token}), nil
}

func (h kvHandler) Get(ctx context.Context, req *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	m := req.Msg
	res, err := h.node.Get(ctx, m.GetKey(), m.GetCausalToken())
	if err != nil {
		return nil, h.node.connectError(err)
	}
	out := &v1.GetResponse{Found: res.Found, CausalToken: res.Token}
	if !res.Record.Timestamp.IsZero() {
		out.Version = versionProto(&res.Record)
	}
	if res.Found {
		out.Value = res.Record.Value
	}
	return connect.NewResponse(out), nil
}

func (h kvHandler) Delete(ctx context.Context, req *connect.Request[v1.DeleteRequest]) (*connect.Response[v1.DeleteResponse], error) {
	m := req.Msg
	res, err := h.node.Delete(ctx, m.GetKey(), m.GetCausalToken(), m.GetRequestId())
	if err != nil {
		return nil, h.node.connectError(err)
	}
	return connect.NewResponse(&v1.DeleteResponse{Version: versionProto(&res.Record), CausalToken: res.Token}), nil
}

// adminHandler serves causeway.v1.AdminService on a Node.
type adminHandler struct{ node *Node }

var _ causewayv1connect.AdminServiceHandler = adminHandler{}

func (h adminHandler) Status(context.Context, *connect.Request[v1.StatusRequest]) (*connect.Response[v1.StatusResponse], error) {
	st := h.node.Status()
	return connect.NewResponse(&v1.StatusResponse{
		NodeId:         st.NodeID,
		Region:         st.Region,
		ClusterId:      st.ClusterID.String(),
		Vector:         st.Vector,
		Clock:          timestampProto(st.Clock),
		Uptime:         durationpb.New(st.Uptime.Truncate(time.Millisecond)),
		StoreSizeBytes: st.StoreSizeBytes,
		BuildVersion:   BuildVersion,
	}), nil
}

func versionProto(r *Record) *v1.Version {
	return &v1.Version{
		Timestamp:    timestampProto(r.Timestamp),
		OriginRegion: r.Timestamp.Region,
		OriginSeq:    r.Seq,
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
