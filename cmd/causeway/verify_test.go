//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/campaign"
)

// These tests run `causeway verify` in-process; the regions it starts are
// this test binary re-executed as `causeway serve` (see runMainEnv), each a
// real process with its own data directory on 127.0.0.1 that the campaign
// kills, pauses and restarts. Every process is stopped before runVerify
// returns.

// testServer is the command that starts `causeway serve` from this test
// binary.
func testServer() campaign.ServerCommand {
	return campaign.ServerCommand{Path: os.Args[0], Env: []string{runMainEnv + "=1"}}
}

// verifyCampaignSeed draws a plan whose first seven faults, one of each
// kind, heal by +15.3s of the short campaign's 23s fault window: restarts
// on a loaded machine can make the nemesis late by the difference and it
// still injects every kind (TestVerifyCampaign checks that it does). The
// wipe comes last, at +14.1s, so the wiped region rejoins while clients
// still run. Its partition holds 2.8s, well past the ~1.1s after which a
// cut-off region's linear tier answers unavailable (checkMinorityRefused;
// the plan drawn by the earlier seed, 429, held its partition 1.07s, and
// on a loaded machine no refusal arrived in time).
const verifyCampaignSeed = 22478

// TestVerifyCampaign runs a short campaign with every kind of fault, both
// tiers and every checker against a correct build: it must find no
// anomaly, and its history must show that the faults and operations it
// claims happened, and that the linear tier refused to serve in the region
// the first fault cuts off.
func TestVerifyCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of causeway serve processes")
	}
	report := filepath.Join(t.TempDir(), "report")
	var stdout, stderr lockedBuffer
	code := runVerifyWith([]string{
		"--duration", "30s", "--seed", fmt.Sprint(verifyCampaignSeed), "--clients", "2", "--keys", "6", "--pace", "10ms",
		"--wan-latency", "", "--max-skew", "5s", "--report", report,
	}, &stdout, &stderr, testServer())
	t.Logf("summary:\n%s", stdout.String())
	if code != exitOK {
		t.Fatalf("causeway verify = exit %d, want 0\nstderr:\n%s", code, stderr.String())
	}

	// The campaign ran with TLS on: every region served https with a
	// certs directory (so its clients were authenticated, and replication,
	// Raft and gossip ran over mutual TLS).
	for _, region := range defaultRegions {
		log, err := os.ReadFile(filepath.Join(report, "logs", region+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), " --certs-dir ") || !strings.Contains(string(log), "serving on https://") {
			t.Errorf("region %s did not run with TLS; its log:\n%s", region, grepLines(string(log), "causeway: "))
		}
	}

	f, err := os.Open(filepath.Join(report, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := campaign.ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	faults := map[campaign.FaultKind]int{}
	for _, e := range h.Of(campaign.EventNemesis) {
		if e.Phase == campaign.PhaseStart {
			faults[e.Fault.Kind]++
		}
	}
	for _, k := range campaign.AllFaults {
		if faults[k] == 0 {
			t.Errorf("no %s fault in the history (faults: %v); choose another verifyCampaignSeed", k, faults)
		}
	}
	ok := map[string]int{}
	for _, o := range h.Operations() {
		if o.Outcome() == campaign.EventOK {
			ok[o.Invoke.Tier+"/"+o.Invoke.F]++
		}
	}
	for _, f := range []string{campaign.FGet, campaign.FPut, campaign.FDelete, campaign.FReadMany, campaign.FWriteMany} {
		if ok[campaign.TierCausal+"/"+f] == 0 {
			t.Errorf("no acknowledged causal %s in the history (acknowledged: %v)", f, ok)
		}
	}
	for _, f := range []string{campaign.FClaim, campaign.FLookup, campaign.FCAS, campaign.FLinearGet, campaign.FLock, campaign.FFencedWrite, campaign.FUnlock} {
		if ok[campaign.TierLinear+"/"+f] == 0 {
			t.Errorf("no acknowledged linear %s in the history (acknowledged: %v)", f, ok)
		}
	}
	checkMinorityRefused(t, h)
	for _, checker := range []string{"linearizable", "fencing"} {
		if !regexp.MustCompile(`(?m)^` + checker + `\s+0\s`).MatchString(stdout.String()) {
			t.Errorf("the summary does not show the %s checker with no anomaly", checker)
		}
	}
	if !regexp.MustCompile(`note \(linearizable\): [1-9]\d* operations on 3 claimed names and 2 registers .*: linearizable`).MatchString(stdout.String()) {
		t.Errorf("the summary does not say the linear history was checked and found linearizable")
	}
	if !regexp.MustCompile(`note \(fencing\): [1-9]\d* lock acquisitions, [1-9]\d* fenced writes accepted`).MatchString(stdout.String()) {
		t.Errorf("the summary does not say fencing tokens were checked on acquisitions and writes")
	}
	if !regexp.MustCompile(`(?m)^watch\s+0\s`).MatchString(stdout.String()) {
		t.Errorf("the summary does not show the watch checker with no anomaly")
	}
	if !regexp.MustCompile(`note \(watch\): 3 watchers, [1-9]\d* events checked against [1-9]\d* writes made; [1-9]\d* resumes .*; 3 of 3 caught up`).MatchString(stdout.String()) {
		t.Errorf("the summary does not say the watchers' events were checked, with resumes, and every watcher caught up")
	}
	if !regexp.MustCompile(`(?m)^\s*linear tier\s+\S+ of [1-9]`).MatchString(stdout.String()) {
		t.Errorf("the summary shows no availability of the linear tier")
	}
	handoffs := len(h.Of(campaign.EventHandoff))
	if handoffs == 0 {
		t.Errorf("no session was handed from one client to another")
	}
	finals := 0
	for _, e := range h.Of(campaign.EventFinal) {
		if e.F == campaign.FReadMany && e.Error == "" {
			finals++
		}
	}
	if finals != 3 {
		t.Errorf("%d regions' final states read, want 3", finals)
	}
	for _, name := range []string{"summary.txt", "plan.json", "anomalies.txt", "logs/us-east.log"} {
		if _, err := os.Stat(filepath.Join(report, name)); err != nil {
			t.Errorf("report: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(report, "data")); !os.IsNotExist(err) {
		t.Errorf("data directories of a campaign without anomalies were not removed: %v", err)
	}
	if !strings.Contains(stdout.String(), "PASS") {
		t.Errorf("summary does not say PASS")
	}
	// The history alone is enough to check the campaign again.
	var recheck lockedBuffer
	if code := runVerifyWith([]string{"--check", filepath.Join(report, "history.jsonl")}, &recheck, &recheck, testServer()); code != exitOK {
		t.Errorf("causeway verify --check = exit %d, want 0:\n%s", code, recheck.String())
	}
}

// checkMinorityRefused checks that the linear tier refused to serve in the
// regions the campaign cut off: some linear operation under way in a
// partitioned region ended unavailable (or timed out) while it was cut off.
// A request under way when the links are cut waits for the leader's
// answer, which never comes: without WAN delay the region gives up after
// about 1.1s (two election timeouts) and answers unavailable, and a client
// retries an unknown outcome for 1s only. A partition may hold little
// longer than that, so an answer that left the region just before the heal
// may reach the client just after it: an operation counts as refused when
// it ended unavailable within refusalGrace of the heal.
// (Requests sent later in the partition are often retried past the heal
// and succeed, so operations are judged by when they ended, not when they
// began. A region that served the minority would answer OK, which the
// linearizability checker judges.)
func checkMinorityRefused(t *testing.T, h *campaign.History) {
	const refusalGrace = 500 * time.Millisecond
	t.Helper()
	type window struct {
		fault    *campaign.Fault
		from, to time.Time
	}
	var partitions []*window
	open := map[int]*window{}
	for _, e := range h.Of(campaign.EventNemesis) {
		if e.Fault == nil || e.Fault.Kind != campaign.FaultPartition {
			continue
		}
		switch e.Phase {
		case campaign.PhaseStart:
			open[e.Fault.ID] = &window{fault: e.Fault, from: e.Time}
		case campaign.PhaseHeal:
			if w := open[e.Fault.ID]; w != nil {
				w.to = e.Time
				partitions = append(partitions, w)
			}
		}
	}
	if len(partitions) == 0 {
		t.Errorf("no partition started and healed in the history")
		return
	}
	refused := 0
	for _, w := range partitions {
		var seen []string
		for _, o := range h.Operations() {
			end := o.Completion.Time
			if o.Invoke.Tier != campaign.TierLinear || o.Invoke.Region != w.fault.Region || end.Before(w.from) || o.Invoke.Time.After(w.to) {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %s invoked %+v, ended %+v: %s %s (%d attempts)", o.Invoke.Client, o.Invoke.F,
				o.Invoke.Time.Sub(w.from).Round(time.Millisecond), end.Sub(w.from).Round(time.Millisecond), o.Outcome(), o.Completion.Code, o.Completion.Attempts))
			if code := o.Completion.Code; end.Before(w.to.Add(refusalGrace)) && (code == "unavailable" || code == "deadline_exceeded") {
				refused++
			}
		}
		t.Logf("linear operations under way in %s while it was cut off for %v, times from the cut:\n%s",
			w.fault.Region, w.to.Sub(w.from).Round(time.Millisecond), strings.Join(seen, "\n"))
	}
	if refused == 0 {
		t.Errorf("no linear operation in a region partitioned from every other ended unavailable before (or just after) the heal")
	}
}

// TestVerifyCatchesSkippedDependencies is the campaign's teeth: the same
// campaign against regions that apply remote writes without waiting for
// their causal past (the UnsafeSkipDependencies switch) must report
// anomalies and exit 1.
//
// The WAN it emulates breaks the triangle inequality, as real routes do:
// us-east reaches ap-southeast in 300ms, but through eu-west in 10ms. A
// comment written in eu-west after reading a photo from us-east then
// reaches ap-southeast long before the photo, and a region that applies it
// at once shows it without the photo. (ReadMany waits until the causal
// past of what it returns is durable, so such a snapshot is answered late,
// once the photo arrived, but it is still the snapshot taken before.) Six
// chains, two with that geometry, make an anomaly near certain even on a
// loaded machine. The same configuration on a correct build finds nothing.
func TestVerifyCatchesSkippedDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of causeway serve processes")
	}
	report := filepath.Join(t.TempDir(), "report")
	var stdout, stderr lockedBuffer
	start := time.Now()
	code := runVerifyWith([]string{
		"--duration", "15s", "--seed", "4", "--clients", "2", "--keys", "4", "--pace", "10ms",
		"--wan-latency", "us-east/ap-southeast=300ms,us-east/eu-west=5ms,eu-west/ap-southeast=5ms",
		"--faults", "cut,delay", "--chains", "6", "--report", report,
		"--unsafe-skip-dependencies", "--linear=false", // the switch breaks the causal tier alone
	}, &stdout, &stderr, testServer())
	t.Logf("summary (after %v):\n%s", time.Since(start).Round(time.Second), stdout.String())
	if !strings.Contains(stdout.String(), "confirmed by every region's log") {
		t.Fatalf("the regions did not confirm the unsafe switch (runServe must call cfg.ApplyUnsafeSwitches(os.Getenv)): the campaign ran against a correct build\nstderr:\n%s", stderr.String())
	}
	if code != exitAnomalies {
		t.Fatalf("causeway verify with dependencies skipped = exit %d, want %d (anomalies)\nstderr:\n%s", code, exitAnomalies, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(report, "anomalies.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var a campaign.Anomaly
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		kinds[a.Checker+"/"+a.Kind]++
	}
	t.Logf("anomalies: %v", kinds)
	if kinds["causal/causal-snapshot"]+kinds["atomic-write/torn-snapshot"] == 0 {
		t.Errorf("no snapshot read caught a write visible before its causal past: %v", kinds)
	}
	// The watchers are given the remote writes in the order their region
	// applied them: before their causal past.
	if kinds["watch/watch-order"] == 0 {
		t.Errorf("the watch checker caught no event delivered before its causal past: %v", kinds)
	}
	if _, err := os.Stat(filepath.Join(report, "data")); err != nil {
		t.Errorf("data directories of a campaign with anomalies were not kept: %v", err)
	}
	if strings.Contains(stdout.String(), "linear") {
		t.Errorf("with --linear=false the summary mentions the linear tier")
	}
}
