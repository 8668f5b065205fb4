package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "causeway.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeConfigPrecedence: a flag beats the environment, which beats the
// file, which beats the default; --print-config says which won.
func TestServeConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "region: from-file\ndata: /file/data\nlisten: 127.0.0.1:9999\njoin: [a:1, b:2]\ncausal-wait: 3s\ngossip-key: c2VjcmV0c2VjcmV0c2VjcmV0\n")
	t.Setenv("CAUSEWAY_DATA", "/env/data")
	t.Setenv("CAUSEWAY_LISTEN", "127.0.0.1:8888")
	r := runCLI("", "serve", "--config", file, "--print-config", "--listen", "127.0.0.1:7777")
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	for _, want := range []string{
		"region: from-file # file\n",
		"data: /env/data # env CAUSEWAY_DATA\n",
		"listen: 127.0.0.1:7777 # flag\n",
		"join: a:1,b:2 # file\n",
		"causal-wait: 3s # file\n",
		"gossip-key: <redacted> # file\n",
		"log-level: info # default\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "c2VjcmV0") {
		t.Error("--print-config printed the gossip key")
	}
}

// TestServeConfigRefusesBadFiles: unknown settings, bad values and files
// that are not a YAML map are refused, naming the problem.
func TestServeConfigRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown setting", "region: x\nregoin: y\n", "unknown settings regoin"},
		{"bad duration", "causal-wait: soon\n", "causal-wait: invalid value"},
		{"not a map", "- a\n- b\n", "not a YAML map of settings"},
		{"nested map", "region:\n  name: x\n", "region: a scalar or a list, not a map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI("", "serve", "--config", writeConfig(t, tc.body), "--print-config")
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v; want a usage error saying %q", r, tc.want)
			}
		})
	}
	if r := runCLI("", "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"), "--print-config"); r.code != exitUsage || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing config file: %v", r)
	}
}
