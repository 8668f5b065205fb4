package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/internal/supervisor"
)

// defaultRegions and defaultWAN describe a three-continent deployment. The
// one-way delays are half of measured round trips between cloud regions:
// us-east–eu-west about 80 ms, us-east–ap-southeast about 217 ms,
// eu-west–ap-southeast about 238 ms.
var (
	defaultRegions = []string{"us-east", "eu-west", "ap-southeast"}
	defaultWAN     = "us-east/eu-west=40ms,us-east/ap-southeast=108ms,eu-west/ap-southeast=119ms"
)

func runCluster(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	regions := fs.String("regions", strings.Join(defaultRegions, ","), "comma-separated region names, one process each")
	count := fs.Int("n", 0, "number of regions (default: as many as --regions names; more get names region-4, region-5, ...)")
	wan := fs.String("wan-latency", defaultWAN, "one-way delays between regions (a/b=40ms,...); \"\" for none")
	data := fs.String("data", "./cluster-data", "parent directory of the regions' data directories")
	basePort := fs.Int("base-port", 7071, "API port of the first region; the others follow")
	key := fs.String("gossip-key", os.Getenv("CAUSEWAY_GOSSIP_KEY"), "base64 key that encrypts gossip between the regions (env CAUSEWAY_GOSSIP_KEY)")
	voters := fs.String("linear-voters", "", "regions that vote in the linearizable tier (comma-separated); the others forward to them. Default: every region; \"none\" turns the tier off")
	cluster := fs.String("cluster-id", "", "cluster id; default: the one in DATA/cluster-id, or a new one saved there")
	insecure := fs.Bool("insecure", false, "run the regions without TLS or authentication (plain HTTP on 127.0.0.1), as before clusters ran secure")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway cluster [flags]\n\nStarts a local multi-region cluster: one `causeway serve` process per region on\n127.0.0.1, each with its own data directory, joined by gossip, fault\ninjection on (see `causeway link`), and WAN delays between regions. A region that\nexits is reported and the others keep running. Ctrl-C stops them all.\n\nThe regions run with TLS: a cluster CA, a node certificate per region and an\nadmin client certificate are created in DATA/certs (kept for the next start),\nand the cluster prints the variables that let the CLI talk to it:\n  export CAUSEWAY_CERTS_DIR=DATA/certs CAUSEWAY_CLIENT=admin\n--insecure runs them in plain HTTP instead.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	names := strings.Split(*regions, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	if *count > 0 {
		for len(names) < *count {
			names = append(names, fmt.Sprintf("region-%d", len(names)+1))
		}
		names = names[:*count]
	}
	if len(names) < 1 {
		fmt.Fprintln(stderr, "causeway cluster: no regions")
		return exitUsage
	}
	if _, err := supervisor.ParseWAN(*wan); err != nil {
		fmt.Fprintf(stderr, "causeway cluster: --wan-latency: %v\n", err)
		return exitUsage
	}
	role := map[string]string{}
	switch *voters {
	case "":
		for _, n := range names {
			role[n] = "voter"
		}
	case "none":
		for _, n := range names {
			role[n] = "off"
		}
	default:
		for _, n := range names {
			role[n] = "forwarder"
		}
		for _, v := range strings.Split(*voters, ",") {
			v = strings.TrimSpace(v)
			if _, ok := role[v]; !ok {
				fmt.Fprintf(stderr, "causeway cluster: --linear-voters: %q is not one of the regions %v\n", v, names)
				return exitUsage
			}
			role[v] = "voter"
		}
		// The first region forms the tier, so it must vote.
		if role[names[0]] != "voter" {
			fmt.Fprintf(stderr, "causeway cluster: --linear-voters must include the first region, %s, which forms the tier\n", names[0])
			return exitUsage
		}
	}
	id, err := clusterID(*data, *cluster)
	if err != nil {
		fmt.Fprintf(stderr, "causeway cluster: %v\n", err)
		return exitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "causeway cluster: %v\n", err)
		return exitFailed
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A region that exits is reported, and the others keep running: the
	// user may restart it by hand, or stop the cluster.
	exited := make(chan string, len(names))
	certsDir := ""
	if !*insecure {
		if certsDir, err = filepath.Abs(filepath.Join(*data, "certs")); err != nil {
			fmt.Fprintf(stderr, "causeway cluster: %v\n", err)
			return exitFailed
		}
	}
	sup := supervisor.New(supervisor.Config{
		Command:       supervisor.Command{Path: exe},
		CertsDir:      certsDir,
		StartTimeout:  30 * time.Second,
		StartAttempts: 1, // the ports are the user's: a held one stays held
		Output: func(region string, _ int) (io.Writer, io.Writer) {
			return nil, &prefixWriter{w: stderr, prefix: "[" + region + "] "}
		},
		OnExit: func(e supervisor.Exit) {
			fmt.Fprintf(stderr, "causeway cluster: region %s exited (%v); the other regions keep running\n", e.Region, exitStatus(e.Err))
			exited <- e.Region
		},
	})
	defer sup.StopAll(15 * time.Second)
	addrs := supervisor.PortAddrs(*basePort, len(names))
	for i, name := range names {
		if err := sup.Add(supervisor.Region{Name: name, DataDir: filepath.Join(*data, name), Addrs: addrs[i]}); err != nil {
			fmt.Fprintf(stderr, "causeway cluster: %v\n", err)
			return exitUsage
		}
	}
	for i, name := range names {
		args := []string{"--cluster-id", id, "--fault-injection", "--wan-latency", *wan, "--linear", role[name]}
		switch {
		case i > 0:
			// Every region joins through the first; gossip does the rest.
			args = append(args, "--join", addrs[0].Gossip)
		case len(names) > 1 && existed(filepath.Join(*data, names[1])):
			// The cluster exists: the first region joins through the
			// second, so that if its data directory was lost it copies
			// the others before it serves instead of starting anew.
			args = append(args, "--join", addrs[1].Gossip)
		}
		if *key != "" {
			args = append(args, "--gossip-key", *key)
		}
		if err := sup.Start(ctx, name, args); err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			fmt.Fprintf(stderr, "causeway cluster: %v (see its log above)\n", err)
			return exitFailed
		}
	}
	// A region created with --join serves once it holds a snapshot of
	// every other region; the cluster is ready when all of them serve.
	if err := sup.AwaitServing(ctx, 60*time.Second, names...); err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "causeway cluster: %v\n", err)
		return exitFailed
	}
	security := "TLS on"
	if certsDir == "" {
		security = "no TLS (--insecure)"
	}
	fmt.Fprintf(stdout, "causeway cluster %s: %d regions, %s, fault injection on\n", id, len(names), security)
	for _, name := range names {
		r, _ := sup.Region(name)
		fmt.Fprintf(stdout, "  %-14s %s   (causeway status --addr %s)  linear tier: %s\n", name, r.URL(), r.Addrs.API, role[name])
	}
	if *wan != "" {
		fmt.Fprintf(stdout, "  WAN one-way delays: %s\n", *wan)
	}
	if certsDir != "" {
		fmt.Fprintf(stdout, "Certificates in %s. Talk to the cluster as its admin:\n  export CAUSEWAY_CERTS_DIR=%s CAUSEWAY_CLIENT=%s\n", certsDir, certsDir, supervisor.AdminClient)
	}
	fmt.Fprintln(stdout, "Ctrl-C stops every region.")

	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "stopping...")
			return exitOK
		case <-exited:
			running := 0
			for _, name := range names {
				if sup.State(name) != supervisor.Down {
					running++
				}
			}
			if running == 0 {
				fmt.Fprintln(stderr, "causeway cluster: every region has exited")
				return exitFailed
			}
		}
	}
}

// exitStatus describes how a process ended.
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// existed reports whether path exists.
func existed(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// prefixWriter writes each line written to it to w, after prefix. A line
// is written once it is complete.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// clusterID returns the given id, or the one saved under data, or a new
// one that it saves, so that restarting the cluster reuses its data.
func clusterID(data, given string) (string, error) {
	path := filepath.Join(data, "cluster-id")
	saved, err := os.ReadFile(path)
	if err == nil {
		saved = []byte(strings.TrimSpace(string(saved)))
	}
	switch {
	case given != "":
		if _, err := uuid.Parse(given); err != nil {
			return "", fmt.Errorf("--cluster-id %q is not a UUID", given)
		}
		if len(saved) > 0 && string(saved) != given {
			return "", fmt.Errorf("%s holds cluster %s, not %s; use another --data", data, saved, given)
		}
	case len(saved) > 0:
		return string(saved), nil
	default:
		given = uuid.NewString()
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	return given, os.WriteFile(path, []byte(given+"\n"), 0o644)
}
