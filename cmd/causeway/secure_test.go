//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/pki"
)

// secureCerts is one cluster's certificates: a CA directory (with client
// certificates and tokens) and a certs directory per region.
type secureCerts struct {
	ca      string
	regions map[string]string
	admin   string // an admin bearer token
}

func newSecureCerts(t *testing.T, regions ...string) secureCerts {
	t.Helper()
	c := secureCerts{ca: t.TempDir(), regions: map[string]string{}}
	o := pki.Options{Dir: c.ca}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(pki.CreateCA(o))
	must(pki.CreateClient(o, "alice", pki.RoleReadWrite))
	must(pki.CreateClient(o, "rita", pki.RoleReadOnly))
	var err error
	c.admin, err = pki.CreateToken(o, "ops", pki.RoleAdmin)
	must(err)
	for _, r := range regions {
		dir := t.TempDir()
		for _, f := range []string{pki.CACertFile, pki.CAKeyFile, pki.GossipKey, pki.TokensFile} {
			raw, err := os.ReadFile(filepath.Join(c.ca, f))
			must(err)
			must(os.WriteFile(filepath.Join(dir, f), raw, 0o600))
		}
		must(pki.CreateNode(pki.Options{Dir: dir}, r, []string{"127.0.0.1"}))
		c.regions[r] = dir
	}
	return c
}

// client is an HTTP client presenting tlsCfg, speaking HTTP/2 over TLS as
// gRPC does, and HTTP/1.1.
func tlsHTTPClient(tlsCfg *tls.Config) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Protocols: protocols}, Timeout: 20 * time.Second}
}

// TestSecureCluster runs two regions with --certs-dir: causal replication,
// gossip and the linearizable tier (Raft and forwarding) work over mutual
// TLS; clients are authenticated by certificate or token and authorised by
// role; a node cannot replicate in another region's name; strangers are
// refused on every channel.
func TestSecureCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two regions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	certs := newSecureCerts(t, "us-east", "eu-west")
	procs := newServeRegions(t)
	id := uuid.NewString()
	east := procs.add("us-east", t.TempDir())
	west := procs.add("eu-west", t.TempDir())
	procs.start(ctx, "us-east", "--cluster-id", id, "--certs-dir", certs.regions["us-east"], "--fault-injection")
	procs.start(ctx, "eu-west", "--cluster-id", id, "--certs-dir", certs.regions["eu-west"], "--fault-injection",
		"--join", east.Addrs.Gossip)
	eastURL, westURL := "https://"+east.Addrs.API, "https://"+west.Addrs.API

	aliceTLS, err := pki.ClientTLS(certs.ca, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ritaTLS, _ := pki.ClientTLS(certs.ca, "rita")
	anonTLS, _ := pki.ClientTLS(certs.ca, "")
	alice, rita, anon := tlsHTTPClient(aliceTLS), tlsHTTPClient(ritaTLS), tlsHTTPClient(anonTLS)
	ops := tlsHTTPClient(anonTLS)
	ops.Transport = bearerTransport{token: certs.admin, next: ops.Transport}

	// eu-west joined (snapshots over mutual TLS) once it serves.
	for _, u := range []string{eastURL, westURL} {
		awaitReadyz(ctx, t, rita, u)
	}

	// Replication over mutual TLS: a write in us-east is read in eu-west.
	put, err := causewayv1connect.NewKVServiceClient(alice, eastURL).Put(ctx,
		connect.NewRequest(&v1.PutRequest{Key: "greeting", Value: []byte("hello")}))
	if err != nil {
		t.Fatalf("alice's put: %v", err)
	}
	westKV := causewayv1connect.NewKVServiceClient(rita, westURL, connect.WithGRPC())
	got, err := westKV.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "greeting", CausalToken: put.Msg.CausalToken}))
	if err != nil || string(got.Msg.Value) != "hello" {
		t.Fatalf("rita's read in eu-west over gRPC: %v %v", got, err)
	}

	// The linearizable tier over TLS: a claim in eu-west (forwarded to the
	// leader if it is not there) once eu-west has joined as a voter.
	lin := causewayv1connect.NewLinearServiceClient(alice, westURL)
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: "user", Name: "alice", Owner: "alice", RequestId: uuid.NewString()}))
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("claim in eu-west: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // a retry interval while the tier forms
	}

	// Roles.
	for _, c := range []struct {
		name string
		err  error
		want connect.Code
	}{
		{"no credential", call(ctx, anon, eastURL, "put"), connect.CodeUnauthenticated},
		{"unknown token", call(ctx, &http.Client{Transport: bearerTransport{token: "cwt_nope", next: anon.Transport}}, eastURL, "put"), connect.CodeUnauthenticated},
		{"readonly writes", call(ctx, rita, eastURL, "put"), connect.CodePermissionDenied},
		{"readwrite sets a link", call(ctx, alice, eastURL, "setlink"), connect.CodePermissionDenied},
		{"client replicates", call(ctx, alice, eastURL, "replicate"), connect.CodePermissionDenied},
	} {
		if connect.CodeOf(c.err) != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		} else if !strings.Contains(c.err.Error(), "certificate") && !strings.Contains(c.err.Error(), "role") &&
			!strings.Contains(c.err.Error(), "token") && !strings.Contains(c.err.Error(), "nodes") {
			t.Errorf("%s: %v does not say what was missing", c.name, c.err)
		}
	}
	if err := call(ctx, rita, eastURL, "get"); err != nil {
		t.Errorf("readonly reads: %v", err)
	}
	if err := call(ctx, ops, eastURL, "setlink"); err != nil {
		t.Errorf("admin token sets a link: %v", err)
	}

	// A node of us-east speaking for another region is refused, counted.
	eastNode, err := pki.LoadNode(certs.regions["us-east"])
	if err != nil {
		t.Fatal(err)
	}
	nodeClient := tlsHTTPClient(eastNode.NodeClientTLS())
	forged, err := causewayv1connect.NewReplicationServiceClient(nodeClient, westURL).Snapshot(ctx,
		connect.NewRequest(&v1.SnapshotRequest{ClusterId: mustStatus(ctx, t, ops, westURL).ClusterId, Region: "ap-south"}))
	if err == nil {
		forged.Receive()
		err = forged.Err()
	}
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "region") {
		t.Errorf("us-east's node certificate asking a snapshot as ap-south: %v, want permission_denied", err)
	}
	m := scrape(ctx, t, ops, westURL)
	if !strings.Contains(m, "causeway_replication_forged_peers_total{region=\"eu-west\"} 1") {
		t.Errorf("the forged request is not counted:\n%s", grepLines(m, "forged"))
	}
	if !strings.Contains(m, `causeway_certificate_expiry_timestamp_seconds{cert="node",region="eu-west"}`) {
		t.Errorf("no certificate expiry on /metrics:\n%s", grepLines(m, "certificate"))
	}

	// The CLI: a client certificate, a token, nothing.
	session := filepath.Join(t.TempDir(), "session.json")
	if r := runCLI("", "put", "cli", "yes", "--addr", east.Addrs.API, "--certs-dir", certs.ca, "--client", "alice", "--session", session); r.code != exitOK {
		t.Errorf("put with alice's certificate:\n%v", r)
	}
	if r := runCLI("", "get", "cli", "--addr", west.Addrs.API, "--certs-dir", certs.ca, "--token", certs.admin, "--session", session); r.code != exitOK || !strings.Contains(r.stdout, "yes") {
		t.Errorf("get with the admin token in the other region:\n%v", r)
	}
	if r := runCLI("", "claim", "user/bob", "bob", "--addr", east.Addrs.API, "--certs-dir", certs.ca, "--client", "rita"); r.code != exitFailed || !strings.Contains(r.stderr, "permission_denied") {
		t.Errorf("claim with a readonly certificate:\n%v", r)
	}
	if r := runCLI("", "get", "cli", "--addr", east.Addrs.API, "--certs-dir", certs.ca, "--session", ""); r.code != exitFailed || !strings.Contains(r.stderr, "unauthenticated") {
		t.Errorf("get with no credential:\n%v", r)
	}

	// Strangers on every channel: plaintext to the API, no client
	// certificate to Raft, another cluster's node to the API.
	if res, err := http.Get("http://" + east.Addrs.API + "/readyz"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest { // Go's TLS server: "client sent an HTTP request to an HTTPS server"
			t.Errorf("the API answered plaintext HTTP with %s", res.Status)
		}
	}
	raftAddr := east.Addrs.Raft
	if raftAddr == "" {
		host, port, _ := net.SplitHostPort(east.Addrs.API)
		raftAddr = net.JoinHostPort(host, itoa(mustAtoi(t, port)+200))
	}
	if conn, err := tls.Dial("tcp", raftAddr, anonTLS); err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 1))
		conn.Close()
		if err == nil {
			t.Error("the Raft transport talked to a connection without a node certificate")
		}
	}
	stranger := newSecureCerts(t, "eu-west")
	strangerNode, _ := pki.LoadNode(stranger.regions["eu-west"])
	if err := call(ctx, tlsHTTPClient(strangerNode.NodeClientTLS()), eastURL, "get"); err == nil {
		t.Error("a node of another cluster's CA was served")
	}
}

// awaitReadyz polls GET url/readyz with c until the node serves clients.
func awaitReadyz(ctx context.Context, t *testing.T, c *http.Client, url string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready: %v", url, err)
		case <-tick.C:
		}
	}
}

// call makes one request of a kind to url and returns its error.
func call(ctx context.Context, c *http.Client, url, kind string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch kind {
	case "put":
		_, err = causewayv1connect.NewKVServiceClient(c, url).Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")}))
	case "get":
		_, err = causewayv1connect.NewKVServiceClient(c, url).Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k"}))
	case "setlink":
		_, err = causewayv1connect.NewAdminServiceClient(c, url).SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{Region: "eu-west", Delay: nil}))
	case "replicate":
		var s *connect.ServerStreamForClient[v1.SnapshotResponse]
		if s, err = causewayv1connect.NewReplicationServiceClient(c, url).Snapshot(ctx, connect.NewRequest(&v1.SnapshotRequest{Region: "eu-west"})); err == nil {
			s.Receive()
			err = s.Err()
		}
	}
	return err
}

func mustStatus(ctx context.Context, t *testing.T, c *http.Client, url string) *v1.StatusResponse {
	t.Helper()
	res, err := causewayv1connect.NewAdminServiceClient(c, url).Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg
}

func scrape(ctx context.Context, t *testing.T, c *http.Client, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
