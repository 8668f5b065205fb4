package wanbench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// TLS for the benchmark. An embedded cluster runs with TLS unless told
// otherwise (ClusterConfig.Secure): internal/supervisor creates the cluster
// CA, a node certificate per region and the admin client certificate, and
// every benchmark client presents the admin certificate. So that the peer
// pays what Causeway pays, etcd then runs with client and peer TLS on
// certificates from the same CA (etcdTLS), its clients verify it and
// present the admin certificate too.

// etcdCertCN starts the common name of an etcd member's certificate; the
// member's region follows.
const etcdCertCN = "etcd member "

// etcdCertLifetime is how long an etcd member's certificate is valid: a
// benchmark run, with room.
const etcdCertLifetime = 7 * 24 * time.Hour

// etcdTLS is what an etcd cluster run with TLS needs: a certificate per
// member (for its client and peer listeners, and as the client
// certificate it presents to its peers), signed by the cluster CA, and the
// configuration of the benchmark's etcd clients.
type etcdTLS struct {
	dir     string // the members' certificate and key files
	caFile  string
	pool    *x509.CertPool
	admin   tls.Certificate // what the benchmark's etcd clients present
	members map[string]tls.Certificate
}

// newEtcdTLS issues a certificate for the etcd member of each region,
// valid for 127.0.0.1 and localhost, with the CA in caDir (a directory
// supervisor.PrepareCerts prepared), and writes them into dir.
func newEtcdTLS(caDir, dir string, regions []string) (*etcdTLS, error) {
	ca, caKey, err := pki.LoadCA(caDir)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	admin, err := tls.LoadX509KeyPair(filepath.Join(caDir, pki.ClientCertFile(supervisor.AdminClient)), filepath.Join(caDir, pki.ClientKeyFile(supervisor.AdminClient)))
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: the admin client certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	e := &etcdTLS{dir: dir, caFile: filepath.Join(caDir, pki.CACertFile), pool: x509.NewCertPool(), admin: admin, members: map[string]tls.Certificate{}}
	e.pool.AddCert(ca)
	now := time.Now()
	for _, r := range regions {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{Organization: []string{"Causeway bench"}, CommonName: etcdCertCN + r},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(etcdCertLifetime),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			// A member serves clients and peers, and is a client of its
			// peers.
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:    []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: certificate of member %s: %w", r, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		if err := os.WriteFile(e.certFile(r), certPEM, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(e.keyFile(r), keyPEM, 0o600); err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		e.members[r] = pair
	}
	return e, nil
}

func (e *etcdTLS) certFile(region string) string { return filepath.Join(e.dir, region+".crt") }
func (e *etcdTLS) keyFile(region string) string  { return filepath.Join(e.dir, region+".key") }

// flags are the etcd flags of region's member: TLS on the client and peer
// listeners, a client certificate from the CA required on both.
func (e *etcdTLS) flags(region string) []string {
	return []string{
		"--cert-file", e.certFile(region), "--key-file", e.keyFile(region),
		"--trusted-ca-file", e.caFile, "--client-cert-auth",
		"--peer-cert-file", e.certFile(region), "--peer-key-file", e.keyFile(region),
		"--peer-trusted-ca-file", e.caFile, "--peer-client-cert-auth",
	}
}

// clientConfig is the TLS configuration of the benchmark's etcd clients:
// they verify the member against the CA and present the admin
// certificate, as Causeway's clients do.
func (e *etcdTLS) clientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: e.pool, Certificates: []tls.Certificate{e.admin}}
}

// proxyTLS is how region's delay proxy speaks TLS (see delayProxy): to a
// calling member as region's member would, requiring its peer certificate,
// and to region's member on the caller's behalf with the caller's own
// certificate.
func (e *etcdTLS) proxyTLS(region string) *proxyTLS {
	return &proxyTLS{
		server: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{e.members[region]},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    e.pool,
		},
		upstream: func(caller string) *tls.Config {
			cert, ok := e.members[caller]
			if !ok {
				cert = e.members[region]
			}
			return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: e.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}
		},
		regionOf: func(cert *x509.Certificate) string {
			r, ok := strings.CutPrefix(cert.Subject.CommonName, etcdCertCN)
			if _, known := e.members[r]; !ok || !known {
				return ""
			}
			return r
		},
	}
}
