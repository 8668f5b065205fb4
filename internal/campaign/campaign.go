package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/replica"
)

// Config configures a campaign. Zero fields take the defaults of Run.
type Config struct {
	// Cluster describes the processes to start. DataDir and LogDir default
	// to ReportDir/data and ReportDir/logs, ClusterID to a new UUID.
	Cluster ClusterConfig
	// ReportDir receives the history (history.jsonl), the fault plan,
	// the anomalies and the summary. Required.
	ReportDir string
	// Duration is how long clients run (default 60s). Faults are injected
	// during the first part; the last part (a fifth, between 3s and 10s)
	// runs with every fault healed, so recovery is observed too.
	Duration time.Duration
	// Seed fixes the fault plan and every client's choices. Real processes
	// and real time decide the interleaving, so a seed reproduces the
	// plan, not the exact history.
	Seed uint64
	// Faults are the kinds of fault the nemesis draws from (none: a
	// fault-free run).
	Faults []FaultKind
	// MaxSkew bounds clock skews (default 10s).
	MaxSkew time.Duration
	// Workloads default to one CausalWorkload.
	Workloads []Workload
	// Checkers default to DefaultCheckers.
	Checkers []Checker
	// RequestTimeout bounds one client request (default 2s).
	RequestTimeout time.Duration
	// ConvergeTimeout bounds the wait for convergence at the end (default 60s).
	ConvergeTimeout time.Duration
	// UnsafeSkipDependencies starts every region with the test-only switch
	// that applies remote writes without waiting for their causal past
	// (replica.UnsafeSkipDependenciesEnv): causal consistency is broken on
	// purpose, and the checkers must say so.
	UnsafeSkipDependencies bool
	// KeepData keeps the regions' data directories after a run without
	// anomalies (they are always kept after one with anomalies).
	KeepData bool
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// CheckResult is one checker's verdict.
type CheckResult struct {
	Checker  string
	Tier     string
	Promise  string
	Findings Findings
}

// Result is a finished campaign.
type Result struct {
	Regions  []string
	Seed     uint64
	Duration time.Duration
	Started  time.Time
	Ended    time.Time
	// FaultWindow is when faults were active, as offsets from Started.
	FaultWindow [2]time.Duration
	Plan        []Fault
	History     *History
	Checks      []CheckResult
	// Problems are things that went wrong with the campaign itself rather
	// than with the store: a fault the nemesis could not apply or heal.
	Problems []string
	// UnsafeSwitch reports whether the regions confirmed (in their logs)
	// that the switch of Config.UnsafeSkipDependencies was on.
	UnsafeSwitch, UnsafeSwitchConfirmed bool
	ReportDir                           string
}

// Anomalies counts the anomalies all checkers found.
func (r *Result) Anomalies() int {
	n := 0
	for _, c := range r.Checks {
		n += len(c.Findings.Anomalies)
	}
	return n
}

func (cfg *Config) defaults() error {
	if cfg.ReportDir == "" {
		return errors.New("campaign: no report directory")
	}
	if cfg.Duration == 0 {
		cfg.Duration = 60 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	if cfg.ConvergeTimeout == 0 {
		cfg.ConvergeTimeout = 60 * time.Second
	}
	if len(cfg.Workloads) == 0 {
		cfg.Workloads = []Workload{&CausalWorkload{}}
	}
	if len(cfg.Checkers) == 0 {
		cfg.Checkers = DefaultCheckers()
	}
	if cfg.Cluster.DataDir == "" {
		cfg.Cluster.DataDir = filepath.Join(cfg.ReportDir, "data")
	}
	if cfg.Cluster.LogDir == "" {
		cfg.Cluster.LogDir = filepath.Join(cfg.ReportDir, "logs")
	}
	if cfg.Cluster.ClusterID == "" {
		cfg.Cluster.ClusterID = uuid.NewString()
	}
	if cfg.UnsafeSkipDependencies {
		cfg.Cluster.Command.Env = append(cfg.Cluster.Command.Env, replica.UnsafeSkipDependenciesEnv+"=1")
	}
	return nil
}

// recoveryTime is how long clients keep running after the last fault
// healed.
func recoveryTime(d time.Duration) time.Duration {
	return min(max(d/5, 3*time.Second), 10*time.Second)
}

// Run carries out a campaign: it starts the cluster, runs the workloads for
// cfg.Duration while the nemesis injects faults, heals every fault, lets
// clients run on for a while, stops them, waits for convergence, reads the
// final state, stops every process, runs the checkers and writes the
// report. The error reports a campaign that could not run (the cluster did
// not start); anomalies are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.ReportDir, 0o755); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	histFile, err := os.Create(filepath.Join(cfg.ReportDir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	defer histFile.Close()
	rec := NewRecorder(histFile)

	res := &Result{Regions: cfg.Cluster.Regions, Seed: cfg.Seed, Duration: cfg.Duration, ReportDir: cfg.ReportDir, UnsafeSwitch: cfg.UnsafeSkipDependencies}
	recovery := recoveryTime(cfg.Duration)
	res.FaultWindow = [2]time.Duration{min(time.Second, cfg.Duration/10), cfg.Duration - recovery}
	res.Plan = Plan(PlanConfig{Seed: cfg.Seed, Regions: cfg.Cluster.Regions, Kinds: cfg.Faults,
		Start: res.FaultWindow[0], End: res.FaultWindow[1], MaxSkew: cfg.MaxSkew})
	if err := writeJSON(filepath.Join(cfg.ReportDir, "plan.json"), res.Plan); err != nil {
		return nil, err
	}

	startedCluster := time.Now()
	logf("starting %d regions (%s), logs in %s", len(cfg.Cluster.Regions), strings.Join(cfg.Cluster.Regions, ", "), cfg.Cluster.LogDir)
	cluster, err := StartCluster(ctx, cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	closed := false
	closeCluster := func() {
		if !closed {
			closed = true
			cluster.Close()
		}
	}
	defer closeCluster()
	logf("cluster up in %v; %d faults planned; clients run for %v", time.Since(startedCluster).Round(100*time.Millisecond), len(res.Plan), cfg.Duration)

	nem := NewNemesis(cluster, rec, res.Plan, logf)
	rec.DuringFault = nem.Active
	env := &Env{
		Regions:         cluster.Regions(),
		URL:             func(region string) string { return cluster.Region(region).URL },
		HTTP:            cluster.HTTPClient(),
		Cluster:         cluster,
		Recorder:        rec,
		Seed:            cfg.Seed,
		RequestTimeout:  cfg.RequestTimeout,
		ConvergeTimeout: cfg.ConvergeTimeout,
		Logf:            logf,
	}

	for _, w := range cfg.Workloads {
		if p, ok := w.(Preparer); ok {
			started := time.Now()
			if err := p.Prepare(ctx, env); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("preparing %s: %v", w.Name(), err))
			} else {
				logf("%s ready in %v", w.Name(), time.Since(started).Round(100*time.Millisecond))
			}
		}
	}

	res.Started = time.Now()
	workCtx, stopWork := context.WithDeadline(ctx, res.Started.Add(cfg.Duration))
	defer stopWork()
	var wg sync.WaitGroup
	workErrs := make([]error, len(cfg.Workloads))
	for i, w := range cfg.Workloads {
		wg.Go(func() { workErrs[i] = w.Run(workCtx, env) })
	}
	nem.Run(workCtx, res.Started, res.Started.Add(res.FaultWindow[1]))
	if ctx.Err() == nil {
		if err := nem.HealAll(ctx); err != nil {
			res.Problems = append(res.Problems, "healing every fault: "+err.Error())
		}
		logf("+%v every fault healed; clients run on until +%v", time.Since(res.Started).Round(100*time.Millisecond), cfg.Duration)
	}
	wg.Wait()
	logf("+%v writes stopped", time.Since(res.Started).Round(100*time.Millisecond))
	for i, err := range workErrs {
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("workload %s: %v", cfg.Workloads[i].Name(), err))
		}
	}
	res.Problems = append(res.Problems, nem.Failures()...)

	for _, w := range cfg.Workloads {
		if ctx.Err() != nil {
			// Interrupted: the regions may not have healed, so there is no
			// final state to judge; the history so far is still checked.
			res.Problems = append(res.Problems, "interrupted before the final phase: convergence was not checked")
			break
		}
		if f, ok := w.(Finalizer); ok {
			if err := f.Final(ctx, env); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("final phase of %s: %v", w.Name(), err))
			}
		}
	}
	res.Ended = time.Now()
	closeCluster()
	if err := rec.Flush(); err != nil {
		res.Problems = append(res.Problems, "writing the history: "+err.Error())
	}
	if cfg.UnsafeSkipDependencies {
		res.UnsafeSwitchConfirmed = logsContain(cluster.LogFiles(), replica.UnsafeSkipDependenciesWarning)
	}

	res.History = rec.History()
	logf("checking %d events", len(res.History.Events))
	res.Checks = RunCheckers(res.History, cfg.Checkers)
	if err := res.WriteReport(); err != nil {
		return res, err
	}
	if res.Anomalies() == 0 && !cfg.KeepData {
		_ = os.RemoveAll(cfg.Cluster.DataDir)
	}
	return res, nil
}

// RunCheckers runs every checker over h.
func RunCheckers(h *History, checkers []Checker) []CheckResult {
	out := make([]CheckResult, len(checkers))
	for i, c := range checkers {
		out[i] = CheckResult{Checker: c.Name(), Tier: c.Tier(), Promise: c.Promise(), Findings: c.Check(h)}
	}
	return out
}

// logsContain reports whether every log file contains s.
func logsContain(files map[string]string, s string) bool {
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			return false
		}
	}
	return len(files) > 0
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
