package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

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
	peers := fs.String("peers", envOr("CAUSEWAY_PEERS", ""), "other regions to replicate with: region=host:port,... (env CAUSEWAY_PEERS); regions that connect to this one are added automatically")
	advertise := fs.String("advertise", "", "address (host:port) other regions use to reach this node; default: the --listen address")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway serve [flags]\n\nStarts one Causeway node. Every flag has a default, so a bare\n`causeway serve` starts region \"local\" with data in ./causeway-data on 127.0.0.1:7070.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if rest, err := parseInterspersed(fs, args); err != nil {
		if isHelp(err) {
			return exitOK
		}
		return exitUsage
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "causeway serve: unexpected argument %q\n", rest[0])
		return exitUsage
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
		Logger:            logger,
	}
	var err error
	if cfg.Peers, err = parsePeers(*peers); err != nil {
		fmt.Fprintf(stderr, "causeway serve: --peers: %v\n", err)
		return exitUsage
	}
	cfg.Advertise = *advertise
	if *cluster != "" {
		id, err := uuid.Parse(*cluster)
		if err != nil {
			fmt.Fprintf(stderr, "causeway serve: --cluster-id %q is not a UUID\n", *cluster)
			return exitUsage
		}
		cfg.ClusterID = id
	}
	replica.BuildVersion = version
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitUsage
	}

	if cfg.Advertise == "" {
		cfg.Advertise = advertiseFor(*listen)
	}
	node, err := replica.Open(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: %v\n", err)
		return exitFailed
	}
	defer node.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "causeway serve: listen on %s: %v\n", *listen, err)
		return exitFailed
	}
	srv := replica.NewServer(node)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
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
	if err := srv.Shutdown(shutdownCtx); err != nil {
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
