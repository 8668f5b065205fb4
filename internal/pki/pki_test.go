package pki_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
)

// cluster creates a CA, a node certificate for region and a client
// certificate "alice" (readwrite) in a new directory.
func cluster(t *testing.T, region string, now time.Time) string {
	t.Helper()
	dir := t.TempDir()
	o := pki.Options{Dir: dir, Now: func() time.Time { return now }}
	must(t, pki.CreateCA(o))
	must(t, pki.CreateNode(o, region, []string{"127.0.0.1", "localhost"}))
	must(t, pki.CreateClient(o, "alice", pki.RoleReadWrite))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFilesAndModes(t *testing.T) {
	dir := cluster(t, "us-east", time.Now())
	for name, mode := range map[string]os.FileMode{
		pki.CACertFile: 0o644, pki.CAKeyFile: 0o600, pki.GossipKey: 0o600,
		pki.NodeCertFile: 0o644, pki.NodeKeyFile: 0o600,
		pki.ClientCertFile("alice"): 0o644, pki.ClientKeyFile("alice"): 0o600,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	if err := pki.CreateCA(pki.Options{Dir: dir}); !errors.Is(err, pki.ErrExists) {
		t.Errorf("a second CA over the first: %v, want ErrExists", err)
	}
	if err := pki.CreateNode(pki.Options{Dir: dir}, "us-east", []string{"h"}); !errors.Is(err, pki.ErrExists) {
		t.Errorf("a node certificate over another: %v, want ErrExists", err)
	}
	must(t, pki.CreateNode(pki.Options{Dir: dir, Overwrite: true}, "us-east", []string{"h"}))
}

func TestBadRequestsAreRefused(t *testing.T) {
	dir := cluster(t, "us-east", time.Now())
	o := pki.Options{Dir: dir, Overwrite: true}
	for name, err := range map[string]error{
		"region with capitals": pki.CreateNode(o, "US-East", []string{"h"}),
		"node without hosts":   pki.CreateNode(o, "us-east", nil),
		"unknown role":         pki.CreateClient(o, "bob", "root"),
		"node role for client": pki.CreateClient(o, "bob", pki.RoleNode),
		"client name":          pki.CreateClient(o, "bob smith", pki.RoleReadOnly),
		"outliving the CA":     pki.CreateClient(pki.Options{Dir: dir, Overwrite: true, Lifetime: 20 * 365 * 24 * time.Hour}, "bob", pki.RoleReadOnly),
	} {
		if !errors.Is(err, pki.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := pki.CreateNode(pki.Options{Dir: t.TempDir()}, "us-east", []string{"h"}); err == nil || !strings.Contains(err.Error(), "create-ca") {
		t.Errorf("a node certificate without a CA: %v, want an error naming create-ca", err)
	}
}

// handshake runs one TLS connection between a server and a client
// configuration and returns both ends' errors and the server's view of
// the client.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, peer pki.Identity, ok bool) {
	t.Helper()
	// Over TCP, not net.Pipe: TLS 1.3 writes session tickets after the
	// handshake, which an unbuffered pipe would block on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	must(t, err)
	a, err := ln.Accept()
	must(t, err)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := tls.Server(a, server)
		serverErr = s.Handshake()
		if serverErr == nil {
			cs := s.ConnectionState()
			peer, ok = pki.PeerIdentity(&cs)
			_, serverErr = io.ReadFull(s, make([]byte, 1))
		}
		s.Close()
	}()
	c := tls.Client(b, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
	}
	c.Close()
	<-done
	return serverErr, clientErr, peer, ok
}

func TestNodesAuthenticateEachOther(t *testing.T) {
	now := time.Now()
	dir := cluster(t, "us-east", now)
	east, err := pki.LoadNode(dir)
	must(t, err)
	if id := east.Identity(); id.Role != pki.RoleNode || id.Region != "us-east" {
		t.Fatalf("identity %v", id)
	}
	// A second node of the same CA, another region.
	west := t.TempDir()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		raw, _ := os.ReadFile(filepath.Join(dir, f))
		must(t, os.WriteFile(filepath.Join(west, f), raw, 0o600))
	}
	must(t, pki.CreateNode(pki.Options{Dir: west}, "eu-west", []string{"127.0.0.1"}))
	westCerts, err := pki.LoadNode(west)
	must(t, err)

	sErr, cErr, peer, ok := handshake(t, east.ServerTLS(), westCerts.NodeClientTLS())
	if sErr != nil || cErr != nil || !ok || peer.Role != pki.RoleNode || peer.Region != "eu-west" {
		t.Fatalf("node to node: server %v, client %v, peer %v %v; want eu-west authenticated", sErr, cErr, peer, ok)
	}

	// A client certificate of the cluster is a client's, not a node's.
	client, err := pki.ClientTLS(dir, "alice")
	must(t, err)
	sErr, cErr, peer, ok = handshake(t, east.ServerTLS(), client)
	if sErr != nil || cErr != nil || !ok || peer.Role != pki.RoleReadWrite || peer.Name != "alice" {
		t.Fatalf("client: server %v, client %v, peer %v %v; want alice (readwrite)", sErr, cErr, peer, ok)
	}
}

func TestStrangersAreRefused(t *testing.T) {
	now := time.Now()
	dir := cluster(t, "us-east", now)
	east, err := pki.LoadNode(dir)
	must(t, err)

	// Another cluster's CA: its node is refused by ours, and ours by it.
	other, err := pki.LoadNode(cluster(t, "us-east", now))
	must(t, err)
	if sErr, cErr, _, _ := handshake(t, east.ServerTLS(), other.NodeClientTLS()); sErr == nil && cErr == nil {
		t.Error("a node of another CA was accepted")
	}
	// Without a client certificate the connection is made, but carries
	// no identity: a node channel refuses it (PeerIdentity not ok).
	noCert, err := pki.ClientTLS(dir, "")
	must(t, err)
	if sErr, cErr, _, ok := handshake(t, east.ServerTLS(), noCert); sErr != nil || cErr != nil || ok {
		t.Errorf("no client certificate: server %v client %v identity %v; want a connection without identity", sErr, cErr, ok)
	}
	// An expired node certificate.
	old := cluster(t, "eu-west", now.Add(-3*365*24*time.Hour))
	must(t, pki.CreateNode(pki.Options{Dir: old, Overwrite: true, Lifetime: 24 * time.Hour, Now: func() time.Time { return now.Add(-48 * time.Hour) }}, "eu-west", []string{"127.0.0.1"}))
	if _, err := pki.LoadNode(old); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a node loaded an expired certificate: %v", err)
	}
	expiredPair, err := tls.LoadX509KeyPair(filepath.Join(old, pki.NodeCertFile), filepath.Join(old, pki.NodeKeyFile))
	must(t, err)
	expired := &tls.Config{InsecureSkipVerify: true, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &expiredPair, nil
	}}
	sameCA := t.TempDir()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		raw, _ := os.ReadFile(filepath.Join(old, f))
		must(t, os.WriteFile(filepath.Join(sameCA, f), raw, 0o600))
	}
	must(t, pki.CreateNode(pki.Options{Dir: sameCA}, "us-east", []string{"127.0.0.1"}))
	server, err := pki.LoadNode(sameCA)
	must(t, err)
	if sErr, cErr, _, _ := handshake(t, server.ServerTLS(), expired); sErr == nil && cErr == nil {
		t.Error("an expired node certificate was accepted")
	}
	// A node dialing a server that presents a client certificate.
	clientAsServer := &tls.Config{GetConfigForClient: nil}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.ClientCertFile("alice")), filepath.Join(dir, pki.ClientKeyFile("alice")))
	must(t, err)
	clientAsServer.Certificates = []tls.Certificate{pair}
	if _, cErr, _, _ := handshake(t, clientAsServer, east.NodeClientTLS()); cErr == nil {
		t.Error("a node accepted a server presenting a client certificate")
	}
}

func TestReloadKeepsWorkingCertificates(t *testing.T) {
	dir := cluster(t, "us-east", time.Now())
	c, err := pki.LoadNode(dir)
	must(t, err)
	before, _ := c.Expiry()
	must(t, os.WriteFile(filepath.Join(dir, pki.NodeCertFile), []byte("garbage"), 0o644))
	if err := c.Reload(); err == nil {
		t.Fatal("a garbage certificate was loaded")
	}
	if after, _ := c.Expiry(); !after.Equal(before) {
		t.Fatal("a failed reload replaced the certificates in use")
	}
	must(t, pki.CreateNode(pki.Options{Dir: dir, Overwrite: true, Lifetime: 48 * time.Hour}, "us-east", []string{"h"}))
	if !c.Changed() {
		t.Fatal("a new certificate on disk not noticed")
	}
	must(t, c.Reload())
	if after, _ := c.Expiry(); !after.Before(before) {
		t.Fatalf("reload kept expiry %v, want the new certificate's", after)
	}
}

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	o := pki.Options{Dir: dir}
	admin, err := pki.CreateToken(o, "ops", pki.RoleAdmin)
	must(t, err)
	reader, err := pki.CreateToken(o, "dash", pki.RoleReadOnly)
	must(t, err)
	raw, _ := os.ReadFile(filepath.Join(dir, pki.TokensFile))
	if strings.Contains(string(raw), admin) || strings.Contains(string(raw), reader) {
		t.Fatal("tokens.json holds a token, not its hash")
	}
	tokens, err := pki.LoadTokens(dir)
	must(t, err)
	if id, err := tokens.Authenticate(admin); err != nil || id.Role != pki.RoleAdmin || id.Name != "ops" {
		t.Fatalf("admin token: %v %v", id, err)
	}
	if id, err := tokens.Authenticate(reader); err != nil || id.Role != pki.RoleReadOnly {
		t.Fatalf("reader token: %v %v", id, err)
	}
	for _, bad := range []string{"", "cwt_", admin + "x", "Bearer " + admin, strings.Replace(admin, "cwt_", "xyz_", 1)} {
		if _, err := tokens.Authenticate(bad); !errors.Is(err, pki.ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", bad, err)
		}
	}
	n, err := pki.RevokeTokens(o, "ops")
	must(t, err)
	must(t, tokens.Reload())
	if _, err := tokens.Authenticate(admin); n != 1 || !errors.Is(err, pki.ErrBadToken) {
		t.Fatalf("revoked %d; the revoked token: %v", n, err)
	}
	if _, err := pki.CreateToken(o, "x", pki.RoleNode); !errors.Is(err, pki.ErrInvalid) {
		t.Fatalf("a token with the node role: %v", err)
	}
}
