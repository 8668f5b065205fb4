package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	chartDir        = "helm/causeway"
	exampleValues   = "kubernetes/example-values.yaml"
	renderedExample = "kubernetes/causeway.yaml"
)

// helm runs the pinned helm that `make tools` installs into .bin (or
// $HELM), from the deploy directory.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		path = filepath.Join("..", ".bin", "helm")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("helm not found at %s: `make tools` installs the pinned version into .bin (or set HELM)", path)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func renderExample(t *testing.T) string {
	t.Helper()
	out, err := helm(t, "template", "causeway", chartDir, "--namespace", "causeway", "-f", exampleValues)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return out
}

// TestHelmChart lints the chart, checks that the committed manifests are
// what it renders for the three-region example, and checks the objects an
// operator relies on.
func TestHelmChart(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chartDir, "-f", exampleValues); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	got := renderExample(t)
	want, err := os.ReadFile(renderedExample)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s is not what the chart renders; regenerate it with `make manifests`", renderedExample)
	}

	kinds := map[string]int{}
	docs := strings.Split(got, "\n---\n")
	for _, doc := range docs {
		if m := regexp.MustCompile(`(?m)^kind: (\w+)$`).FindStringSubmatch(doc); m != nil {
			kinds[m[1]]++
		}
	}
	for kind, n := range map[string]int{"StatefulSet": 3, "Service": 6, "PodDisruptionBudget": 1} {
		if kinds[kind] != n {
			t.Errorf("rendered %d %s objects; want %d (%v)", kinds[kind], kind, n, kinds)
		}
	}
	for _, doc := range docs {
		if !strings.Contains(doc, "\nkind: StatefulSet\n") {
			continue
		}
		for _, want := range []string{
			"readinessProbe:\n            httpGet:\n              path: /readyz",
			"livenessProbe:\n            httpGet:\n              path: /healthz",
			"scheme: HTTPS",
			"- --certs-dir=/etc/causeway/certs",
			"volumeClaimTemplates:",
			"runAsNonRoot: true",
			"--cluster-id=6f1c2a4e-3b7d-4e8f-9a0b-1c2d3e4f5a6b",
			"resources:\n            limits:",
		} {
			if !strings.Contains(doc, want) {
				t.Errorf("a rendered StatefulSet lacks %q:\n%s", want, doc)
			}
		}
		if strings.Contains(doc, "HEALTHCHECK") || strings.Contains(doc, "exec:\n") {
			t.Errorf("a rendered StatefulSet probes through a shell the image does not have:\n%s", doc)
		}
	}
	if !strings.Contains(got, "publishNotReadyAddresses: true") {
		t.Error("the headless Services must publish pods that are not ready: a joining region needs its peers' snapshots")
	}
}

// TestHelmChartRefusesBadValues: values that would render a broken cluster
// fail `helm template` with a message saying what to fix.
func TestHelmChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"no cluster id", []string{"clusterId="}, "clusterId is required"},
		{"cluster id not a UUID", []string{"clusterId=abc"}, `clusterId "abc" is not a UUID`},
		{"bad region name", []string{"regions[0].name=US_East"}, `region name "US_East": use lowercase letters, digits and '-'`},
		{"TLS without a Secret", []string{"tls.enabled=true", "tls.secretName="}, "tls.enabled needs tls.secretName"},
		{"one Secret for every region", []string{"tls.enabled=true", "tls.secretName=causeway-tls"},
			`tls.secretName "causeway-tls" is one Secret for every region, but a node certificate names its region`},
		{"unknown layout", []string{"tls.layout=pkcs12"}, `tls.layout "pkcs12": use causeway`},
		{"cert-manager without gossip key", []string{"tls.layout=cert-manager"}, "tls.layout cert-manager needs tls.gossipSecretName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "causeway", chartDir, "-f", exampleValues}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("helm template --set %v: %v; want a failure saying %q:\n%s", tc.set, err, tc.want, out)
			}
		})
	}
}
