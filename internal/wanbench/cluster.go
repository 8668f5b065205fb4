package wanbench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// Target is the cluster under test: one API URL per region. It is either
// a cluster this package started (Embedded) or one given by address.
type Target struct {
	Regions []string
	URLs    map[string]string
	HTTP    *http.Client
	// sup is set for an embedded cluster: it can change the emulated links
	// and it stops the processes.
	sup *supervisor.Supervisor
	// args are each region's serve flags, for a restart.
	args map[string][]string
	// TLS says the cluster speaks TLS; CertsDir, for an embedded one, is
	// its certificates' directory (the cluster CA, the admin client
	// certificate), "" for a plain one or an --addr one.
	TLS      bool
	CertsDir string
	// logs are each region's log file (every start of the region writes
	// to it), closed by Close.
	logs map[string]*os.File
}

// newHTTPClient is the client every benchmark request goes through: plain
// HTTP/1.1 with enough idle connections that no client of any region
// reconnects between operations.
func newHTTPClient() *http.Client { return NewHTTPClient(nil, nil) }

// NewHTTPClient is newHTTPClient for a cluster that runs with TLS: tlsCfg
// verifies the nodes (and may present a client certificate), and wrap, when
// not nil, wraps the transport (to add a bearer token, say). HTTP/1.1 over
// TLS, with as many idle connections as without.
func NewHTTPClient(tlsCfg *tls.Config, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	var rt http.RoundTripper = &http.Transport{
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     2 * time.Minute,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
	}
	if wrap != nil {
		rt = wrap(rt)
	}
	return &http.Client{Transport: rt}
}

// AddrTarget is a running cluster given as region=host:port pairs
// ("us-east=10.0.0.1:7070,eu-west=..."). The benchmark cannot change the
// links of such a cluster: its no-WAN baseline is skipped, and floors use
// the matrix given with it.
//
// client calls the cluster (nil: plain HTTP); an address without a scheme
// is https:// when client is a TLS one (from NewHTTPClient with a TLS
// configuration), http:// otherwise.
func AddrTarget(spec string, client *http.Client, tls bool) (*Target, error) {
	if client == nil {
		client = newHTTPClient()
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	t := &Target{URLs: map[string]string{}, HTTP: client, TLS: tls}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		region, addr, ok := strings.Cut(item, "=")
		if !ok || region == "" || addr == "" {
			return nil, fmt.Errorf("--addr %q: want region=host:port", item)
		}
		if _, dup := t.URLs[region]; dup {
			return nil, fmt.Errorf("--addr: region %s given twice", region)
		}
		if !strings.Contains(addr, "://") {
			addr = scheme + addr
		}
		t.Regions = append(t.Regions, region)
		t.URLs[region] = strings.TrimRight(addr, "/")
	}
	if len(t.Regions) == 0 {
		return nil, errors.New("--addr: no regions given")
	}
	return t, nil
}

// ClusterConfig describes an embedded cluster.
type ClusterConfig struct {
	// Command runs the causeway binary (`serve` is added).
	Command supervisor.Command
	Matrix  Matrix
	// DataDir is the parent of the regions' data directories and logs.
	DataDir string
	// Secure runs the regions with TLS and authentication, as `causeway
	// cluster` does: the certificates are created in DataDir/certs, and
	// the benchmark's clients present the admin client certificate.
	// False: plain HTTP (`causeway bench --insecure`).
	Secure bool
}

// readyTimeout bounds the wait for every region to serve and the
// linearizable tier to have one leader followed by every voter. Under a
// 7-region WAN that takes several election timeouts.
const readyTimeout = 3 * time.Minute

// StartCluster starts one `causeway serve` per region of cfg.Matrix on
// 127.0.0.1 through the cluster supervisor (with TLS when cfg.Secure), with
// the matrix's one-way delays on every link, fault injection on (so the
// no-WAN baseline can set the delays to 0 and back), and every region a
// voter of the linearizable tier. It returns once every region serves and the tier has a leader that
// every region follows. Close stops every process.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Target, error) {
	m := cfg.Matrix
	logs := filepath.Join(cfg.DataDir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	t := &Target{Regions: m.Regions, URLs: map[string]string{}, HTTP: newHTTPClient(), logs: map[string]*os.File{}}
	if cfg.Secure {
		dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "certs"))
		if err != nil {
			return nil, err
		}
		// The supervisor would create them too; the benchmark's client,
		// which it shares, needs the admin certificate first.
		if err := supervisor.PrepareCerts(dir); err != nil {
			return nil, err
		}
		tlsCfg, err := pki.ClientTLS(dir, supervisor.AdminClient)
		if err != nil {
			return nil, err
		}
		t.HTTP, t.TLS, t.CertsDir = NewHTTPClient(tlsCfg, nil), true, dir
	}
	files := t.logs
	t.sup = supervisor.New(supervisor.Config{
		CertsDir:     t.CertsDir,
		Command:      cfg.Command,
		StartTimeout: 60 * time.Second,
		HTTP:         t.HTTP,
		Output: func(region string, _ int) (io.Writer, io.Writer) {
			f := files[region]
			return f, f
		},
	})
	addrs, err := supervisor.FreeAddrs(len(m.Regions))
	if err != nil {
		return nil, err
	}
	for i, name := range m.Regions {
		f, err := os.Create(filepath.Join(logs, name+".log"))
		if err != nil {
			t.Close()
			return nil, err
		}
		files[name] = f
		if err := t.sup.Add(supervisor.Region{Name: name, DataDir: filepath.Join(cfg.DataDir, name), Addrs: addrs[i]}); err != nil {
			t.Close()
			return nil, err
		}
		r, _ := t.sup.Region(name)
		t.URLs[name] = r.URL()
	}
	id := uuid.NewString()
	t.args = map[string][]string{}
	join := ""
	for i, name := range m.Regions {
		// Every region lets the system pick its gossip port when it binds
		// it, and the others join through the address the first reports.
		// A port FreeAddrs found free can be taken (by the ephemeral port
		// of any connection or datagram on the machine) before a region
		// started seconds later binds it, and a region whose gossip cannot
		// bind runs without it: created with --join, it then never learns
		// the cluster's regions and never serves (it stays "joining",
		// waiting for the cluster's membership).
		args := []string{"--cluster-id", id, "--fault-injection", "--wan-latency", m.WAN(), "--linear", "voter", "--gossip-listen", "127.0.0.1:0"}
		if i > 0 {
			args = append(args, "--join", join)
		}
		t.args[name] = args
		if err := t.sup.Start(ctx, name, args); err != nil {
			t.Close()
			return nil, fmt.Errorf("%w (log: %s)", err, t.LogPath(name))
		}
		if i == 0 {
			if join, err = t.gossipAddr(ctx, name); err != nil {
				t.Close()
				return nil, fmt.Errorf("%w (log: %s)", err, t.LogPath(name))
			}
		}
	}
	if err := t.awaitServing(ctx, m.Regions...); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// gossipStartTimeout bounds the wait for a region's gossip to report its
// address once the region listens.
const gossipStartTimeout = 30 * time.Second

// gossipAddr is the gossip address region reports for itself
// (AdminService/Status), once its gossip runs.
func (t *Target) gossipAddr(ctx context.Context, region string) (string, error) {
	addr := ""
	err := supervisor.Poll(ctx, gossipStartTimeout, func(ctx context.Context) (bool, string) {
		st, err := t.sup.Status(ctx, region)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range st.GetMembers() {
			if m.GetRegion() == region && m.GetGossipAddress() != "" {
				addr = m.GetGossipAddress()
				return true, ""
			}
		}
		return false, "gossip reports no address for the region itself"
	})
	if err != nil {
		return "", fmt.Errorf("region %s: its gossip address: %w", region, err)
	}
	return addr, nil
}

// LogPath is the file an embedded region's process writes its output to
// ("" for a region of an --addr cluster).
func (t *Target) LogPath(region string) string {
	if f := t.logs[region]; f != nil {
		return f.Name()
	}
	return ""
}

// awaitServing waits up to readyTimeout until every named region's causal
// tier serves. A region that does not is described as it stands then (its
// causal state and reason, the gossip members and replication peers it
// knows) with the path of its log, which is what tells why a region never
// served.
func (t *Target) awaitServing(ctx context.Context, regions ...string) error {
	err := t.sup.AwaitServing(ctx, readyTimeout, regions...)
	if err == nil {
		return nil
	}
	var why []string
	for _, r := range regions {
		if d := t.describe(ctx, r); d != "" {
			why = append(why, d)
		}
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(why, "\n"))
}

// stackDumpGrace bounds the wait for a region to write its goroutines'
// stacks and exit after SIGQUIT.
const stackDumpGrace = 10 * time.Second

// describe is one line on an embedded region that does not serve: its
// status and its log ("" for one that serves). A region whose process runs
// but does not answer AdminService/Status is ended with SIGQUIT, so that
// its log ends with every goroutine's stack.
func (t *Target) describe(ctx context.Context, region string) string {
	st, err := t.sup.Status(context.WithoutCancel(ctx), region)
	switch {
	case err != nil && t.sup.State(region) == supervisor.Running:
		// It runs but does not answer: where it is stuck is worth more
		// than the process, which the caller gives up on.
		dumped := ""
		if derr := t.sup.DumpStacks(region, stackDumpGrace); derr == nil {
			dumped = "; its goroutines' stacks (SIGQUIT) end its log"
		}
		return fmt.Sprintf("  %s: runs but gives no status (%v)%s; log: %s", region, err, dumped, t.LogPath(region))
	case err != nil:
		return fmt.Sprintf("  %s: no status (%v; the process is %s); log: %s", region, err, t.sup.State(region), t.LogPath(region))
	case st.GetCausalState() == "serving":
		return ""
	}
	var members, peers []string
	for _, m := range st.GetMembers() {
		members = append(members, fmt.Sprintf("%s %s at %s", m.GetRegion(), m.GetState(), m.GetGossipAddress()))
	}
	for _, p := range st.GetPeers() {
		peers = append(peers, fmt.Sprintf("%s at %s", p.GetRegion(), p.GetAddress()))
	}
	return fmt.Sprintf("  %s: causal state %q (%s); gossip members: [%s]; replication peers: [%s]; log: %s",
		region, st.GetCausalState(), st.GetCausalStateReason(), strings.Join(members, ", "), strings.Join(peers, ", "), t.LogPath(region))
}

// Close stops the embedded cluster's processes (none for an --addr
// target).
func (t *Target) Close() {
	if t.sup != nil {
		t.sup.StopAll(10 * time.Second)
		t.sup.Close()
	}
	for _, f := range t.logs {
		f.Close()
	}
	t.HTTP.CloseIdleConnections()
}

func (t *Target) admin(region string) causewayv1connect.AdminServiceClient {
	return causewayv1connect.NewAdminServiceClient(t.HTTP, t.URLs[region])
}

func (t *Target) kv(region string) causewayv1connect.KVServiceClient {
	return causewayv1connect.NewKVServiceClient(t.HTTP, t.URLs[region])
}

func (t *Target) linear(region string) causewayv1connect.LinearServiceClient {
	return causewayv1connect.NewLinearServiceClient(t.HTTP, t.URLs[region])
}

// Embedded reports whether the benchmark started the cluster (and so may
// change its links).
func (t *Target) Embedded() bool { return t.sup != nil }

// SetDelays sets every region's link to every other region to the
// matrix's one-way delay (through AdminService/SetLink, which needs
// --fault-injection).
func (t *Target) SetDelays(ctx context.Context, m Matrix) error {
	for _, a := range t.Regions {
		for _, b := range t.Regions {
			if a == b {
				continue
			}
			_, err := t.admin(a).SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{
				Region: b, Delay: durationpb.New(m.OneWay(a, b)),
			}))
			if err != nil {
				return fmt.Errorf("set link %s->%s: %w", a, b, err)
			}
		}
	}
	return nil
}

// leaderPoll is how often awaitLeader asks every region for its status.
const leaderPoll = 100 * time.Millisecond

// AwaitLeader waits until every region reports the linearizable tier
// available under one leader with every region a voter, and returns the
// leader's region.
func (t *Target) AwaitLeader(ctx context.Context, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := "no status yet"
	for {
		leader, why := t.commonLeader(ctx)
		if why == "" {
			return leader, nil
		}
		if strings.Contains(why, errNoTier) {
			return "", errors.New(why) // waiting will not change it
		}
		last = why
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the linearizable tier did not become ready within %v: %s", limit, last)
		case <-time.After(leaderPoll):
		}
	}
}

// errNoTier ends the reason commonLeader gives for a region that runs
// without the linearizable tier.
const errNoTier = " runs without the linearizable tier"

// commonLeader returns the leader every region agrees on, or why there is
// none.
func (t *Target) commonLeader(ctx context.Context) (leader, why string) {
	for _, name := range t.Regions {
		res, err := t.admin(name).Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
		if err != nil {
			return "", fmt.Sprintf("%s: status: %v", name, err)
		}
		st := res.Msg.GetLinear()
		switch {
		case !st.GetEnabled():
			return "", name + errNoTier
		case !st.GetAvailable():
			return "", fmt.Sprintf("%s: tier unavailable: %s", name, st.GetReason())
		case st.GetVoter() && len(st.GetVoters()) != len(t.Regions):
			return "", fmt.Sprintf("%s: %d voters of %d", name, len(st.GetVoters()), len(t.Regions))
		case leader != "" && st.GetLeaderRegion() != leader:
			return "", fmt.Sprintf("%s follows %s, another region follows %s", name, st.GetLeaderRegion(), leader)
		}
		leader = st.GetLeaderRegion()
	}
	return leader, ""
}

// Voters lists the regions that vote in the linearizable tier, as the
// leader reports them.
func (t *Target) Voters(ctx context.Context, leader string) ([]string, error) {
	res, err := t.admin(leader).Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range res.Msg.GetLinear().GetVoters() {
		out = append(out, v.GetRegion())
	}
	return out, nil
}

// kvClient is the part of the KV service the probes use.
type kvClient = causewayv1connect.KVServiceClient

// Kill kills an embedded region's process (SIGKILL).
func (t *Target) Kill(region string) error { return t.sup.Kill(region) }

// Restart starts a killed region again on its data and addresses, and
// waits until it serves. Like every start, it takes a new gossip port (on
// its old one, a region restarted under emulated delay could fail to
// rejoin gossip: see cmd/causeway/rejoin_test.go).
//
// extra serve flags are added (a clock skew); await makes it wait until
// the causal tier serves, which a region with a skewed clock may not.
func (t *Target) Restart(ctx context.Context, region string, await bool, extra ...string) error {
	args := append([]string(nil), t.args[region]...)
	if err := t.sup.Start(ctx, region, append(args, extra...)); err != nil {
		return err
	}
	if !await {
		return nil
	}
	return t.awaitServing(ctx, region)
}
