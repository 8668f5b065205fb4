package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Certs is a node's certificates, loaded from a certs directory and
// reloadable while connections use them: every handshake reads the
// current ones (Reload swaps them whole, or keeps the old ones and
// returns the error).
type Certs struct {
	dir string
	cur atomic.Pointer[loaded]
}

type loaded struct {
	pool    *x509.CertPool
	ca      *x509.Certificate
	node    *tls.Certificate
	leaf    *x509.Certificate
	id      Identity
	modTime time.Time // newest of the files read
}

// LoadNode reads ca.crt, node.crt and node.key from dir and checks that
// they belong together: the node certificate chains to the CA and names
// a node.
func LoadNode(dir string) (*Certs, error) {
	c := &Certs{dir: dir}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On an error the certificates in use stay.
func (c *Certs) Reload() error {
	l, err := loadNode(c.dir)
	if err != nil {
		return err
	}
	c.cur.Store(l)
	return nil
}

// Changed reports whether a file was modified since the last load (for a
// periodic check; SIGHUP reloads without asking).
func (c *Certs) Changed() bool {
	newest, _ := newestModTime(c.dir, CACertFile, NodeCertFile, NodeKeyFile)
	return newest.After(c.cur.Load().modTime)
}

func loadNode(dir string) (*loaded, error) {
	ca, err := readCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("node certificate in %s: %w (create one with `causeway cert create-node`)", dir, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: %s does not chain to %s: %v", ErrInvalid, NodeCertFile, CACertFile, err)
	}
	id, err := Identify(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", NodeCertFile, err)
	}
	if id.Role != RoleNode {
		return nil, fmt.Errorf("%w: %s is a certificate of %s, not of a node", ErrInvalid, NodeCertFile, id)
	}
	mod, err := newestModTime(dir, CACertFile, NodeCertFile, NodeKeyFile)
	if err != nil {
		return nil, err
	}
	return &loaded{pool: pool, ca: ca, node: &pair, leaf: leaf, id: id, modTime: mod}, nil
}

func newestModTime(dir string, names ...string) (time.Time, error) {
	var newest time.Time
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest, nil
}

// Identity is who this node's certificate says it is.
func (c *Certs) Identity() Identity { return c.cur.Load().id }

// Expiry reports when the node certificate and the CA expire.
func (c *Certs) Expiry() (node, ca time.Time) {
	l := c.cur.Load()
	return l.leaf.NotAfter, l.ca.NotAfter
}

// Pool is the CA pool connections are verified against now.
func (c *Certs) Pool() *x509.CertPool { return c.cur.Load().pool }

// ServerTLS is the configuration of a node's listeners: its certificate,
// and a client certificate verified against the cluster CA when one is
// presented (clients may instead send a bearer token; what each caller may
// do is decided per request from PeerIdentity).
func (c *Certs) ServerTLS() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		l := c.cur.Load()
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		cfg.Certificates = []tls.Certificate{*l.node}
		cfg.ClientCAs = l.pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.NextProtos = []string{"h2", "http/1.1"}
		return cfg, nil
	}
	return base
}

// NodeClientTLS is the configuration a node dials other nodes with: its
// own certificate as the client's, and a server certificate verified
// against the cluster CA that must name a node (of any region; callers
// that expect a region check PeerIdentity).
func (c *Certs) NodeClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.cur.Load().node, nil
		},
		// The CA pool is read at each handshake, so verification is done
		// here rather than by RootCAs, which a Config fixes.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifyPeer(cs, c.cur.Load().pool, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if id.Role != RoleNode {
				return fmt.Errorf("%w: the server presented a certificate of %s, not of a node", ErrNotNode, id)
			}
			return nil
		},
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
}

// ErrNotNode reports a peer whose certificate is not a node's.
var ErrNotNode = errors.New("not a node of this cluster")

// verifyPeer verifies the peer's chain against pool, as the server name
// aside (nodes are addressed by IP and port as often as by name).
func verifyPeer(cs tls.ConnectionState, pool *x509.CertPool, usage x509.ExtKeyUsage) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: no certificate presented", ErrNotNode)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrNotNode, err)
	}
	return Identify(leaf)
}

// PeerIdentity is who the other end of a server-side connection is,
// by its verified client certificate; ok is false without one.
func PeerIdentity(cs *tls.ConnectionState) (id Identity, ok bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return Identity{}, false
	}
	id, err := Identify(cs.VerifiedChains[0][0])
	return id, err == nil
}

// ClientTLS is the configuration of a client (the CLI): the cluster CA to
// verify nodes, and the client certificate of name if there is one in dir.
func ClientTLS(dir, name string) (*tls.Config, error) {
	ca, err := readCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := verifyPeer(cs, pool, x509.ExtKeyUsageServerAuth)
		if err == nil && id.Role != RoleNode {
			err = fmt.Errorf("%w: the server presented a certificate of %s", ErrNotNode, id)
		}
		return err
	}
	if name != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, ClientCertFile(name)), filepath.Join(dir, ClientKeyFile(name)))
		if err != nil {
			return nil, fmt.Errorf("client certificate %q in %s: %w (create one with `causeway cert create-client`)", name, dir, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
