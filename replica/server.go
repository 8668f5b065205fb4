package replica

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// compressMinBytes: responses smaller than this are sent uncompressed.
const compressMinBytes = 4 << 10

// Server is a node's Connect services and what a process needs to serve
// them: the handlers with their options (read limit, strict JSON, bounded
// gzip, admission control, the causal tier's refusals, request metrics),
// the start and stop of replication around the listener, the readiness
// state and the node's metrics.
//
// What a listener serves beyond the Connect handlers (gRPC health,
// reflection, /healthz, /readyz, GET /, /metrics, the answer to an unknown
// method) and the HTTP server itself belong to the process
// (internal/process); replica never decides them.
type Server struct {
	node     *Node
	extra    []Service
	handlers []Handler

	// compat is the HTTP server of the deprecated Serve.
	compat *http.Server
}

// Service is a Connect service the composition root mounts beside the
// node's own (the linearizable tier's LinearService): Mount builds its
// handler with the server's options, as the generated New...Handler
// functions do. It is listed in health checking and reflection, shares
// /metrics's request figures and has its own admission bound, and it
// serves while the causal tier refuses clients (joining, drained).
type Service struct {
	Name  string // fully qualified, e.g. causewayv1connect.LinearServiceName
	Mount func(opts ...connect.HandlerOption) (string, http.Handler)
}

// Handler is one Connect service of a node, ready to mount on a mux under
// Path.
type Handler struct {
	// Service is the service's fully qualified name
	// (causewayv1connect.KVServiceName).
	Service string
	// Path is the prefix the handler serves ("/causeway.v1.KVService/").
	Path string
	// Handler serves the service's methods. It answers a method the
	// service does not define with a bare 404: the process answers those
	// itself, in the caller's protocol.
	Handler http.Handler
	// Client is false for services between regions only (the replication
	// stream), which a list of the client API leaves out.
	Client bool
}

// NewServer builds the Connect services of node and of the services mounted
// beside it (Service).
func NewServer(node *Node, extra ...Service) *Server {
	s := &Server{node: node, extra: extra}
	s.handlers = s.buildHandlers()
	mux := http.NewServeMux()
	for _, h := range s.handlers {
		mux.Handle(h.Path, h.Handler)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c: replication streams without TLS
	s.compat = &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Handlers are the node's Connect services (KVService, AdminService,
// ReplicationService) and the extra services, in that order.
func (s *Server) Handlers() []Handler { return slices.Clone(s.handlers) }

func (s *Server) buildHandlers() []Handler {
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(MaxRequestBytes),
		// Compressing a ~100-byte response costs more CPU (gzip writer
		// reset) than it saves on the wire; only large values are worth it.
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(s.node.metrics.interceptor(), malformedStreams()),
	}
	for _, c := range strictJSONCodecs {
		opts = append(opts, connect.WithCodec(c))
	}
	opts = append(opts, boundedGzipOption())
	// Admission control covers the data path only, so an operator can still
	// ask an overloaded node for its status.
	kvOpts := append(slices.Clone(opts), connect.WithInterceptors(
		admission(s.node.cfg.MaxInflightRequests), s.node.repl.refuseUnlessServing()))

	var out []Handler
	add := func(name string, client bool, path string, h http.Handler) {
		out = append(out, Handler{Service: name, Path: path, Handler: h, Client: client})
	}
	path, h := causewayv1connect.NewKVServiceHandler(kvHandler{s.node}, kvOpts...)
	add(causewayv1connect.KVServiceName, true, path, h)
	path, h = causewayv1connect.NewAdminServiceHandler(adminHandler{s.node}, opts...)
	add(causewayv1connect.AdminServiceName, true, path, h)
	path, h = causewayv1connect.NewReplicationServiceHandler(replicationHandler{s.node.repl},
		connect.WithReadMaxBytes(MaxRequestBytes), boundedGzipOption(), connect.WithInterceptors(malformedStreams()))
	add(causewayv1connect.ReplicationServiceName, false, path, h)
	for _, svc := range s.extra {
		// Each has its own admission bound, and serves while the causal
		// tier bootstraps.
		svcOpts := append(slices.Clone(opts), connect.WithInterceptors(admission(s.node.cfg.MaxInflightRequests)))
		path, h := svc.Mount(svcOpts...)
		add(svc.Name, true, path, h)
	}
	return out
}

// Node is the node whose services these are.
func (s *Server) Node() *Node { return s.node }

// Listen starts the node's replication on ln and returns the listener to
// accept on: ln behind the node's link emulator (Config.Links), so that
// the emulated delays and cuts apply to connections from other regions.
// Unless Config.Advertise was set, ln's address is what peers are told to
// replicate from. Call it once, before serving; Stop undoes it.
func (s *Server) Listen(ln net.Listener) net.Listener {
	s.node.repl.start(ln.Addr().String())
	return s.node.cfg.Links.Listener(ln)
}

// Stop stops replication: its streams never finish on their own, so a
// process stops them before it waits for the requests in flight.
func (s *Server) Stop() { s.node.repl.close() }

// Ready says whether clients should be sent to this node (a readiness
// probe, gRPC health of the KV service): false, with the causal tier's
// state and the reason, while it refuses every client request (joining,
// drained, or after losing writes). A snapshot merge is brief and the
// clock fence still serves reads, so the node stays ready through both.
func (n *Node) Ready() (ready bool, state, reason string) {
	state, err := n.clientRefusal()
	if err != nil && state != stateMerging {
		return false, state, err.Error()
	}
	return true, "", ""
}

// NodeID is the node's identity, kept in its store across restarts.
func (n *Node) NodeID() string { return n.nodeID }

// Metrics is the node's registry: its own figures and those of
// Config.Metrics, what a process serves on /metrics.
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics.registry }

// Serve serves the node's Connect services alone on ln until Shutdown or
// Close, for tests and programs that embed a node; it starts replication
// as Listen does.
//
// Deprecated: a process serves a node with internal/process, which adds
// gRPC health, reflection, /healthz, /readyz, GET /, /metrics and an answer
// in the caller's protocol for an unknown method; this serves none of them.
func (s *Server) Serve(ln net.Listener) error {
	err := s.compat.Serve(s.Listen(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops what Serve started: replication, then the requests in
// flight (bounded by ctx).
//
// Deprecated: see Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Stop()
	return s.compat.Shutdown(ctx)
}

// Close stops replication and closes every connection of Serve at once.
//
// Deprecated: see Serve.
func (s *Server) Close() error {
	s.Stop()
	return s.compat.Close()
}

// admission bounds the client requests in flight: past the bound a request
// is refused at once with resource_exhausted, so a client storm costs a
// bounded amount of memory and the requests already admitted still finish.
func admission(limit int) connect.UnaryInterceptorFunc {
	slots := make(chan struct{}, limit)
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			select {
			case slots <- struct{}{}:
			default:
				return nil, api.ConnectError(api.Errorf(api.ErrResourceExhausted,
					"node overloaded: %d requests in flight; retry with backoff", limit))
			}
			defer func() { <-slots }()
			return next(ctx, req)
		}
	}
}
