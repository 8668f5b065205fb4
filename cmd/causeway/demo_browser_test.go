//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The dashboard is tested as a person uses it: in a real headless
// Chromium, driven by chromedp. chromedp speaks the DevTools protocol from
// Go, so the test needs no Node.js, npm or WebDriver server, runs inside
// `go test` next to the cluster it starts, and uses the system's Chromium
// (Debian's chromium package, which .ci/run installs).

// artifactsEnv names a directory that keeps the browser test's screenshots
// (default: the test's temporary directory, which go test removes).
const artifactsEnv = "CAUSEWAY_TEST_ARTIFACTS"

// chromiumPath finds Chromium. Without one the test is skipped, except in
// CI (CI=true), where a missing browser fails it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (chromium, chromium-browser or google-chrome on PATH); CI must install it: apt-get install -y chromium (see .ci/run)")
	}
	t.Skip("no Chromium found; apt-get install -y chromium to run the dashboard's browser test")
	return ""
}

// TestDemoDashboardInBrowser loads the dashboard of a running demo in
// headless Chromium and, only by clicking its controls and typing into
// its client panels: cuts the links to ap-southeast, writes in us-east and
// in ap-southeast, sees ap-southeast refuse a username claim with its
// reason, heals every link, and sees both regions read the same value and
// show the same applied vector. A screenshot of each step is saved.
func TestDemoDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes and a browser")
	}
	browser := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, srv := startDemo(t, ctx)

	shots := os.Getenv(artifactsEnv)
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1100),
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()

	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step := 0
	shot := func(name string) {
		t.Helper()
		step++
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	// await polls the page until cond holds on the text of sel (the page
	// updates from the demo's event stream, so this is synchronisation
	// with the cluster, bounded by limit).
	await := func(sel, what string, limit time.Duration, cond func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			s := text(sel)
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v, %s shows %q; want %s", limit, sel, s, what)
			}
			run("wait", chromedp.Sleep(100*time.Millisecond)) // the browser's own clock; the deadline bounds the wait
		}
	}
	contains := func(want string) func(string) bool {
		return func(s string) bool { return strings.Contains(s, want) }
	}
	client := func(region, op, key, value string) {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{chromedp.SetValue(chromedp.ID("#key-"+region), key)}
		if op == "put" {
			steps = append(steps, chromedp.SetValue(chromedp.ID("#value-"+region), value))
		}
		run(op+" in "+region, append(steps, chromedp.Click(chromedp.ID("#"+op+"-"+region)))...)
	}

	run("load the dashboard", chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("#put-us-east")))
	await("#live-text", "live", 10*time.Second, contains("live"))
	await("#cap-ap-southeast .caplinear", "ap-southeast's linear tier serving", 30*time.Second, contains("✔"))
	shot("connected")

	// Cut both links of ap-southeast with the link controls.
	for _, peer := range []string{"us-east", "eu-west"} {
		run("cut "+peer+"/ap-southeast",
			chromedp.SetValue(chromedp.ID("#link-a"), peer),
			chromedp.SetValue(chromedp.ID("#link-b"), "ap-southeast"),
			chromedp.SetValue(chromedp.ID("#link-dir"), "both"),
			chromedp.Click(chromedp.ID("#btn-cut")))
		await("#link-"+peer+"-ap-southeast-label", "the link shown cut", 10*time.Second, contains("cut"))
	}
	await("#cap-ap-southeast .caplinear", "ap-southeast's linear tier refusing", 30*time.Second, contains("refuses"))
	shot("partitioned")

	// Both sides take causal writes.
	client("us-east", "put", "greeting", "hello from us-east")
	await("#result-us-east", "the write acknowledged", 10*time.Second, contains("wrote greeting in us-east"))
	client("ap-southeast", "put", "greeting", "hello from ap-southeast")
	await("#result-ap-southeast", "the write acknowledged", 10*time.Second, contains("wrote greeting in ap-southeast"))
	shot("written-on-both-sides")

	// The minority refuses a claim, and says why.
	run("claim in ap-southeast", chromedp.SetValue(chromedp.ID("#claimname-ap-southeast"), "trinity"), chromedp.Click(chromedp.ID("#claim-ap-southeast")))
	refusal := await("#result-ap-southeast", "the claim refused", 15*time.Second, contains("unavailable"))
	for _, want := range []string{"linearizable tier unavailable here", "quorum", "causal reads and writes still available"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the refusal %q does not say %q", refusal, want)
		}
	}
	cls, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("result-ap-southeast"), "class"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cls.Value, "bad") {
		t.Errorf("the refusal is shown with class %q, want it marked bad", cls.Value)
	}
	shot("minority-refuses-claim")

	// Heal, then both regions converge.
	run("heal all", chromedp.Click(chromedp.ID("#btn-heal-all")))
	await("#cap-ap-southeast .caplinear", "ap-southeast's linear tier serving again", 60*time.Second, contains("✔"))
	want := await("#vector-us-east", "us-east to apply ap-southeast's write", 30*time.Second, contains("ap-southeast 1"))
	await("#vector-ap-southeast", "ap-southeast to show us-east's vector "+want, 30*time.Second, func(s string) bool { return s == want })
	var values [2]string
	for i, region := range []string{"us-east", "ap-southeast"} {
		client(region, "get", "greeting", "")
		res := await("#result-"+region, "the read answered", 15*time.Second, contains("greeting ="))
		values[i], _, _ = strings.Cut(res, " (")
	}
	if values[0] != values[1] || !strings.Contains(values[0], "hello from") {
		t.Errorf("after the heal us-east reads %q and ap-southeast %q, want the same value", values[0], values[1])
	}
	if a, b := text("#vector-us-east"), text("#vector-ap-southeast"); a != b {
		t.Errorf("after the heal us-east shows vector %q and ap-southeast %q", a, b)
	}
	shot("healed-and-converged")
}
