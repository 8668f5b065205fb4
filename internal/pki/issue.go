package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names in a certs directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
	GossipKey    = "gossip.key"
	TokensFile   = "tokens.json"
)

// ClientCertFile and ClientKeyFile name a client's certificate and key.
func ClientCertFile(name string) string { return "client." + name + ".crt" }
func ClientKeyFile(name string) string  { return "client." + name + ".key" }

// Default lifetimes, as `cockroach cert` has them: a CA outlives the
// certificates it issues, which are rotated (SIGHUP) well before expiry.
const (
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour
	DefaultCertLifetime = 365 * 24 * time.Hour
	// backdate covers clocks slightly behind the issuer's.
	backdate = time.Hour
)

// ErrExists reports a file that creating would overwrite.
var ErrExists = errors.New("already exists")

// Options are what every creation takes.
type Options struct {
	Dir string
	// CADir is where the CA that signs is read from (default: Dir), so
	// that a certificate can be written where the CA's key is not.
	CADir     string
	Lifetime  time.Duration // default: DefaultCALifetime or DefaultCertLifetime
	Overwrite bool          // replace existing files instead of refusing
	Now       func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// CreateCA writes a new cluster CA (ca.crt, ca.key) and gossip key into
// o.Dir, creating it (0700) if needed.
func CreateCA(o Options) error {
	if o.Lifetime == 0 {
		o.Lifetime = DefaultCALifetime
	}
	if err := o.refuseExisting(CACertFile, CAKeyFile, GossipKey); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Causeway"}, CommonName: "Causeway cluster CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(o.Lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	gossip := make([]byte, 32)
	if _, err := rand.Read(gossip); err != nil {
		return err
	}
	if err := o.writeKey(CAKeyFile, key); err != nil {
		return err
	}
	if err := o.write(GossipKey, []byte(base64.StdEncoding.EncodeToString(gossip)+"\n"), 0o600); err != nil {
		return err
	}
	return o.write(CACertFile, pemBlock("CERTIFICATE", der), 0o644)
}

// CreateNode writes node.crt and node.key for a node of region, valid for
// hosts (DNS names or IP addresses; at least one), signed by the CA in
// o.Dir.
func CreateNode(o Options, region string, hosts []string) error {
	if !regionName.MatchString(region) {
		return fmt.Errorf("%w: region %q: lowercase letters, digits and '-'", ErrInvalid, region)
	}
	if len(hosts) == 0 {
		return fmt.Errorf("%w: a node certificate names the hosts it serves (e.g. 127.0.0.1 localhost node1.example.com)", ErrInvalid)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Causeway"}, CommonName: "node " + region},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{nodeURI(region)},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return o.issue(tmpl, NodeCertFile, NodeKeyFile)
}

// CreateClient writes client.NAME.crt and .key for a client with role.
func CreateClient(o Options, name string, role Role) error {
	if !clientName.MatchString(name) {
		return fmt.Errorf("%w: client name %q: letters, digits, '.', '_' and '-'", ErrInvalid, name)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Causeway"}, CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{clientURI(name, role)},
	}
	return o.issue(tmpl, ClientCertFile(name), ClientKeyFile(name))
}

func (o Options) issue(tmpl *x509.Certificate, certFile, keyFile string) error {
	if o.Lifetime == 0 {
		o.Lifetime = DefaultCertLifetime
	}
	if err := o.refuseExisting(certFile, keyFile); err != nil {
		return err
	}
	caDir := o.CADir
	if caDir == "" {
		caDir = o.Dir
	}
	ca, caKey, err := LoadCA(caDir)
	if err != nil {
		return err
	}
	now := o.now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(o.Lifetime)
	if tmpl.NotAfter.After(ca.NotAfter) {
		return fmt.Errorf("%w: a certificate valid until %s would outlive its CA (valid until %s); give a shorter --lifetime or create a new CA",
			ErrInvalid, tmpl.NotAfter.Format(time.DateOnly), ca.NotAfter.Format(time.DateOnly))
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := o.writeKey(keyFile, key); err != nil {
		return err
	}
	return o.write(certFile, pemBlock("CERTIFICATE", der), 0o644)
}

// LoadCA reads the CA certificate and key from dir.
func LoadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := readCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA's key, needed to issue certificates: %w (create a CA with `causeway cert create-ca`)", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, nil, fmt.Errorf("%w: %s holds no PEM key", ErrInvalid, filepath.Join(dir, CAKeyFile))
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrInvalid, filepath.Join(dir, CAKeyFile), err)
	}
	return cert, key, nil
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (create a CA with `causeway cert create-ca`)", path, err)
		}
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrInvalid, path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func (o Options) refuseExisting(names ...string) error {
	if o.Overwrite {
		return nil
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(o.Dir, n)); err == nil {
			return fmt.Errorf("%s: %w (--overwrite replaces it)", filepath.Join(o.Dir, n), ErrExists)
		}
	}
	return nil
}

func (o Options) writeKey(name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return o.write(name, pemBlock("EC PRIVATE KEY", der), 0o600)
}

// write replaces name atomically (a temporary file renamed over it), so a
// node reloading its certificates never reads half a file.
func (o Options) write(name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(o.Dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(o.Dir, name))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
