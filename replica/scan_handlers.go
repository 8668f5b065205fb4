package replica

import (
	"context"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/causal"
)

// Scan and Watch on KVService: proto in, proto out; the work is in scan.go
// and watch.go.

func (h kvHandler) Scan(ctx context.Context, req *connect.Request[v1.ScanRequest]) (*connect.Response[v1.ScanResponse], error) {
	m := req.Msg
	res, err := h.node.Scan(ctx, KeyRange{Prefix: m.GetPrefix(), Start: m.GetStart(), End: m.GetEnd()}, m.GetCausalToken(),
		ScanOptions{Limit: int(m.GetLimit()), KeysOnly: m.GetKeysOnly(), Siblings: m.GetSiblings(), Cursor: m.GetCursor()})
	if err != nil {
		return nil, h.node.connectError(err)
	}
	out := &v1.ScanResponse{CausalToken: res.Token, NextCursor: res.NextCursor, Results: make([]*v1.KeyResult, len(res.Keys))}
	for i := range res.Keys {
		out.Results[i] = keyResultProto(&res.Keys[i])
	}
	return connect.NewResponse(out), nil
}

func (h kvHandler) Watch(ctx context.Context, req *connect.Request[v1.WatchRequest], stream *connect.ServerStream[v1.WatchResponse]) error {
	m := req.Msg
	o := WatchOptions{Token: m.GetResumeToken(), KeysOnly: m.GetKeysOnly()}
	switch m.GetStartAt() {
	case v1.WatchStart_WATCH_START_UNSPECIFIED, v1.WatchStart_WATCH_START_NOW:
		o.Start = WatchFromNow
	case v1.WatchStart_WATCH_START_WITH_STATE:
		o.Start = WatchWithState
	default:
		return h.node.connectError(api.Errorf(api.ErrInvalidArgument, "unknown start_at %v", m.GetStartAt()))
	}
	if o.Token != "" && m.GetStartAt() == v1.WatchStart_WATCH_START_WITH_STATE {
		return h.node.connectError(api.Errorf(api.ErrInvalidArgument, "a resumed watch starts after its token; start_at WITH_STATE applies only without a resume_token"))
	}
	err := h.node.Watch(ctx, KeyRange{Prefix: m.GetPrefix(), Start: m.GetStart(), End: m.GetEnd()}, o, func(wm WatchMessage) error {
		return stream.Send(watchMessageProto(&wm))
	})
	if ctx.Err() != nil {
		return nil // the client went away
	}
	return h.node.connectError(err)
}

func watchMessageProto(m *WatchMessage) *v1.WatchResponse {
	out := &v1.WatchResponse{ResumeToken: m.Token, Events: make([]*v1.WatchEvent, len(m.Events))}
	for i := range m.Events {
		e := &m.Events[i]
		pe := &v1.WatchEvent{Version: versionProto(&e.Version), State: e.State, ResumeToken: e.Token,
			Changes: make([]*v1.WatchChange, len(e.Changes))}
		for j, op := range e.Changes {
			pe.Changes[j] = &v1.WatchChange{Key: op.Key, Deleted: op.Kind == causal.KindTombstone, Value: op.Value}
		}
		out.Events[i] = pe
	}
	return out
}
