package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/linear"
)

// withLinearVoter runs the linearizable tier on the node, as its only voter.
func withLinearVoter(c *process.Config) {
	c.Linear = &process.LinearConfig{Role: linear.RoleVoter, BindAddr: "127.0.0.1:0", Bootstrap: true}
}

// TestCLILinearVerbs walks the linearizable tier's verbs through the CLI:
// claims, a Put guarded by a unique constraint, CAS, and a lock whose
// fencing token guards causal writes.
func TestCLILinearVerbs(t *testing.T) {
	s := newSession(t, startNode(t, withLinearVoter))
	pollUntil(t, 20*time.Second, "the linearizable tier to elect its leader", func() bool {
		var st v1.StatusResponse
		r := s.run("", "status", "--json")
		if r.code != exitOK {
			return false
		}
		decodeJSON(t, r, &st)
		return st.Linear.GetAvailable()
	})
	type step struct {
		args       []string
		wantCode   int
		wantStdout string // regexp
		wantStderr string // regexp; "" means no stderr
	}
	run := func(st step) cliResult {
		t.Helper()
		r := s.run("", st.args...)
		if r.code != st.wantCode || !regexp.MustCompile(st.wantStdout).MatchString(r.stdout) ||
			(st.wantStderr == "" && r.stderr != "") || !regexp.MustCompile(st.wantStderr).MatchString(r.stderr) {
			t.Fatalf("want exit %d, stdout ~ %q, stderr ~ %q; got\n%v", st.wantCode, st.wantStdout, st.wantStderr, r)
		}
		return r
	}
	for _, st := range []step{
		{[]string{"claim", "email/a@b.example", "alice"}, exitOK, `^OK email/a@b.example claimed by alice \(version \d+\)\n$`, ""},
		{[]string{"claim", "email/a@b.example", "bob"}, exitFailed, `^$`, `already_exists: .*already claimed by "alice"`},
		{[]string{"lookup", "email/a@b.example"}, exitOK, `held by alice`, ""},
		{[]string{"lookup", "email/nobody@b.example"}, exitNotFound, `not claimed`, ""},
		{[]string{"claim", "no-slash", "x"}, exitUsage, `^$`, `want NAMESPACE/NAME`},
		// A Put whose unique value is taken writes nothing.
		{[]string{"put", "user:bob", "bob", "--unique", "email=a@b.example"}, exitFailed, `^$`, `already_exists`},
		{[]string{"get", "user:bob"}, exitNotFound, `not found`, ""},
		{[]string{"put", "user:carol", "carol", "--unique", "email=c@b.example"}, exitOK, `^OK user:carol`, ""},
		{[]string{"lookup", "email/c@b.example"}, exitOK, `held by user:carol`, ""},
		{[]string{"put", "user:dave", "dave", "--unique", "email"}, exitUsage, `^$`, `NAMESPACE=NAME`},
		// Compare-and-set.
		{[]string{"cas", "config", "v1", "--expect-version", "0"}, exitOK, `^OK config  version \d+\n$`, ""},
		{[]string{"cas", "config", "v2", "--expect-version", "0"}, exitFailed, `^$`, `aborted`},
		{[]string{"cas", "config", "v2", "--expect-value", "v1"}, exitOK, `^OK config`, ""},
		{[]string{"cas-get", "config"}, exitOK, `^v2\n\(version \d+\)\n$`, ""},
		{[]string{"cas-get", "missing"}, exitNotFound, `not found`, ""},
	} {
		run(st)
	}

	// A lock's fencing token guards causal writes: once a newer token was
	// issued, a write with the old one is refused.
	var lease v1.GrantLeaseResponse
	decodeJSON(t, run(step{[]string{"lease", "grant", "30s", "--json"}, exitOK, `leaseId`, ""}), &lease)
	id := strconv.FormatUint(lease.LeaseId, 10)
	var first, second v1.LockResponse
	decodeJSON(t, run(step{[]string{"lock", "jobs/1", "--lease", id, "--json"}, exitOK, `fencingToken`, ""}), &first)
	old := "jobs/1:" + strconv.FormatUint(first.FencingToken, 10)
	run(step{[]string{"put", "jobs/1/out", "a", "--fence", old}, exitOK, `^OK`, ""})
	run(step{[]string{"unlock", "jobs/1", "--lease", id}, exitOK, `unlocked`, ""})
	decodeJSON(t, run(step{[]string{"lock", "jobs/1", "--lease", id, "--json"}, exitOK, `fencingToken`, ""}), &second)
	if second.FencingToken <= first.FencingToken {
		t.Fatalf("second fencing token %d not above the first %d", second.FencingToken, first.FencingToken)
	}
	run(step{[]string{"put", "jobs/1/out", "late", "--fence", old}, exitFailed, `^$`, `failed_precondition: fencing token \d+ for lock "jobs/1" is stale`})
	run(step{[]string{"del", "jobs/1/out", "--fence", old}, exitFailed, `^$`, `failed_precondition`})
	run(step{[]string{"get", "jobs/1/out"}, exitOK, `^a\n`, ""})
	run(step{[]string{"cas", "jobs/1/result", "late", "--fence", old}, exitFailed, `^$`, `failed_precondition`})
	run(step{[]string{"put", "jobs/1/out", "b", "--fence", "jobs/1:" + strconv.FormatUint(second.FencingToken, 10)}, exitOK, `^OK`, ""})
	run(step{[]string{"lease", "revoke", id}, exitOK, `revoked`, ""})
	run(step{[]string{"lease", "keepalive", id}, exitNotFound, `^$`, `not_found`})
	run(step{[]string{"status"}, exitOK, `linear tier      available\n  role           voter, leader`, ""})

	res, err := http.Get(s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`causeway_linear_available{region="cli"} `, `causeway_linear_leader{region="cli"} 1`, `causeway_linear_reachable_voters{region="cli"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`causeway_linear_available\{[^}]*\} 1\n`).Match(body) {
		t.Errorf("/metrics does not report the tier available:\n%s", regexp.MustCompile(`(?m)^causeway_linear.*$`).FindAll(body, -1))
	}
}
