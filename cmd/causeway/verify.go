package main

import (
	"context"
	"errors"
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
` + "`causeway serve`" + ` process per region on 127.0.0.1, TLS on unless
--insecure, fault injection on, every region a voter of the linearizable tier), runs concurrent clients
against every region for --duration while a nemesis cuts and heals links,
adds WAN delay and jitter, kills and restarts regions, pauses them
(SIGSTOP/SIGCONT), skews their clocks beyond the max offset, and wipes a
region's data directory (once its writes live elsewhere) and brings it
back with --join as the README says, on a schedule drawn from --seed.
Causal clients carry sessions between regions and hand them to one another;
linear clients stay in their region (where the minority side of a partition
must answer unavailable) and claim names, compare-and-set registers, read
them, and take locks whose fencing tokens guard writes, some sent late with
a stale token. A watcher in each region follows every change (Watch),
resuming from its last token when a fault ends its stream, sometimes in
another region. Every fault heals before the end; clients run on for a
while, stop, and once replication converged every region is read. Checkers
then judge the recorded history alone: session guarantees and causal
visibility, atomic multi-key writes, no acknowledged write lost, no write
applied twice, identical data in every region, watch events in causal
order with none lost or repeated and atomic writes whole; linearizability of claims
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
	f, code := parseVerify(args, stderr)
	if f == nil {
		return code
	}
	if f.recheck != "" {
		dir := f.report
		if dir == "" {
			dir = filepath.Dir(f.recheck)
		}
		return recheckHistory(f.recheck, dir, stdout, stderr)
	}
	kinds, err := campaign.ParseFaults(f.faults)
	if err != nil {
		fmt.Fprintf(stderr, "causeway verify: --faults: %v\n", err)
		return exitUsage
	}
	if err := f.check(); err != nil {
		fmt.Fprintf(stderr, "causeway verify: %v\n", err)
		return exitUsage
	}
	f.fillDefaults()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runCampaign(ctx, f.campaignConfig(server, kinds, stderr), stdout, stderr)
}

// verifyFlags are `causeway verify`'s flags.
type verifyFlags struct {
	duration         time.Duration
	regions          []string // --regions, blank names dropped
	wan              string
	clients, keys    int
	chains           int
	seed             uint64
	faults           string
	maxSkew, timeout time.Duration
	pace             time.Duration
	report           string
	basePort         int
	keepData         bool
	recheck          string
	linearOn         bool
	linearClients    int
	watchers         int
	unsafeSkip       bool
	insecure         bool
}

// parseVerify parses `causeway verify`'s flags; a nil result comes with the
// exit code (help, or a usage error already reported on stderr).
func parseVerify(args []string, stderr io.Writer) (*verifyFlags, int) {
	f := &verifyFlags{}
	fs := flag.NewFlagSet("causeway verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&f.duration, "duration", 60*time.Second, "how long clients run; faults during the first part, the rest (a fifth, 3s to 10s) fault-free")
	regions := fs.String("regions", strings.Join(defaultRegions, ","), "comma-separated region names, one process each")
	fs.StringVar(&f.wan, "wan-latency", defaultWAN, "base one-way delays between regions (a/b=40ms,...); \"\" for none")
	fs.IntVar(&f.clients, "clients", 3, "client sessions started in each region")
	fs.IntVar(&f.keys, "keys", 8, "size of the key set (small, so that writes conflict)")
	fs.IntVar(&f.chains, "chains", 0, "photo/comment chains: a writer hands its token to a commenter in the next region, an observer in a third takes snapshots (0: one per region, -1: none)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the fault plan and of the clients' choices (0: a random seed, printed)")
	fs.StringVar(&f.faults, "faults", "all", "faults to inject: partition,cut,delay,kill,pause,skew,wipe, all or none")
	fs.DurationVar(&f.maxSkew, "max-skew", 10*time.Second, "largest clock skew injected (either direction)")
	fs.DurationVar(&f.timeout, "request-timeout", 2*time.Second, "deadline of one client request")
	fs.DurationVar(&f.pace, "pace", 0, "pause between two operations of one client (default: 10ms, longer for long campaigns so that one records at most about 300,000 operations; linear clients pause at least 50ms)")
	fs.StringVar(&f.report, "report", "", "report directory (default ./verify-report/<timestamp>)")
	fs.IntVar(&f.basePort, "base-port", 0, "API port of the first region, the others following (gossip on API+100); 0 picks free ports")
	fs.BoolVar(&f.keepData, "keep-data", false, "keep the regions' data directories (always kept when anomalies are found)")
	fs.StringVar(&f.recheck, "check", "", "check an existing history (a history.jsonl) instead of running a campaign")
	fs.BoolVar(&f.linearOn, "linear", true, "run the linearizable tier (every region a voter) with its workload and checkers; --linear=false for the causal tier alone")
	fs.IntVar(&f.linearClients, "linear-clients", 2, "linear-tier clients in each region")
	fs.BoolVar(&f.insecure, "insecure", false, "run the regions without TLS (by default they run with TLS on certificates created under the report's data directory, and the clients present an admin client certificate)")
	fs.IntVar(&f.watchers, "watchers", 1, "change-feed watchers in each region (0: none)")
	fs.BoolVar(&f.unsafeSkip, "unsafe-skip-dependencies", false, "test hook: start the regions with causal dependencies ignored (CAUSEWAY_UNSAFE_SKIP_DEPENDENCIES), to show the checkers catch it")
	fs.Usage = func() {
		fmt.Fprint(stderr, verifyUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return nil, code
	}
	for _, r := range strings.Split(*regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			f.regions = append(f.regions, r)
		}
	}
	return f, exitOK
}

// check reports the first flag out of its range, as a usage error.
func (f *verifyFlags) check() error {
	switch {
	case len(f.regions) == 0:
		return errors.New("--regions: no regions")
	case f.duration < 5*time.Second:
		return fmt.Errorf("--duration %v: at least 5s", f.duration)
	case f.clients < 1 || f.keys < 2 || f.keys > 128:
		return errors.New("--clients must be at least 1 and --keys between 2 and 128")
	case f.watchers < 0 || f.watchers > 16:
		return fmt.Errorf("--watchers %d: between 0 and 16", f.watchers)
	case f.linearOn && f.linearClients < 1:
		return errors.New("--linear-clients must be at least 1")
	case f.maxSkew < 0 || f.maxSkew > time.Hour:
		return fmt.Errorf("--max-skew %v: between 0 and 1h", f.maxSkew)
	case f.timeout <= 0:
		return errors.New("--request-timeout must be positive")
	}
	if _, err := supervisor.ParseWAN(f.wan); err != nil {
		return fmt.Errorf("--wan-latency: %w", err)
	}
	return nil
}

// fillDefaults draws the seed, paces the clients for the campaign's length
// and names the report directory, where the flags left them unset.
func (f *verifyFlags) fillDefaults() {
	if f.seed == 0 {
		f.seed = uint64(time.Now().UnixNano())
	}
	if f.pace == 0 {
		// Besides the clients, each chain has a writer and an observer.
		nChains := f.chains
		if nChains == 0 {
			nChains = len(f.regions)
		}
		f.pace = defaultPace(f.duration, len(f.regions)*f.clients+2*max(nChains, 0))
	}
	if f.report == "" {
		f.report = filepath.Join("verify-report", time.Now().Format("20060102-150405"))
	}
}

// campaignConfig is the campaign the flags describe.
func (f *verifyFlags) campaignConfig(server campaign.ServerCommand, kinds []campaign.FaultKind, log io.Writer) campaign.Config {
	cfg := campaign.Config{
		Cluster: campaign.ClusterConfig{
			Command:  server,
			Regions:  f.regions,
			WAN:      f.wan,
			BasePort: f.basePort,
			Insecure: f.insecure,
		},
		ReportDir:              f.report,
		Duration:               f.duration,
		Seed:                   f.seed,
		Faults:                 kinds,
		MaxSkew:                f.maxSkew,
		Workloads:              []campaign.Workload{&campaign.CausalWorkload{ClientsPerRegion: f.clients, Keys: f.keys, Chains: f.chains, Pace: f.pace}},
		Checkers:               campaign.CausalCheckers(),
		RequestTimeout:         f.timeout,
		UnsafeSkipDependencies: f.unsafeSkip,
		KeepData:               f.keepData,
		Log:                    log,
	}
	if f.linearOn {
		cfg.Cluster.ServeArgs = campaign.LinearVoters
		// Every linear operation is a Raft commit (an fsync on a quorum):
		// a slower pace keeps the load of a small machine modest.
		cfg.Workloads = append(cfg.Workloads, &campaign.LinearWorkload{ClientsPerRegion: f.linearClients, Pace: max(f.pace, 50*time.Millisecond)})
		cfg.Checkers = campaign.DefaultCheckers()
	}
	if f.watchers > 0 {
		cfg.Workloads = append(cfg.Workloads, &campaign.WatchWorkload{WatchersPerRegion: f.watchers})
		cfg.Checkers = append(cfg.Checkers, campaign.WatchChecker{})
	}
	return cfg
}

// runCampaign runs the campaign, prints its summary, and is the exit
// status: anomalies, interrupted, or none.
func runCampaign(ctx context.Context, cfg campaign.Config, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "causeway verify: seed %d (replay the fault plan with --seed %d)\n", cfg.Seed, cfg.Seed)
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
	checks := campaign.RunCheckers(h, append(campaign.DefaultCheckers(), campaign.WatchChecker{}))
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
