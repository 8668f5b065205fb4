package wanbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/causewaydb/causeway/internal/link"
)

// delayProxy stands in front of one etcd member's peer port and makes the
// member-to-member traffic that enters it cross the emulated WAN, built on
// Causeway's link layer (link.Emulator.Wrap), so that etcd and Causeway
// pay the same one-way delays.
//
// etcd's peers all dial a member at the one peer URL it advertises, so the
// proxy learns who is calling from the traffic itself: every request of
// etcd's Raft transport (its message streams, pipeline and snapshots)
// carries the header X-Server-From with the sending member's id. The
// proxy reads the first request's header block of each connection (at most
// maxPeekBytes), looks the id up, and from then on delays every byte in
// both directions of that connection by the one-way delay between the two
// members' regions: the request direction by the link from the caller's
// region, the answer direction (the stream of Raft messages etcd sends
// back on a stream it was asked for) by the same link, since the matrix is
// symmetric. A connection without the header (etcd's version probes,
// which time nothing) passes undelayed.
//
// With TLS (the members' peer listeners run TLS, proxyTLS), the header is
// encrypted, so the proxy terminates TLS instead: it answers the caller as
// the member would (the member's certificate), requires the caller's peer
// certificate, whose name says which member, and so which region, calls,
// and calls the member over TLS presenting the caller's certificate. The
// connection to the member crosses the link from its first byte (its TLS
// handshake pays the WAN, as a node's does), and the answers to the caller
// are delayed the same way. The proxy decrypts and encrypts again, which
// costs the machine's CPU (shared with everything else) but adds no delay
// that the bound below does not cover.
//
// Stated bound (tested in proxy_test.go): the delay added to a round
// trip through the proxy is at least twice the one-way delay, never less,
// since the link layer never releases a byte early, and at most
// proxyOverheadBound more on an idle machine: the proxy copies bytes with
// no buffering of its own beyond the link's queue.
type delayProxy struct {
	ln       net.Listener
	upstream string
	emu      *link.Emulator
	regionOf func(memberID string) string // "" when unknown
	tls      *proxyTLS                    // nil: the members' peer traffic is plain HTTP
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// proxyOverheadBound is the most the proxy adds to a round trip beyond
// the emulated delay, on an idle machine (see delayProxy).
const proxyOverheadBound = 20 * time.Millisecond

// maxPeekBytes bounds the header block the proxy reads before it knows the
// caller.
const maxPeekBytes = 64 << 10

// memberHeader names the member that sent an etcd peer request.
const memberHeader = "X-Server-From"

// proxyTLS is a delay proxy's TLS, for members whose peer listeners run
// TLS (etcdTLS.proxyTLS).
type proxyTLS struct {
	// server answers callers: the member's certificate, a client
	// certificate from the CA required.
	server *tls.Config
	// upstream calls the member on behalf of a caller of the region given
	// ("" when unknown).
	upstream func(caller string) *tls.Config
	// regionOf names the region of a caller's verified certificate ("" when
	// it is no member's).
	regionOf func(*x509.Certificate) string
}

// proxyHandshakeTimeout bounds a caller's TLS handshake with the proxy.
const proxyHandshakeTimeout = 10 * time.Second

// newDelayProxy listens on 127.0.0.1 (a free port) and forwards to
// upstream, with emu's links (emu's local region is the member's). With
// tlsCfg it terminates the callers' TLS and calls upstream over TLS.
func newDelayProxy(upstream string, emu *link.Emulator, regionOf func(string) string, tlsCfg *proxyTLS) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, upstream: upstream, emu: emu, regionOf: regionOf, tls: tlsCfg, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's address (host:port).
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

func (p *delayProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// serve carries one connection.
func (p *delayProxy) serve(client net.Conn) {
	defer p.untrack(client)
	defer client.Close()
	if p.tls != nil {
		p.serveTLS(client)
		return
	}
	head, peer, err := peekCaller(client)
	if err != nil && len(head) == 0 {
		return
	}
	up := p.dialUpstream()
	if up == nil {
		return
	}
	defer p.untrack(up)
	defer up.Close()
	var toUp, toClient io.Writer = up, client
	if region := p.regionOf(peer); region != "" && region != p.emu.Local() {
		lu, lc := p.emu.Wrap(up, region), p.emu.Wrap(client, region)
		defer lu.Close()
		defer lc.Close()
		toUp, toClient = lu, lc
	}
	if _, err := toUp.Write(head); err != nil {
		return
	}
	splice(toUp, client, toClient, up)
}

// serveTLS carries one TLS connection: the caller is known from its
// certificate once the handshake is over.
func (p *delayProxy) serveTLS(raw net.Conn) {
	client := tls.Server(raw, p.tls.server)
	ctx, cancel := context.WithTimeout(context.Background(), proxyHandshakeTimeout)
	err := client.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return
	}
	region := ""
	if certs := client.ConnectionState().PeerCertificates; len(certs) > 0 {
		region = p.tls.regionOf(certs[0])
	}
	rawUp := p.dialUpstream()
	if rawUp == nil {
		return
	}
	defer p.untrack(rawUp)
	defer rawUp.Close()
	var upConn net.Conn = rawUp
	var toClient io.Writer = client
	if region != "" && region != p.emu.Local() {
		// The member's side crosses the link under TLS, as a node's
		// connection does; the answers to the caller cross it too.
		lu, lc := p.emu.Wrap(rawUp, region), p.emu.Wrap(client, region)
		defer lu.Close()
		defer lc.Close()
		upConn, toClient = lu, lc
	}
	up := tls.Client(upConn, p.tls.upstream(region))
	defer up.Close()
	splice(up, client, toClient, up)
}

// dialUpstream connects to the member and tracks the connection (Close
// ends it); nil if the member cannot be reached or the proxy is closed.
func (p *delayProxy) dialUpstream() net.Conn {
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return nil
	}
	if !p.track(up) {
		up.Close()
		return nil
	}
	return up
}

// splice copies the caller's bytes to the member and the member's back
// until either side ends; the caller's defers then close both.
func splice(toUp io.Writer, fromClient io.Reader, toClient io.Writer, fromUp io.Reader) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(toUp, fromClient); done <- struct{}{} }()
	go func() { io.Copy(toClient, fromUp); done <- struct{}{} }()
	<-done
}

// peekCaller reads c up to the end of the first HTTP request's header
// block and returns the bytes read and the X-Server-From member id ("" if
// none).
func peekCaller(c net.Conn) ([]byte, string, error) {
	var head []byte
	buf := make([]byte, 4096)
	for len(head) < maxPeekBytes {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
			req, perr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head[:i+4])))
			if perr != nil {
				return head, "", nil
			}
			return head, req.Header.Get(memberHeader), nil
		}
		if err != nil {
			return head, "", err
		}
	}
	return head, "", errors.New("no HTTP header block within the first 64 KiB")
}

// Close stops the proxy and closes every connection it carries.
func (p *delayProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
