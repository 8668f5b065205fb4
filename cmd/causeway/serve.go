package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/logquiet"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/internal/supervisor"
	"github.com/causewaydb/causeway/linear"
	"github.com/causewaydb/causeway/replica"
)

// runServe runs `causeway serve`: parse the flags into a process's
// configuration, then run the process until SIGINT or SIGTERM.
func runServe(args []string, stdout, stderr io.Writer) int {
	f, code := parseServe(args, stdout, stderr)
	if f == nil {
		return code
	}
	logger, err := f.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}
	pcfg, err := f.processConfig(logger, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}
	tuneGC(os.Getenv)
	return serveProcess(pcfg, f.listen, f.data, logger, stdout, stderr)
}

// serveFlags are `causeway serve`'s flags.
type serveFlags struct {
	region, data, listen, cluster string
	maxOffset, causalWait         time.Duration
	groupDelay                    time.Duration
	peers, advertise              string
	gossipAddr, join, gossipKey   string
	linearRole, raftAddr          string
	faults                        bool
	clockSkew                     time.Duration
	wan                           string
	logLevel, logFormat           string
	logRepeats                    time.Duration
	certsDir                      string
	insecure, pprof               bool
	voters                        string
}

// parseServe parses `causeway serve`'s flags; a nil result comes with the
// exit code (help, or a usage error already reported on stderr).
func parseServe(args []string, stdout, stderr io.Writer) (*serveFlags, int) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("causeway serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.region, "region", envOr("CAUSEWAY_REGION", "local"), "region (datacenter) name: lowercase letters, digits and '-' (env CAUSEWAY_REGION)")
	fs.StringVar(&f.data, "data", envOr("CAUSEWAY_DATA", "./causeway-data"), "data directory; created if missing (env CAUSEWAY_DATA)")
	fs.StringVar(&f.listen, "listen", envOr("CAUSEWAY_LISTEN", "127.0.0.1:7070"), "address for the API (Connect, gRPC, gRPC-Web) and /metrics (env CAUSEWAY_LISTEN)")
	fs.StringVar(&f.cluster, "cluster-id", "", "cluster id for a new data directory: a UUID, or a name that stands for one (every region of a cluster gives the same); default: a new random id, or the one the directory holds")
	fs.DurationVar(&f.maxOffset, "max-clock-offset", replica.DefaultMaxClockOffset, "refuse timestamps further ahead of this node's clock than this")
	fs.DurationVar(&f.causalWait, "causal-wait", replica.DefaultCausalWaitTimeout, "how long a request without a deadline waits for its token's causal past")
	fs.DurationVar(&f.groupDelay, "group-commit-delay", replica.DefaultGroupCommitDelay, fmt.Sprintf("while %d or more writes are in progress, pause this long after each fsync of the write-ahead log so that more writes share the next; 0 disables (every acknowledged write is durable either way)", replica.DefaultGroupCommitWriters))
	fs.StringVar(&f.peers, "peers", envOr("CAUSEWAY_PEERS", ""), "other regions to replicate with: region=host:port,... (env CAUSEWAY_PEERS); regions that connect to this one are added automatically")
	fs.StringVar(&f.advertise, "advertise", "", "address (host:port) other regions use to reach this node; default: the --listen address")
	fs.StringVar(&f.gossipAddr, "gossip-listen", envOr("CAUSEWAY_GOSSIP_LISTEN", ""), "address for gossip (TCP and UDP); default: the --listen host, port + 100; \"off\" disables gossip (env CAUSEWAY_GOSSIP_LISTEN)")
	fs.StringVar(&f.join, "join", envOr("CAUSEWAY_JOIN", ""), "gossip addresses of members to join through, host:port,... (env CAUSEWAY_JOIN)")
	fs.StringVar(&f.gossipKey, "gossip-key", "", "base64 key (16, 24 or 32 bytes) that encrypts gossip; every member needs the same (env CAUSEWAY_GOSSIP_KEY)")
	fs.StringVar(&f.linearRole, "linear", envOr("CAUSEWAY_LINEAR", "voter"), "this node's part in the linearizable tier (claims, CAS, locks): voter (a Raft voter for its region), forwarder (no Raft; sends requests to a voter) or off (env CAUSEWAY_LINEAR). The first voter, started without --join, forms the tier; later ones are added by its leader")
	fs.StringVar(&f.voters, "voters", envOr("CAUSEWAY_VOTERS", ""), "regions whose nodes may join the linearizable tier as voters, comma-separated; give every node the same list. Default: any node with a node certificate of the cluster (--certs-dir), or any node that reaches the Raft port without TLS. `causeway approve-voter REGION` names more at run time (env CAUSEWAY_VOTERS)")
	fs.StringVar(&f.raftAddr, "raft-listen", envOr("CAUSEWAY_RAFT_LISTEN", ""), "address of the linearizable tier's Raft transport (voters); default: the --listen host, port + 200 (env CAUSEWAY_RAFT_LISTEN)")
	fs.StringVar(&f.certsDir, "certs-dir", envOr("CAUSEWAY_CERTS_DIR", ""), "directory of ca.crt, node.crt, node.key (and gossip.key, tokens.json): TLS on every listener and between nodes, clients authenticated by certificate or token (env CAUSEWAY_CERTS_DIR; create with `causeway cert`)")
	fs.BoolVar(&f.insecure, "insecure", false, "run without TLS or authentication on a non-loopback address (without --certs-dir a node listens only on loopback)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiling handlers under /debug/pprof/ on the API address (go tool pprof http://ADDR/debug/pprof/profile); off by default")
	fs.BoolVar(&f.faults, "fault-injection", false, "allow AdminService/SetLink (causeway link) to delay and cut this node's links at run time; for demos and tests")
	fs.DurationVar(&f.clockSkew, "clock-skew", 0, "test hook: offset this node's physical clock by this much (e.g. 5s or -3s, at most ±1h); needs --fault-injection")
	fs.StringVar(&f.wan, "wan-latency", "", "static one-way delays between regions: a/b=40ms,a/c=108ms (applies the entries naming this node's region)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&f.logRepeats, "log-repeats", logquiet.DefaultWindow, "write a recurring log line (the same message, numbers and addresses aside: Raft and gossip retrying an unreachable peer) once per this window, with the count of repeats; 0 writes every line")
	configFile, printConfig := serveConfigFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway serve [flags]\n\nStarts one Causeway node. Every flag has a default, so a bare\n`causeway serve` starts region \"local\" with data in ./causeway-data on 127.0.0.1:7070.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return nil, code
	}
	if code, ok := applyServeConfig(fs, *configFile, *printConfig, stdout, stderr); !ok {
		return nil, code
	}
	return f, exitOK
}

// logger is the process's logger on stderr, at --log-level in --log-format.
func (f *serveFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	if f.logRepeats < 0 {
		return nil, fmt.Errorf("--log-repeats %v: give a window, or 0 to write every line", f.logRepeats)
	}
	var handler slog.Handler
	switch f.logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", f.logFormat)
	}
	if f.logRepeats > 0 {
		handler = logquiet.New(handler, logquiet.Config{Window: f.logRepeats})
	}
	return slog.New(handler), nil
}

// processConfig turns the flags into the process's configuration; an error
// is a usage error, its text says which flag and why.
func (f *serveFlags) processConfig(logger *slog.Logger, stderr io.Writer) (process.Config, error) {
	cfg := replica.Config{
		Region:            f.region,
		DataDir:           f.data,
		MaxClockOffset:    f.maxOffset,
		CausalWaitTimeout: f.causalWait,
		GroupCommitDelay:  groupCommitDelay(f.groupDelay),
		Logger:            logger,
		Advertise:         f.advertise,
		FaultInjection:    f.faults,
	}
	var err error
	if cfg.Peers, err = parsePeers(f.peers); err != nil {
		return process.Config{}, fmt.Errorf("--peers: %w", err)
	}
	if err := cfg.ApplyUnsafeSwitches(os.Getenv); err != nil {
		return process.Config{}, err
	}
	pcfg := process.Config{Pprof: f.pprof}
	sec, certsGossipKey, err := serveSecurity(f.certsDir, f.insecure, []string{f.listen, f.gossipAddr, f.raftAddr}, stderr)
	if err != nil {
		return process.Config{}, err
	}
	if sec != nil {
		if id := sec.Certs.Identity(); id.Region != f.region {
			return process.Config{}, fmt.Errorf("the node certificate in %s is for region %s, not %s", f.certsDir, id.Region, f.region)
		}
		pcfg.Security = sec
		if f.gossipKey == "" && certsGossipKey != nil {
			f.gossipKey = base64.StdEncoding.EncodeToString(certsGossipKey)
		}
	}
	if pcfg.Gossip, err = gossipConfig(f.gossipAddr, f.listen, f.join, f.gossipKey); err != nil {
		return process.Config{}, err
	}
	cfg.Join = pcfg.Gossip != nil && len(pcfg.Gossip.Join) > 0
	if pcfg.Linear, err = linearConfig(f.linearRole, f.raftAddr, f.listen, f.join); err != nil {
		return process.Config{}, err
	}
	if pcfg.Linear != nil {
		if pcfg.Linear.Voters, err = parseVoters(f.voters); err != nil {
			return process.Config{}, err
		}
	}
	if err := f.applyClockSkew(&cfg); err != nil {
		return process.Config{}, err
	}
	if cfg.Links, err = f.links(); err != nil {
		return process.Config{}, err
	}
	if f.cluster != "" {
		id, err := parseClusterID(f.cluster)
		if err != nil {
			return process.Config{}, err
		}
		cfg.ClusterID = id
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return process.Config{}, err
	}
	if cfg.Advertise == "" {
		cfg.Advertise = advertiseFor(f.listen)
	}
	pcfg.Node = cfg
	return pcfg, nil
}

// applyClockSkew offsets cfg's clock by --clock-skew (a fault-injection
// hook, at most ±1h).
func (f *serveFlags) applyClockSkew(cfg *replica.Config) error {
	if f.clockSkew == 0 {
		return nil
	}
	if !f.faults {
		return errors.New("--clock-skew is a fault-injection hook; add --fault-injection")
	}
	if f.clockSkew > time.Hour || f.clockSkew < -time.Hour {
		return fmt.Errorf("--clock-skew %v: at most ±1h", f.clockSkew)
	}
	skew := f.clockSkew
	cfg.Now = func() time.Time { return time.Now().Add(skew) }
	return nil
}

// links is the node's link emulator with --wan-latency's delays to this
// region's peers.
func (f *serveFlags) links() (*link.Emulator, error) {
	links := link.New(f.region)
	matrix, err := supervisor.ParseWAN(f.wan)
	if err != nil {
		return nil, fmt.Errorf("--wan-latency: %w", err)
	}
	for pair, delay := range matrix {
		if peer, ok := pair.Other(f.region); ok {
			if err := links.Set(peer, link.Link{Delay: delay}); err != nil {
				return nil, fmt.Errorf("--wan-latency %s/%s: %w", pair[0], pair[1], err)
			}
		}
	}
	return links, nil
}

// serveProcess opens the process, serves it on listen, prints the
// readiness line, and shuts it down on SIGINT or SIGTERM.
func serveProcess(pcfg process.Config, listen, data string, logger *slog.Logger, stdout, stderr io.Writer) int {
	proc, err := process.Open(pcfg)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitFailed
	}
	node := proc.Node()
	defer node.Close()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: listen on %s: %v\n", listen, err)
		return exitFailed
	}
	done := make(chan error, 1)
	go func() { done <- proc.Serve(ln) }()
	// The address line is the readiness signal for scripts and tests.
	scheme := "http"
	if pcfg.Security != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "causeway: region %s serving on %s://%s (data in %s)\n", node.Region(), scheme, ln.Addr(), data)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if pcfg.Security != nil {
		go reloadSecurity(ctx, pcfg.Security, logger)
	}
	select {
	case err := <-done:
		if err != nil {
			logger.Error("server stopped", "err", err)
			return exitFailed
		}
		return exitOK
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := proc.Shutdown(shutdownCtx); err != nil {
		logger.Error("shutdown", "err", err)
	}
	return exitOK
}

// parsePeers reads "region=host:port,region=host:port".
func parsePeers(s string) (map[string]string, error) {
	peers := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		region, addr, ok := strings.Cut(item, "=")
		if !ok || region == "" || addr == "" {
			return nil, fmt.Errorf("%q: want region=host:port", item)
		}
		if _, dup := peers[region]; dup {
			return nil, fmt.Errorf("region %q named twice", region)
		}
		peers[region] = addr
	}
	return peers, nil
}

// advertiseFor derives the address peers should use from the listen
// address: a listener on all interfaces is reached through loopback here;
// port 0 is resolved once the listener exists (Server.Serve).
func advertiseFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// gossipConfig builds the gossip settings from the flags; nil turns gossip
// off.
func gossipConfig(addr, listen, join, key string) (*process.GossipConfig, error) {
	if addr == "off" {
		if join != "" {
			return nil, errors.New("--join needs gossip; do not set --gossip-listen off")
		}
		return nil, nil
	}
	if addr == "" {
		var err error
		if addr, err = offsetPort(listen, gossipPortOffset); err != nil {
			return nil, err
		}
	}
	gc := &process.GossipConfig{BindAddr: addr}
	for _, a := range strings.Split(join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("--join %q: want host:port", a)
			}
			gc.Join = append(gc.Join, a)
		}
	}
	if key == "" {
		key = os.Getenv("CAUSEWAY_GOSSIP_KEY")
	}
	if key != "" {
		k, err := gossip.ParseSecretKey(key)
		if err != nil {
			return nil, fmt.Errorf("--gossip-key: %v", err)
		}
		gc.SecretKey = k
	}
	return gc, nil
}

// linearConfig reads the linearizable tier's flags. The tier is formed
// (bootstrapped) by the voter started without --join.
func linearConfig(role, addr, listen, join string) (*process.LinearConfig, error) {
	switch role {
	case "off":
		return nil, nil
	case "forwarder":
		return &process.LinearConfig{Role: linear.RoleForwarder}, nil
	case "voter":
	default:
		return nil, fmt.Errorf("--linear %q: use voter, forwarder or off", role)
	}
	if addr == "" {
		var err error
		if addr, err = offsetPort(listen, raftPortOffset); err != nil {
			return nil, err
		}
	} else if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--raft-listen %q: want host:port", addr)
	}
	return &process.LinearConfig{Role: linear.RoleVoter, BindAddr: addr, Bootstrap: strings.TrimSpace(join) == ""}, nil
}

// parseVoters reads --voters: region names, comma-separated.
func parseVoters(list string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(list, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if err := clocks.ValidateRegion(v); err != nil {
			return nil, fmt.Errorf("--voters: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// gossipPortOffset: a node's gossip port is its API port plus this,
// unless --gossip-listen says otherwise.
const gossipPortOffset = 100

// raftPortOffset: a voter's Raft port is its API port plus this, unless
// --raft-listen says otherwise.
const raftPortOffset = 200

// offsetPort is listen's address with the port moved by offset (port 0
// stays 0: any free port), on 127.0.0.1 when listen names no host.
func offsetPort(listen string, offset int) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %v", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("--listen %q: port %q is not a number", listen, port)
	}
	if p != 0 {
		p += offset
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// groupCommitDelay maps the flag (0 disables) to replica.Config (0 means
// the default, negative disables).
func groupCommitDelay(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
