package pki

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"
)

// The channels between nodes. Each runs TLS over the link-emulation
// layer's connections (so a TLS record crosses the emulated WAN as bytes
// do), with both ends proving they are nodes of the cluster, and the
// dialer checking that the node it reached serves the region it meant to
// reach.

// ErrWrongRegion reports a node whose certificate names another region
// than the one its address belongs to.
var ErrWrongRegion = fmt.Errorf("%w: certificate of another region", ErrNotNode)

// NodeListener wraps ln (the link layer's listener) with TLS that admits
// only nodes of the cluster (the Raft transport's listener).
func (c *Certs) NodeListener(ln net.Listener) net.Listener {
	base := c.ServerTLS()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		inner, err := base.GetConfigForClient(hello)
		if err != nil {
			return nil, err
		}
		inner.ClientAuth = tls.RequireAndVerifyClientCert
		inner.NextProtos = nil
		inner.VerifyConnection = func(cs tls.ConnectionState) error {
			if id, ok := PeerIdentity(&cs); !ok || id.Role != RoleNode {
				return fmt.Errorf("%w: a client certificate where a node's is needed", ErrNotNode)
			}
			return nil
		}
		return inner, nil
	}
	return tls.NewListener(ln, cfg)
}

// DialNode dials addr with dial (the link layer's), runs the TLS handshake
// as a node and, when region is not empty, checks that the node reached
// is of that region. The connection is closed on any failure.
func (c *Certs) DialNode(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), network, addr, region string, nextProtos ...string) (*tls.Conn, error) {
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := c.NodeClientTLS()
	cfg.NextProtos = nextProtos
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	if region != "" {
		cs := conn.ConnectionState()
		id, err := Identify(cs.PeerCertificates[0])
		if err != nil || id.Region != region {
			conn.Close()
			return nil, fmt.Errorf("%s belongs to region %s, but its certificate is of %v: %w", addr, region, id, ErrWrongRegion)
		}
	}
	return conn, nil
}

// NodeHTTPClient is the HTTP client a node calls other nodes' APIs with
// (replication streams, snapshots, forwarded linearizable requests):
// HTTP/2 over TLS over dial. regionOf names the region an address belongs
// to ("" when not known), which the server's certificate must name.
//
// URLs keep the http scheme: the transport speaks HTTP/2 with prior
// knowledge over whatever its dialer returns, and its dialer returns TLS
// connections that negotiated h2. So code that builds peer URLs does not
// depend on whether the cluster runs with TLS; the dialer does.
func (c *Certs) NodeHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), regionOf func(addr string) string) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols: protocols,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.DialNode(ctx, dial, network, addr, regionOf(addr), "h2")
		},
		IdleConnTimeout: 90 * time.Second,
	}}
}

// RequireNode reports whether cs, a server-side connection's state, is a
// node's (of any region, or of region when it is not empty).
func RequireNode(cs *tls.ConnectionState, region string) error {
	id, ok := PeerIdentity(cs)
	switch {
	case !ok:
		return fmt.Errorf("%w: no node certificate presented", ErrNotNode)
	case id.Role != RoleNode:
		return fmt.Errorf("%w: %v", ErrNotNode, id)
	case region != "" && id.Region != region:
		return fmt.Errorf("%w: a node of region %s speaking for region %s", ErrWrongRegion, id.Region, region)
	}
	return nil
}
