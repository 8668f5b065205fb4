package campaign

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// ServerCommand is how to run `causeway serve`: Path with Args before the
// "serve" verb, and Env added to the campaign's own environment.
type ServerCommand struct {
	Path string
	Args []string
	Env  []string
}

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
	// ServeArgs returns extra `causeway serve` flags for a region, added
	// at every start. Nil means "--linear off": a campaign of the causal
	// tier alone. A campaign of the linear tier makes regions voters or
	// forwarders here, with "--raft-listen" r.RaftAddr for voters
	// (LinearVoters makes every region a voter); the first region's first
	// start has no --join, so it bootstraps the tier.
	ServeArgs func(r *Region) []string
}

// LinearVoters is a ClusterConfig.ServeArgs that runs the linear tier with
// every region a voter, its Raft transport on the region's reserved
// address. The first region's first start forms the Raft group; the
// leader adds the others as gossip shows them.
func LinearVoters(r *Region) []string {
	return []string{"--linear", "voter", "--raft-listen", r.RaftAddr}
}

// The readiness line `causeway serve` prints once it serves.
var servingLine = regexp.MustCompile(`^causeway: region (\S+) serving on http://(\S+) \(data in .+\)$`)

// Process states of a region.
const (
	stateRunning = "running"
	statePaused  = "paused"
	stateDown    = "down"
)

// Region is one region's process. Its addresses stay the same across
// restarts, so peers and clients find it again.
type Region struct {
	Name       string
	Addr       string // API host:port
	GossipAddr string
	// RaftAddr is a free address reserved for the linear tier's Raft
	// transport (see ClusterConfig.ServeArgs).
	RaftAddr string
	DataDir  string
	URL      string

	mu         sync.Mutex
	cmd        *exec.Cmd
	state      string
	skew       time.Duration
	starts     int
	stdoutDone chan struct{}
	log        *os.File
}

// Cluster starts, stops and faults the regions' processes. Close stops
// every process it started.
type Cluster struct {
	cfg     ClusterConfig
	regions map[string]*Region
	http    *http.Client
	kv      map[string]causewayv1connect.KVServiceClient
	admin   map[string]causewayv1connect.AdminServiceClient
	wan     map[[2]string]time.Duration
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
	wan, err := ParseWAN(cfg.WAN)
	if err != nil {
		return nil, fmt.Errorf("wan latency: %w", err)
	}
	for _, dir := range []string{cfg.DataDir, cfg.LogDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	c := &Cluster{
		cfg:     cfg,
		regions: map[string]*Region{},
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}},
		kv:    map[string]causewayv1connect.KVServiceClient{},
		admin: map[string]causewayv1connect.AdminServiceClient{},
		wan:   wan,
	}
	ports, err := c.ports(len(cfg.Regions))
	if err != nil {
		return nil, err
	}
	for i, name := range cfg.Regions {
		r := &Region{
			Name:       name,
			Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i][0])),
			GossipAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i][1])),
			RaftAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i][2])),
			DataDir:    filepath.Join(cfg.DataDir, name),
			state:      stateDown,
		}
		r.URL = "http://" + r.Addr
		c.regions[name] = r
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

// ports returns an API, a gossip and a Raft port per region: from
// BasePort (gossip +100, Raft +200, as `causeway serve` defaults them), or
// ports the system reports free (TCP and UDP, as gossip uses both).
func (c *Cluster) ports(n int) ([][3]int, error) {
	out := make([][3]int, n)
	if c.cfg.BasePort != 0 {
		for i := range out {
			out[i] = [3]int{c.cfg.BasePort + i, c.cfg.BasePort + i + 100, c.cfg.BasePort + i + 200}
		}
		return out, nil
	}
	taken := map[int]bool{}
	free := func() (int, error) {
		for range 100 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			port := ln.Addr().(*net.TCPAddr).Port
			udp, uerr := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			ln.Close()
			if uerr != nil || taken[port] {
				if udp != nil {
					udp.Close()
				}
				continue
			}
			udp.Close()
			taken[port] = true
			return port, nil
		}
		return 0, errors.New("no free port on 127.0.0.1")
	}
	for i := range out {
		for j := range 3 {
			p, err := free()
			if err != nil {
				return nil, err
			}
			out[i][j] = p
		}
	}
	return out, nil
}

// Regions lists the region names in configuration order.
func (c *Cluster) Regions() []string { return slices.Clone(c.cfg.Regions) }

// Region returns one region.
func (c *Cluster) Region(name string) *Region { return c.regions[name] }

// HTTPClient is the client the cluster's Connect clients use.
func (c *Cluster) HTTPClient() *http.Client { return c.http }

// KV returns a causal-tier client for a region.
func (c *Cluster) KV(name string) causewayv1connect.KVServiceClient { return c.kv[name] }

// Admin returns an admin client for a region.
func (c *Cluster) Admin(name string) causewayv1connect.AdminServiceClient { return c.admin[name] }

// BaseDelay is the one-way delay configured between two regions.
func (c *Cluster) BaseDelay(a, b string) time.Duration { return c.wan[[2]string{min(a, b), max(a, b)}] }

// Start starts a region that is down, on its data directory, with its
// physical clock offset by skew (0 for none), and waits until it serves.
func (c *Cluster) Start(ctx context.Context, name string, skew time.Duration) error {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stateDown {
		return fmt.Errorf("region %s is %s, not down", name, r.state)
	}
	if r.log == nil {
		f, err := os.OpenFile(filepath.Join(c.cfg.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		r.log = f
	}
	args := append(slices.Clone(c.cfg.Command.Args), "serve",
		"--region", name, "--data", r.DataDir, "--listen", r.Addr, "--gossip-listen", r.GossipAddr,
		"--cluster-id", c.cfg.ClusterID, "--fault-injection", "--log-format", "json")
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
	if len(join) > 0 && (name != c.cfg.Regions[0] || r.starts > 0) {
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
	r.starts++
	fmt.Fprintf(r.log, "=== campaign: start %d of %s at %s: %s\n", r.starts, name, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))

	// A port can still be held for a moment by the process just killed;
	// a start that exits before serving is retried until the deadline.
	deadline := time.Now().Add(c.cfg.StartTimeout)
	for attempt := 1; ; attempt++ {
		err := c.startOnce(ctx, r, args)
		if err == nil {
			r.skew = skew
			c.http.CloseIdleConnections()
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) || attempt >= 5 {
			return fmt.Errorf("start region %s (see %s): %w", name, r.log.Name(), err)
		}
		fmt.Fprintf(r.log, "=== campaign: start attempt %d failed: %v; retrying\n", attempt, err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // back off before retrying a port
		}
	}
}

func (c *Cluster) startOnce(ctx context.Context, r *Region, args []string) error {
	cmd := exec.Command(c.cfg.Command.Path, args...)
	cmd.Env = append(os.Environ(), c.cfg.Command.Env...)
	cmd.Stderr = r.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		announced := false
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil && !announced {
				announced = true
				ready <- m[2]
			}
			fmt.Fprintf(r.log, "%s\n", sc.Text())
		}
		// Keep draining, so the child never blocks on a full pipe.
		_, _ = io.Copy(r.log, stdout)
	}()
	timer := time.NewTimer(c.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case addr := <-ready:
		if addr != r.Addr {
			_ = cmd.Process.Kill()
			<-done
			_ = cmd.Wait()
			return fmt.Errorf("serves on %s, not on %s", addr, r.Addr)
		}
		r.cmd, r.stdoutDone, r.state = cmd, done, stateRunning
		return nil
	case <-done:
		err := cmd.Wait()
		return fmt.Errorf("exited before serving: %v", err)
	case <-timer.C:
		err = fmt.Errorf("did not serve within %v", c.cfg.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Kill()
	<-done
	_ = cmd.Wait()
	return err
}

// Kill sends SIGKILL to a region's process and reaps it.
func (c *Cluster) Kill(name string) error {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.killLocked(r)
}

func (c *Cluster) killLocked(r *Region) error {
	if r.state == stateDown {
		return nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL) // also ends a stopped process
	<-r.stdoutDone
	err := r.cmd.Wait()
	r.state, r.cmd = stateDown, nil
	fmt.Fprintf(r.log, "=== campaign: killed %s at %s (%v)\n", r.Name, time.Now().Format(time.RFC3339Nano), err)
	c.http.CloseIdleConnections()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return nil
		}
	}
	return fmt.Errorf("region %s was not running when killed: %v", r.Name, err)
}

// Pause stops a region's process with SIGSTOP.
func (c *Cluster) Pause(name string) error {
	return c.signal(name, syscall.SIGSTOP, stateRunning, statePaused)
}

// Resume continues a paused region with SIGCONT.
func (c *Cluster) Resume(name string) error {
	return c.signal(name, syscall.SIGCONT, statePaused, stateRunning)
}

func (c *Cluster) signal(name string, sig syscall.Signal, from, to string) error {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != from {
		return fmt.Errorf("region %s is %s, not %s", name, r.state, from)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		return err
	}
	r.state = to
	fmt.Fprintf(r.log, "=== campaign: %v to %s at %s\n", sig, name, time.Now().Format(time.RFC3339Nano))
	return nil
}

// State reports whether a region is running, paused or down, and its clock
// skew.
func (c *Cluster) State(name string) (state string, skew time.Duration) {
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, r.skew
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
// and deletes its data directory. Start brings it back as the README says
// (the same flags and --join), and it rejoins before it serves.
func (c *Cluster) Wipe(ctx context.Context, name string, limit time.Duration) error {
	if err := c.setDrain(ctx, name, true); err != nil {
		return err
	}
	err := poll(ctx, limit, func(ctx context.Context) (bool, string) {
		st, err := c.Status(ctx, name)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", name, err)
		}
		head := st.GetVector()[name]
		var behind []string
		for _, other := range c.cfg.Regions {
			if other == name {
				continue
			}
			ost, err := c.Status(ctx, other)
			if err != nil {
				behind = append(behind, fmt.Sprintf("%s: %v", other, err))
			} else if got := ost.GetVector()[name]; got < head {
				behind = append(behind, fmt.Sprintf("%s holds %d of %s's %d writes", other, got, name, head))
			}
		}
		return len(behind) == 0, strings.Join(behind, "; ")
	})
	if err != nil {
		_ = c.setDrain(context.WithoutCancel(ctx), name, false)
		return fmt.Errorf("the other regions did not catch up with drained %s, so wiping it would lose writes: %w", name, err)
	}
	r := c.regions[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := c.killLocked(r); err != nil {
		return err
	}
	if err := os.RemoveAll(r.DataDir); err != nil {
		return fmt.Errorf("wipe %s: %w", name, err)
	}
	fmt.Fprintf(r.log, "=== campaign: data directory of %s deleted at %s\n", name, time.Now().Format(time.RFC3339Nano))
	return nil
}

func (c *Cluster) setDrain(ctx context.Context, name string, drain bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.admin[name].SetDrain(ctx, connect.NewRequest(&v1.SetDrainRequest{Drain: drain})); err != nil {
		return fmt.Errorf("drain %s: %w", name, err)
	}
	return nil
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

// poll calls cond every 50ms until it holds or limit passes; the error
// then carries cond's last description of what is missing.
func poll(ctx context.Context, limit time.Duration, cond func(context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond(ctx)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %s", limit, why)
		case <-tick.C:
		}
	}
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
	var wg sync.WaitGroup
	for _, r := range c.regions {
		wg.Go(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			_ = c.killLocked(r)
			if r.log != nil {
				r.log.Close()
				r.log = nil
			}
		})
	}
	wg.Wait()
	c.http.CloseIdleConnections()
}

// ParseWAN reads a --wan-latency value, "a/b=40ms,a/c=108ms", into delays
// per unordered pair (keys ordered: smaller name first).
func ParseWAN(s string) (map[[2]string]time.Duration, error) {
	out := map[[2]string]time.Duration{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		pair, delay, ok := strings.Cut(item, "=")
		a, b, ok2 := strings.Cut(pair, "/")
		if !ok || !ok2 || a == "" || b == "" || a == b {
			return nil, fmt.Errorf("%q: want region/region=duration", item)
		}
		d, err := time.ParseDuration(delay)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		out[[2]string{min(a, b), max(a, b)}] = d
	}
	return out, nil
}
