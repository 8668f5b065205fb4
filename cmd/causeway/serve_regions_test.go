//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// serveRegions runs a test's regions as `causeway serve` child processes
// through internal/supervisor: the test binary re-executed as causeway (see
// TestMain), on 127.0.0.1, each region on addresses fixed across its
// restarts. Every process is killed and reaped when the test ends, and
// each region's stderr is logged if the test failed.
type serveRegions struct {
	t   *testing.T
	sup *supervisor.Supervisor

	mu     sync.Mutex
	stderr map[string]*lockedBuffer // of each region's latest start
	exits  []string                 // regions that exited on their own
}

func newServeRegions(t *testing.T) *serveRegions {
	t.Helper()
	return startServeRegions(t, "")
}

// newSecureServeRegions is newServeRegions with TLS: the supervisor creates
// a CA, a node certificate per region and an admin client certificate in
// a directory of the test's, and starts every region with --certs-dir
// (supervisor.Config.CertsDir). The test talks to the regions with client.
func newSecureServeRegions(t *testing.T) *serveRegions {
	t.Helper()
	return startServeRegions(t, filepath.Join(t.TempDir(), "certs"))
}

func startServeRegions(t *testing.T, certsDir string) *serveRegions {
	t.Helper()
	s := &serveRegions{t: t, stderr: map[string]*lockedBuffer{}}
	s.sup = supervisor.New(supervisor.Config{
		CertsDir:     certsDir,
		Command:      supervisor.Command{Path: os.Args[0], Env: []string{runMainEnv + "=1"}},
		StartTimeout: 60 * time.Second,
		Output: func(region string, _ int) (io.Writer, io.Writer) {
			b := &lockedBuffer{}
			s.mu.Lock()
			s.stderr[region] = b
			s.mu.Unlock()
			return nil, b
		},
		OnExit: func(e supervisor.Exit) {
			s.mu.Lock()
			s.exits = append(s.exits, fmt.Sprintf("%s (%v)", e.Region, e.Err))
			s.mu.Unlock()
		},
	})
	// Cleanups run last-registered first: kill and reap, then show stderr.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.exits) > 0 {
			t.Logf("regions that exited on their own: %v", s.exits)
		}
		for _, name := range s.sup.Regions() {
			if b := s.stderr[name]; b != nil {
				t.Logf("stderr of region %s (latest start):\n%s", name, b)
			}
		}
	})
	t.Cleanup(s.sup.Close)
	return s
}

// client returns an HTTP client for the regions, closed when the test
// ends, keeping up to maxIdle connections to each: over TLS with the admin
// client certificate when the regions run secure; HTTP/2 (as gRPC needs)
// when http2, else HTTP/1.1.
func (s *serveRegions) client(maxIdle int, http2 bool) *http.Client {
	s.t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: maxIdle}
	p := new(http.Protocols)
	switch certs := s.sup.CertsDir(); {
	case certs == "" && http2:
		p.SetUnencryptedHTTP2(true)
	case certs == "":
		p.SetHTTP1(true)
	default:
		cfg, err := pki.ClientTLS(certs, supervisor.AdminClient)
		if err != nil {
			s.t.Fatal(err)
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		tr.TLSClientConfig = cfg
		if http2 {
			p.SetHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
	}
	tr.Protocols = p
	c := &http.Client{Transport: tr}
	s.t.Cleanup(c.CloseIdleConnections)
	return c
}

// cliCredentials are the CLI flags that talk to the regions as the admin
// client (none without TLS).
func (s *serveRegions) cliCredentials() []string {
	if certs := s.sup.CertsDir(); certs != "" {
		return []string{"--certs-dir", certs, "--client", supervisor.AdminClient}
	}
	return nil
}

// nodeClient returns an HTTP/2 client that presents a node certificate of
// region (issued by the regions' CA on first use), as another node's
// replication does; without TLS, plain HTTP/2.
func (s *serveRegions) nodeClient(region string) *http.Client {
	s.t.Helper()
	certs := s.sup.CertsDir()
	if certs == "" {
		return s.client(1, true)
	}
	if err := supervisor.PrepareCerts(certs, region); err != nil {
		s.t.Fatal(err)
	}
	node, err := pki.LoadNode(supervisor.RegionCertsDir(certs, region))
	if err != nil {
		s.t.Fatal(err)
	}
	c := tlsHTTPClient(node.NodeClientTLS())
	s.t.Cleanup(c.CloseIdleConnections)
	return c
}

// add adds a region, down, on free addresses of 127.0.0.1.
func (s *serveRegions) add(name, dataDir string) supervisor.Region {
	s.t.Helper()
	addrs, err := supervisor.FreeAddrs(1)
	if err != nil {
		s.t.Fatal(err)
	}
	r := supervisor.Region{Name: name, DataDir: dataDir, Addrs: addrs[0]}
	if err := s.sup.Add(r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// start starts a region that is down with the serve flags args (besides
// its name, data directory and addresses) and returns its base URL once it
// prints its readiness line.
func (s *serveRegions) start(ctx context.Context, name string, args ...string) string {
	s.t.Helper()
	if err := s.sup.Start(ctx, name, args); err != nil {
		s.t.Fatalf("causeway serve %v: %v", args, err)
	}
	r, _ := s.sup.Region(name)
	return r.URL()
}

// kill sends SIGKILL to a region and fails the test unless the signal is
// what ended it.
func (s *serveRegions) kill(name string) {
	s.t.Helper()
	if err := s.sup.Kill(name); err != nil {
		s.t.Fatalf("kill %s: %v", name, err)
	}
}

// stderrOf is what the region's latest start wrote to stderr.
func (s *serveRegions) stderrOf(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.stderr[name]; b != nil {
		return b.String()
	}
	return ""
}
