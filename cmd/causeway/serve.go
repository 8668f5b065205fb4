package main

import (
	"context"
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

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/gossip"
	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/internal/supervisor"
	"github.com/causewaydb/causeway/linear"
	"github.com/causewaydb/causeway/replica"
)

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	region := fs.String("region", envOr("CAUSEWAY_REGION", "local"), "region (datacenter) name: lowercase letters, digits and '-' (env CAUSEWAY_REGION)")
	data := fs.String("data", envOr("CAUSEWAY_DATA", "./causeway-data"), "data directory; created if missing (env CAUSEWAY_DATA)")
	listen := fs.String("listen", envOr("CAUSEWAY_LISTEN", "127.0.0.1:7070"), "address for the API (Connect, gRPC, gRPC-Web) and /metrics (env CAUSEWAY_LISTEN)")
	cluster := fs.String("cluster-id", "", "cluster id (UUID) for a new data directory; default: a new random id, or the one the directory holds")
	maxOffset := fs.Duration("max-clock-offset", replica.DefaultMaxClockOffset, "refuse timestamps further ahead of this node's clock than this")
	causalWait := fs.Duration("causal-wait", replica.DefaultCausalWaitTimeout, "how long a request without a deadline waits for its token's causal past")
	groupDelay := fs.Duration("group-commit-delay", replica.DefaultGroupCommitDelay, fmt.Sprintf("while %d or more writes are in progress, pause this long after each fsync of the write-ahead log so that more writes share the next; 0 disables (every acknowledged write is durable either way)", replica.DefaultGroupCommitWriters))
	peers := fs.String("peers", envOr("CAUSEWAY_PEERS", ""), "other regions to replicate with: region=host:port,... (env CAUSEWAY_PEERS); regions that connect to this one are added automatically")
	advertise := fs.String("advertise", "", "address (host:port) other regions use to reach this node; default: the --listen address")
	gossipAddr := fs.String("gossip-listen", envOr("CAUSEWAY_GOSSIP_LISTEN", ""), "address for gossip (TCP and UDP); default: the --listen host, port + 100; \"off\" disables gossip (env CAUSEWAY_GOSSIP_LISTEN)")
	join := fs.String("join", envOr("CAUSEWAY_JOIN", ""), "gossip addresses of members to join through, host:port,... (env CAUSEWAY_JOIN)")
	gossipKey := fs.String("gossip-key", "", "base64 key (16, 24 or 32 bytes) that encrypts gossip; every member needs the same (env CAUSEWAY_GOSSIP_KEY)")
	linearRole := fs.String("linear", envOr("CAUSEWAY_LINEAR", "voter"), "this node's part in the linearizable tier (claims, CAS, locks): voter (a Raft voter for its region), forwarder (no Raft; sends requests to a voter) or off (env CAUSEWAY_LINEAR). The first voter, started without --join, forms the tier; later ones are added by its leader")
	raftAddr := fs.String("raft-listen", envOr("CAUSEWAY_RAFT_LISTEN", ""), "address of the linearizable tier's Raft transport (voters); default: the --listen host, port + 200 (env CAUSEWAY_RAFT_LISTEN)")
	faults := fs.Bool("fault-injection", false, "allow AdminService/SetLink (causeway link) to delay and cut this node's links at run time; for demos and tests")
	clockSkew := fs.Duration("clock-skew", 0, "test hook: offset this node's physical clock by this much (e.g. 5s or -3s, at most ±1h); needs --fault-injection")
	wan := fs.String("wan-latency", "", "static one-way delays between regions: a/b=40ms,a/c=108ms (applies the entries naming this node's region)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	configFile, printConfig := serveConfigFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway serve [flags]\n\nStarts one Causeway node. Every flag has a default, so a bare\n`causeway serve` starts region \"local\" with data in ./causeway-data on 127.0.0.1:7070.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if code, ok := applyServeConfig(fs, *configFile, *printConfig, stdout, stderr); !ok {
		return code
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "causeway serve: --log-level %q: use debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		fmt.Fprintf(stderr, "causeway serve: --log-format %q: use text or json\n", *logFormat)
		return exitUsage
	}
	logger := slog.New(handler)

	cfg := replica.Config{
		Region:            *region,
		DataDir:           *data,
		MaxClockOffset:    *maxOffset,
		CausalWaitTimeout: *causalWait,
		GroupCommitDelay:  groupCommitDelay(*groupDelay),
		Logger:            logger,
	}
	var err error
	if cfg.Peers, err = parsePeers(*peers); err != nil {
		fmt.Fprintf(stderr, "causeway serve: --peers: %v\n", err)
		return exitUsage
	}
	cfg.Advertise = *advertise
	cfg.FaultInjection = *faults
	if err := cfg.ApplyUnsafeSwitches(os.Getenv); err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}
	pcfg := process.Config{}
	if pcfg.Gossip, err = gossipConfig(*gossipAddr, *listen, *join, *gossipKey); err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}
	cfg.Join = pcfg.Gossip != nil && len(pcfg.Gossip.Join) > 0
	if pcfg.Linear, err = linearConfig(*linearRole, *raftAddr, *listen, *join); err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}
	if *clockSkew != 0 {
		if !*faults {
			fmt.Fprintf(stderr, "causeway serve: --clock-skew is a fault-injection hook; add --fault-injection\n")
			return exitUsage
		}
		if *clockSkew > time.Hour || *clockSkew < -time.Hour {
			fmt.Fprintf(stderr, "causeway serve: --clock-skew %v: at most ±1h\n", *clockSkew)
			return exitUsage
		}
		skew := *clockSkew
		cfg.Now = func() time.Time { return time.Now().Add(skew) }
	}
	cfg.Links = link.New(*region)
	matrix, err := supervisor.ParseWAN(*wan)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: --wan-latency: %v\n", err)
		return exitUsage
	}
	for pair, delay := range matrix {
		if peer, ok := pair.Other(*region); ok {
			if err := cfg.Links.Set(peer, link.Link{Delay: delay}); err != nil {
				fmt.Fprintf(stderr, "causeway serve: --wan-latency %s/%s: %v\n", pair[0], pair[1], err)
				return exitUsage
			}
		}
	}
	if *cluster != "" {
		id, err := uuid.Parse(*cluster)
		if err != nil {
			fmt.Fprintf(stderr, "causeway serve: --cluster-id %q is not a UUID\n", *cluster)
			return exitUsage
		}
		cfg.ClusterID = id
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}

	if cfg.Advertise == "" {
		cfg.Advertise = advertiseFor(*listen)
	}
	pcfg.Node = cfg
	proc, err := process.Open(pcfg)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitFailed
	}
	node := proc.Node()
	defer node.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: listen on %s: %v\n", *listen, err)
		return exitFailed
	}
	done := make(chan error, 1)
	go func() { done <- proc.Serve(ln) }()
	// The address line is the readiness signal for scripts and tests.
	fmt.Fprintf(stdout, "causeway: region %s serving on http://%s (data in %s)\n", node.Region(), ln.Addr(), *data)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
