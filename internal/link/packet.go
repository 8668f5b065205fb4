package link

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// packetMagic starts every datagram a node sends through the layer; the
// sender's region follows, so the receiver knows which link it crossed.
var packetMagic = [4]byte{0x00, 'C', 'W', 'P'}

// MaxDelayedPackets bounds datagrams waiting out a delay on one PacketConn;
// beyond it they are dropped, as a full router queue drops them.
const MaxDelayedPackets = 4096

// PacketConn is a datagram socket whose traffic goes through the links.
type PacketConn struct {
	net.PacketConn
	e       *Emulator
	delayed atomic.Int64
	closed  atomic.Bool
	mu      sync.Mutex // serializes writes of delayed datagrams
}

// PacketConn wraps pc so that datagrams to and from peer regions cross
// their links. A datagram to an address of no known region is sent plainly
// (with the header, so the receiver still learns this node's region).
func (e *Emulator) PacketConn(pc net.PacketConn) *PacketConn {
	return &PacketConn{PacketConn: pc, e: e}
}

// WriteTo sends b to addr after the link's delay, or drops it if the link
// is cut. It never reports a dropped datagram: the network would not.
func (p *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	peer := p.e.RegionOf(addr.String())
	pkt := make([]byte, 0, len(packetMagic)+1+len(p.e.local)+len(b))
	pkt = append(pkt, packetMagic[:]...)
	pkt = append(pkt, byte(len(p.e.local)))
	pkt = append(pkt, p.e.local...)
	pkt = append(pkt, b...)
	if peer == "" {
		_, err := p.PacketConn.WriteTo(pkt, addr)
		return len(b), err
	}
	l := p.e.Get(peer)
	ctr := p.e.counter(peer)
	if l.CutOut {
		ctr.droppedOut.Add(uint64(len(pkt)))
		return len(b), nil
	}
	d := p.e.delay(l)
	if d == 0 {
		n, err := p.PacketConn.WriteTo(pkt, addr)
		ctr.sent.Add(uint64(n))
		return len(b), err
	}
	if p.delayed.Add(1) > MaxDelayedPackets {
		p.delayed.Add(-1)
		ctr.droppedOut.Add(uint64(len(pkt)))
		return len(b), nil
	}
	time.AfterFunc(d, func() {
		defer p.delayed.Add(-1)
		if p.closed.Load() {
			return
		}
		// The cut may have come while the datagram was in flight.
		if p.e.Get(peer).CutOut {
			ctr.droppedOut.Add(uint64(len(pkt)))
			return
		}
		p.mu.Lock()
		n, _ := p.PacketConn.WriteTo(pkt, addr)
		p.mu.Unlock()
		ctr.sent.Add(uint64(n))
	})
	return len(b), nil
}

// ReadFrom returns the next datagram that crossed an open link. Datagrams
// from a peer whose link is cut inward are dropped and counted; datagrams
// without the header (not from a node) are returned as they are.
func (p *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	buf := make([]byte, len(b)+len(packetMagic)+1+255)
	for {
		n, addr, err := p.PacketConn.ReadFrom(buf)
		if err != nil {
			return 0, addr, err
		}
		pkt := buf[:n]
		if n < len(packetMagic)+1 || [4]byte(pkt[:4]) != packetMagic || n < len(packetMagic)+1+int(pkt[4]) {
			return copy(b, pkt), addr, nil
		}
		peer := string(pkt[5 : 5+int(pkt[4])])
		payload := pkt[5+int(pkt[4]):]
		p.e.Learn(addr.String(), peer)
		ctr := p.e.counter(peer)
		if p.e.Get(peer).CutIn {
			ctr.droppedIn.Add(uint64(n))
			continue
		}
		ctr.received.Add(uint64(n))
		return copy(b, payload), addr, nil
	}
}

// Close closes the socket; datagrams still delayed are dropped.
func (p *PacketConn) Close() error {
	p.closed.Store(true)
	return p.PacketConn.Close()
}
