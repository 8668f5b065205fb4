package linear

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/internal/link"
)

// streamLayer carries Raft's transport through the link-emulation layer:
// connections from other voters announce their region and get that
// region's emulated delay and cuts, as replication and gossip do.
type streamLayer struct {
	net.Listener
	links *link.Emulator
	peers func() []Peer
}

func newStreamLayer(ln net.Listener, links *link.Emulator, peers func() []Peer) *streamLayer {
	return &streamLayer{Listener: links.Listener(ln), links: links, peers: peers}
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
	return s.links.DialPeer(ctx, region, "tcp", string(address))
}
