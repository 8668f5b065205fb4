//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// TestEveryChannelRefusesStrangers is one table over every channel of a
// running node with TLS on: the client API, the replication stream,
// snapshots, the linear tier's node-only endpoint (where forwarded
// requests and the leader's Progress calls arrive), the Raft transport and
// gossip, each tried with no certificate, a certificate of another CA, an
// expired certificate of the cluster's CA, and a client certificate where
// a node's is needed. Every one is refused. The same probes with the
// right credential (a node of the cluster; a client for the client API;
// the cluster's gossip key) get through, so a refusal is the credential's
// doing, not a broken probe's.
//
// Gossip is authenticated by the cluster's key (memberlist's keyring), not
// by certificates: its "no certificate" is no key and its "another CA" is
// another cluster's key; certificates (expired, client) have no meaning
// there and those cells say so.
func TestEveryChannelRefusesStrangers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a region")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	procs := newSecureServeRegions(t)
	id := uuid.NewString()
	east := procs.add("us-east", t.TempDir())
	url := procs.start(ctx, "us-east", "--cluster-id", id)
	certs := procs.sup.CertsDir()
	admin := procs.client(4, false)
	awaitReadyz(ctx, t, admin, url)
	// A write, so that a replication stream from sequence 1 has one to send.
	if _, err := causewayv1connect.NewKVServiceClient(admin, url).Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")})); err != nil {
		t.Fatal(err)
	}
	raftAddr := east.Addrs.Raft
	if raftAddr == "" {
		host, port, _ := net.SplitHostPort(east.Addrs.API)
		raftAddr = net.JoinHostPort(host, strconv.Itoa(mustAtoi(t, port)+200))
	}

	// The credentials. A peer that skips verifying the server stands for
	// an attacker who does not care whom it talks to: what is tested is
	// the node's side.
	if err := supervisor.PrepareCerts(certs, "eu-west"); err != nil {
		t.Fatal(err)
	}
	pair := func(dir, cert, key string) tls.Certificate {
		p, err := tls.LoadX509KeyPair(filepath.Join(dir, cert), filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	presenting := func(c *tls.Certificate) *tls.Config {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		if c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		return cfg
	}
	node := pair(supervisor.RegionCertsDir(certs, "eu-west"), pki.NodeCertFile, pki.NodeKeyFile)
	other := filepath.Join(t.TempDir(), "other")
	if err := supervisor.PrepareCerts(other, "eu-west"); err != nil {
		t.Fatal(err)
	}
	otherCA := pair(supervisor.RegionCertsDir(other, "eu-west"), pki.NodeCertFile, pki.NodeKeyFile)
	expiredDir := t.TempDir()
	past := time.Now().Add(-72 * time.Hour)
	if err := pki.CreateNode(pki.Options{Dir: expiredDir, CADir: certs, Lifetime: 24 * time.Hour, Now: func() time.Time { return past }},
		"eu-west", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	expired := pair(expiredDir, pki.NodeCertFile, pki.NodeKeyFile)
	client := pair(certs, pki.ClientCertFile(supervisor.AdminClient), pki.ClientKeyFile(supervisor.AdminClient))
	creds := []struct {
		name string
		tls  *tls.Config
		key  string // gossip: the key file's directory ("" for none)
	}{
		{"no certificate", presenting(nil), ""},
		{"certificate of another CA", presenting(&otherCA), other},
		{"expired certificate", presenting(&expired), "n/a"},
		{"client certificate", presenting(&client), "n/a"},
	}

	channels := []struct {
		name string
		// good is the credential the channel admits.
		good  *tls.Config
		probe func(ctx context.Context, cfg *tls.Config, gossipKeyDir string) error
		// clientOK: the channel admits client certificates by design (the
		// client API), so that cell is not a refusal to test.
		clientOK bool
	}{
		{"client API (KVService/Get)", presenting(&client), func(ctx context.Context, cfg *tls.Config, _ string) error {
			_, err := causewayv1connect.NewKVServiceClient(httpsClient(cfg), url).Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k"}))
			return err
		}, true},
		{"replication stream (ReplicationService/Replicate)", presenting(&node), func(ctx context.Context, cfg *tls.Config, _ string) error {
			stream := causewayv1connect.NewReplicationServiceClient(httpsClient(cfg), url).Replicate(ctx)
			defer stream.CloseResponse()
			defer stream.CloseRequest()
			if err := stream.Send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Start{Start: &v1.ReplicateStart{
				ClusterId: id, Region: "eu-west", FromSeq: 1}}}); err != nil {
				return err
			}
			_, err := stream.Receive()
			return err
		}, false},
		{"snapshot (ReplicationService/Snapshot)", presenting(&node), func(ctx context.Context, cfg *tls.Config, _ string) error {
			s, err := causewayv1connect.NewReplicationServiceClient(httpsClient(cfg), url).Snapshot(ctx,
				connect.NewRequest(&v1.SnapshotRequest{ClusterId: id, Region: "eu-west"}))
			if err != nil {
				return err
			}
			defer s.Close()
			if !s.Receive() {
				return s.Err()
			}
			return nil
		}, false},
		{"linear tier between nodes (LinearService/Progress)", presenting(&node), func(ctx context.Context, cfg *tls.Config, _ string) error {
			_, err := causewayv1connect.NewLinearServiceClient(httpsClient(cfg), url).Progress(ctx, connect.NewRequest(&v1.ProgressRequest{}))
			return err
		}, false},
		{"Raft transport", presenting(&node), func(ctx context.Context, cfg *tls.Config, _ string) error {
			return raftProbe(ctx, raftAddr, cfg)
		}, false},
		{"gossip", nil, func(ctx context.Context, _ *tls.Config, keyDir string) error {
			return gossipProbe(t, east.Addrs.Gossip, keyDir)
		}, false},
	}

	for _, ch := range channels {
		t.Run(ch.name, func(t *testing.T) {
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			goodKey := ""
			if ch.good == nil {
				goodKey = certs // gossip: the cluster's key
			}
			if err := ch.probe(pctx, ch.good, goodKey); err != nil {
				t.Fatalf("the right credential is refused too, so the table proves nothing: %v", err)
			}
			for _, c := range creds {
				if ch.good == nil && c.key == "n/a" {
					continue // gossip has no certificates
				}
				if c.name == "client certificate" && ch.clientOK {
					continue
				}
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := ch.probe(pctx, c.tls, c.key)
				cancel()
				if err == nil {
					t.Errorf("%s: admitted", c.name)
				} else {
					t.Logf("%s: refused: %s", c.name, collapse(err.Error()))
				}
			}
		})
	}
}

// httpsClient speaks HTTP/2 over TLS with cfg (gRPC and the replication
// streams need HTTP/2), one connection per client.
func httpsClient(cfg *tls.Config) *http.Client {
	cfg = cfg.Clone()
	p := new(http.Protocols)
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Protocols: p, DisableKeepAlives: true}}
}

// raftProbe opens a TLS connection to the Raft transport with cfg and
// reads: a node that refuses the peer ends the connection (a TLS alert, or
// a close) at once; one that admits it waits for a Raft RPC, which the
// probe does not send, so the read times out: nil.
func raftProbe(ctx context.Context, addr string, cfg *tls.Config) error {
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Long enough for any refusal to arrive on a loaded machine; an
	// admitted peer costs this much once.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return nil // the transport spoke first: admitted
	}
	return err
}

// gossipProbe joins the node's gossip as a stranger memberlist, with the
// key in keyDir/gossip.key (none when keyDir is ""), and reports whether
// the push-pull exchange of a join went through.
func gossipProbe(t *testing.T, addr, keyDir string) error {
	conf := memberlist.DefaultLANConfig()
	conf.Name = "stranger-" + uuid.NewString()[:8]
	conf.BindAddr, conf.BindPort, conf.AdvertisePort = "127.0.0.1", 0, 0
	conf.LogOutput = io.Discard
	conf.TCPTimeout = 5 * time.Second
	if keyDir != "" {
		raw, err := os.ReadFile(filepath.Join(keyDir, pki.GossipKey))
		if err != nil {
			t.Fatal(err)
		}
		if conf.SecretKey, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err != nil {
			t.Fatal(err)
		}
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	defer ml.Leave(time.Second)
	_, err = ml.Join([]string{addr})
	return err
}
