package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/supervisor"
)

const (
	rulesFile     = "prometheus/causeway-alerts.yaml"
	rulesTestFile = "prometheus/causeway-alerts.test.yaml"
	dashboardFile = "grafana/causeway-dashboard.json"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

// promtool is Prometheus' own checker (Debian package prometheus, which
// .ci/run installs).
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install the Debian package prometheus (apt-get install -y prometheus; .ci/run does)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules loads the rules with Prometheus' own parser (every
// expression parsed, every template checked) and runs their unit tests:
// each alert fires on the series it is meant for and not on healthy ones.
func TestAlertRules(t *testing.T) {
	promtool(t, "check", "rules", rulesFile)
	promtool(t, "test", "rules", rulesTestFile)
}

// metricName matches a Causeway metric name in an expression.
var metricName = regexp.MustCompile(`\bcauseway_[a-z0-9_]*[a-z0-9]\b`)

// ruleMetrics lists the Causeway metrics the alert rules name, outside
// comments.
func ruleMetrics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		names = append(names, metricName.FindAllString(line, -1)...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// dashboardMetrics checks the dashboard's structure and lists the Causeway
// metrics its panels and variables name.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q uid %q, %d panels; want all three", dashboardFile, d.Title, d.UID, len(d.Panels))
	}
	var names []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.Type == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d (%q, type %q) has no title, type or query", p.ID, p.Title, p.Type)
		}
		for _, tg := range p.Targets {
			found := metricName.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q query %s names no Causeway metric: %q", p.Title, tg.RefID, tg.Expr)
			}
			names = append(names, found...)
		}
	}
	for _, v := range d.Templating.List {
		names = append(names, metricName.FindAllString(string(v.Query), -1)...)
	}
	return names
}

// TestEveryNamedMetricIsExported starts two regions from the image's
// static binary (gossip-joined, the first a voter of the linearizable
// tier), writes in both, and checks that every Causeway metric the alert
// rules and the dashboard name appears on the first node's /metrics.
// Labelled series appear once observed, so the test polls until each has
// appeared, for at most a minute, then names the missing ones.
func TestEveryNamedMetricIsExported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	want := map[string][]string{}
	for _, n := range ruleMetrics(t) {
		want[n] = append(want[n], rulesFile)
	}
	for _, n := range dashboardMetrics(t) {
		want[n] = append(want[n], dashboardFile)
	}
	if len(want) < 10 {
		t.Fatalf("the rules and the dashboard name only %d metrics: %v", len(want), want)
	}

	bin := staticBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stderrA, stderrB lockedBuffer
	sup := supervisor.New(supervisor.Config{
		Command: supervisor.Command{Path: bin},
		Output: func(region string, _ int) (io.Writer, io.Writer) {
			if region == "a" {
				return nil, &stderrA
			}
			return nil, &stderrB
		},
	})
	defer sup.Close()
	addrs, err := supervisor.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		if err := sup.Add(supervisor.Region{Name: name, DataDir: t.TempDir(), Addrs: addrs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	cluster := uuid.NewString()
	if err := sup.Start(ctx, "a", []string{"--cluster-id", cluster}); err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(ctx, "b", []string{"--cluster-id", cluster, "--join", addrs[0].Gossip, "--linear", "forwarder"}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i, url := range []string{"http://" + addrs[0].API, "http://" + addrs[1].API} {
		if err := supervisor.AwaitCausalServing(ctx, client, url, time.Minute); err != nil {
			t.Fatalf("region %d: %v\nstderr of a:\n%s\nstderr of b:\n%s", i, err, stderrA.String(), stderrB.String())
		}
		kv := causewayv1connect.NewKVServiceClient(client, url)
		for j := range 20 {
			if _, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: fmt.Sprintf("k%d-%d", i, j), Value: []byte("v")})); err != nil {
				t.Fatalf("put in region %d: %v", i, err)
			}
		}
	}

	var missing []string
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		have, err := scrapeNames(ctx, client, "http://"+addrs[0].API+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		for n := range want {
			if !have[n] {
				missing = append(missing, fmt.Sprintf("%s (named in %s)", n, strings.Join(slices.Compact(want[n]), ", ")))
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(missing)
			t.Fatalf("metrics named but not on a running node's /metrics:\n  %s\nstderr of a:\n%s\nstderr of b:\n%s", strings.Join(missing, "\n  "), stderrA.String(), stderrB.String())
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
	}
}

// scrapeNames returns the metric names of every sample on a /metrics page
// (the text exposition format: a sample line starts with its name).
func scrapeNames(ctx context.Context, client *http.Client, url string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			return nil, fmt.Errorf("GET %s: malformed sample line %q", url, line)
		}
		names[line[:end]] = true
	}
	return names, sc.Err()
}

// lockedBuffer collects a child's stderr, written from the exec package's
// goroutine while a failing test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
