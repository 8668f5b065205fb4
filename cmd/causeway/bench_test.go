//go:build unix

package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/supervisor"
	"github.com/causewaydb/causeway/internal/wanbench"
)

// TestBenchSmoke runs `causeway bench` end to end with tiny rows (50ms,
// 1 and 4 clients) against real `causeway serve` processes (this test
// binary re-executed as causeway) and etcd when installed, and checks the
// shape of what it produces: every row of every operation from every
// region, results.json parsing, every SVG well-formed XML naming its
// series. It asserts no latency: figures are reported, not tested.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-region cluster")
	}
	saved := benchCommand
	benchCommand = func() (supervisor.Command, error) {
		return supervisor.Command{Path: os.Args[0], Env: []string{runMainEnv + "=1"}}, nil
	}
	t.Cleanup(func() { benchCommand = saved })

	out := t.TempDir()
	res := runCLI("", "bench", "--wan", "aws3", "--phase", "50ms", "--clients", "1,4",
		"--rate", "50", "--linear-rate", "5", "--progress=false", "--out", out, "--data", benchDataDir(t))
	if res.code != exitOK {
		t.Fatalf("bench failed:\n%s", res)
	}

	var got wanbench.Results
	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("results.json does not parse: %v", err)
	}
	etcdSkipped := false
	for _, s := range got.Skipped {
		if strings.HasPrefix(s, "etcd rows:") {
			etcdSkipped = true
			t.Logf("etcd rows skipped: %s", s)
		}
	}
	// The embedded cluster runs with TLS by default, and etcd with it.
	if !got.TLS || !etcdSkipped && !got.EtcdTLS {
		t.Errorf("results.json says TLS %v, etcd TLS %v: want both by default", got.TLS, got.EtcdTLS)
	}

	// Every row: operation x region x load.
	type key struct{ tier, op, region, load string }
	have := map[key]bool{}
	for _, r := range got.Rows {
		have[key{r.Tier, r.Op, r.Region, r.Label()}] = true
	}
	loads := []string{"closed 1", "closed 4"}
	want := map[string][]string{
		"causal": {"put", "get", "read-many", "write-many", "move-read", "unique-put", "ycsb-a", "ycsb-b", "ycsb-e"},
		"linear": {"claim", "cas", "linear-get", "lock"},
	}
	if !etcdSkipped {
		want["etcd"] = []string{"put", "get", "put-if-absent"}
	}
	regions := []string{"us-east", "eu-west", "ap-southeast"}
	for tier, ops := range want {
		rate := "open 50/s"
		if tier != "causal" {
			rate = "open 5/s"
		}
		for _, op := range ops {
			for _, region := range regions {
				for _, load := range append(loads, rate) {
					if !have[key{tier, op, region, load}] {
						t.Errorf("no row %s %s from %s at %s", tier, op, region, load)
					}
				}
			}
		}
	}
	for _, region := range regions {
		if !have[key{"causal", "put", region, "closed 1 no-WAN"}] {
			t.Errorf("no no-WAN baseline row from %s", region)
		}
	}
	if n := len(got.Visibility); n != 2*6 {
		t.Errorf("%d visibility rows, want 12 (6 ordered pairs at 2 loads)", n)
	}
	for _, v := range got.Visibility {
		// Each probe saw its write before the next began, so the receiving
		// node counted at least the probes' writes in its own histogram.
		if v.Count > 0 && (v.NodeWrites == 0 || v.NodeMeanMs <= 0) {
			t.Errorf("visibility %s->%s at %d clients: %d probes, but the node's own figures are %d writes, mean %.1f ms", v.From, v.To, v.LoadClients, v.Count, v.NodeWrites, v.NodeMeanMs)
		}
	}
	if len(got.Targets) != 6 {
		t.Errorf("%d targets judged, want 6", len(got.Targets))
	}
	for _, tr := range got.Targets {
		if tr.Status != "met" && tr.Status != "missed" && tr.Status != "not measured" {
			t.Errorf("target %q has status %q", tr.Name, tr.Status)
		}
	}

	// The table on stdout has every section.
	for _, s := range []string{"## Latency per operation and region", "## Visibility latency per pair", "## Targets", "| causeway | linear | claim | ap-southeast |"} {
		if !strings.Contains(res.stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !strings.Contains(string(report), "## Targets") {
		t.Errorf("report.md missing or without targets: %v", err)
	}
	if want := "Transport: Causeway: TLS"; !strings.Contains(string(report), want) {
		t.Errorf("report.md does not say %q", want)
	}

	// Every plot is well-formed XML naming its series.
	series := map[string][]string{
		"latency-by-region.svg": {"causal Put p50", "linear Claim p99", "Claim floor"},
		"cdf-causal.svg":        {"put", "move-read", "unique-put"},
		"cdf-linear.svg":        {"claim", "cas", "linear-get", "lock"},
		"visibility.svg":        {"y = x", "p50, 4 put clients per region", "p99, 4 put clients per region"},
	}
	if !etcdSkipped {
		series["latency-by-region.svg"] = append(series["latency-by-region.svg"], "etcd Put p50", "etcd floor")
		series["cdf-linear.svg"] = append(series["cdf-linear.svg"], "etcd put-if-absent")
	}
	for name, names := range series {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("plot %s: %v", name, err)
			continue
		}
		texts, err := svgTexts(string(b))
		if err != nil {
			t.Errorf("plot %s is not well-formed XML: %v", name, err)
			continue
		}
		for _, n := range names {
			if !strings.Contains(texts, n) {
				t.Errorf("plot %s does not name the series %q", name, n)
			}
		}
	}
}

// svgTexts parses an SVG document to its end, failing on malformed XML,
// and returns the text it shows (legend entries, titles).
func svgTexts(doc string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var texts strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			texts.Write(tok)
			texts.WriteByte('\n')
		}
	}
	if root != "svg" {
		return "", fmt.Errorf("root element %q, want svg", root)
	}
	return texts.String(), nil
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--wan", "aws9"}, "neither a preset (aws3, aws5, aws7) nor a file"},
		{[]string{"--clients", "1,x"}, "--clients"},
		{[]string{"--clients", "0"}, "clients 0: want 1 to 1024"},
		{[]string{"--phase", "1ms"}, "too short"},
		{[]string{"--rate", "-1"}, "rates must be positive"},
		{[]string{"stray"}, ""},
		{[]string{"--scale-wan", "aws3"}, "give it with --scale"},
		{[]string{"--scale", "--scale-wan", "aws3,aws9"}, "neither a preset (aws3, aws5, aws7) nor a file"},
		{[]string{"--insecure", "--addr", "us-east=127.0.0.1:1"}, "--insecure is for the embedded cluster"},
	} {
		res := runCLI("", append([]string{"bench"}, tt.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tt.want) {
			t.Errorf("want usage error containing %q:\n%s", tt.want, res)
		}
	}
}

// TestBenchFaultsSmoke runs the fault timeline with tiny periods and
// checks its shape: the fault windows in order, a series per tier for the
// faulted region and the others, visibility per pair group, per-second
// bins, the plots. No figure is asserted.
func TestBenchFaultsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-region cluster and kills one region")
	}
	saved := benchCommand
	benchCommand = func() (supervisor.Command, error) {
		return supervisor.Command{Path: os.Args[0], Env: []string{runMainEnv + "=1"}}, nil
	}
	t.Cleanup(func() { benchCommand = saved })

	out := t.TempDir()
	// In plain HTTP: TestBenchSmoke runs the default, TLS.
	res := runCLI("", "bench", "--faults", "--insecure", "--phase", "1s", "--clients", "1,2", "--rate", "20", "--linear-rate", "5",
		"--progress=false", "--out", out, "--data", benchDataDir(t))
	if res.code != exitOK {
		t.Fatalf("bench --faults failed:\n%s", res)
	}
	var got wanbench.Results
	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("results.json does not parse: %v", err)
	}
	if got.TLS {
		t.Error("results.json says TLS for a run with --insecure")
	}
	f := got.Faults
	if f == nil {
		t.Fatal("no fault timeline in results.json")
	}
	if f.Error != "" {
		t.Errorf("timeline error: %s", f.Error)
	}
	if len(f.Windows) != 3 || f.Windows[0].Fault != "partition" || f.Windows[1].Fault != "killed" || !strings.HasPrefix(f.Windows[2].Fault, "clock skew") {
		t.Fatalf("fault windows %+v, want partition, killed, clock skew", f.Windows)
	}
	if !(f.Windows[0].StartS < f.Windows[0].EndS && f.Windows[0].EndS <= f.Windows[1].StartS && f.Windows[1].StartS < f.Windows[1].EndS) {
		t.Errorf("fault windows out of order: %+v", f.Windows)
	}
	if len(f.Series) != 4 {
		t.Fatalf("%d series, want causal and linear for the faulted region and the others", len(f.Series))
	}
	for _, s := range f.Series {
		if len(s.Bins) < 4 {
			t.Errorf("series %s/%s has %d one-second bins, want the whole timeline", s.Tier, s.Regions, len(s.Bins))
		}
	}
	// Visibility over time: a series per pair group, a bin per second,
	// and samples in each group (a write is probed until it is seen, so
	// every group has some whatever the machine's speed).
	if len(f.Visibility) != 3 {
		t.Fatalf("%d visibility series, want into, from and between", len(f.Visibility))
	}
	for _, s := range f.Visibility {
		samples := 0
		for _, b := range s.Bins {
			samples += b.Samples
			if b.Samples > 0 && !(b.P50ms <= b.P99ms && b.P99ms <= b.MaxMs) {
				t.Errorf("visibility %s at %gs: p50 %g, p99 %g, max %g out of order", s.Pairs, b.T, b.P50ms, b.P99ms, b.MaxMs)
			}
		}
		if len(s.Bins) != len(f.Series[0].Bins) || samples == 0 {
			t.Errorf("visibility %s: %d bins (want %d, as the load's) with %d samples in all", s.Pairs, len(s.Bins), len(f.Series[0].Bins), samples)
		}
	}
	for _, w := range f.Windows {
		if len(w.Visibility) != 3 {
			t.Errorf("window %s: visibility of %d pair groups, want 3", w.Fault, len(w.Visibility))
		}
	}
	for name, names := range map[string][]string{
		"faults-throughput.svg": {"partition: ap-southeast", "killed: ap-southeast", "causal, ap-southeast", "linear, other regions"},
		"faults-latency.svg":    {"partition: ap-southeast", "causal, other regions"},
		"faults-visibility.svg": {"partition: ap-southeast", "into ap-southeast", "from ap-southeast", "between the others", "p50 solid, p99 dashed"},
	} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("plot %s: %v", name, err)
			continue
		}
		texts, err := svgTexts(string(b))
		if err != nil {
			t.Errorf("plot %s is not well-formed XML: %v", name, err)
			continue
		}
		for _, n := range names {
			if !strings.Contains(texts, n) {
				t.Errorf("plot %s does not name the series %q", name, n)
			}
		}
	}
	if !strings.Contains(res.stdout, "### Visibility through faults") {
		t.Errorf("stdout lacks the visibility-through-faults table:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "## Through faults (region ap-southeast)") {
		t.Errorf("stdout lacks the fault table:\n%s", res.stdout)
	}
}

// TestBenchReportShowsNoteOnce: report.md's header prints --note once, above
// the command, whichever way the flag was spelled, and for a results.json
// recorded before the command elided it (a --replot of an older run).
func TestBenchReportShowsNoteOnce(t *testing.T) {
	const note = "Machine class: a 2-core VM, shared; every region ran on it."
	for _, tt := range []struct {
		args        []string
		wantCommand string
	}{
		{[]string{"--out", "r", "--note", note}, "causeway bench --out r --note '<the note above>'"},
		{[]string{"-note=" + note, "--quick"}, "causeway bench --note='<the note above>' --quick"},
		{[]string{"--wan", "my layout.txt"}, "causeway bench --wan 'my layout.txt'"},
		{[]string{"--wan", "it's.txt"}, `causeway bench --wan 'it'\''s.txt'`},
	} {
		if got := benchCommandLine(tt.args); got != tt.wantCommand {
			t.Errorf("benchCommandLine(%q) = %q, want %q", tt.args, got, tt.wantCommand)
		}
	}
	for name, command := range map[string]string{
		"recorded now":    benchCommandLine([]string{"--out", "r", "--note", note}),
		"recorded before": "causeway bench --out r --note " + note,
	} {
		head := reportNotes(map[string]string{"command": command, "note": note, "cpus": "2", "loadavg_before": "1 1 1", "loadavg_after": "2 2 2"})
		if n := strings.Count(head, note); n != 1 {
			t.Errorf("%s: the header shows the note %d times, want once:\n%s", name, n, head)
		}
		if !strings.HasPrefix(head, note+"\n\n") || !strings.Contains(head, "--note '<the note above>'") && !strings.Contains(head, "--note <the note above>") {
			t.Errorf("%s: want the note first, then the command with a placeholder:\n%s", name, head)
		}
	}
}

// useTestBinaryAsCauseway makes `causeway bench` start this test binary,
// re-executed as causeway, for its cluster's regions.
func useTestBinaryAsCauseway(t *testing.T) {
	saved := benchCommand
	benchCommand = func() (supervisor.Command, error) {
		return supervisor.Command{Path: os.Args[0], Env: []string{runMainEnv + "=1"}}, nil
	}
	t.Cleanup(func() { benchCommand = saved })
}

// readResults parses dir/results.json.
func readResults(t *testing.T, dir string) wanbench.Results {
	t.Helper()
	var got wanbench.Results
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("results.json does not parse: %v", err)
	}
	return got
}

// checkPlot checks that dir/name is well-formed SVG naming every one of
// names.
func checkPlot(t *testing.T, dir, name string, names ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Errorf("plot %s: %v", name, err)
		return
	}
	texts, err := svgTexts(string(b))
	if err != nil {
		t.Errorf("plot %s is not well-formed XML: %v", name, err)
		return
	}
	for _, n := range names {
		if !strings.Contains(texts, n) {
			t.Errorf("plot %s does not name the series %q", name, n)
		}
	}
}

// TestBenchScaleSmoke runs the region sweep with tiny rows over two small
// layouts (two regions from a matrix file, then aws3) and checks its shape:
// a point per layout with every region's throughput, the table, the plots.
// No figure is asserted.
func TestBenchScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-region, then a 3-region cluster")
	}
	useTestBinaryAsCauseway(t)
	two := filepath.Join(t.TempDir(), "two.txt")
	if err := os.WriteFile(two, []byte("# two regions\nus-east eu-west 20ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res := runCLI("", "bench", "--scale", "--insecure", "--scale-wan", two+",aws3", "--phase", "200ms", "--clients", "2",
		"--progress=false", "--out", out, "--data", benchDataDir(t))
	if res.code != exitOK {
		t.Fatalf("bench --scale failed:\n%s", res)
	}
	got := readResults(t, out)
	if len(got.Scale) != 2 {
		t.Fatalf("%d sweep points, want 2 (the file's 2 regions, then aws3): %+v", len(got.Scale), got.Scale)
	}
	for i, want := range []struct {
		regions int
		names   []string
	}{{2, []string{"us-east", "eu-west"}}, {3, []string{"us-east", "eu-west", "ap-southeast"}}} {
		pt := got.Scale[i]
		if pt.Error != "" {
			t.Errorf("point %d (%s): %s", i, pt.Preset, pt.Error)
			continue
		}
		if pt.Regions != want.regions {
			t.Errorf("point %d has %d regions, want %d", i, pt.Regions, want.regions)
		}
		for _, r := range want.names {
			if _, ok := pt.PerRegionOpsPerSec[r]; !ok {
				t.Errorf("point %d: no throughput for %s: %v", i, r, pt.PerRegionOpsPerSec)
			}
			if _, ok := pt.ApplyPerSecByRegion[r]; !ok {
				t.Errorf("point %d: no apply rate for %s: %v", i, r, pt.ApplyPerSecByRegion)
			}
		}
	}
	if !strings.Contains(res.stdout, "## Region sweep: every region writing at once") {
		t.Errorf("stdout lacks the sweep table:\n%s", res.stdout)
	}
	checkPlot(t, out, "scale-throughput.svg", "puts/s per region (mean)", "puts/s, all regions")
	checkPlot(t, out, "scale-visibility.svg", "visibility p50 - one-way delay (median of pairs)")
}

// TestBenchAddrWithLinearTier runs `causeway bench --addr` against a
// running 3-region cluster whose regions all vote in the linearizable tier
// (started here through internal/supervisor, without emulated delay, so
// the matrix given is all zeros), with tiny rows, and checks that it
// measures both tiers from every region and skips, saying why, only what
// needs the embedded cluster.
func TestBenchAddrWithLinearTier(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-region cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startLinearCluster(t, ctx)
	leader := c.awaitVoters(60 * time.Second)
	var addrs []string
	for _, r := range c.regions {
		addrs = append(addrs, r.name+"="+r.url)
	}
	matrix := filepath.Join(t.TempDir(), "local.txt")
	if err := os.WriteFile(matrix, []byte("us-east eu-west 0\nus-east ap-south 0\neu-west ap-south 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// The cluster runs with TLS: the benchmark presents its admin client
	// certificate.
	args := append([]string{"bench", "--addr", strings.Join(addrs, ","), "--wan", matrix, "--etcd", "none",
		"--phase", "50ms", "--clients", "1,2", "--rate", "20", "--linear-rate", "5", "--progress=false", "--out", out},
		c.procs.cliCredentials()...)
	if len(c.procs.cliCredentials()) == 0 {
		t.Fatal("the linear cluster runs without TLS: this test means to benchmark a secure --addr cluster")
	}
	res := runCLI("", args...)
	if res.code != exitOK {
		t.Fatalf("bench --addr failed:\n%s", res)
	}
	got := readResults(t, out)
	if got.Embedded {
		t.Error("results say the cluster was embedded")
	}
	if got.Leader != leader {
		t.Errorf("results name %q the leader, the cluster says %q", got.Leader, leader)
	}
	type key struct{ tier, op, region string }
	have := map[key]bool{}
	for _, r := range got.Rows {
		have[key{r.Tier, r.Op, r.Region}] = true
		if !r.WAN {
			t.Errorf("a no-WAN row against --addr: %+v", r)
		}
	}
	for tier, ops := range map[string][]string{
		"causal": {"put", "move-read", "unique-put", "ycsb-e"},
		"linear": {"claim", "cas", "linear-get", "lock"},
	} {
		for _, op := range ops {
			for _, r := range c.regions {
				if !have[key{tier, op, r.name}] {
					t.Errorf("no %s %s row from %s", tier, op, r.name)
				}
			}
		}
	}
	if n := len(got.Visibility); n != 2*6 {
		t.Errorf("%d visibility rows, want 12", n)
	}
	skipped := strings.Join(got.Skipped, "\n")
	for _, want := range []string{"no-WAN baseline: needs the embedded cluster", "catch-up row: needs the embedded cluster", "etcd rows: skipped by --etcd none"} {
		if !strings.Contains(skipped, want) {
			t.Errorf("skipped list lacks %q:\n%s", want, skipped)
		}
	}
	if strings.Contains(skipped, "linearizable rows") {
		t.Errorf("the linearizable rows were skipped against a cluster that has the tier:\n%s", skipped)
	}
	if got.CatchUp != nil {
		t.Errorf("a catch-up row against --addr: %+v", got.CatchUp)
	}
}

// isBenchLog reports whether path, under a bench --data directory, is a
// process's log: a region's (causeway/logs/R.log, scale-N/logs/R.log) or
// an etcd member's (etcd/R.log). Pebble's write-ahead logs, also *.log,
// are not.
func isBenchLog(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil || !strings.HasSuffix(rel, ".log") {
		return false
	}
	parent := filepath.Base(filepath.Dir(rel))
	return parent == "logs" || filepath.Dir(rel) == "etcd"
}

// benchLogTailLines is how much of each log a failed bench test prints,
// and benchStackDumpLines how much of a hung region's goroutine dump.
const (
	benchLogTailLines   = 60
	benchStackDumpLines = 400
)

// benchDataDir is a --data directory for a bench test that outlives a
// failure: when the test fails, the end of every log under it (each
// region's, each etcd member's) goes into the test's output, and with
// CAUSEWAY_TEST_ARTIFACTS set the whole logs are copied under
// $CAUSEWAY_TEST_ARTIFACTS/<test name>/, so a region that never served
// leaves the reason behind.
func benchDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// Registered after TempDir's own cleanup, so it runs before the
	// directory is removed.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		keep := os.Getenv(artifactsEnv)
		if keep != "" {
			keep = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
		}
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isBenchLog(dir, path) {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			// A region that hung was ended with SIGQUIT (wanbench's
			// describe): its log ends with every goroutine's stack.
			log, dump, dumped := strings.Cut(string(b), "SIGQUIT: quit")
			lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
			if len(lines) > benchLogTailLines {
				lines = lines[len(lines)-benchLogTailLines:]
			}
			t.Logf("--- the last %d lines of %s (%d bytes) ---\n%s", len(lines), rel, len(b), strings.Join(lines, "\n"))
			if dumped {
				stacks := strings.Split(dump, "\n")
				if len(stacks) > benchStackDumpLines {
					stacks = stacks[:benchStackDumpLines]
				}
				t.Logf("--- %s: its goroutines when it was ended (SIGQUIT), the first %d lines ---\n%s", rel, len(stacks), strings.Join(stacks, "\n"))
			}
			if keep == "" {
				return nil
			}
			to := filepath.Join(keep, rel)
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		})
		if err != nil {
			t.Logf("collecting the bench logs: %v", err)
		}
		if keep != "" {
			t.Logf("the bench logs are kept in %s", keep)
		}
	})
	return dir
}
