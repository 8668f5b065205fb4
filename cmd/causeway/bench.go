package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/causewaydb/causeway/internal/supervisor"
	"github.com/causewaydb/causeway/internal/wanbench"
)

// benchCommand is how `causeway bench` runs `causeway serve`: this binary.
// Tests replace it with the test binary re-executed as causeway.
var benchCommand = func() (supervisor.Command, error) {
	exe, err := os.Executable()
	return supervisor.Command{Path: exe}, err
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	wan := fs.String("wan", "aws3", "WAN layout: a preset ("+strings.Join(wanbench.PresetNames(), ", ")+") or a matrix file (lines \"REGION REGION RTT\", see --help)")
	addr := fs.String("addr", "", "benchmark an existing cluster instead of starting one: region=host:port,... (its regions must be those of --wan, which gives the floors; with TLS, give --certs-dir and --client or --token)")
	creds := addCredentialFlags(fs)
	quick := fs.Bool("quick", false, "1s per row instead of 8s: about a minute and a half on 2 cores")
	phase := fs.Duration("phase", 0, "how long each row runs (default 8s, or 1s with --quick)")
	out := fs.String("out", "", "write results.json, report.md and SVG plots into this directory")
	etcd := fs.String("etcd", "", "etcd server binary for the peer rows (default: etcd on PATH or /usr/bin/etcd); \"none\" skips them")
	clients := fs.String("clients", "1,64", "closed-loop clients per region, comma-separated")
	rate := fs.Float64("rate", 100, "open-loop arrivals per second per region, causal tier")
	linearRate := fs.Float64("linear-rate", 10, "open-loop arrivals per second per region, linearizable tier and etcd")
	insecure := fs.Bool("insecure", false, "run the embedded cluster, and etcd, in plain HTTP (by default both run with TLS and client certificates, on certificates created in the data directory)")
	data := fs.String("data", "", "keep the cluster's and etcd's data and logs here (default: a temporary directory, removed)")
	progress := fs.Bool("progress", true, "show a progress bar on stderr")
	note := fs.String("note", "", "a line for the top of report.md (the machine class, for example)")
	replot := fs.String("replot", "", "read DIR/results.json and write its report.md and plots again (after a change to them), running nothing")
	faults := fs.Bool("faults", false, "run the fault timeline instead: causal Puts and linear Claims in every region while the last region is partitioned, healed, killed and restarted, clock-skewed; throughput, latency and visibility over time")
	scale := fs.Bool("scale", false, "run the region sweep instead: aws3, aws5, aws7 in turn (--scale-wan), every region writing at once; throughput and visibility per region count")
	scaleWAN := fs.String("scale-wan", "", "with --scale: the WAN layouts to sweep, in order, comma-separated presets or matrix files (default aws3,aws5,aws7)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: causeway bench [flags]

The WAN latency benchmark: what each of Causeway's guarantees costs across
continents, beside etcd. It starts one `+"`causeway serve`"+` per region on 127.0.0.1
under an emulated WAN (each node delays what it sends to a region by half the
pair's round trip), and an etcd cluster with one member per region whose
member-to-member traffic crosses the same delays, then measures from every
region, at once: the causal tier's Put, Get, ReadMany, WriteMany, the first
read after a session moves region and a unique-guarded Put; visibility
latency per region pair; YCSB's workloads A, B and E (short scans) on
Zipfian keys; the linearizable tier's Claim, CompareAndSet,
linearizable Get and Lock beside their physical floor; and etcd's Put,
linearizable Get and put-if-absent. Each at 1 and 64 closed-loop clients and
in open loop at a fixed arrival rate (latency from the scheduled send time).
It prints markdown tables; --out also writes results.json, report.md and plots.

The embedded cluster runs with TLS, as `+"`causeway cluster`"+` does: a cluster CA, a
node certificate per region and an admin client certificate are created
under the data directory (--data, or a temporary one); the nodes talk mutual
TLS and the benchmark's clients present the admin certificate. etcd then runs
with client and peer TLS on certificates from the same CA (its delay proxies
terminate TLS to know which member calls), and its clients present the admin
certificate too. --insecure runs both in plain HTTP. The report says which.

Presets (round trips measured between AWS regions, see docs/bench/README.md):
  aws3  us-east, eu-west, ap-southeast
  aws5  + us-west, ap-northeast
  aws7  + eu-central, au-southeast

A matrix file names every pair once with its round trip (a duration or ms):
  # REGION   REGION        RTT
  us-east    eu-west       80ms
  us-east    ap-southeast  217
  eu-west    ap-southeast  239

--faults runs the fault timeline alone: causal Puts and linear Claims in open
loop in every region while the last region is partitioned from the others,
healed, killed and restarted, then restarted with its clock skewed;
throughput, latency and visibility latency (per pair group: into the faulted
region, from it, between the others) per second, fault periods shaded in
the plots.

--scale runs the region sweep alone (aws3, then aws5, then aws7, each a fresh
cluster with every region writing at once): does throughput per region and
visibility latency stay flat as regions are added? --scale-wan picks other
layouts to sweep (presets or matrix files, comma-separated).

Without etcd installed (apt-get install -y etcd-server) the etcd rows are
skipped with a message. The default run takes about 8 minutes on 2 cores.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if *replot != "" {
		b, err := os.ReadFile(filepath.Join(*replot, "results.json"))
		if err != nil {
			fmt.Fprintf(stderr, "causeway bench: --replot: %v\n", err)
			return exitUsage
		}
		var res wanbench.Results
		if err := json.Unmarshal(b, &res); err != nil {
			fmt.Fprintf(stderr, "causeway bench: --replot: %s/results.json: %v\n", *replot, err)
			return exitUsage
		}
		if err := wanbench.WriteDir(*replot, &res, reportNotes(res.Machine)); err != nil {
			fmt.Fprintf(stderr, "causeway bench: --replot: %v\n", err)
			return exitFailed
		}
		wanbench.WriteTable(stdout, &res)
		return exitOK
	}
	m, err := wanbench.LoadMatrix(*wan)
	if err != nil {
		fmt.Fprintf(stderr, "causeway bench: --wan: %v\n", err)
		return exitUsage
	}
	cfg := wanbench.Config{
		Matrix: m, Addr: *addr, Phase: *phase, Etcd: *etcd, DataDir: *data,
		CausalRate: *rate, LinearRate: *linearRate, Log: stderr, Insecure: *insecure,
	}
	if *insecure && *addr != "" {
		fmt.Fprintln(stderr, "causeway bench: --insecure is for the embedded cluster; an --addr cluster is called with TLS when --certs-dir is given, in plain HTTP otherwise")
		return exitUsage
	}
	if creds.certsDir != "" || creds.client != "" || creds.token != "" {
		if *addr == "" {
			fmt.Fprintln(stderr, "causeway bench: --certs-dir, --client and --token are for an --addr cluster (the embedded one needs none)")
			return exitUsage
		}
		client, err := creds.benchClient()
		if err != nil {
			fmt.Fprintf(stderr, "causeway bench: %v\n", err)
			return exitUsage
		}
		cfg.AddrHTTP, cfg.AddrTLS = client, true
	}
	for c := range strings.SplitSeq(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil {
			fmt.Fprintf(stderr, "causeway bench: --clients %q: want numbers such as 1,64\n", *clients)
			return exitUsage
		}
		cfg.Clients = append(cfg.Clients, n)
	}
	if *faults && (*scale || *addr != "") {
		fmt.Fprintln(stderr, "causeway bench: --faults needs the embedded cluster and runs alone (not with --scale or --addr)")
		return exitUsage
	}
	cfg.Faults = *faults
	if *scale {
		if *addr != "" {
			fmt.Fprintln(stderr, "causeway bench: --scale starts its own clusters; it cannot run with --addr")
			return exitUsage
		}
		layouts := wanbench.PresetNames()
		if *scaleWAN != "" {
			layouts = strings.Split(*scaleWAN, ",")
		}
		for _, spec := range layouts {
			p, err := wanbench.LoadMatrix(strings.TrimSpace(spec))
			if err != nil {
				fmt.Fprintf(stderr, "causeway bench: --scale-wan: %v\n", err)
				return exitUsage
			}
			cfg.Scale = append(cfg.Scale, p)
		}
	} else if *scaleWAN != "" {
		fmt.Fprintln(stderr, "causeway bench: --scale-wan names the layouts of the region sweep: give it with --scale")
		return exitUsage
	}
	cfg.Defaults(*quick)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "causeway bench: %v\n", err)
		return exitUsage
	}
	if *progress {
		if f, ok := stderr.(*os.File); ok {
			cfg.Progress = f
		}
	}
	if *addr == "" {
		if cfg.Command, err = benchCommand(); err != nil {
			fmt.Fprintf(stderr, "causeway bench: %v\n", err)
			return exitFailed
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	before := loadavg()
	res, err := wanbench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "causeway bench: %v\n", err)
		return exitFailed
	}
	res.Machine = map[string]string{
		"loadavg_before": before,
		"loadavg_after":  loadavg(),
		"cpus":           strconv.Itoa(numCPU()),
		"command":        benchCommandLine(args),
	}
	wanbench.WriteTable(stdout, res)
	if *out != "" {
		if *note != "" {
			res.Machine["note"] = *note
		}
		if err := wanbench.WriteDir(*out, res, reportNotes(res.Machine)); err != nil {
			fmt.Fprintf(stderr, "causeway bench: --out: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stderr, "causeway bench: wrote %s/results.json, report.md and plots (took %s)\n", *out, res.Finished.Sub(res.Started).Round(time.Second))
	}
	return exitOK
}

// loadavg is /proc/loadavg's first three fields ("" where there is none).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func numCPU() int { return runtime.NumCPU() }

// notePlaceholder stands for --note's value in the recorded command: the
// note itself heads report.md once, not twice.
const notePlaceholder = "<the note above>"

// benchCommandLine is the command as report.md records it: each argument
// shell-quoted where it needs to be, and --note's value (printed above the
// command) replaced by notePlaceholder.
func benchCommandLine(args []string) string {
	words := []string{"causeway", "bench"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		isFlag := strings.HasPrefix(a, "-") && name == "note"
		switch {
		case isFlag && hasValue:
			words = append(words, "--note="+shellQuote(notePlaceholder))
		case isFlag && i+1 < len(args):
			words = append(words, a, shellQuote(notePlaceholder))
			i++
		default:
			words = append(words, shellQuote(a))
		}
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// characters that need none.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,/:@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reportNotes is the top of report.md: the note, the command, the machine.
// A command recorded before the note was elided from it (it repeats the
// note verbatim) shows the placeholder instead, so a --replot of an older
// run shows the note once too.
func reportNotes(m map[string]string) string {
	command := m["command"]
	if note := m["note"]; note != "" {
		command = strings.ReplaceAll(command, note, notePlaceholder)
	}
	notes := fmt.Sprintf("Command: `%s`. Machine: %s CPUs; load average (/proc/loadavg) before %s, after %s.",
		command, m["cpus"], m["loadavg_before"], m["loadavg_after"])
	if m["note"] != "" {
		notes = m["note"] + "\n\n" + notes
	}
	return notes
}
