package main

import (
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/wanbench"
)

// credentials are the client verbs' flags for a node running with
// --certs-dir: the cluster's CA to verify it, and who the caller is (a
// client certificate or a bearer token). Without them the verbs speak
// plain HTTP, as to a node on loopback without TLS.
type credentials struct {
	certsDir, client, token string

	once sync.Once
	http *http.Client
	err  error
}

func addCredentialFlags(fs *flag.FlagSet) *credentials {
	c := &credentials{}
	fs.StringVar(&c.certsDir, "certs-dir", envOr("CAUSEWAY_CERTS_DIR", ""), "directory with the cluster's ca.crt (and client.NAME.crt/.key): talk TLS to the node (env CAUSEWAY_CERTS_DIR)")
	fs.StringVar(&c.client, "client", envOr("CAUSEWAY_CLIENT", ""), "NAME of the client certificate in --certs-dir to present (env CAUSEWAY_CLIENT)")
	fs.StringVar(&c.token, "token", envOr("CAUSEWAY_TOKEN", ""), "bearer token to present (causeway token create; env CAUSEWAY_TOKEN)")
	return c
}

// url is addr as a base URL: https:// when --certs-dir is given and no
// scheme is.
func (c *credentials) url(addr string) string {
	if c.certsDir != "" && !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	return nodeURL(addr)
}

// httpClient is the client the verbs call the node with.
func (c *credentials) httpClient() (*http.Client, error) {
	c.once.Do(func() {
		if c.certsDir == "" && c.client == "" && c.token == "" {
			c.http = http.DefaultClient
			return
		}
		if c.certsDir == "" {
			c.err = fmt.Errorf("--client and --token need --certs-dir (the cluster's ca.crt, to verify the node)")
			return
		}
		tlsCfg, err := pki.ClientTLS(c.certsDir, c.client)
		if err != nil {
			c.err = err
			return
		}
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
		var rt http.RoundTripper = &http.Transport{TLSClientConfig: tlsCfg, Protocols: protocols}
		if c.token != "" {
			rt = bearerTransport{token: c.token, next: rt}
		}
		c.http = &http.Client{Transport: rt}
	})
	return c.http, c.err
}

// benchClient is the client `causeway bench --addr` calls a TLS cluster
// with: the credentials of httpClient on the benchmark's transport, which
// keeps an idle connection for every client of every region.
func (c *credentials) benchClient() (*http.Client, error) {
	if c.certsDir == "" {
		return nil, fmt.Errorf("--client and --token need --certs-dir (the cluster's ca.crt, to verify the nodes)")
	}
	tlsCfg, err := pki.ClientTLS(c.certsDir, c.client)
	if err != nil {
		return nil, err
	}
	var wrap func(http.RoundTripper) http.RoundTripper
	if c.token != "" {
		wrap = func(next http.RoundTripper) http.RoundTripper { return bearerTransport{token: c.token, next: next} }
	}
	return wanbench.NewHTTPClient(tlsCfg, wrap), nil
}

// bearerTransport adds Authorization: Bearer to every request.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
