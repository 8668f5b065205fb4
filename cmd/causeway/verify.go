package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/causewaydb/causeway/internal/campaign"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// Exit status of `causeway verify` when a checker found an anomaly (the
// campaign ran; the store broke a promise).
const exitAnomalies = 1

const verifyUsage = `Usage: causeway verify [flags]

Runs a fault campaign against both tiers: starts a local cluster (one
` + "`causeway serve`" + ` process per region on 127.0.0.1, fault injection on,
every region a voter of the linearizable tier), runs concurrent clients
against every region for --duration while a nemesis cuts and heals links,
adds WAN delay and jitter, kills and restarts regions, pauses them
(SIGSTOP/SIGCONT), skews their clocks beyond the max offset, and wipes a
region's data directory (once its writes live elsewhere) and brings it
back with --join as the README says, on a schedule drawn from --seed.
Causal clients carry sessions between regions and hand them to one another;
linear clients stay in their region (where the minority side of a partition
must answer unavailable) and claim names, compare-and-set registers, read
them, and take locks whose fencing tokens guard writes, some sent late with
a stale token. Every fault heals before the end; clients run on for a
while, stop, and once replication converged every region is read. Checkers
then judge the recorded history alone: session guarantees and causal
visibility, atomic multi-key writes, no acknowledged write lost, no write
applied twice, identical data in every region; linearizability of claims
and registers (porcupine, whose visualisation of a failure is written to
the report), fencing tokens strictly increasing and stale-token writes
refused. The summary shows each tier's availability during faults.

The history (history.jsonl: invoke/ok/fail/info per operation), the fault
plan, the regions' logs, the anomalies and the summary go to --report.
--check FILE judges a recorded history again (files such as the
visualisation go to --report, default FILE's directory).

Exit status: 0 when no anomaly was found, 1 when some were, 2 on usage
errors, 3 when the campaign could not run (or was interrupted).

Flags:
`

func runVerify(args []string, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "causeway verify: %v\n", err)
		return exitFailed
	}
	return runVerifyWith(args, stdout, stderr, campaign.ServerCommand{Path: exe})
}

// runVerifyWith runs `causeway verify` with server as the command that
// starts `causeway serve` (tests pass their own binary).
func runVerifyWith(args []string, stdout, stderr io.Writer, server campaign.ServerCommand) int {
	fs := flag.NewFlagSet("causeway verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 60*time.Second, "how long clients run; faults during the first part, the rest (a fifth, 3s to 10s) fault-free")
	regions := fs.String("regions", strings.Join(defaultRegions, ","), "comma-separated region names, one process each")
	wan := fs.String("wan-latency", defaultWAN, "base one-way delays between regions (a/b=40ms,...); \"\" for none")
	clients := fs.Int("clients", 3, "client sessions started in each region")
	keys := fs.Int("keys", 8, "size of the key set (small, so that writes conflict)")
	chains := fs.Int("chains", 0, "photo/comment chains: a writer hands its token to a commenter in the next region, an observer in a third takes snapshots (0: one per region, -1: none)")
	seed := fs.Uint64("seed", 0, "seed of the fault plan and of the clients' choices (0: a random seed, printed)")
	faults := fs.String("faults", "all", "faults to inject: partition,cut,delay,kill,pause,skew,wipe, all or none")
	maxSkew := fs.Duration("max-skew", 10*time.Second, "largest clock skew injected (either direction)")
	timeout := fs.Duration("request-timeout", 2*time.Second, "deadline of one client request")
	pace := fs.Duration("pace", 0, "pause between two operations of one client (default: 10ms, longer for long campaigns so that one records at most about 300,000 operations; linear clients pause at least 50ms)")
	report := fs.String("report", "", "report directory (default ./verify-report/<timestamp>)")
	basePort := fs.Int("base-port", 0, "API port of the first region, the others following (gossip on API+100); 0 picks free ports")
	keepData := fs.Bool("keep-data", false, "keep the regions' data directories (always kept when anomalies are found)")
	recheck := fs.String("check", "", "check an existing history (a history.jsonl) instead of running a campaign")
	linearOn := fs.Bool("linear", true, "run the linearizable tier (every region a voter) with its workload and checkers; --linear=false for the causal tier alone")
	linearClients := fs.Int("linear-clients", 2, "linear-tier clients in each region")
	unsafeSkip := fs.Bool("unsafe-skip-dependencies", false, "test hook: start the regions with causal dependencies ignored (CAUSEWAY_UNSAFE_SKIP_DEPENDENCIES), to show the checkers catch it")
	fs.Usage = func() {
		fmt.Fprint(stderr, verifyUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if *recheck != "" {
		dir := *report
		if dir == "" {
			dir = filepath.Dir(*recheck)
		}
		return recheckHistory(*recheck, dir, stdout, stderr)
	}

	kinds, err := campaign.ParseFaults(*faults)
	if err != nil {
		fmt.Fprintf(stderr, "causeway verify: --faults: %v\n", err)
		return exitUsage
	}
	var names []string
	for _, r := range strings.Split(*regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			names = append(names, r)
		}
	}
	switch {
	case len(names) == 0:
		fmt.Fprintln(stderr, "causeway verify: --regions: no regions")
		return exitUsage
	case *duration < 5*time.Second:
		fmt.Fprintf(stderr, "causeway verify: --duration %v: at least 5s\n", *duration)
		return exitUsage
	case *clients < 1 || *keys < 2 || *keys > 128:
		fmt.Fprintln(stderr, "causeway verify: --clients must be at least 1 and --keys between 2 and 128")
		return exitUsage
	case *linearOn && *linearClients < 1:
		fmt.Fprintln(stderr, "causeway verify: --linear-clients must be at least 1")
		return exitUsage
	case *maxSkew < 0 || *maxSkew > time.Hour:
		fmt.Fprintf(stderr, "causeway verify: --max-skew %v: between 0 and 1h\n", *maxSkew)
		return exitUsage
	case *timeout <= 0:
		fmt.Fprintln(stderr, "causeway verify: --request-timeout must be positive")
		return exitUsage
	}
	if _, err := supervisor.ParseWAN(*wan); err != nil {
		fmt.Fprintf(stderr, "causeway verify: --wan-latency: %v\n", err)
		return exitUsage
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	if *pace == 0 {
		// Besides the clients, each chain has a writer and an observer.
		nChains := *chains
		if nChains == 0 {
			nChains = len(names)
		}
		*pace = defaultPace(*duration, len(names)**clients+2*max(nChains, 0))
	}
	if *report == "" {
		*report = filepath.Join("verify-report", time.Now().Format("20060102-150405"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := campaign.Config{
		Cluster: campaign.ClusterConfig{
			Command:  server,
			Regions:  names,
			WAN:      *wan,
			BasePort: *basePort,
		},
		ReportDir:              *report,
		Duration:               *duration,
		Seed:                   *seed,
		Faults:                 kinds,
		MaxSkew:                *maxSkew,
		Workloads:              []campaign.Workload{&campaign.CausalWorkload{ClientsPerRegion: *clients, Keys: *keys, Chains: *chains, Pace: *pace}},
		Checkers:               campaign.CausalCheckers(),
		RequestTimeout:         *timeout,
		UnsafeSkipDependencies: *unsafeSkip,
		KeepData:               *keepData,
		Log:                    stderr,
	}
	if *linearOn {
		cfg.Cluster.ServeArgs = campaign.LinearVoters
		// Every linear operation is a Raft commit (an fsync on a quorum):
		// a slower pace keeps the load of a small machine modest.
		cfg.Workloads = append(cfg.Workloads, &campaign.LinearWorkload{ClientsPerRegion: *linearClients, Pace: max(*pace, 50*time.Millisecond)})
		cfg.Checkers = campaign.DefaultCheckers()
	}
	fmt.Fprintf(stderr, "causeway verify: seed %d (replay the fault plan with --seed %d)\n", *seed, *seed)
	res, err := campaign.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "causeway verify: %v\n", err)
		return exitFailed
	}
	res.WriteSummary(stdout)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "causeway verify: interrupted; the campaign is incomplete")
		return exitFailed
	case res.Anomalies() > 0:
		return exitAnomalies
	}
	return exitOK
}

// maxCampaignOps is about how many operations a campaign records at most
// with the default pace: the checkers judge that many in about 1 GB of
// memory and a few seconds, and more adds little.
const maxCampaignOps = 300_000

// defaultPace is the pause between two operations of one of clients
// clients: 10ms, or longer when the campaign would otherwise record more
// than maxCampaignOps operations.
func defaultPace(d time.Duration, clients int) time.Duration {
	return max(10*time.Millisecond, d*time.Duration(clients)/maxCampaignOps).Round(time.Millisecond)
}

// recheckHistory runs the checkers of every tier over a recorded history;
// files the checkers add (the visualisation of a history that is not
// linearizable) go to dir.
func recheckHistory(path, dir string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "causeway verify: %v\n", err)
		return exitUsage
	}
	defer f.Close()
	h, err := campaign.ReadHistory(f)
	if err != nil {
		fmt.Fprintf(stderr, "causeway verify: %s: %v\n", path, err)
		return exitFailed
	}
	anomalies := 0
	checks := campaign.RunCheckers(h, campaign.DefaultCheckers())
	for _, p := range campaign.WriteCheckerFiles(dir, checks) {
		fmt.Fprintf(stderr, "causeway verify: %s\n", p)
	}
	for _, c := range checks {
		fmt.Fprintf(stdout, "%s: %d anomalies (%s)\n", c.Checker, len(c.Findings.Anomalies), c.Promise)
		for _, a := range c.Findings.Anomalies {
			fmt.Fprintf(stdout, "  %s\n", a)
		}
		for _, n := range c.Findings.Notes {
			fmt.Fprintf(stdout, "  note: %s\n", n)
		}
		anomalies += len(c.Findings.Anomalies)
		for _, f := range c.Findings.Files {
			fmt.Fprintf(stdout, "  see %s\n", filepath.Join(dir, f.Name))
		}
	}
	if anomalies > 0 {
		return exitAnomalies
	}
	return exitOK
}
