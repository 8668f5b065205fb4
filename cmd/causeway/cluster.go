package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// defaultRegions and defaultWAN describe a three-continent deployment. The
// one-way delays are half of measured round trips between cloud regions:
// us-east–eu-west about 80 ms, us-east–ap-southeast about 217 ms,
// eu-west–ap-southeast about 238 ms.
var (
	defaultRegions = []string{"us-east", "eu-west", "ap-southeast"}
	defaultWAN     = "us-east/eu-west=40ms,us-east/ap-southeast=108ms,eu-west/ap-southeast=119ms"
)

// gossipPortOffset: a region's gossip port is its API port plus this, as
// `causeway serve` defaults it.
const gossipPortOffset = 100

var readyLine = regexp.MustCompile(`^causeway: region (\S+) serving on http://(\S+) \(data in .+\)$`)

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
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway cluster [flags]\n\nStarts a local multi-region cluster: one `causeway serve` process per region on\n127.0.0.1, each with its own data directory, joined by gossip, fault\ninjection on (see `causeway link`), and WAN delays between regions. Ctrl-C stops them all.\n\nFlags:\n")
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
	if _, err := parseLatencyMatrix(*wan); err != nil {
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
	var procs []*exec.Cmd
	var logs sync.WaitGroup
	defer func() {
		stopAll(procs)
		logs.Wait()
	}()
	addrs := map[string]string{}
	for i, name := range names {
		addr := fmt.Sprintf("127.0.0.1:%d", *basePort+i)
		gossipAddr := fmt.Sprintf("127.0.0.1:%d", *basePort+i+gossipPortOffset)
		args := []string{"serve", "--region", name, "--data", filepath.Join(*data, name), "--listen", addr,
			"--gossip-listen", gossipAddr, "--cluster-id", id, "--fault-injection", "--wan-latency", *wan,
			"--linear", role[name]}
		switch {
		case i > 0:
			// Every region joins through the first; gossip does the rest.
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", *basePort+gossipPortOffset))
		case len(names) > 1 && existed(filepath.Join(*data, names[1])):
			// The cluster exists: the first region joins through the
			// second, so that if its data directory was lost it copies
			// the others before it serves instead of starting anew.
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", *basePort+1+gossipPortOffset))
		}
		if *key != "" {
			args = append(args, "--gossip-key", *key)
		}
		cmd := exec.Command(exe, args...)
		out, _ := cmd.StdoutPipe()
		errs, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "causeway cluster: start %s: %v\n", name, err)
			return exitFailed
		}
		procs = append(procs, cmd)
		logs.Add(1)
		go func() {
			defer logs.Done()
			prefixLines(stderr, errs, name)
		}()
		ready := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
					ready <- m[2]
				}
			}
			close(ready)
		}()
		select {
		case got, ok := <-ready:
			if !ok {
				fmt.Fprintf(stderr, "causeway cluster: region %s exited before serving (see its log above)\n", name)
				return exitFailed
			}
			addrs[name] = got
		case <-time.After(30 * time.Second):
			fmt.Fprintf(stderr, "causeway cluster: region %s did not start within 30s\n", name)
			return exitFailed
		case <-ctx.Done():
			return exitOK
		}
	}
	// A region created with --join serves once it holds a snapshot of
	// every other region; the cluster is ready when all of them serve.
	if err := awaitServing(ctx, addrs, 60*time.Second); err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "causeway cluster: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "causeway cluster %s: %d regions, fault injection on\n", id, len(names))
	for _, name := range names {
		fmt.Fprintf(stdout, "  %-14s http://%s   (causeway status --addr %s)  linear tier: %s\n", name, addrs[name], addrs[name], role[name])
	}
	if *wan != "" {
		fmt.Fprintf(stdout, "  WAN one-way delays: %s\n", *wan)
	}
	fmt.Fprintln(stdout, "Ctrl-C stops every region.")

	exited := make(chan string, len(procs))
	for i, p := range procs {
		go func() {
			p.Wait()
			exited <- names[i]
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping...")
		return exitOK
	case name := <-exited:
		fmt.Fprintf(stderr, "causeway cluster: region %s exited; stopping the others\n", name)
		return exitFailed
	}
}

// existed reports whether path exists.
func existed(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// awaitServing polls each region's status until its causal tier serves
// clients, for at most limit.
func awaitServing(ctx context.Context, addrs map[string]string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for name, addr := range addrs {
		admin := causewayv1connect.NewAdminServiceClient(http.DefaultClient, "http://"+addr)
		for {
			res, err := admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
			if err == nil && res.Msg.GetCausalState() == "serving" {
				break
			}
			why := fmt.Sprint(err)
			if err == nil {
				why = res.Msg.GetCausalState() + ": " + res.Msg.GetCausalStateReason()
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("region %s does not serve after %v (%s)", name, limit, why)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// stopAll sends SIGTERM to every process, then SIGKILL to those still
// running after a grace period.
func stopAll(procs []*exec.Cmd) {
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.Process == nil || p.ProcessState != nil {
			continue
		}
		wg.Go(func() {
			_ = p.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() {
				_, _ = p.Process.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		})
	}
	wg.Wait()
}

func prefixLines(w io.Writer, r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "[%s] %s\n", prefix, sc.Text())
	}
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
