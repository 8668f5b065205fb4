package main

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/causewaydb/causeway/internal/buildinfo"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/replica"
)

// testNode is a node of region "cli" served in-process on 127.0.0.1.
type testNode struct {
	node *replica.Node
	addr string // base URL, http://127.0.0.1:PORT
}

func startNode(t *testing.T, options ...func(*process.Config)) *testNode {
	t.Helper()
	cfg := process.Config{Node: replica.Config{
		Region:  "cli",
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.DiscardHandler),
	}}
	for _, o := range options {
		o(&cfg)
	}
	p, err := process.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shut down: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testNode{node: p.Node(), addr: "http://" + ln.Addr().String()}
}

// cliSession runs client verbs against one node with one session file.
type cliSession struct {
	addr, path string
}

func newSession(t *testing.T, n *testNode) cliSession {
	return cliSession{addr: n.addr, path: filepath.Join(t.TempDir(), "session.json")}
}

// run appends --addr and --session after the verb's own arguments, so every
// call also exercises flags that follow positional arguments.
// The session's flags go right after the verb, so that arguments after a
// "--" stay positional.
func (s cliSession) run(stdin string, args ...string) cliResult {
	if len(args) == 0 {
		return runCLI(stdin, "--addr", s.addr, "--session", s.path)
	}
	full := append([]string{args[0], "--addr", s.addr, "--session", s.path}, args[1:]...)
	return runCLI(stdin, full...)
}

// token returns the causal token the session file holds ("" if no file).
func (s cliSession) token(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Token string `json:"causal_token"`
		Addr  string `json:"addr"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("session file %s is not JSON: %v\n%s", s.path, err, raw)
	}
	if f.Addr != s.addr {
		t.Errorf("session file %s: addr %q, want %q", s.path, f.Addr, s.addr)
	}
	return f.Token
}

// decodeJSON parses the --json output of r into msg, refusing unknown fields.
func decodeJSON(t *testing.T, r cliResult, msg proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(r.stdout), msg); err != nil {
		t.Fatalf("--json output is not a %T: %v\n%v", msg, err, r)
	}
}

func TestCLIPutGetDelStatus(t *testing.T) {
	s := newSession(t, startNode(t))
	const version = `\d+\.\d+@cli #`
	steps := []struct {
		args       []string
		wantCode   int
		wantStdout string // regular expression matching all of stdout
	}{
		{[]string{"put", "greeting", "hello"}, exitOK, `^OK greeting  version ` + version + `1\n$`},
		{[]string{"get", "greeting"}, exitOK, `^hello\n\(version ` + version + `1\)\n$`},
		{[]string{"put", "greeting", "hello, world"}, exitOK, `^OK greeting  version ` + version + `2\n$`},
		{[]string{"get", "greeting"}, exitOK, `^hello, world\n\(version ` + version + `2\)\n$`},
		{[]string{"del", "greeting"}, exitOK, `^OK deleted greeting  version ` + version + `3\n$`},
		{[]string{"get", "greeting"}, exitNotFound, `^greeting: not found \(deleted, version ` + version + `3\)\n$`},
		{[]string{"get", "never-written"}, exitNotFound, `^never-written: not found\n$`},
		{[]string{"delete", "never-written"}, exitOK, `^OK deleted never-written  version ` + version + `4\n$`},
		{[]string{"status"}, exitOK, `(?s)^node      cli-\S+\nregion    cli\n.*\napplied   cli:4\nwaiting   0 remote writes wait for their causal past\n\ncausal tier      available .*\nlinear tier      off on this node .*\n$`},
	}
	for _, step := range steps {
		r := s.run("", step.args...)
		if r.code != step.wantCode || !regexp.MustCompile(step.wantStdout).MatchString(r.stdout) || r.stderr != "" {
			t.Fatalf("want exit status %d, stdout matching %q and no stderr; got\n%v", step.wantCode, step.wantStdout, r)
		}
	}
}

func TestCLIJSONOutput(t *testing.T) {
	n := startNode(t)
	s := newSession(t, n)

	// --json may come before, between or after the positional arguments;
	// wherever it is, it is a flag and not part of the key or value.
	placements := []struct {
		key  string
		args []string
	}{
		{"before", []string{"put", "--json", "before", "v-before"}},
		{"between", []string{"put", "between", "--json", "v-between"}},
		{"after", []string{"put", "after", "v-after", "--json"}},
	}
	puts := map[string]*v1.PutResponse{}
	for _, p := range placements {
		r := s.run("", p.args...)
		if r.code != exitOK {
			t.Fatalf("%v", r)
		}
		res := &v1.PutResponse{}
		decodeJSON(t, r, res)
		if v := res.GetVersion(); v.GetOriginRegion() != "cli" || v.GetOriginSeq() == 0 || v.GetTimestamp().GetWallMs() == 0 || res.GetCausalToken() == "" {
			t.Errorf("put --json: want a version from region cli and a causal token; got %v", r)
		}
		puts[p.key] = res

		// Scripts read the JSON with jq and the like: the field names are
		// part of the interface.
		var fields map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
			t.Fatalf("put --json output is not JSON: %v\n%v", err, r)
		}
		version, _ := fields["version"].(map[string]any)
		if _, ok := fields["causalToken"].(string); !ok || version["originRegion"] != "cli" {
			t.Errorf("put --json: want fields causalToken and version.originRegion; got %s", r.stdout)
		}
	}

	for _, p := range placements {
		r := s.run("", "get", p.key, "--json")
		if r.code != exitOK {
			t.Fatalf("%v", r)
		}
		res := &v1.GetResponse{}
		decodeJSON(t, r, res)
		if !res.GetFound() || string(res.GetValue()) != "v-"+p.key || !proto.Equal(res.GetVersion(), puts[p.key].GetVersion()) {
			t.Errorf("get %s --json: want found, value %q and the version put returned (%v); got\n%v",
				p.key, "v-"+p.key, puts[p.key].GetVersion(), r)
		}
	}

	r := s.run("", "get", "missing", "--json")
	missing := &v1.GetResponse{}
	if r.code != exitNotFound {
		t.Fatalf("get missing --json: want exit status %d; got\n%v", exitNotFound, r)
	}
	decodeJSON(t, r, missing)
	if missing.GetFound() || missing.GetVersion() != nil || missing.GetCausalToken() == "" {
		t.Errorf("get missing --json: want found false, no version and a causal token; got\n%v", r)
	}

	r = s.run("", "del", "after", "--json")
	del := &v1.DeleteResponse{}
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	decodeJSON(t, r, del)
	if del.GetVersion().GetOriginSeq() != uint64(len(placements)+1) {
		t.Errorf("del --json: want sequence number %d; got\n%v", len(placements)+1, r)
	}

	r = s.run("", "status", "--json")
	status := &v1.StatusResponse{}
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	decodeJSON(t, r, status)
	if status.GetRegion() != "cli" || status.GetClusterId() != n.node.ClusterID().String() ||
		status.GetVector()["cli"] != uint64(len(placements)+1) || !strings.HasPrefix(status.GetNodeId(), "cli-") {
		t.Errorf("status --json: want region cli, cluster %s, vector cli:%d; got\n%v", n.node.ClusterID(), len(placements)+1, r)
	}
}

func TestCLISessionFileCarriesToken(t *testing.T) {
	n := startNode(t)
	s := newSession(t, n)
	s.path = filepath.Join(filepath.Dir(s.path), "not", "yet", "there", "session.json")

	sessionVector := func() clocks.Vector {
		t.Helper()
		tok, err := clocks.InspectToken(s.token(t))
		if err != nil {
			t.Fatalf("session file holds no valid token: %v", err)
		}
		if tok.Cluster != n.node.ClusterID() {
			t.Fatalf("session token is of cluster %s, want %s", tok.Cluster, n.node.ClusterID())
		}
		return tok.Vector
	}

	r := s.run("", "put", "a", "1", "--json")
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	put := &v1.PutResponse{}
	decodeJSON(t, r, put)
	if got := s.token(t); got != put.GetCausalToken() {
		t.Fatalf("after put, the session file holds token %q; want the one put returned, %q", got, put.GetCausalToken())
	}
	if v := sessionVector(); v.Get("cli") != 1 {
		t.Fatalf("after the first put, session vector %v; want cli:1", v)
	}

	if r := s.run("", "put", "b", "2"); r.code != exitOK {
		t.Fatalf("%v", r)
	}
	if v := sessionVector(); v.Get("cli") != 2 {
		t.Fatalf("after the second put, session vector %v; want cli:2", v)
	}

	// Reading a is sent with the session's token: the token returned keeps
	// the session's whole past (cli:2). A get without a session only learns
	// a's own past (cli:1).
	r = s.run("", "get", "a", "--json")
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	got := &v1.GetResponse{}
	decodeJSON(t, r, got)
	if s.token(t) != got.GetCausalToken() {
		t.Errorf("after get, the session file does not hold the token get returned")
	}
	if v := sessionVector(); v.Get("cli") != 2 {
		t.Errorf("after get a with the session, session vector %v; want cli:2 kept", v)
	}
	r = runCLI("", "get", "a", "--json", "--addr", n.addr, "--session", "")
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	sessionless := &v1.GetResponse{}
	decodeJSON(t, r, sessionless)
	if tok, err := clocks.InspectToken(sessionless.GetCausalToken()); err != nil || tok.Vector.Get("cli") != 1 {
		t.Errorf("get a without a session: token %+v (%v); want vector cli:1", tok, err)
	}

	// A session whose past the node has not applied (here: writes of region
	// cli it never made) is answered with unavailable, naming what is
	// missing, rather than with a stale value.
	valid := s.token(t)
	ahead := clocks.Token{Cluster: n.node.ClusterID(), Vector: clocks.Vector{"cli": 1000}}.Encode()
	writeSessionFile(t, s.path, ahead, s.addr)
	r = s.run("", "get", "a", "--timeout", "1s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "unavailable") || !strings.Contains(r.stderr, "cli writes 3..1000") {
		t.Errorf("session depending on writes cli 3..1000 the node lacks: want exit status %d and unavailable naming them; got\n%v", exitFailed, r)
	}

	// A session file whose token the node refuses fails every command with
	// invalid_argument, names the file and says what to do; the file is
	// left as it was.
	for name, token := range map[string]string{
		"altered":   flipChar(valid, len(valid)/2),
		"truncated": valid[:len(valid)-3],
	} {
		t.Run(name, func(t *testing.T) {
			writeSessionFile(t, s.path, token, s.addr)
			for _, args := range [][]string{{"get", "a"}, {"put", "a", "3"}, {"del", "a"}} {
				r := s.run("", args...)
				if r.code != exitFailed || r.stdout != "" ||
					!strings.Contains(r.stderr, "invalid_argument") ||
					!strings.Contains(r.stderr, "session file "+s.path) ||
					!strings.Contains(r.stderr, "--session") {
					t.Errorf("want exit status %d and an invalid_argument error naming the session file with a way out; got\n%v", exitFailed, r)
				}
				if got := s.token(t); got != token {
					t.Errorf("a failed command rewrote the session token: %q, was %q", got, token)
				}
			}
		})
	}

	// A session file that holds another cluster's token (it was used with
	// another cluster, as after following the README from a single node to
	// a cluster) starts a new session for this cluster, saying so.
	foreign := clocks.Token{Cluster: uuid.New(), Vector: clocks.Vector{"cli": 1}}.Encode()
	for _, args := range [][]string{{"get", "a"}, {"put", "a", "4"}, {"del", "a"}} {
		writeSessionFile(t, s.path, foreign, s.addr)
		r := s.run("", args...)
		if r.code == exitFailed || !strings.Contains(r.stderr, "held a causal token of another cluster") ||
			!strings.Contains(r.stderr, s.path) || !strings.Contains(r.stderr, n.node.ClusterID().String()) {
			t.Errorf("%v with another cluster's token: want a new session and a notice naming the file and this cluster; got\n%v", args, r)
		}
		if args[0] != "get" || r.code == exitOK {
			tok, err := clocks.DecodeToken(s.token(t), n.node.ClusterID())
			if err != nil || tok.Cluster != n.node.ClusterID() {
				t.Errorf("%v: the session file holds %v (%v), want a token of this cluster", args, tok, err)
			}
		}
	}

	// A session file that is not JSON is reported, with a way out.
	if err := os.WriteFile(s.path, []byte("causal_token=abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = s.run("", "get", "a")
	if r.code != exitFailed || !strings.Contains(r.stderr, s.path) || !strings.Contains(r.stderr, "delete it") {
		t.Errorf("session file that is not JSON: want exit status %d naming the file and saying to delete it; got\n%v", exitFailed, r)
	}
}

func flipChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func writeSessionFile(t *testing.T, path, token, addr string) {
	t.Helper()
	raw, err := json.Marshal(map[string]string{"causal_token": token, "addr": addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCLIEnvironmentDefaults(t *testing.T) {
	n := startNode(t)
	path := filepath.Join(t.TempDir(), "env-session.json")
	// No scheme: the CLI adds http://.
	t.Setenv("CAUSEWAY_ADDR", strings.TrimPrefix(n.addr, "http://"))
	t.Setenv("CAUSEWAY_SESSION", path)

	if r := runCLI("", "put", "k", "v"); r.code != exitOK {
		t.Fatalf("%v", r)
	}
	if r := runCLI("", "get", "k"); r.code != exitOK || !strings.HasPrefix(r.stdout, "v\n") {
		t.Fatalf("want v; got\n%v", r)
	}
	if tok := (cliSession{addr: n.addr, path: path}).token(t); tok == "" {
		t.Errorf("CAUSEWAY_SESSION=%s: no token written there", path)
	}
}

func TestCLIValueFromStdin(t *testing.T) {
	s := newSession(t, startNode(t))
	tests := []struct {
		name, stdin string
		wantGet     string // stdout of a plain get
	}{
		{"text with newlines", "line one\nline two\n", "line one\nline two\n\n"},
		{"empty", "", "\n"},
		{"binary", "\xff\x00\x01\xfe", "<4 bytes of binary data; use --json for base64>\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "stdin/" + tt.name
			if r := s.run(tt.stdin, "put", key, "-"); r.code != exitOK {
				t.Fatalf("%v", r)
			}
			r := s.run("", "get", key, "--json")
			got := &v1.GetResponse{}
			if r.code != exitOK {
				t.Fatalf("%v", r)
			}
			decodeJSON(t, r, got)
			if string(got.GetValue()) != tt.stdin {
				t.Errorf("put %s - read %q from stdin; stored %q", key, tt.stdin, got.GetValue())
			}
			r = s.run("", "get", key)
			if r.code != exitOK || !strings.HasPrefix(r.stdout, tt.wantGet+"(version ") {
				t.Errorf("get %s: want stdout starting %q; got\n%v", key, tt.wantGet, r)
			}
		})
	}
}

func TestCLIValueStartingWithDash(t *testing.T) {
	s := newSession(t, startNode(t))
	// "--" lets a value that looks like a flag through as a value.
	tests := []struct {
		args      []string
		key, want string
	}{
		{[]string{"put", "temperature", "--", "-5"}, "temperature", "-5"},
		{[]string{"put", "flag-like", "--", "--json"}, "flag-like", "--json"},
		{[]string{"put", "--", "-k", "-v"}, "-k", "-v"},
		{[]string{"put", "--", "k2", "--json"}, "k2", "--json"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := s.run("", tt.args...)
			if r.code != exitOK || !strings.HasPrefix(r.stdout, "OK "+tt.key+" ") {
				t.Fatalf("want a plain (not --json) OK for %s; got\n%v", tt.key, r)
			}
			r = s.run("", "get", "--", tt.key)
			if r.code != exitOK || !strings.HasPrefix(r.stdout, tt.want+"\n(version ") {
				t.Errorf("get %s: want %q; got\n%v", tt.key, tt.want, r)
			}
		})
	}
}

func TestCLIRequestID(t *testing.T) {
	s := newSession(t, startNode(t))
	id := uuid.NewString()

	first := s.run("", "put", "k", "v", "--request-id", id, "--json")
	retry := s.run("", "put", "k", "v", "--request-id", id, "--json")
	if first.code != exitOK || retry.code != exitOK {
		t.Fatalf("%v\n%v", first, retry)
	}
	a, b := &v1.PutResponse{}, &v1.PutResponse{}
	decodeJSON(t, first, a)
	decodeJSON(t, retry, b)
	if !proto.Equal(a.GetVersion(), b.GetVersion()) {
		t.Errorf("a retried put returned version %v; the original returned %v", b.GetVersion(), a.GetVersion())
	}

	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"reused for another key", []string{"put", "other", "v", "--request-id", id}, "already used"},
		{"reused for a delete", []string{"del", "k", "--request-id", id}, "already used"},
		{"not a UUID", []string{"put", "k", "v", "--request-id", "attempt-1"}, "not a UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run("", tt.args...)
			if r.code != exitFailed || !strings.Contains(r.stderr, "invalid_argument") || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("want exit status %d and invalid_argument mentioning %q; got\n%v", exitFailed, tt.want, r)
			}
		})
	}

	r := s.run("", "status", "--json")
	status := &v1.StatusResponse{}
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	decodeJSON(t, r, status)
	if got := status.GetVector()["cli"]; got != 1 {
		t.Errorf("after one put, a retry and refused reuses, the node applied %d writes; want 1", got)
	}
}

func TestCLINoNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	path := filepath.Join(t.TempDir(), "session.json")
	r := runCLI("", "get", "k", "--addr", addr, "--session", path)
	if r.code != exitFailed || !strings.Contains(r.stderr, "unavailable") || !strings.Contains(r.stderr, "is a node running?") {
		t.Errorf("want exit status %d, unavailable and a hint to start a node; got\n%v", exitFailed, r)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed command created the session file (stat: %v)", err)
	}
}

func TestCLIUsage(t *testing.T) {
	// Nothing here may reach a node or write a session: point both at
	// places that would show it.
	t.Setenv("CAUSEWAY_ADDR", "http://127.0.0.1:1")
	session := filepath.Join(t.TempDir(), "session.json")
	t.Setenv("CAUSEWAY_SESSION", session)
	data := filepath.Join(t.TempDir(), "data")

	tests := []struct {
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		// Help and version succeed.
		{[]string{"--help"}, exitOK, "Usage:", ""},
		{[]string{"-h"}, exitOK, "Usage:", ""},
		{[]string{"help"}, exitOK, "Usage:", ""},
		{[]string{"version"}, exitOK, "causeway " + buildinfo.Read().String(), ""},
		{[]string{"--version"}, exitOK, "causeway " + buildinfo.Read().String(), ""},
		{[]string{"serve", "--help"}, exitOK, "", "Usage: causeway serve"},
		{[]string{"serve", "-h"}, exitOK, "", "-data"},
		{[]string{"put", "--help"}, exitOK, "", "Usage: causeway put KEY VALUE"},
		{[]string{"get", "-h"}, exitOK, "", "-session"},

		// Usage errors exit 2.
		{nil, exitUsage, "", "Usage:"},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"--json"}, exitUsage, "", "unknown command"},
		{[]string{"put", "k"}, exitUsage, "", "want 2 argument(s), got 1"},
		{[]string{"put", "k", "v", "extra"}, exitUsage, "", "want 2 argument(s), got 3"},
		{[]string{"get"}, exitUsage, "", "want 1 argument(s), got 0"},
		{[]string{"get", "a", "b"}, exitUsage, "", "want 1 argument(s), got 2"},
		{[]string{"del"}, exitUsage, "", "want 1 argument(s), got 0"},
		{[]string{"status", "extra"}, exitUsage, "", "want 0 argument(s), got 1"},
		{[]string{"put", "k", "v", "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"get", "k", "--timeout", "soon"}, exitUsage, "", "invalid value"},
		{[]string{"get", "k", "--json=maybe"}, exitUsage, "", "invalid boolean value"},
		{[]string{"get", "k", "--addr"}, exitUsage, "", "flag needs an argument"},
		{[]string{"get", "k", "--request-id", uuid.NewString()}, exitUsage, "", "--request-id applies to put and del only"},
		{[]string{"serve", "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"serve", "--data", data, "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"serve", "--data", data, "--log-level", "loud"}, exitUsage, "", "use debug, info, warn or error"},
		{[]string{"serve", "--data", data, "--log-format", "xml"}, exitUsage, "", "use text or json"},
		{[]string{"serve", "--data", data, "--log-repeats", "-1s"}, exitUsage, "", "or 0 to write every line"},
		{[]string{"serve", "--data", data, "--listen", "0.0.0.0:0"}, exitUsage, "", "refusing to listen on 0.0.0.0:0 without TLS"},
		{[]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--gossip-listen", "10.1.2.3:7170"}, exitUsage, "", "refusing to listen on 10.1.2.3:7170 without TLS"},
		{[]string{"serve", "--data", data, "--certs-dir", data, "--insecure"}, exitUsage, "", "contradict"},
		{[]string{"serve", "--data", data, "--certs-dir", filepath.Join(data, "none")}, exitUsage, "", "create-ca"},
		{[]string{"serve", "--data", data, "--cluster-id", "prod cluster"}, exitUsage, "", "neither a UUID nor a cluster name"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI("", tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stdout, tt.wantOut) || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("want exit status %d, stdout containing %q, stderr containing %q; got\n%v", tt.wantCode, tt.wantOut, tt.wantErr, r)
			}
		})
	}
	for _, path := range []string{session, data} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("usage errors and help created %s (stat: %v)", path, err)
		}
	}
}

func TestServeRejectsBadRegion(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, region := range []string{"BAD_NAME", "us east", "1region", ""} {
		t.Run(region, func(t *testing.T) {
			r := runCLI("", "serve", "--region", region, "--data", data, "--listen", "127.0.0.1:0")
			if r.code == exitOK || r.stdout != "" || !strings.Contains(r.stderr, "region") || !strings.Contains(r.stderr, "lowercase") {
				t.Errorf("want a non-zero exit status, no readiness line and an error about the region name; got\n%v", r)
			}
			if region != "" && !strings.Contains(r.stderr, region) {
				t.Errorf("the error does not quote the region %q:\n%v", region, r)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused configuration created the data directory (stat: %v)", err)
			}
		})
	}
}

func TestVectorString(t *testing.T) {
	for _, c := range []struct {
		v    map[string]uint64
		want string
	}{
		{nil, "(no writes yet)"},
		{map[string]uint64{"us-east": 3, "eu-west": 12}, "eu-west:12, us-east:3"},
	} {
		if got := vectorString(c.v); got != c.want {
			t.Errorf("vectorString(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}
