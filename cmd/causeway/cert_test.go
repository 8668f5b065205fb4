package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causewaydb/causeway/internal/pki"
)

func TestCertAndTokenCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	for _, args := range [][]string{
		{"cert", "create-ca", "--certs-dir", dir},
		{"cert", "create-node", "--region", "us-east", "127.0.0.1", "localhost", "--certs-dir", dir},
		{"cert", "create-client", "alice", "--role", "readonly", "--certs-dir", dir},
	} {
		if r := runCLI("", args...); r.code != exitOK || !strings.Contains(r.stdout, "wrote "+dir) {
			t.Fatalf("%v", r)
		}
	}
	certs, err := pki.LoadNode(dir)
	if err != nil || certs.Identity().Region != "us-east" {
		t.Fatalf("the node certificate written: %v %v", certs, err)
	}
	r := runCLI("", "token", "create", "ops", "--role", "admin", "--certs-dir", dir)
	token := strings.TrimSpace(r.stdout)
	if r.code != exitOK || !strings.HasPrefix(token, "cwt_") || !strings.Contains(r.stderr, "not shown again") {
		t.Fatalf("%v", r)
	}
	tokens, err := pki.LoadTokens(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tokens.Authenticate(token); err != nil || id.Role != pki.RoleAdmin {
		t.Fatalf("the token printed does not authenticate: %v %v", id, err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, pki.TokensFile)); strings.Contains(string(raw), token) {
		t.Fatal("tokens.json holds the token itself")
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cert", "create-ca", "--certs-dir", dir}, exitFailed, "already exists (--overwrite replaces it)"},
		{[]string{"cert", "create-node", "127.0.0.1", "--certs-dir", dir}, exitUsage, "needs --region"},
		{[]string{"cert", "create-client", "bob", "--role", "root", "--certs-dir", dir}, exitFailed, "use admin, readwrite or readonly"},
		{[]string{"cert", "create-node", "--region", "eu-west", "h", "--certs-dir", t.TempDir()}, exitFailed, "create-ca"},
		{[]string{"cert", "make-ca"}, exitUsage, "unknown subcommand"},
		{[]string{"token", "create", "x", "--certs-dir", dir}, exitUsage, "needs --role"},
		{[]string{"token", "create", "x", "--role", "node", "--certs-dir", dir}, exitFailed, "use admin, readwrite or readonly"},
	} {
		if r := runCLI("", c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("want exit %d and %q:\n%v", c.code, c.want, r)
		}
	}
	if r := runCLI("", "token", "revoke", "ops", "--certs-dir", dir); r.code != exitOK || !strings.Contains(r.stdout, "revoked 1") {
		t.Fatalf("%v", r)
	}
}
