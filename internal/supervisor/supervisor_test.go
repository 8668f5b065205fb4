//go:build unix

package supervisor_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/supervisor"
)

// fakeServeEnv, set to 1 in a child's environment, makes the test binary act
// as a fake `causeway serve`: it binds --listen, prints the readiness line and
// waits for a signal. What it does besides depends on the region's name:
//
//	crasher   exits with status 3 soon after it serves
//	failing   writes "boom" to stderr and exits with status 2 before serving
//	stubborn  ignores SIGTERM
//	liar      announces another address than --listen
//	plain     announces http:// even when given --certs-dir
const fakeServeEnv = "CAUSEWAY_SUPERVISOR_FAKE_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeServeEnv) == "1" {
		os.Exit(fakeServe(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeServe(args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintf(os.Stderr, "fake serve: want the serve verb, got %q\n", args)
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	region := fs.String("region", "", "")
	data := fs.String("data", "", "")
	listen := fs.String("listen", "", "")
	fs.String("gossip-listen", "", "")
	fs.String("raft-listen", "", "")
	fs.String("mark", "", "")
	certsDir := fs.String("certs-dir", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	term := make(chan os.Signal, 1)
	if *region == "stubborn" {
		// Not Notify as well: Notify would undo the Ignore.
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	if *region == "failing" {
		fmt.Fprintln(os.Stderr, "boom")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake serve: %v\n", err)
		return 1
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if *region == "liar" {
		addr = "127.0.0.1:1"
	}
	fmt.Fprintf(os.Stderr, "fake serve: region %s starting\n", *region)
	scheme := "http"
	if *certsDir != "" && *region != "plain" {
		scheme = "https"
	}
	fmt.Printf("causeway: region %s serving on %s://%s (data in %s)\n", *region, scheme, addr, *data)
	if *region == "crasher" {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "fake serve: crashing")
		return 3
	}
	<-term
	return 0
}

// newSupervisor returns a supervisor of fake servers with the given regions
// added; every process is killed when the test ends.
func newSupervisor(t *testing.T, onExit func(supervisor.Exit), names ...string) *supervisor.Supervisor {
	t.Helper()
	s := supervisor.New(supervisor.Config{
		Command:      supervisor.Command{Path: os.Args[0], Env: []string{fakeServeEnv + "=1"}},
		StartTimeout: 10 * time.Second,
		OnExit:       onExit,
	})
	t.Cleanup(s.Close)
	addrs, err := supervisor.FreeAddrs(len(names))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		if err := s.Add(supervisor.Region{Name: name, DataDir: t.TempDir(), Addrs: addrs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func start(t *testing.T, s *supervisor.Supervisor, name string) {
	t.Helper()
	if err := s.Start(t.Context(), name, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseServingLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want supervisor.Serving
		ok   bool
	}{
		{"causeway: region us-east serving on http://127.0.0.1:7071 (data in ./data/us-east)",
			supervisor.Serving{Region: "us-east", Addr: "127.0.0.1:7071", DataDir: "./data/us-east"}, true},
		{"causeway: region local serving on http://[::1]:7070 (data in /tmp/a dir)",
			supervisor.Serving{Region: "local", Addr: "[::1]:7070", DataDir: "/tmp/a dir"}, true},
		{"causeway: region us-east serving on https://127.0.0.1:7071 (data in d)",
			supervisor.Serving{Region: "us-east", Addr: "127.0.0.1:7071", DataDir: "d", TLS: true}, true},
		{"causeway: region us-east serving on ftp://127.0.0.1:7071 (data in d)", supervisor.Serving{}, false},
		{"causeway: region us-east serving on http://127.0.0.1:7071", supervisor.Serving{}, false},
		{`{"level":"INFO","msg":"causeway: region x serving on http://a:1 (data in d)"}`, supervisor.Serving{}, false},
		{"", supervisor.Serving{}, false},
	} {
		got, ok := supervisor.ParseServingLine(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseServingLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseWAN(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    supervisor.WAN
		wantErr string
	}{
		{"", supervisor.WAN{}, ""},
		{" us-east/eu-west=40ms , eu-west/ap-southeast=119ms,", supervisor.WAN{
			{"eu-west", "us-east"}: 40 * time.Millisecond, {"ap-southeast", "eu-west"}: 119 * time.Millisecond}, ""},
		{"us-east-eu-west=40ms", nil, `"us-east-eu-west=40ms": want region/region=duration, for example us-east/eu-west=40ms`},
		{"us-east/eu-west", nil, `want region/region=duration`},
		{"/eu-west=40ms", nil, `want region/region=duration`},
		{"us-east/us-east=40ms", nil, `"us-east/us-east=40ms": a region has no link to itself`},
		{"us-east/eu-west=forty", nil, `"us-east/eu-west=forty": time: invalid duration "forty"`},
		{"us-east/eu-west=-1ms", nil, `"us-east/eu-west=-1ms": `},
		{"us-east/eu-west=40ms,eu-west/us-east=50ms", nil, `"eu-west/us-east=50ms": the pair eu-west/us-east is given twice`},
		{"us east/eu-west=40ms", nil, `"us east/eu-west=40ms": `},
	} {
		got, err := supervisor.ParseWAN(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseWAN(%q) error = %v; want one containing %q", tc.in, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("ParseWAN(%q): %v", tc.in, err)
		case fmt.Sprint(got) != fmt.Sprint(tc.want):
			t.Errorf("ParseWAN(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
	w, _ := supervisor.ParseWAN("us-east/eu-west=40ms")
	if w.Delay("us-east", "eu-west") != 40*time.Millisecond || w.Delay("eu-west", "us-east") != 40*time.Millisecond {
		t.Errorf("Delay is not symmetric: %v", w)
	}
	if other, ok := supervisor.PairOf("b", "a").Other("a"); !ok || other != "b" {
		t.Errorf("Other = %q, %v", other, ok)
	}
}

// TestExitIsReportedAndOthersKeepRunning: a region that exits on its own is
// reported once, with its exit status and output, and marked down; the
// other region keeps running.
func TestExitIsReportedAndOthersKeepRunning(t *testing.T) {
	exits := make(chan supervisor.Exit, 4)
	s := newSupervisor(t, func(e supervisor.Exit) { exits <- e }, "steady", "crasher")
	start(t, s, "steady")
	start(t, s, "crasher")
	select {
	case e := <-exits:
		var exit interface{ ExitCode() int }
		if e.Region != "crasher" || !errors.As(e.Err, &exit) || exit.ExitCode() != 3 || !strings.Contains(e.Stderr, "crashing") {
			t.Fatalf("exit = %+v; want crasher with status 3 and its stderr", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the crashed region was not reported")
	}
	if got := s.State("crasher"); got != supervisor.Down {
		t.Errorf("crasher is %s after exiting, want down", got)
	}
	if got := s.State("steady"); got != supervisor.Running {
		t.Errorf("steady is %s, want running", got)
	}
	if err := s.Kill("crasher"); !errors.Is(err, supervisor.ErrDown) {
		t.Errorf("Kill of an exited region = %v, want ErrDown", err)
	}
	// Asked-for exits are not reported.
	if err := s.Kill("steady"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop("steady", time.Second); !errors.Is(err, supervisor.ErrDown) {
		t.Errorf("Stop of a killed region = %v, want ErrDown", err)
	}
	select {
	case e := <-exits:
		t.Errorf("unexpected report %+v", e)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestKillPauseRestartKeepAddress: kill, pause and restart act on the
// region's process, and every start is on the region's own address.
func TestKillPauseRestartKeepAddress(t *testing.T) {
	var mu sync.Mutex
	var reported []supervisor.Exit
	s := newSupervisor(t, func(e supervisor.Exit) { mu.Lock(); reported = append(reported, e); mu.Unlock() }, "a")
	r, _ := s.Region("a")
	start(t, s, "a")
	if err := s.Start(t.Context(), "a", nil); err == nil {
		t.Error("a second Start of a running region succeeded")
	}
	if err := s.Pause("a"); err != nil {
		t.Fatal(err)
	}
	if got := s.State("a"); got != supervisor.Paused {
		t.Fatalf("state after Pause = %s", got)
	}
	if err := s.Pause("a"); err == nil {
		t.Error("Pause of a paused region succeeded")
	}
	if err := s.Resume("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill("a"); err != nil { // SIGKILL ends a stopped process too
		t.Fatalf("Kill of a paused region: %v", err)
	}
	// The port was just released; the restart binds it again.
	if err := s.Restart(t.Context(), "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(t.Context(), "a", []string{"--mark", "x"}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Starts("a"), 3; got != want {
		t.Errorf("Starts = %d, want %d", got, want)
	}
	conn, err := net.Dial("tcp", r.Addrs.API)
	if err != nil {
		t.Fatalf("the restarted region does not listen on its address %s: %v", r.Addrs.API, err)
	}
	conn.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 0 {
		t.Errorf("kills were reported as exits: %+v", reported)
	}
}

// TestStartFailures: a start that exits before serving fails with its
// output, after the configured attempts; a start that announces another
// address fails; a start whose port another process holds fails.
func TestStartFailures(t *testing.T) {
	s := newSupervisor(t, nil, "failing", "liar", "blocked")
	err := s.Start(t.Context(), "failing", nil)
	if err == nil || !strings.Contains(err.Error(), "exited before serving") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Start(failing) = %v; want an exit before serving, with its stderr", err)
	}
	if s.State("failing") != supervisor.Down || s.Starts("failing") != 1 {
		t.Errorf("failing: state %s, %d starts", s.State("failing"), s.Starts("failing"))
	}
	err = s.Start(t.Context(), "liar", nil)
	if err == nil || !strings.Contains(err.Error(), "not region liar on") {
		t.Errorf("Start(liar) = %v; want an address mismatch", err)
	}
	r, _ := s.Region("blocked")
	ln, err := net.Listen("tcp", r.Addrs.API)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The start gives up after its attempts or its StartTimeout, either
	// way with the child's last error; the context only bounds a hang.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := s.Start(ctx, "blocked", nil); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Start on a held port = %v; want the child's bind error", err)
	}
}

// TestStopGraceThenKill: Stop ends a process by SIGTERM within the grace
// period, and kills one that ignores it once the grace period is over.
func TestStopGraceThenKill(t *testing.T) {
	s := newSupervisor(t, nil, "polite", "stubborn", "sleeper")
	for _, name := range []string{"polite", "stubborn", "sleeper"} {
		start(t, s, name)
	}
	forced, err := s.Stop("polite", 5*time.Second)
	if forced || err != nil {
		t.Errorf("Stop(polite) = forced %v, %v; want a clean exit", forced, err)
	}
	began := time.Now()
	forced, err = s.Stop("stubborn", 300*time.Millisecond)
	if !forced || err == nil {
		t.Errorf("Stop(stubborn) = forced %v, %v; want it killed", forced, err)
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Errorf("stubborn was killed after %v, before its grace period", d)
	}
	// A paused process is continued so that it can handle SIGTERM.
	if err := s.Pause("sleeper"); err != nil {
		t.Fatal(err)
	}
	forced, err = s.Stop("sleeper", 5*time.Second)
	if forced || err != nil {
		t.Errorf("Stop(paused sleeper) = forced %v, %v; want a clean exit", forced, err)
	}
	for _, name := range s.Regions() {
		if got := s.State(name); got != supervisor.Down {
			t.Errorf("%s is %s after Stop", name, got)
		}
	}
}

// TestDumpStacksWritesTheGoroutinesToTheOutput: DumpStacks ends a running
// region with SIGQUIT, whose goroutine dump reaches the region's stderr
// output; the region is down afterwards, and the exit is not reported as
// an unexpected one.
func TestDumpStacksWritesTheGoroutinesToTheOutput(t *testing.T) {
	var out lockedBuffer
	var exits atomic.Int32
	s := supervisor.New(supervisor.Config{
		Command:      supervisor.Command{Path: os.Args[0], Env: []string{fakeServeEnv + "=1"}},
		StartTimeout: 10 * time.Second,
		Output:       func(string, int) (io.Writer, io.Writer) { return nil, &out },
		OnExit:       func(supervisor.Exit) { exits.Add(1) },
	})
	t.Cleanup(s.Close)
	addrs, err := supervisor.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(supervisor.Region{Name: "hung", DataDir: t.TempDir(), Addrs: addrs[0]}); err != nil {
		t.Fatal(err)
	}
	start(t, s, "hung")
	if err := s.DumpStacks("hung", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := s.State("hung"); got != supervisor.Down {
		t.Errorf("state after DumpStacks = %s, want down", got)
	}
	if dump := out.String(); !strings.Contains(dump, "SIGQUIT") || !strings.Contains(dump, "goroutine ") {
		t.Errorf("no goroutine dump in the region's stderr:\n%s", dump)
	}
	if n := exits.Load(); n != 0 {
		t.Errorf("%d exits reported for a dump that was asked for", n)
	}
	if err := s.DumpStacks("hung", time.Second); !errors.Is(err, supervisor.ErrDown) {
		t.Errorf("DumpStacks of a region that is down: %v, want ErrDown", err)
	}
}

// lockedBuffer collects a child's output, written from the supervisor's
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
