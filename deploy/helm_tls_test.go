package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/causewaydb/causeway/internal/supervisor"
)

// statefulSet is the part of a rendered StatefulSet these tests read.
type statefulSet struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		Template struct {
			Metadata struct{ Annotations map[string]string }
			Spec     struct {
				Containers []struct {
					Args           []string
					ReadinessProbe probe `yaml:"readinessProbe"`
					LivenessProbe  probe `yaml:"livenessProbe"`
					VolumeMounts   []struct {
						Name      string
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				}
				Volumes []struct {
					Name      string
					Projected struct {
						DefaultMode int `yaml:"defaultMode"`
						Sources     []struct {
							Secret struct {
								Name  string
								Items []struct{ Key, Path string }
							}
						}
					}
				}
			}
		}
	}
}

type probe struct {
	GRPC *struct {
		Port    int
		Service string
	} `yaml:"grpc"`
	HTTPGet *struct {
		Path   string
		Port   int
		Scheme string
	} `yaml:"httpGet"`
}

// renderStatefulSets renders the chart with the example values and sets,
// and returns its StatefulSets.
func renderStatefulSets(t *testing.T, set ...string) []statefulSet {
	t.Helper()
	args := []string{"template", "causeway", chartDir, "--namespace", "causeway", "-f", exampleValues}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", set, err, out)
	}
	var sets []statefulSet
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var s statefulSet
		if err := dec.Decode(&s); err != nil {
			break
		}
		if s.Kind == "StatefulSet" {
			sets = append(sets, s)
		}
	}
	if len(sets) != 3 {
		t.Fatalf("rendered %d StatefulSets; want 3", len(sets))
	}
	return sets
}

// TestHelmChartTLS: with TLS on, each region mounts its own Secret as the
// certs directory serve --certs-dir reads (both Secret layouts), probes
// speak HTTPS and Prometheus is told to scrape HTTPS; with TLS off the
// nodes run --insecure, said so, with gRPC probes.
func TestHelmChartTLS(t *testing.T) {
	type source struct{ secret, items string }
	for _, tc := range []struct {
		name    string
		set     []string
		sources func(region string) []source
	}{
		{"causeway layout", []string{"tls.enabled=true", "tls.secretName=causeway-certs-{region}"},
			func(region string) []source { return []source{{"causeway-certs-" + region, ""}} }},
		{"one region's own Secret", []string{"tls.enabled=true", "tls.secretName=causeway-certs-{region}", "regions[1].tlsSecretName=west-certs"},
			func(region string) []source {
				if region == "eu-west" {
					return []source{{"west-certs", ""}}
				}
				return []source{{"causeway-certs-" + region, ""}}
			}},
		{"cert-manager layout", []string{"tls.enabled=true", "tls.secretName=node-tls-{region}", "tls.layout=cert-manager", "tls.gossipSecretName=causeway-gossip"},
			func(region string) []source {
				return []source{{"node-tls-" + region, "ca.crt>ca.crt tls.crt>node.crt tls.key>node.key"}, {"causeway-gossip", ""}}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range renderStatefulSets(t, tc.set...) {
				region := strings.TrimPrefix(s.Metadata.Name, "causeway-")
				pod := s.Spec.Template.Spec
				c := pod.Containers[0]
				if !slices.Contains(c.Args, "--certs-dir=/etc/causeway/certs") || slices.Contains(c.Args, "--insecure") {
					t.Errorf("%s: args %v; want --certs-dir=/etc/causeway/certs and no --insecure", region, c.Args)
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					mounted = mounted || (m.Name == "certs" && m.MountPath == "/etc/causeway/certs")
				}
				if !mounted {
					t.Errorf("%s: the certs volume is not mounted at /etc/causeway/certs: %v", region, c.VolumeMounts)
				}
				var got []source
				for _, v := range pod.Volumes {
					if v.Name != "certs" {
						continue
					}
					if v.Projected.DefaultMode != 0o440 {
						t.Errorf("%s: certs mode %o; want 0440 (the key readable by the node's group only)", region, v.Projected.DefaultMode)
					}
					for _, src := range v.Projected.Sources {
						var items []string
						for _, it := range src.Secret.Items {
							items = append(items, it.Key+">"+it.Path)
						}
						got = append(got, source{src.Secret.Name, strings.Join(items, " ")})
					}
				}
				if want := tc.sources(region); !slices.Equal(got, want) {
					t.Errorf("%s: certs volume from %v; want %v", region, got, want)
				}
				for _, p := range []struct {
					name string
					probe
					path string
				}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
					if p.HTTPGet == nil || p.HTTPGet.Scheme != "HTTPS" || p.HTTPGet.Path != p.path || p.GRPC != nil {
						t.Errorf("%s: %s probe %+v; want an HTTPS GET of %s (kubelet's gRPC probes speak no TLS)", region, p.name, p.probe, p.path)
					}
				}
				if s.Spec.Template.Metadata.Annotations["prometheus.io/scheme"] != "https" {
					t.Errorf("%s: no prometheus.io/scheme: https annotation", region)
				}
			}
		})
	}

	t.Run("off", func(t *testing.T) {
		for _, s := range renderStatefulSets(t, "tls.enabled=false") {
			c := s.Spec.Template.Spec.Containers[0]
			if !slices.Contains(c.Args, "--insecure") || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--certs-dir") }) {
				t.Errorf("%s: args %v; want --insecure and no --certs-dir", s.Metadata.Name, c.Args)
			}
			if c.ReadinessProbe.GRPC == nil || c.LivenessProbe.GRPC == nil || c.LivenessProbe.GRPC.Service != "causeway.v1.AdminService" {
				t.Errorf("%s: probes %+v %+v; want gRPC health", s.Metadata.Name, c.ReadinessProbe, c.LivenessProbe)
			}
			if len(s.Spec.Template.Spec.Volumes) != 0 {
				t.Errorf("%s: volumes without TLS: %+v", s.Metadata.Name, s.Spec.Template.Spec.Volumes)
			}
		}
		out, err := helm(t, "template", "causeway", chartDir, "-f", exampleValues, "--set", "tls.enabled=false")
		if err != nil || !strings.Contains(out, "--insecure") {
			t.Fatalf("helm template without TLS: %v", err)
		}
		notes, err := helm(t, "install", "causeway", chartDir, "-f", exampleValues, "--set", "tls.enabled=false", "--dry-run=client")
		if err != nil || !strings.Contains(notes, "TLS is OFF: the nodes run with --insecure") {
			t.Errorf("the chart's notes do not say it runs --insecure: %v\n%s", err, notes)
		}
	})
}

// TestHelmChartArgsStartANode runs the image's binary with the arguments
// the chart renders for a region (addresses moved to free loopback ports,
// paths to temporary directories, as the pod would see them) and probes it
// as the chart's readiness probe does: with TLS, an HTTPS GET of /readyz
// against certificates `causeway cert` made, mounted as the chart mounts
// them; without, /readyz in plaintext. And the insecure rendering without
// its --insecure is refused by serve (listening on every interface without
// TLS), which is why the chart passes it.
func TestHelmChartArgsStartANode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	bin := staticBinary(t)

	certs := t.TempDir()
	for _, args := range [][]string{
		{"cert", "create-ca", "--certs-dir", certs},
		{"cert", "create-node", "--region", "us-east", "127.0.0.1", "--certs-dir", certs},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("causeway %v: %v\n%s", args, err, out)
		}
	}
	// The chart mounts only these (never ca.key).
	mounted := t.TempDir()
	for _, f := range []string{"ca.crt", "node.crt", "node.key", "gossip.key"} {
		raw, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mounted, f), raw, 0o440); err != nil {
			t.Fatal(err)
		}
	}

	// localArgs rewrites a region's rendered args for this machine.
	localArgs := func(t *testing.T, args []string, addrs supervisor.Addrs) []string {
		t.Helper()
		var out []string
		for _, a := range args[1:] { // args[0] is "serve"
			name, value, _ := strings.Cut(a, "=")
			switch name {
			case "--listen":
				value = addrs.API
			case "--advertise":
				value = addrs.API
			case "--gossip-listen":
				value = addrs.Gossip
			case "--raft-listen":
				value = addrs.Raft
			case "--data":
				value = t.TempDir()
			case "--certs-dir":
				value = mounted
			}
			if value != "" {
				a = name + "=" + value
			}
			out = append(out, a)
		}
		return append([]string{"serve"}, out...)
	}

	for _, tc := range []struct {
		name   string
		set    []string
		scheme string
	}{
		{"tls", []string{"tls.enabled=true", "tls.secretName=causeway-certs-{region}"}, "https"},
		{"insecure", []string{"tls.enabled=false"}, "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs, err := supervisor.FreeAddrs(1)
			if err != nil {
				t.Fatal(err)
			}
			a := addrs[0]
			args := localArgs(t, renderStatefulSets(t, tc.set...)[0].Spec.Template.Spec.Containers[0].Args, a)
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			var stderr lockedBuffer
			cmd := exec.Command(bin, args...)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				// As kubelet: HTTPS without verifying the certificate.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			}}
			url := tc.scheme + "://" + a.API + "/readyz"
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				res, err := client.Do(req)
				if err == nil {
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						break
					}
				}
				select {
				case <-ctx.Done():
					t.Fatalf("GET %s never answered 200 (last: %v)\nargs: %v\nstderr:\n%s", url, err, args, stderr.String())
				case <-tick.C:
				}
			}
		})
	}

	t.Run("insecure without --insecure", func(t *testing.T) {
		args := renderStatefulSets(t, "tls.enabled=false")[0].Spec.Template.Spec.Containers[0].Args
		args = slices.DeleteFunc(slices.Clone(args), func(a string) bool {
			return a == "--insecure" || strings.HasPrefix(a, "--advertise") || strings.HasPrefix(a, "--gossip-listen") || strings.HasPrefix(a, "--raft-listen")
		})
		for i, a := range args {
			if strings.HasPrefix(a, "--data") {
				args[i] = "--data=" + t.TempDir()
			}
		}
		// Refused before anything listens (the context only bounds a
		// regression that would serve instead).
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err == nil || !strings.Contains(out.String(), "--insecure") {
			t.Fatalf("serve %v: %v; want a refusal naming --insecure:\n%s", args, err, out.String())
		}
	})
}
