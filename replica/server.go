package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// compressMinBytes: responses smaller than this are sent uncompressed.
const compressMinBytes = 4 << 10

// Server exposes a Node over HTTP: the Connect services (Connect protocol,
// gRPC and gRPC-Web, on HTTP/1.1 and cleartext HTTP/2 on one port), gRPC
// health checking, server reflection and /metrics.
type Server struct {
	node  *Node
	extra []Service
	http  *http.Server
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

// NewServer builds the server for node and the services mounted beside
// it; call Serve to accept connections.
func NewServer(node *Node, extra ...Service) *Server {
	s := &Server{node: node, extra: extra}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c: gRPC without TLS
	s.http = &http.Server{
		Handler:           s.Handler(),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return s
}

// Handler is the server's HTTP handler, for embedding or in-memory tests.
func (s *Server) Handler() http.Handler {
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(MaxRequestBytes),
		// Compressing a ~100-byte response costs more CPU (gzip writer
		// reset) than it saves on the wire; only large values are worth it.
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(s.node.metrics.interceptor()),
	}
	for _, c := range strictJSONCodecs {
		opts = append(opts, connect.WithCodec(c))
	}
	opts = append(opts, boundedGzipOption())
	// Admission control covers the data path only, so an operator can still
	// ask an overloaded node for its status.
	kvOpts := append(slices.Clone(opts), connect.WithInterceptors(
		admission(s.node.cfg.MaxInflightRequests), s.node.repl.refuseUnlessServing()))
	services := []string{causewayv1connect.KVServiceName, causewayv1connect.AdminServiceName, causewayv1connect.ReplicationServiceName}

	mux := http.NewServeMux()
	mux.Handle(s.onlyKnownMethods(causewayv1connect.NewKVServiceHandler(kvHandler{s.node}, kvOpts...)))
	mux.Handle(s.onlyKnownMethods(causewayv1connect.NewAdminServiceHandler(adminHandler{s.node}, opts...)))
	mux.Handle(s.onlyKnownMethods(causewayv1connect.NewReplicationServiceHandler(replicationHandler{s.node.repl},
		connect.WithReadMaxBytes(MaxRequestBytes), boundedGzipOption())))
	for _, svc := range s.extra {
		// Each has its own admission bound, and serves while the causal
		// tier bootstraps.
		svcOpts := append(slices.Clone(opts), connect.WithInterceptors(admission(s.node.cfg.MaxInflightRequests)))
		mux.Handle(s.onlyKnownMethods(svc.Mount(svcOpts...)))
		services = append(services, svc.Name)
	}
	mux.Handle(grpchealth.NewHandler(healthChecker{node: s.node, static: grpchealth.NewStaticChecker(services...)}))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle("/metrics", promhttp.HandlerFor(s.node.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("/", s.fallback)
	return mux
}

// Serve accepts connections on ln until Shutdown. Unless Config.Advertise
// was set, ln's address is what peers are told to replicate from.
func (s *Server) Serve(ln net.Listener) error {
	s.node.repl.start(ln.Addr().String())
	err := s.http.Serve(s.node.cfg.Links.Listener(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops replication (its streams never finish on their own), then
// stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.node.repl.close()
	return s.http.Shutdown(ctx)
}

// onlyKnownMethods sends requests for methods the service does not define to
// fallback, which answers in the caller's protocol; the generated handler
// would answer a bare HTTP 404 page.
func (s *Server) onlyKnownMethods(prefix string, h http.Handler) (string, http.Handler) {
	name := protoreflect.FullName(strings.Trim(prefix, "/"))
	known := map[string]bool{}
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			for i := 0; i < sd.Methods().Len(); i++ {
				known[prefix+string(sd.Methods().Get(i).Name())] = true
			}
		}
	}
	return prefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !known[r.URL.Path] {
			s.fallback(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Close stops replication and closes every connection at once, without
// waiting for requests in flight.
func (s *Server) Close() error {
	s.node.repl.close()
	return s.http.Close()
}

// fallback answers paths no service claims. An RPC path (/package.Service/Method)
// gets an `unimplemented` error in the caller's protocol, so Connect, gRPC and
// gRPC-Web clients all report it properly; anything else gets a short guide.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	listing := s.clientAPI()
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Causeway node %s (region %s)\n\nConnect API (POST, JSON or protobuf; also gRPC and gRPC-Web):\n", s.node.nodeID, s.node.Region())
		for _, line := range listing {
			fmt.Fprintf(w, "  /%s\n", line)
		}
		fmt.Fprint(w, "Metrics:      GET /metrics\nProbes:       GET /healthz (alive), GET /readyz (serving clients)\n")
		return
	}
	msg := fmt.Sprintf("unknown method %s; this node serves %s", r.URL.Path, strings.Join(listing, ", "))
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/grpc") {
		// A trailers-only response: status in the headers, no body.
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Grpc-Status", fmt.Sprint(int(connect.CodeUnimplemented)))
		w.Header().Set("Grpc-Message", url.PathEscape(msg))
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Connect maps HTTP 404 to unimplemented; the JSON body carries the message.
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": connect.CodeUnimplemented.String(), "message": msg})
}

// healthz answers plain-HTTP liveness probes (load balancers and
// orchestrators that do not speak gRPC health): 200 while the process
// serves HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// readyz answers plain-HTTP readiness probes as gRPC health answers for
// the KV service: 503, with the reason, while the causal tier refuses
// clients (joining, drained, or after losing writes); 200 otherwise.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if state, err := s.node.clientRefusal(); err != nil && state != stateMerging {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s: %s\n", state, err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// healthChecker answers gRPC health checks: the KV service (and the node
// as a whole, the empty service name) is NOT_SERVING while the causal tier
// refuses clients (joining, drained, or after losing writes), so a load balancer or
// an orchestrator's readiness probe sends no traffic there.
type healthChecker struct {
	node   *Node
	static *grpchealth.StaticChecker
}

func (h healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	res, err := h.static.Check(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.Service == "" || req.Service == causewayv1connect.KVServiceName {
		// A merge is brief: the node stays in rotation through it.
		if state, err := h.node.clientRefusal(); err != nil && state != stateMerging {
			res.Status = grpchealth.StatusNotServing
		}
	}
	return res, nil
}

// clientAPI lists the services a client may call and their methods, from
// their descriptors ("causeway.v1.KVService/{Put,Get,...}"): the services
// mounted, less the replication stream between regions.
func (s *Server) clientAPI() []string {
	names := []string{causewayv1connect.KVServiceName, causewayv1connect.AdminServiceName}
	for _, svc := range s.extra {
		names = append(names, svc.Name)
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if err != nil || !ok {
			out = append(out, name)
			continue
		}
		methods := make([]string, sd.Methods().Len())
		for i := range methods {
			methods[i] = string(sd.Methods().Get(i).Name())
		}
		out = append(out, fmt.Sprintf("%s/{%s}", name, strings.Join(methods, ",")))
	}
	return out
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
