package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/process"
)

// serveSecurity decides how `causeway serve` runs: with --certs-dir, TLS on
// every listener and between nodes, and authorization of every request;
// without it, only on loopback addresses (with a one-line warning) or when
// told --insecure. It returns the gossip key the certs directory holds
// (nil without one) for gossip to use unless --gossip-key says otherwise.
func serveSecurity(certsDir string, insecure bool, addrs []string, stderr io.Writer) (*process.Security, []byte, error) {
	if certsDir == "" {
		var public []string
		for _, a := range addrs {
			if a != "" && a != "off" && !loopback(a) {
				public = append(public, a)
			}
		}
		switch {
		case len(public) > 0 && !insecure:
			return nil, nil, fmt.Errorf("refusing to listen on %s without TLS: anyone who reaches it could read, write and replicate into this region. "+
				"Give --certs-dir (create certificates with `causeway cert`), or --insecure to run without TLS on purpose",
				strings.Join(public, ", "))
		case len(public) > 0:
			fmt.Fprintf(stderr, "causeway serve: WARNING: --insecure: no TLS and no authentication on %s\n", strings.Join(public, ", "))
		default:
			fmt.Fprintln(stderr, "causeway serve: running without TLS (loopback only); give --certs-dir for TLS and authentication")
		}
		return nil, nil, nil
	}
	if insecure {
		return nil, nil, fmt.Errorf("--insecure and --certs-dir contradict each other; give one")
	}
	certs, err := pki.LoadNode(certsDir)
	if err != nil {
		return nil, nil, err
	}
	tokens, err := pki.LoadTokens(certsDir)
	if err != nil {
		return nil, nil, err
	}
	var gossipKey []byte
	if raw, err := os.ReadFile(filepath.Join(certsDir, pki.GossipKey)); err == nil {
		if gossipKey, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err != nil {
			return nil, nil, fmt.Errorf("%s: not base64: %v", filepath.Join(certsDir, pki.GossipKey), err)
		}
	} else if !os.IsNotExist(err) {
		return nil, nil, err
	}
	return &process.Security{Certs: certs, Tokens: tokens}, gossipKey, nil
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reloadInterval is how often a node looks for new certificate files.
const reloadInterval = 10 * time.Second

// reloadSecurity reloads the certificates and tokens on SIGHUP and when
// the files change, until ctx ends. A reload that fails keeps what is in
// use and says why.
func reloadSecurity(ctx context.Context, sec *process.Security, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(reloadInterval)
	defer tick.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			forced = true
		case <-tick.C:
		}
		if forced || sec.Certs.Changed() {
			if err := sec.Certs.Reload(); err != nil {
				log.Error("certificates not reloaded; the ones in use stay", "err", err)
			} else {
				nodeExp, caExp := sec.Certs.Expiry()
				log.Info("certificates reloaded", "node_expires", nodeExp, "ca_expires", caExp)
			}
		}
		if err := sec.Tokens.Reload(); err != nil {
			log.Error("tokens not reloaded; the ones in use stay", "err", err)
		}
	}
}
