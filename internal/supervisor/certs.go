package supervisor

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
)

// AdminClient is the name of the client certificate a secure local cluster
// is administered with (client.admin.crt in its certs directory, role
// admin): the supervisor's own calls, and the user's through
// `CAUSEWAY_CERTS_DIR=DIR CAUSEWAY_CLIENT=admin`.
const AdminClient = "admin"

// PrepareCerts makes dir hold what a local cluster needs to run with TLS,
// keeping whatever is there already (so a cluster restarted on its data
// keeps its CA, and the user's exported certs directory stays valid): the
// cluster CA and gossip key (ca.crt, ca.key, gossip.key), the admin client
// certificate (client.admin.crt/.key), and for each region a certs
// directory RegionCertsDir(dir, region) with the CA certificate, the gossip
// key and a node certificate of that region for 127.0.0.1 and localhost.
func PrepareCerts(dir string, regions ...string) error {
	o := pki.Options{Dir: dir}
	if !exists(filepath.Join(dir, pki.CACertFile)) {
		if err := pki.CreateCA(o); err != nil {
			return fmt.Errorf("cluster CA in %s: %w", dir, err)
		}
	}
	if !exists(filepath.Join(dir, pki.ClientCertFile(AdminClient))) {
		if err := pki.CreateClient(o, AdminClient, pki.RoleAdmin); err != nil {
			return fmt.Errorf("admin client certificate in %s: %w", dir, err)
		}
	}
	for _, region := range regions {
		rdir := RegionCertsDir(dir, region)
		if exists(filepath.Join(rdir, pki.NodeCertFile)) {
			continue
		}
		if err := os.MkdirAll(rdir, 0o700); err != nil {
			return err
		}
		// A region's directory holds no CA key: a node needs only to
		// verify certificates, not to issue them.
		for _, f := range []string{pki.CACertFile, pki.GossipKey} {
			raw, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(rdir, f), raw, 0o600); err != nil {
				return err
			}
		}
		if err := issueNode(dir, rdir, region); err != nil {
			return err
		}
	}
	return nil
}

// issueNode signs a node certificate of region with the CA in caDir and
// writes it into dir.
func issueNode(caDir, dir, region string) error {
	if err := pki.CreateNode(pki.Options{Dir: dir, CADir: caDir}, region, []string{"127.0.0.1", "localhost"}); err != nil {
		return fmt.Errorf("node certificate of region %s: %w", region, err)
	}
	return nil
}

// RegionCertsDir is the certs directory (serve --certs-dir) of region in a
// local cluster's certs directory dir.
func RegionCertsDir(dir, region string) string { return filepath.Join(dir, "nodes", region) }

// NewHTTPClient returns a client for a local cluster's regions that keeps
// up to maxIdlePerHost connections to each: without certsDir, plain HTTP;
// with it (prepared by PrepareCerts), TLS verified against the cluster CA,
// presenting the admin client certificate, speaking HTTP/2 (one long-lived
// connection carries many requests) or HTTP/1.1.
func NewHTTPClient(certsDir string, maxIdlePerHost int) (*http.Client, error) {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: maxIdlePerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	if certsDir != "" {
		cfg, err := pki.ClientTLS(certsDir, AdminClient)
		if err != nil {
			return nil, err
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64) // resumption after a reconnect
		t.TLSClientConfig = cfg
		t.TLSHandshakeTimeout = 10 * time.Second
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
		t.Protocols = protocols
	}
	return &http.Client{Transport: t}, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
