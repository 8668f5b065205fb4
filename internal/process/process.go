package process

import (
	"context"
	"errors"
	"net"

	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/replica"
)

// Config configures one process: the region's node and its neighbours.
type Config struct {
	// Node configures the replica; Open sets its Membership and Linear
	// from Gossip and Linear.
	Node replica.Config
	// Gossip, when set, turns on membership by gossip.
	Gossip *GossipConfig
	// Linear, when set, runs the linearizable tier on this node.
	Linear *LinearConfig
	// Pprof serves Go's profiling handlers under /debug/pprof/ on the API
	// listener. Off by default: a profile shows the shape of the node's
	// memory and code, and taking one costs CPU.
	Pprof bool
	// Security, when set, runs TLS on every listener and between nodes,
	// and authorizes every request by the caller's certificate or token.
	Security *Security
}

// Process is one running Causeway node: the replica, its neighbours and the
// HTTP server in front of them.
type Process struct {
	node *replica.Node
	srv  *Server
}

// Open opens the node (and the linearizable tier, if configured) and
// builds the server: the node's services, the tier's LinearService,
// health checking and reflection of all of them, and one /metrics. Gossip
// starts when Serve first serves, once the node's address is known.
func Open(cfg Config) (*Process, error) {
	refused := newRefusedCounter()
	if sec := cfg.Security; sec != nil {
		cfg.Node.Metrics = append(cfg.Node.Metrics, refused, newCertExpiry(sec.Certs, cfg.Node.Region))
		if cfg.Node.Links == nil {
			cfg.Node.Links = link.New(cfg.Node.Region)
		}
		links := cfg.Node.Links
		cfg.Node.HTTPClient = sec.Certs.NodeHTTPClient(links.DialContext, links.RegionOf)
		if cfg.Linear != nil {
			cfg.Linear.TLS = sec.Certs
		}
	}
	w := Wire(&cfg.Node, cfg.Gossip, cfg.Linear)
	node, err := replica.Open(cfg.Node)
	if err != nil {
		return nil, err
	}
	srv := NewServer(node, w.Services()...)
	srv.pprof = cfg.Pprof
	if cfg.Security != nil {
		srv.secure(cfg.Security, refused)
	}
	srv.http.Handler = srv.Handler()
	return &Process{node: node, srv: srv}, nil
}

// Node is the process's replica.
func (p *Process) Node() *replica.Node { return p.node }

// Serve accepts connections on ln until Shutdown or Close.
func (p *Process) Serve(ln net.Listener) error { return p.srv.Serve(ln) }

// Shutdown stops replication and gossip, waits (bounded by ctx) for the
// requests in flight, then closes the node and the linearizable tier.
func (p *Process) Shutdown(ctx context.Context) error {
	return errors.Join(p.srv.Shutdown(ctx), p.node.Close())
}

// Close stops at once, without waiting for requests in flight.
func (p *Process) Close() error {
	return errors.Join(p.srv.Close(), p.node.Close())
}
