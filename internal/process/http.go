package process

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

// Server is what one listener of a process serves: the node's Connect
// services (Connect protocol, gRPC and gRPC-Web, on HTTP/1.1 and cleartext
// HTTP/2 on one port) and the services mounted beside them, gRPC health
// checking, server reflection, /metrics, the plain-HTTP probes /healthz and
// /readyz, a short guide at GET /, and an `unimplemented` answer in the
// caller's protocol for any other path.
//
// Serve takes any net.Listener: a TLS listener (issue 16) is a listener
// that terminates TLS and a Protocols value that also offers HTTP/2 over
// TLS, built here beside the cleartext one; the routes do not change.
type Server struct {
	services *replica.Server
	node     *replica.Node
	http     *http.Server
	pprof    bool      // serve /debug/pprof/ (Config.Pprof)
	security *Security // TLS and authorization; nil: neither
	refused  *prometheus.CounterVec
}

// NewServer builds the server for node and the services mounted beside it
// (the linearizable tier's, Wiring.Services); call Serve to accept
// connections.
func NewServer(node *replica.Node, extra ...replica.Service) *Server {
	s := &Server{services: replica.NewServer(node, extra...), node: node}
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
	handlers := s.services.Handlers()
	services := make([]string, 0, len(handlers))
	mux := http.NewServeMux()
	var client []string // what reflection shows: not the services between regions
	for _, h := range handlers {
		mux.Handle(h.Path, malformedUnary(s.onlyKnownMethods(h.Path, h.Handler)))
		services = append(services, h.Service)
		if h.Client {
			client = append(client, h.Service)
		}
	}
	mux.Handle(grpchealth.NewHandler(healthChecker{node: s.node, static: grpchealth.NewStaticChecker(services...)}))
	reflector := grpcreflect.NewStaticReflector(client...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle("/metrics", promhttp.HandlerFor(s.node.Metrics(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", s.fallback)
	if s.security != nil {
		return s.authorize(mux)
	}
	return mux
}

// newRefusedCounter counts requests authorize refuses, by code.
func newRefusedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_requests_refused_total",
		Help: "Requests refused before reaching a service: unauthenticated (no or unknown credential) or permission_denied (a role that may not).",
	}, []string{"code"})
}

// secure turns on TLS and authorization (Config.Security); refused is
// registered with the node's metrics.
func (s *Server) secure(sec *Security, refused *prometheus.CounterVec) {
	s.security, s.refused = sec, refused
	s.http.Protocols.SetHTTP2(true) // gRPC over TLS
}

// listener is ln as this server accepts on it: behind the node's link
// emulator, and with TLS when security is on.
func (s *Server) listener(ln net.Listener) net.Listener {
	l := s.services.Listen(ln)
	if s.security != nil {
		l = tls.NewListener(l, s.security.Certs.ServerTLS())
	}
	return l
}

// Serve accepts connections on ln until Shutdown. It starts the node's
// replication (replica.Server.Listen: unless the node's Config.Advertise
// was set, ln's address is what peers are told to replicate from) and
// accepts through the node's link emulator.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(s.listener(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops replication (its streams never finish on their own), then
// stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.services.Stop()
	return s.http.Shutdown(ctx)
}

// Close stops replication and closes every connection at once, without
// waiting for requests in flight.
func (s *Server) Close() error {
	s.services.Stop()
	return s.http.Close()
}

// onlyKnownMethods sends requests for methods the service does not define to
// fallback, which answers in the caller's protocol; the generated handler
// would answer a bare HTTP 404 page.
func (s *Server) onlyKnownMethods(prefix string, h http.Handler) http.Handler {
	name := protoreflect.FullName(strings.Trim(prefix, "/"))
	known := map[string]bool{}
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			for i := 0; i < sd.Methods().Len(); i++ {
				known[prefix+string(sd.Methods().Get(i).Name())] = true
			}
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !known[r.URL.Path] {
			s.fallback(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// fallback answers paths no service claims. An RPC path (/package.Service/Method)
// gets an `unimplemented` error in the caller's protocol, so Connect, gRPC and
// gRPC-Web clients all report it properly; anything else gets a short guide.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	listing := s.clientAPI()
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Causeway node %s (region %s)\n\nConnect API (POST, JSON or protobuf; also gRPC and gRPC-Web):\n", s.node.NodeID(), s.node.Region())
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
// the KV service (replica.Node.Ready): 503, with the reason, while the
// causal tier refuses clients (joining, drained, or after losing writes);
// 200 otherwise.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ready, state, reason := s.node.Ready(); !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s: %s\n", state, reason)
		return
	}
	fmt.Fprintln(w, "ready")
}

// healthChecker answers gRPC health checks: the KV service (and the node
// as a whole, the empty service name) is NOT_SERVING while the node is not
// ready (replica.Node.Ready), so a load balancer or an orchestrator's
// readiness probe sends no traffic there.
type healthChecker struct {
	node   *replica.Node
	static *grpchealth.StaticChecker
}

func (h healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	res, err := h.static.Check(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.Service == "" || req.Service == causewayv1connect.KVServiceName {
		if ready, _, _ := h.node.Ready(); !ready {
			res.Status = grpchealth.StatusNotServing
		}
	}
	return res, nil
}

// clientAPI lists the services a client may call and their methods, from
// their descriptors ("causeway.v1.KVService/{Put,Get,...}"): the services
// mounted, less those between regions only (the replication stream).
func (s *Server) clientAPI() []string {
	var out []string
	for _, h := range s.services.Handlers() {
		if !h.Client {
			continue
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(h.Service))
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if err != nil || !ok {
			out = append(out, h.Service)
			continue
		}
		methods := make([]string, sd.Methods().Len())
		for i := range methods {
			methods[i] = string(sd.Methods().Get(i).Name())
		}
		out = append(out, fmt.Sprintf("%s/{%s}", h.Service, strings.Join(methods, ",")))
	}
	return out
}
