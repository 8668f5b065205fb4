package linear

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/pki"
)

// streamLayer carries Raft's transport through the link-emulation layer:
// connections from other voters announce their region and get that
// region's emulated delay and cuts, as replication and gossip do.
// With TLS, connections are mutual TLS between nodes of the cluster, over
// the link layer's.
type streamLayer struct {
	net.Listener
	links *link.Emulator
	peers func() []Peer
	tls   *pki.Certs // nil: plaintext
}

func newStreamLayer(ln net.Listener, links *link.Emulator, peers func() []Peer, certs *pki.Certs) *streamLayer {
	l := links.Listener(ln)
	if certs != nil {
		l = certs.NodeListener(l)
	}
	return &streamLayer{Listener: l, links: links, peers: peers, tls: certs}
}

// Dial connects to the voter at address. Its region comes from gossip; a
// voter gossip does not know yet is refused (Raft retries), so that no
// connection between regions bypasses the link layer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	region := s.links.RegionOf(string(address))
	if region == "" {
		for _, p := range s.peers() {
			if p.RaftAddr == string(address) {
				region = p.Region
				s.links.Learn(p.RaftAddr, p.Region)
				break
			}
		}
	}
	if region == "" {
		return nil, fmt.Errorf("raft: no region known for %s yet (gossip has not announced it)", address)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if s.tls != nil {
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.links.DialPeer(ctx, region, network, addr)
		}
		return s.tls.DialNode(ctx, dial, "tcp", string(address), region)
	}
	return s.links.DialPeer(ctx, region, "tcp", string(address))
}

// hclogFor routes hashicorp/raft's logging into slog.
func hclogFor(logger *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      slogWriter{logger},
		DisableTime: true,
	})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	switch {
	case bytes.Contains(p, []byte("[ERROR]")):
		w.l.Error(line)
	case bytes.Contains(p, []byte("[WARN]")):
		w.l.Warn(line)
	default:
		w.l.Info(line)
	}
	return len(p), nil
}
