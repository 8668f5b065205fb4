package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// ServerCommand is how to run `causeway serve`: Path with Args before the
// "serve" verb, and Env added to the campaign's own environment.
type ServerCommand = supervisor.Command

// ClusterConfig describes a local cluster: one `causeway serve` process per
// region on 127.0.0.1, each with its own data directory, fault injection
// on, joined by gossip.
type ClusterConfig struct {
	Command ServerCommand
	Regions []string
	// DataDir is the parent of the regions' data directories.
	DataDir string
	// LogDir receives each region's output (REGION.log, appended to across
	// restarts).
	LogDir string
	// WAN is the --wan-latency of every region ("" for none): the delays
	// links return to when a delay fault heals.
	WAN string
	// ClusterID is the cluster's UUID.
	ClusterID string
	// BasePort is the first region's API port (the others follow, gossip
	// ports are API + 100); 0 picks free ports.
	BasePort int
	// StartTimeout bounds one start of one region (default 60s).
	StartTimeout time.Duration
	// Insecure runs the regions without TLS. By default they run with TLS
	// and mutual TLS between them, on certificates the supervisor creates
	// in CertsDir, and the campaign's clients present its admin client
	// certificate (supervisor.AdminClient).
	Insecure bool
	// CertsDir holds the cluster's certificates (default DataDir/certs;
	// kept across runs on the same directory).
	CertsDir string
	// ServeArgs returns extra `causeway serve` flags for a region, added
	// at every start. Nil means "--linear off": a campaign of the causal
	// tier alone. A campaign of the linear tier makes regions voters or
	// forwarders here (LinearVoters makes every region a voter); every
	// start passes --raft-listen r.RaftAddr. The first region's first
	// start has no --join, so it bootstraps the tier.
	ServeArgs func(r *Region) []string
}

// LinearVoters is a ClusterConfig.ServeArgs that runs the linear tier with
// every region a voter, its Raft transport on the region's reserved
// address (RaftAddr, which every start passes). The first region's first start forms the Raft group; the
// leader adds the others as gossip shows them.
func LinearVoters(r *Region) []string {
	return []string{"--linear", "voter"}
}

// Process states of a region.
const (
	stateRunning = string(supervisor.Running)
	statePaused  = string(supervisor.Paused)
	stateDown    = string(supervisor.Down)
)

// Region is one region's process. Its addresses stay the same across
// restarts, so peers and clients find it again.
type Region struct {
	Name       string
	Addr       string // API host:port
	GossipAddr string
	// RaftAddr is a free address reserved for the linear tier's Raft
	// transport; every start passes it as --raft-listen.
	RaftAddr string
	DataDir  string
	URL      string

	mu   sync.Mutex
	skew time.Duration
	// crashed is the exit of a process that ended without a fault asking
	// for it, until Kill reports it: until then the region counts as
	// running, so the fault that meets it fails and says why.
	crashed error
	log     *os.File
}

// Cluster starts, stops and faults the regions' processes (through one
// supervisor.Supervisor). Close stops every process it started.
type Cluster struct {
	cfg     ClusterConfig
	sup     *supervisor.Supervisor
	regions map[string]*Region
	http    *http.Client
	kv      map[string]causewayv1connect.KVServiceClient
	admin   map[string]causewayv1connect.AdminServiceClient
	wan     supervisor.WAN
}

// StartCluster starts every region and waits until each serves and sees
// every other alive through gossip.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if len(cfg.Regions) == 0 {
		return nil, errors.New("no regions")
	}
	wan, err := supervisor.ParseWAN(cfg.WAN)
	if err != nil {
		return nil, fmt.Errorf("wan latency: %w", err)
	}
	for _, dir := range []string{cfg.DataDir, cfg.LogDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if cfg.Insecure {
		cfg.CertsDir = ""
	} else if cfg.CertsDir == "" {
		cfg.CertsDir = filepath.Join(cfg.DataDir, "certs")
	}
	if cfg.CertsDir != "" {
		if err := supervisor.PrepareCerts(cfg.CertsDir); err != nil {
			return nil, err
		}
	}
	// One client for every region: its connections (HTTP/2 over TLS, or
	// HTTP/1.1 in plain) live as long as the regions' processes do.
	httpc, err := supervisor.NewHTTPClient(cfg.CertsDir, 64)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:     cfg,
		regions: map[string]*Region{},
		http:    httpc,
		kv:      map[string]causewayv1connect.KVServiceClient{},
		admin:   map[string]causewayv1connect.AdminServiceClient{},
		wan:     wan,
	}
	c.sup = supervisor.New(supervisor.Config{
		Command:      cfg.Command,
		StartTimeout: cfg.StartTimeout,
		CertsDir:     cfg.CertsDir,
		HTTP:         c.http,
		Output: func(region string, _ int) (io.Writer, io.Writer) {
			log := c.regions[region].log
			return log, log
		},
		OnExit: c.exited,
	})
	var addrs []supervisor.Addrs
	if cfg.BasePort != 0 {
		addrs = supervisor.PortAddrs(cfg.BasePort, len(cfg.Regions))
	} else if addrs, err = supervisor.FreeAddrs(len(cfg.Regions)); err != nil {
		return nil, err
	}
	for i, name := range cfg.Regions {
		r := &Region{
			Name:       name,
			Addr:       addrs[i].API,
			GossipAddr: addrs[i].Gossip,
			RaftAddr:   addrs[i].Raft,
			DataDir:    filepath.Join(cfg.DataDir, name),
		}
		f, err := os.OpenFile(filepath.Join(cfg.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			c.Close()
			return nil, err
		}
		r.log = f
		c.regions[name] = r
		if err := c.sup.Add(supervisor.Region{Name: name, DataDir: r.DataDir, Addrs: addrs[i]}); err != nil {
			c.Close()
			return nil, err
		}
		spec, _ := c.sup.Region(name)
		r.URL = spec.URL()
		c.kv[name] = causewayv1connect.NewKVServiceClient(c.http, r.URL)
		c.admin[name] = causewayv1connect.NewAdminServiceClient(c.http, r.URL)
	}
	for _, name := range cfg.Regions {
		if err := c.Start(ctx, name, 0); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.AwaitAlive(ctx, cfg.StartTimeout); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// exited records a region's process that ended on its own.
func (c *Cluster) exited(e supervisor.Exit) {
	r := c.regions[e.Region]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.crashed = fmt.Errorf("exited on its own: %v", e.Err)
	fmt.Fprintf(r.log, "=== campaign: %s exited on its own at %s (%v)\n", r.Name, time.Now().Format(time.RFC3339Nano), e.Err)
}

// Regions lists the region names in configuration order.
func (c *Cluster) Regions() []string { return slices.Clone(c.cfg.Regions) }

// Region returns one region.
func (c *Cluster) Region(name string) *Region { return c.regions[name] }

// Secure reports whether the regions run with TLS.
func (c *Cluster) Secure() bool { return c.cfg.CertsDir != "" }

// CertsDir is the cluster's certs directory ("" without TLS): its ca.crt
// and the admin client certificate (supervisor.AdminClient) are what a
// client needs.
func (c *Cluster) CertsDir() string { return c.cfg.CertsDir }

// HTTPClient is the client the cluster's Connect clients use (TLS with the
// admin client certificate when the cluster is secure).
func (c *Cluster) HTTPClient() *http.Client { return c.http }

// KV returns a causal-tier client for a region.
func (c *Cluster) KV(name string) causewayv1connect.KVServiceClient { return c.kv[name] }

// Admin returns an admin client for a region.
func (c *Cluster) Admin(name string) causewayv1connect.AdminServiceClient { return c.admin[name] }

// BaseDelay is the one-way delay configured between two regions.
func (c *Cluster) BaseDelay(a, b string) time.Duration { return c.wan.Delay(a, b) }

// Start starts a region that is down, on its data directory, with its
// physical clock offset by skew (0 for none), and waits until it serves.
func (c *Cluster) Start(ctx context.Context, name string, skew time.Duration) error {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crashed != nil {
		return fmt.Errorf("region %s %v, not down", name, r.crashed)
	}
	args := []string{"--cluster-id", c.cfg.ClusterID, "--fault-injection", "--log-format", "json"}
	if c.cfg.WAN != "" {
		args = append(args, "--wan-latency", c.cfg.WAN)
	}
	// Every region joins through the others, except the first region at
	// its first start: it forms the cluster (and bootstraps the linear
	// tier, when that is on). A restarted region finds its way back
	// through any of the others.
	var join []string
	for _, other := range c.cfg.Regions {
		if other != name {
			join = append(join, c.regions[other].GossipAddr)
		}
	}
	if len(join) > 0 && (name != c.cfg.Regions[0] || c.sup.Starts(name) > 0) {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if c.cfg.ServeArgs != nil {
		args = append(args, c.cfg.ServeArgs(r)...)
	} else {
		args = append(args, "--linear", "off")
	}
	if skew != 0 {
		args = append(args, "--clock-skew", skew.String())
	}
	if state := c.sup.State(name); state != supervisor.Down {
		return fmt.Errorf("region %s is %s, not down", name, state)
	}
	spec, _ := c.sup.Region(name)
	fmt.Fprintf(r.log, "=== campaign: start %d of %s at %s: %s\n", c.sup.Starts(name)+1, name, time.Now().Format(time.RFC3339Nano),
		strings.Join(c.sup.Args(spec, args), " "))
	if err := c.sup.Start(ctx, name, args); err != nil {
		return fmt.Errorf("%w (see %s)", err, r.log.Name())
	}
	r.skew = skew
	c.http.CloseIdleConnections()
	return nil
}

// Kill sends SIGKILL to a region's process and reaps it.
func (c *Cluster) Kill(name string) error {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.killLocked(r)
}

func (c *Cluster) killLocked(r *Region) error {
	if crashed := r.crashed; crashed != nil {
		r.crashed = nil
		return fmt.Errorf("region %s was not running when killed: %v", r.Name, crashed)
	}
	err := c.sup.Kill(r.Name)
	if errors.Is(err, supervisor.ErrDown) {
		return nil
	}
	fmt.Fprintf(r.log, "=== campaign: killed %s at %s\n", r.Name, time.Now().Format(time.RFC3339Nano))
	c.http.CloseIdleConnections()
	return err
}

// Pause stops a region's process with SIGSTOP.
func (c *Cluster) Pause(name string) error {
	return c.signal(name, "SIGSTOP", c.sup.Pause)
}

// Resume continues a paused region with SIGCONT.
func (c *Cluster) Resume(name string) error {
	return c.signal(name, "SIGCONT", c.sup.Resume)
}

func (c *Cluster) signal(name, sig string, f func(string) error) error {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crashed != nil {
		return fmt.Errorf("region %s %v", name, r.crashed)
	}
	if err := f(name); err != nil {
		return err
	}
	fmt.Fprintf(r.log, "=== campaign: %s to %s at %s\n", sig, name, time.Now().Format(time.RFC3339Nano))
	return nil
}

// State reports whether a region is running, paused or down, and its clock
// skew. A region whose process ended on its own counts as running until a
// Kill reports it.
func (c *Cluster) State(name string) (state string, skew time.Duration) {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crashed != nil {
		return stateRunning, r.skew
	}
	return string(c.sup.State(name)), r.skew
}

// Link is a link setting for SetLink.
type Link struct {
	Delay, Jitter time.Duration
	Cut           v1.LinkCut
}

// SetLink sets, on region from, its link to region to. Delay and jitter are
// always sent, so the link is exactly l afterwards.
func (c *Cluster) SetLink(ctx context.Context, from, to string, l Link) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.admin[from].SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{
		Region: to, Delay: durationpb.New(l.Delay), Jitter: durationpb.New(l.Jitter), Cut: l.Cut,
	}))
	if err != nil {
		return fmt.Errorf("set link %s->%s: %w", from, to, err)
	}
	return nil
}

// Wipe loses a region's disk the way an operator meets it: it drains the
// region (no new writes; SetDrain), waits until every other region holds
// every write the region issued, so that the wipe loses none, then kills it
// and deletes its data directory (supervisor.Supervisor.Wipe). Start brings
// it back as the README says (the same flags and --join), and it rejoins
// before it serves.
func (c *Cluster) Wipe(ctx context.Context, name string, limit time.Duration) error {
	r := c.regions[name]
	r.mu.Lock()
	crashed := r.crashed
	r.mu.Unlock()
	if crashed != nil {
		return c.Kill(name)
	}
	if err := c.sup.Wipe(ctx, name, limit); err != nil {
		return err
	}
	c.http.CloseIdleConnections()
	fmt.Fprintf(r.log, "=== campaign: killed %s and deleted its data directory at %s\n", name, time.Now().Format(time.RFC3339Nano))
	return nil
}

func (c *Cluster) setDrain(ctx context.Context, name string, drain bool) error {
	return c.sup.SetDrain(ctx, name, drain)
}

// Status asks one region for its status.
func (c *Cluster) Status(ctx context.Context, name string) (*v1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := c.admin[name].Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// AwaitAlive polls until every region serves clients and lists every
// region as alive.
func (c *Cluster) AwaitAlive(ctx context.Context, limit time.Duration) error {
	return poll(ctx, limit, func(ctx context.Context) (bool, string) {
		var missing []string
		for _, name := range c.cfg.Regions {
			st, err := c.Status(ctx, name)
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			if state := st.GetCausalState(); state != "serving" {
				missing = append(missing, fmt.Sprintf("%s does not serve yet: %s %s", name, state, st.GetCausalStateReason()))
			}
			alive := map[string]bool{}
			for _, m := range st.GetMembers() {
				alive[m.GetRegion()] = m.GetState() == "alive"
			}
			for _, other := range c.cfg.Regions {
				if !alive[other] {
					missing = append(missing, fmt.Sprintf("%s does not see %s alive", name, other))
				}
			}
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})
}

// AwaitLinear polls until every region reports the linear tier available,
// with every region a reachable voter and the same leader.
func (c *Cluster) AwaitLinear(ctx context.Context, limit time.Duration) error {
	n := len(c.cfg.Regions)
	return poll(ctx, limit, func(ctx context.Context) (bool, string) {
		var missing []string
		leaders := map[string]bool{}
		for _, name := range c.cfg.Regions {
			st, err := c.Status(ctx, name)
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			lin := st.GetLinear()
			switch {
			case !lin.GetEnabled():
				missing = append(missing, name+": the linear tier is off (see ClusterConfig.ServeArgs)")
			case !lin.GetAvailable():
				missing = append(missing, fmt.Sprintf("%s: unavailable (%s)", name, lin.GetReason()))
			case len(lin.GetVoters()) != n || int(lin.GetReachableVoters()) != n:
				missing = append(missing, fmt.Sprintf("%s: %d voters, %d reachable, want %d", name, len(lin.GetVoters()), lin.GetReachableVoters(), n))
			default:
				leaders[lin.GetLeaderRegion()] = true
			}
		}
		if len(missing) == 0 && len(leaders) != 1 {
			missing = append(missing, fmt.Sprintf("regions disagree on the leader: %v", slices.Sorted(maps.Keys(leaders))))
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})
}

// AwaitConverged polls until every region reports the same applied vector
// and no pending writes, and returns that vector.
func (c *Cluster) AwaitConverged(ctx context.Context, limit time.Duration) (map[string]uint64, error) {
	var vector map[string]uint64
	err := poll(ctx, limit, func(ctx context.Context) (bool, string) {
		var summary []string
		same := true
		vector = nil
		for i, name := range c.cfg.Regions {
			st, err := c.Status(ctx, name)
			if err != nil {
				summary = append(summary, fmt.Sprintf("%s: %v", name, err))
				same = false
				continue
			}
			summary = append(summary, fmt.Sprintf("%s: vector %v, %d pending", name, st.GetVector(), st.GetPendingWrites()))
			if i == 0 {
				vector = st.GetVector()
			}
			if st.GetPendingWrites() != 0 || !maps.Equal(st.GetVector(), vector) {
				same = false
			}
		}
		return same, strings.Join(summary, "; ")
	})
	return vector, err
}

func poll(ctx context.Context, limit time.Duration, cond func(context.Context) (bool, string)) error {
	return supervisor.Poll(ctx, limit, cond)
}

// LogFiles returns each region's log file path.
func (c *Cluster) LogFiles() map[string]string {
	out := map[string]string{}
	for _, name := range c.cfg.Regions {
		out[name] = filepath.Join(c.cfg.LogDir, name+".log")
	}
	return out
}

// Close kills every process the cluster started and reaps it.
func (c *Cluster) Close() {
	c.sup.Close()
	for _, r := range c.regions {
		if r.log != nil {
			r.log.Close()
			r.log = nil
		}
	}
	c.http.CloseIdleConnections()
}
