//go:build unix

package supervisor_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// TestSecureRegions: with CertsDir the supervisor creates the cluster's
// certificates (once: a second supervisor on the same directory keeps
// them), starts each region with --certs-dir of its own node certificate,
// expects an https readiness line, and calls the regions over TLS.
func TestSecureRegions(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	s := supervisor.New(supervisor.Config{
		Command:       supervisor.Command{Path: os.Args[0], Env: []string{fakeServeEnv + "=1"}},
		StartTimeout:  10 * time.Second,
		StartAttempts: 1,
		CertsDir:      certs,
	})
	t.Cleanup(s.Close)
	addrs, err := supervisor.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"us-east", "plain"} {
		if err := s.Add(supervisor.Region{Name: name, DataDir: t.TempDir(), Addrs: addrs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(supervisor.Region{Name: "certs", DataDir: certs, Addrs: addrs[0]}); err == nil {
		t.Error("a region whose data directory is the certs directory was added")
	}
	east, _ := s.Region("us-east")
	if !east.TLS || !strings.HasPrefix(east.URL(), "https://") {
		t.Fatalf("region of a secure supervisor: TLS %v, URL %s", east.TLS, east.URL())
	}
	args := s.Args(east, nil)
	if i := slices.Index(args, "--certs-dir"); i < 0 || args[i+1] != supervisor.RegionCertsDir(certs, "us-east") {
		t.Fatalf("start arguments %q lack --certs-dir of the region", args)
	}
	node, err := pki.LoadNode(supervisor.RegionCertsDir(certs, "us-east"))
	if err != nil {
		t.Fatalf("the region's certs directory: %v", err)
	}
	if id := node.Identity(); id.Role != pki.RoleNode || id.Region != "us-east" {
		t.Fatalf("the region's certificate is of %v", id)
	}
	if _, err := os.Stat(filepath.Join(supervisor.RegionCertsDir(certs, "us-east"), pki.CAKeyFile)); err == nil {
		t.Error("a region's certs directory holds the CA's key")
	}
	if _, err := pki.ClientTLS(certs, supervisor.AdminClient); err != nil {
		t.Fatalf("the admin client certificate: %v", err)
	}

	start(t, s, "us-east")
	if err := s.Start(t.Context(), "plain", nil); err == nil || !strings.Contains(err.Error(), "http://") {
		t.Errorf("a region announcing plain HTTP to a secure supervisor: %v, want refused", err)
	}

	// The same directory again: the CA and certificates stay.
	ca, _ := os.ReadFile(filepath.Join(certs, pki.CACertFile))
	nodeCert, _ := os.ReadFile(filepath.Join(supervisor.RegionCertsDir(certs, "us-east"), pki.NodeCertFile))
	if err := supervisor.PrepareCerts(certs, "us-east", "eu-west"); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(filepath.Join(certs, pki.CACertFile))
	nodeCert2, _ := os.ReadFile(filepath.Join(supervisor.RegionCertsDir(certs, "us-east"), pki.NodeCertFile))
	if !bytes.Equal(ca, ca2) || !bytes.Equal(nodeCert, nodeCert2) {
		t.Error("preparing an existing certs directory replaced its certificates")
	}
	if _, err := pki.LoadNode(supervisor.RegionCertsDir(certs, "eu-west")); err != nil {
		t.Errorf("a region added later: %v", err)
	}
}
