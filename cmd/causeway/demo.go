package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/causewaydb/causeway/internal/demo"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// exitScenarioFailed is the exit status of `causeway demo --script` when an
// expectation of the scenario did not hold.
const exitScenarioFailed = 4

const demoUsage = `Usage: causeway demo [flags]
       causeway demo do STEP... [--url URL]

Starts a local three-region cluster (one real ` + "`causeway serve`" + ` process per
region on 127.0.0.1, TLS on unless --insecure, emulated WAN delays, fault
injection on, the linearizable tier on every region) and a live dashboard at --listen, where
you cut and heal links, kill, pause and restart regions, skew clocks, and act
as clients of every region. Ctrl-C stops everything.

With --script NAME|FILE it runs a scenario in the terminal instead, narrating
each step, and exits 0 when every expectation held, 4 otherwise. Shipped
scenarios: %s. --report DIR then runs the checkers of
` + "`causeway verify`" + ` over what the scenario's clients did.

"causeway demo do" sends one step (the scenario syntax, e.g. "isolate
ap-southeast", "kill eu-west", "put alice@us-east k v") to a running demo's
dashboard, so that every control is also a command.

Flags:
`

func runDemo(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "do" {
		return runDemoDo(args[1:], stdout, stderr)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "causeway demo: %v\n", err)
		return exitFailed
	}
	return runDemoWith(args, stdout, stderr, supervisor.Command{Path: exe})
}

func runDemoWith(args []string, stdout, stderr io.Writer, command supervisor.Command) int {
	fs := flag.NewFlagSet("causeway demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	regions := fs.String("regions", strings.Join(defaultRegions, ","), "comma-separated region names, one process each")
	wan := fs.String("wan-latency", defaultWAN, "one-way delays between regions (a/b=40ms,...); \"\" for none")
	data := fs.String("data", "", "directory for the regions' data, logs and the clients' history (default: a temporary directory, removed at exit)")
	listen := fs.String("listen", "127.0.0.1:8080", "loopback address of the dashboard")
	script := fs.String("script", "", "run this scenario (a shipped name or a file) in the terminal, without the dashboard")
	report := fs.String("report", "", "with --script: run the checkers over the clients' history and write the report into this directory")
	noLinear := fs.Bool("no-linear", false, "run without the linearizable tier")
	insecure := fs.Bool("insecure", false, "run the regions without TLS or authentication (by default they run with TLS on certificates created in DATA/certs)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, demoUsage, strings.Join(demo.ScenarioNames(), ", "))
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	names := splitRegions(*regions)
	if len(names) < 1 {
		fmt.Fprintln(stderr, "causeway demo: --regions: no regions")
		return exitUsage
	}
	if _, err := supervisor.ParseWAN(*wan); err != nil {
		fmt.Fprintf(stderr, "causeway demo: --wan-latency: %v\n", err)
		return exitUsage
	}
	if *report != "" && *script == "" {
		fmt.Fprintln(stderr, "causeway demo: --report goes with --script")
		return exitUsage
	}
	var sc *demo.Scenario
	if *script != "" {
		var err error
		if sc, err = demo.LoadScenario(*script); err != nil {
			fmt.Fprintf(stderr, "causeway demo: %v\n", err)
			return exitUsage
		}
		if err := sc.Check(names); err != nil {
			fmt.Fprintf(stderr, "causeway demo: %v\n", err)
			return exitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The dashboard's address is taken before any region starts, so a
	// busy or non-loopback address fails at once.
	var ln net.Listener
	if sc == nil {
		l, err := demo.Listen(*listen)
		if err != nil {
			fmt.Fprintf(stderr, "causeway demo: %v\n", err)
			return exitUsage
		}
		ln = l
		defer ln.Close()
	}
	dir := *data
	if dir == "" {
		tmp, err := os.MkdirTemp("", "causeway-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "causeway demo: %v\n", err)
			return exitFailed
		}
		dir = tmp
		defer os.RemoveAll(tmp)
	}
	id, err := clusterID(dir, "")
	if err != nil {
		fmt.Fprintf(stderr, "causeway demo: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "causeway demo: starting %d regions (%s); data in %s, the regions' logs in %s\n", len(names), strings.Join(names, ", "), dir, filepath.Join(dir, "logs"))
	d, err := demo.Start(ctx, demo.Config{
		Command: command, Regions: names, WAN: *wan, DataDir: dir, ClusterID: id, NoLinear: *noLinear, Insecure: *insecure,
	})
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "causeway demo: %v\n", err)
		return exitFailed
	}
	defer d.Close()
	// Every region a voter before anyone acts, so that a partition
	// leaves a majority that can still grant names.
	if err := d.AwaitLinear(ctx, 2*time.Minute); err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "causeway demo: the linearizable tier did not form: %v\n", err)
		return exitFailed
	}
	if sc != nil {
		return runScript(ctx, d, sc, *report, stdout, stderr)
	}
	srv := &http.Server{Handler: demo.NewHandler(ctx, d), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintf(stdout, "\n  Dashboard: http://%s\n\n", ln.Addr())
	for _, name := range names {
		fmt.Fprintf(stdout, "  %-14s %s   (causeway status --addr %s)\n", name, d.URL(name), d.URL(name))
	}
	if certs := d.CertsDir(); certs != "" {
		abs, _ := filepath.Abs(certs)
		fmt.Fprintf(stdout, "\n  The regions run with TLS; talk to them as the demo's admin:\n    export CAUSEWAY_CERTS_DIR=%s CAUSEWAY_CLIENT=%s\n", abs, supervisor.AdminClient)
	}
	fmt.Fprintf(stdout, "\n  Every control is also a command: causeway demo do \"isolate %s\" --url http://%s\n", names[len(names)-1], ln.Addr())
	fmt.Fprintln(stdout, "  Ctrl-C stops every region.")
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "causeway demo: stopping...")
		return exitOK
	case err := <-served:
		fmt.Fprintf(stderr, "causeway demo: dashboard: %v\n", err)
		return exitFailed
	}
}

func splitRegions(s string) []string {
	var out []string
	for n := range strings.SplitSeq(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// runScript runs a scenario, narrated, and its report when asked.
func runScript(ctx context.Context, d *demo.Demo, sc *demo.Scenario, report string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "causeway demo: scenario %s, %d steps\n\n", sc.Name, len(sc.Steps))
	rep := demo.RunScenario(ctx, d, sc, stdout)
	code := exitOK
	if report != "" {
		dir, summary, err := d.Report(report)
		fmt.Fprintf(stdout, "\n%s", summary)
		if err != nil {
			fmt.Fprintf(stderr, "causeway demo: report: %v\n", err)
			code = exitScenarioFailed
		} else {
			fmt.Fprintf(stdout, "causeway demo: report in %s\n", dir)
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "causeway demo: interrupted")
		return exitFailed
	}
	if !rep.OK() {
		fmt.Fprintf(stderr, "\ncauseway demo: scenario %s: %d of %d steps failed:\n", sc.Name, len(rep.Failures), rep.Steps)
		for _, f := range rep.Failures {
			fmt.Fprintf(stderr, "  %s\n", f)
		}
		return exitScenarioFailed
	}
	fmt.Fprintf(stdout, "\ncauseway demo: scenario %s: all %d steps done, every expectation held\n", sc.Name, rep.Steps)
	return code
}

// runDemoDo sends steps to a running demo's dashboard.
func runDemoDo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway demo do", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr("CAUSEWAY_DEMO", "http://127.0.0.1:8080"), "the running demo's dashboard (env CAUSEWAY_DEMO)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: causeway demo do STEP... [--url URL]\n\nEach STEP is one scenario line, quoted as one argument; the steps run in order,\nand the first that fails or is refused ends the command (exit status 3), e.g.\n  causeway demo do \"isolate ap-southeast\" \"claim bob@ap-southeast users/neo bob\"\n\nFlags:\n")
		fs.PrintDefaults()
	}
	steps, err := parseInterspersed(fs, args)
	switch {
	case isHelp(err):
		return exitOK
	case err != nil:
		return exitUsage
	case len(steps) == 0:
		fmt.Fprintln(stderr, "causeway demo do: no step given (try: causeway demo do \"heal-all\")")
		return exitUsage
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	for _, step := range steps {
		if _, err := demo.ParseAction(step); err != nil {
			fmt.Fprintf(stderr, "causeway demo do: %q: %v\n", step, err)
			return exitUsage
		}
		res, err := client.Post(strings.TrimRight(*url, "/")+"/api/step", "text/plain", strings.NewReader(step))
		if err != nil {
			fmt.Fprintf(stderr, "causeway demo do: is the demo running at %s? %v\n", *url, err)
			return exitFailed
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if err != nil {
			fmt.Fprintf(stderr, "causeway demo do: %v\n", err)
			return exitFailed
		}
		var ans struct {
			Result *demo.Result `json:"result"`
			Error  string       `json:"error"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			fmt.Fprintf(stderr, "causeway demo do: %s answered %s: %s\n", *url, res.Status, bytes.TrimSpace(body))
			return exitFailed
		}
		if ans.Error != "" {
			fmt.Fprintf(stderr, "causeway demo do: %s: %s\n", step, ans.Error)
			return exitFailed
		}
		if *asJSON {
			fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(body))
		} else {
			fmt.Fprintf(stdout, "%s: %s\n", step, ans.Result.Summary())
		}
		if !ans.Result.OK {
			return exitFailed
		}
	}
	return exitOK
}
