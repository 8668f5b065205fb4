//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/demo"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// demoCommand runs this test binary as `causeway serve` (see TestMain).
func demoCommand() supervisor.Command {
	return supervisor.Command{Path: os.Args[0], Env: []string{runMainEnv + "=1"}}
}

// startDemo starts the default three-region demo cluster (WAN delays, the
// linearizable tier on every region) and its dashboard handler.
func startDemo(t *testing.T, ctx context.Context) (*demo.Demo, *httptest.Server) {
	t.Helper()
	d, err := demo.Start(ctx, demo.Config{Command: demoCommand(), Regions: defaultRegions, WAN: defaultWAN, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.AwaitLinear(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithCancel(ctx)
	srv := httptest.NewServer(demo.NewHandler(hctx, d))
	t.Cleanup(srv.Close)
	t.Cleanup(cancel) // runs first: ends the event streams, so srv.Close does not wait on them
	return d, srv
}

// do runs a step and fails the test when it cannot be done.
func do(t *testing.T, ctx context.Context, d *demo.Demo, step string) *demo.Result {
	t.Helper()
	a, err := demo.ParseAction(step)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Do(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	return res
}

// dashboardState fetches the dashboard's /api/state.
func dashboardState(t *testing.T, url string) *demo.State {
	t.Helper()
	res, err := http.Get(url + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st demo.State
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func regionState(t *testing.T, st *demo.State, name string) demo.RegionState {
	t.Helper()
	for _, r := range st.Regions {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no region %s in the dashboard's state", name)
	return demo.RegionState{}
}

// TestDemoScripts runs the shipped scenarios the way a person runs them,
// `causeway demo --script NAME --report DIR`, each on its own new cluster:
// every expectation must hold, and the checkers must find no anomaly in
// what the scenario's clients did.
func TestDemoScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	for _, name := range demo.ScenarioNames() {
		t.Run(name, func(t *testing.T) {
			report := t.TempDir()
			var stdout, stderr lockedBuffer
			code := runDemoWith([]string{"--script", name, "--report", report, "--data", t.TempDir()}, &stdout, &stderr, demoCommand())
			if code != exitOK {
				t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"every expectation held", "PASS: no anomalies"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			files := []string{"history.jsonl", "summary.txt", "anomalies.txt", "latency.svg"}
			if name == "partition" { // its clients claim names
				files = append(files, "linearizability.html")
			}
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(report, f)); err != nil {
					t.Errorf("report: %v", err)
				}
			}
		})
	}
}

func TestDemoScriptUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--script", "/no/such.scenario"}, "neither a shipped one"},
		{[]string{"--script", "partition", "--regions", "a,b"}, "no region"},
		{[]string{"--report", "x"}, "--report goes with --script"},
		{[]string{"--listen", "0.0.0.0:0"}, "loopback only"},
		{[]string{"--wan-latency", "a/a=1ms"}, "--wan-latency"},
	} {
		var stdout, stderr lockedBuffer
		code := runDemoWith(tc.args, &stdout, &stderr, demoCommand())
		if code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("causeway demo %v: exit %d, stderr %q; want %d saying %q", tc.args, code, stderr.String(), exitUsage, tc.says)
		}
	}
	var stdout, stderr lockedBuffer
	if code := runDemo([]string{"do", "explode everything"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "unknown step") {
		t.Errorf("causeway demo do with a bad step: exit %d, stderr %q", code, stderr.String())
	}
}

// TestDemoCluster drives one demo cluster through what the dashboard
// shows: its data is the status the CLI shows; a killed region stays down
// and is shown so while the others serve, and comes back and catches up
// when restarted; a scenario whose expectation does not hold fails and
// says which; every control is reachable through `causeway demo do`.
func TestDemoCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d, srv := startDemo(t, ctx)

	t.Run("dashboard agrees with causeway status", func(t *testing.T) {
		do(t, ctx, d, "put probe@us-east agree yes => ok")
		do(t, ctx, d, "wait converged")
		for _, name := range d.Regions() {
			var cli map[string]any
			var dash map[string]any
			// The dashboard polls every 200ms: poll until its copy holds
			// what the CLI prints (the cluster is quiet, so they meet).
			err := supervisor.Poll(ctx, 10*time.Second, func(context.Context) (bool, string) {
				r := runCLI("", "status", "--json", "--addr", d.URL(name), "--session", "",
					"--certs-dir", d.CertsDir(), "--client", supervisor.AdminClient)
				if r.code != exitOK {
					return false, r.String()
				}
				cli = nil
				if err := json.Unmarshal([]byte(r.stdout), &cli); err != nil {
					return false, err.Error()
				}
				rs := regionState(t, dashboardState(t, srv.URL), name)
				dash = nil
				if err := json.Unmarshal(rs.Status, &dash); err != nil {
					return false, err.Error()
				}
				for _, k := range []string{"region", "nodeId", "clusterId", "vector", "pendingWrites", "causalState"} {
					if !jsonEqual(cli[k], dash[k]) {
						return false, k + " differs"
					}
				}
				return jsonEqual(cli["linear"].(map[string]any)["leaderRegion"], dash["linear"].(map[string]any)["leaderRegion"]), "leader differs"
			})
			if err != nil {
				t.Errorf("%s: %v\ncli: %v\ndashboard: %v", name, err, cli, dash)
			}
			if v, _ := cli["vector"].(map[string]any); v["us-east"] != "1" {
				t.Errorf("%s: causeway status shows vector %v, want us-east 1", name, v)
			}
		}
	})

	t.Run("killed region stays down, restart catches up", func(t *testing.T) {
		do(t, ctx, d, "kill eu-west")
		for range 3 { // stays down: the supervisor does not restart it, and the others serve
			if res := do(t, ctx, d, "put alice@us-east missed \"written while eu-west was down\""); !res.OK {
				t.Fatalf("us-east refused a write while eu-west was down: %s", res.Summary())
			}
			if res := do(t, ctx, d, "get bob@ap-southeast agree"); !res.OK {
				t.Fatalf("ap-southeast refused a read while eu-west was down: %s", res.Summary())
			}
			eu := regionState(t, dashboardState(t, srv.URL), "eu-west")
			if eu.Process != "down" || eu.Causal.Serves || !strings.Contains(eu.Causal.Text, "killed") {
				t.Fatalf("the dashboard shows killed eu-west as %s, causal %+v", eu.Process, eu.Causal)
			}
		}
		if res := do(t, ctx, d, "get carol@eu-west agree"); res.OK || res.Code != "connection_refused" {
			t.Errorf("a read in killed eu-west: %s, want connection_refused", res.Summary())
		}
		st := dashboardState(t, srv.URL)
		for _, name := range []string{"us-east", "ap-southeast"} {
			if r := regionState(t, st, name); r.Process != "running" || !r.Causal.Serves {
				t.Errorf("%s is %s, causal %+v while eu-west is down", name, r.Process, r.Causal)
			}
		}
		do(t, ctx, d, "restart eu-west")
		if res := do(t, ctx, d, "wait converged 60s"); !res.OK || res.Vector["us-east"] < 4 {
			t.Fatalf("after the restart: %s", res.Summary())
		}
		if res := do(t, ctx, d, "get carol@eu-west missed"); !res.OK || res.Value != "written while eu-west was down" {
			t.Errorf("restarted eu-west reads %s, want what it missed", res.Summary())
		}
		if eu := regionState(t, dashboardState(t, srv.URL), "eu-west"); eu.Process != "running" {
			t.Errorf("restarted eu-west is shown %s", eu.Process)
		}
	})

	t.Run("a failing expectation fails the scenario", func(t *testing.T) {
		sc, err := demo.ParseScenario("wrong", "put x@us-east k right => ok\nget x@us-east k => value wrong\nget x@us-east k => value right\n")
		if err != nil {
			t.Fatal(err)
		}
		var out lockedBuffer
		rep := demo.RunScenario(ctx, d, sc, &out)
		if rep.OK() || len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "wrong:2:") || !strings.Contains(rep.Failures[0], `want value wrong`) {
			t.Errorf("failures %q, want one, at wrong:2\n%s", rep.Failures, out.String())
		}
	})

	t.Run("causeway demo do", func(t *testing.T) {
		var stdout, stderr lockedBuffer
		code := runDemo([]string{"do", "cut us-east eu-west out", "heal us-east eu-west", "--url", srv.URL}, &stdout, &stderr)
		if code != exitOK || !strings.Contains(stdout.String(), "what us-east sends to eu-west is lost") || !strings.Contains(stdout.String(), "healed") {
			t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
		if !strings.Contains(d.Recording(), "cut us-east eu-west out\nheal us-east eu-west\n") {
			t.Errorf("the recording lacks the steps:\n%s", d.Recording())
		}
	})
}

// TestDemoReplayAndReport replays an uploaded scenario through the
// dashboard's API, as its Replay button does, and runs the checkers as its
// Check history button does.
func TestDemoReplayAndReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, srv := startDemo(t, ctx)
	post := func(path, body string) (int, string) {
		t.Helper()
		res, err := http.Post(srv.URL+path, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := post("/api/scenario", "cut us-east nowhere\n"); code != http.StatusBadRequest || !strings.Contains(body, "no region") {
		t.Errorf("a scenario naming an unknown region: %d %s", code, body)
	}
	if code, body := post("/api/scenario?name=nothing", ""); code != http.StatusBadRequest || !strings.Contains(body, "photo-acl") {
		t.Errorf("an unknown shipped scenario: %d %s", code, body)
	}
	// Twice: the second run reuses the session names with fresh tokens,
	// which the checkers must see as new sessions (no false anomaly).
	scenario := "say replaying\nput up@us-east replayed yes => ok\nclaim up@eu-west users/replayer up => ok\nwait converged\nget up@eu-west replayed => value yes\n"
	for run := 1; run <= 2; run++ {
		code, body := post("/api/scenario", scenario)
		if code != http.StatusAccepted {
			t.Fatalf("replay %d: %d %s", run, code, body)
		}
		err := supervisor.Poll(ctx, 60*time.Second, func(context.Context) (bool, string) {
			held := 0
			for _, e := range dashboardState(t, srv.URL).Events {
				if strings.HasPrefix(e.Text, "scenario uploaded:") {
					if !strings.Contains(e.Text, "every expectation held") {
						t.Fatal(e.Text)
					}
					held++
				}
			}
			return held == run, fmt.Sprintf("%d runs ended", held)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, body := post("/api/report", "")
	if code != http.StatusOK || !strings.Contains(body, "PASS: no anomalies") {
		t.Fatalf("report: %d %s", code, body)
	}
	var ans struct{ Result demo.Result }
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimPrefix(strings.SplitN(ans.Result.Text, "\n", 2)[0], "report in ")
	for _, f := range []string{"history.jsonl", "latency.svg", "linearizability.html", "summary.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("report: %v", err)
		}
	}
}

func jsonEqual(a, b any) bool {
	ma, aok := a.(map[string]any)
	mb, bok := b.(map[string]any)
	if aok && bok {
		return maps.EqualFunc(ma, mb, jsonEqual)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// processesUsing lists the processes whose command line names dir.
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended meanwhile
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, dir) {
			out = append(out, cmd)
		}
	}
	return out
}

// TestDemoInterruptLeavesNothing runs `causeway demo` as a person does,
// dashboard and all, interrupts it as Ctrl-C does (SIGINT), and checks it
// exits 0 and no region process is left.
func TestDemoInterruptLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to list processes")
	}
	data := t.TempDir()
	stdoutR, stdoutW := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- runDemoWith([]string{"--listen", "127.0.0.1:0", "--data", data}, stdoutW, &stderr, demoCommand())
		stdoutW.Close()
	}()
	var url string
	var out strings.Builder
	sc := bufio.NewScanner(stdoutR)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Dashboard: "); ok {
			url = rest
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	if url == "" {
		t.Fatalf("no dashboard line; stdout:\n%s\nstderr:\n%s\nexit %d", out.String(), stderr.String(), <-done)
	}
	if res, err := http.Get(url + "/"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the dashboard at %s: %v %v", url, res, err)
	} else {
		res.Body.Close()
	}
	if n := len(processesUsing(t, data)); n != 3 {
		t.Fatalf("%d processes use %s, want the 3 regions", n, data)
	}
	// The demo's signal.NotifyContext is listening now (it was set up
	// before the dashboard line was printed), so SIGINT reaches it, not
	// the test binary's default handler.
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit status %d after SIGINT; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("causeway demo did not stop within 60s of SIGINT")
	}
	if left := processesUsing(t, data); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
}
