package wanbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/internal/supervisor"
)

// Config configures one benchmark run. Zero fields take the defaults
// stated; Defaults fills them.
type Config struct {
	// Matrix is the WAN layout: the emulated delays of an embedded cluster,
	// and the floors of every run.
	Matrix Matrix
	// Addr, when set, is an existing cluster (region=host:port,...) to
	// measure instead of starting one; its regions must be the matrix's.
	Addr string
	// AddrHTTP calls the Addr cluster (nil: plain HTTP); AddrTLS says it
	// speaks TLS, so that addresses without a scheme are https.
	AddrHTTP *http.Client
	AddrTLS  bool
	// Command runs the causeway binary for an embedded cluster.
	Command supervisor.Command
	// Insecure runs an embedded cluster in plain HTTP, and etcd with it
	// (default: both with TLS and client certificates; see tls.go).
	Insecure bool
	// DataDir is where an embedded cluster and etcd keep their data and
	// logs; "" makes a temporary directory, removed at the end.
	DataDir string
	// Phase is how long each measured row runs (default 8s; Quick: 1s).
	Phase time.Duration
	// Clients are the closed-loop client counts per region (default 1
	// and 64).
	Clients []int
	// CausalRate and LinearRate are the open-loop arrival rates per region,
	// operations per second (defaults 100 and 10).
	CausalRate, LinearRate float64
	// OpenWorkers bounds the concurrent operations of an open-loop row per
	// region (default 256).
	OpenWorkers int
	// Etcd is the etcd server binary for the peer rows; "" looks for it,
	// "none" skips them.
	Etcd string
	// Faults, when set, makes the run the fault timeline alone (faults.go).
	Faults bool
	// Scale, when set, makes the run the region sweep alone: for each
	// matrix in turn, a fresh embedded cluster with every region writing at
	// once (the last of Clients per region) while visibility is probed.
	Scale []Matrix
	// Progress receives the progress bar; nil shows none.
	Progress io.Writer
	// Log receives one line per step and every skipped row's reason; nil
	// discards.
	Log io.Writer
}

// Defaults fills the zero fields of c.
func (c *Config) Defaults(quick bool) {
	if c.Phase == 0 {
		c.Phase = 8 * time.Second
		if quick {
			c.Phase = time.Second
		}
	}
	if len(c.Clients) == 0 {
		c.Clients = []int{1, 64}
	}
	if c.CausalRate == 0 {
		c.CausalRate = 100
	}
	if c.LinearRate == 0 {
		c.LinearRate = 10
	}
	if c.OpenWorkers == 0 {
		c.OpenWorkers = 256
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Matrix.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Phase < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("phase %v is too short to measure anything (at least 10ms)", c.Phase))
	}
	for _, n := range c.Clients {
		if n < 1 || n > 1024 {
			errs = append(errs, fmt.Errorf("clients %d: want 1 to 1024", n))
		}
	}
	if c.CausalRate <= 0 || c.LinearRate <= 0 {
		errs = append(errs, errors.New("open-loop rates must be positive"))
	}
	if c.OpenWorkers < 1 {
		errs = append(errs, errors.New("open-loop workers must be at least 1"))
	}
	return errors.Join(errs...)
}

// Row is one measured row: an operation from one region under one load.
type Row struct {
	// System is "causeway" or "etcd"; Tier is "causal", "linear" or "etcd".
	System string `json:"system"`
	Tier   string `json:"tier"`
	Op     string `json:"op"`
	Region string `json:"region"`
	// Mode is "closed" (Clients clients, each sending when the previous
	// answer arrived) or "open" (RatePerSec arrivals a second).
	Mode       string  `json:"mode"`
	Clients    int     `json:"clients,omitempty"`
	RatePerSec float64 `json:"rate_per_s,omitempty"`
	// WAN is false for the no-WAN baseline rows.
	WAN bool `json:"wan"`
	Summary
	// FloorMs is the physical floor of the operation from this region (0:
	// none), and FloorNote what it is made of.
	FloorMs   float64 `json:"floor_ms,omitempty"`
	FloorNote string  `json:"floor_note,omitempty"`
	LastError string  `json:"last_error,omitempty"`
	// CDF is the empirical latency distribution, up to 100 points of (ms,
	// fraction), for the plots.
	CDF [][2]float64 `json:"cdf,omitempty"`
}

// Label is the row's load as the table shows it.
func (r Row) Label() string {
	if r.Mode == "open" {
		return fmt.Sprintf("open %g/s", r.RatePerSec)
	}
	s := fmt.Sprintf("closed %d", r.Clients)
	if !r.WAN {
		s += " no-WAN"
	}
	return s
}

// Results is everything one run measured, as results.json holds it.
type Results struct {
	Started      time.Time         `json:"started"`
	Finished     time.Time         `json:"finished"`
	Matrix       MatrixInfo        `json:"matrix"`
	Leader       string            `json:"leader"`
	Voters       []string          `json:"voters"`
	PhaseSeconds float64           `json:"phase_s"`
	Embedded     bool              `json:"embedded"`
	Rows         []Row             `json:"rows"`
	Visibility   []VisibilityRow   `json:"visibility"`
	CatchUp      *CatchUp          `json:"catch_up,omitempty"`
	Scale        []ScalePoint      `json:"scale,omitempty"`
	Faults       *FaultRun         `json:"faults,omitempty"`
	Targets      []TargetResult    `json:"targets"`
	Skipped      []string          `json:"skipped,omitempty"`
	Machine      map[string]string `json:"machine,omitempty"`
	EtcdLeader   string            `json:"etcd_leader,omitempty"`
	EtcdVersion  string            `json:"etcd_version,omitempty"`

	// TLS says Causeway's clients and nodes spoke TLS (false in a
	// results.json recorded before the benchmark ran TLS: those runs were
	// plain HTTP); EtcdTLS, that etcd ran with client and peer TLS.
	TLS     bool `json:"tls"`
	EtcdTLS bool `json:"etcd_tls"`
}

// MatrixInfo is the matrix as results.json records it.
type MatrixInfo struct {
	Name    string             `json:"name"`
	Regions []string           `json:"regions"`
	RTTms   map[string]float64 `json:"rtt_ms"` // "a/b" -> round trip
	Source  string             `json:"source"`
}

func matrixInfo(m Matrix) MatrixInfo {
	info := MatrixInfo{Name: m.Name, Regions: m.Regions, RTTms: map[string]float64{}, Source: m.Source}
	for p, d := range m.RTT {
		info.RTTms[p[0]+"/"+p[1]] = ms(d)
	}
	return info
}

// bench is one run in progress.
type bench struct {
	cfg    Config
	matrix Matrix
	target *Target
	etcd   *etcdCluster
	run    string // fresh per run: keys, names and registers never collide with an earlier run's
	seq    atomic.Uint64
	// ycsbInserted counts YCSB E's inserts: record ycsbRecords+i is the
	// i-th.
	ycsbInserted atomic.Uint64
	res          *Results
	prog         *progress
	dir          string
	// keepDir is set when an embedded cluster did not start: its logs,
	// which say why, outlive a temporary dir.
	keepDir bool
	// noLinear is set when the cluster runs without the linearizable tier
	// (only possible with --addr).
	noLinear bool
	leader   string
	voters   []string
}

// Run runs the whole benchmark and returns its results. Rows that cannot
// run (etcd missing; the no-WAN baseline against --addr) are listed in
// Results.Skipped with the reason.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, matrix: cfg.Matrix, run: uuid.NewString()[:8]}
	b.res = &Results{Started: time.Now().UTC(), Matrix: matrixInfo(cfg.Matrix), PhaseSeconds: cfg.Phase.Seconds()}
	dir := cfg.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "causeway-bench-")
		if err != nil {
			return nil, err
		}
		defer func() {
			if !b.keepDir {
				os.RemoveAll(tmp)
			}
		}()
		dir = tmp
	}
	b.dir = dir
	b.prog = newProgress(cfg.Progress, b.plan())
	defer b.prog.finish()

	if len(cfg.Scale) > 0 {
		if cfg.Addr != "" {
			return nil, errors.New("the region sweep starts its own clusters: it cannot run against --addr")
		}
		b.res.TLS = !cfg.Insecure
		b.res.Scale = b.scaleSweep(ctx, cfg.Scale, cfg.Clients[len(cfg.Clients)-1])
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.res.Targets = evaluate(b.res)
		b.res.Finished = time.Now().UTC()
		return b.res, nil
	}

	// The cluster.
	if cfg.Addr != "" {
		t, err := AddrTarget(cfg.Addr, cfg.AddrHTTP, cfg.AddrTLS)
		if err != nil {
			return nil, err
		}
		if err := sameRegions(t.Regions, cfg.Matrix.Regions); err != nil {
			return nil, err
		}
		// The matrix's order: its first region is the one the catch-up and
		// fault rows would write from, and the rows are listed in it.
		t.Regions = cfg.Matrix.Regions
		b.target = t
	} else {
		b.prog.step("starting "+fmt.Sprint(len(cfg.Matrix.Regions))+" causeway regions under the WAN", startEstimate)
		t, err := StartCluster(ctx, ClusterConfig{Command: cfg.Command, Matrix: cfg.Matrix, DataDir: dir + "/causeway", Secure: !cfg.Insecure})
		if err != nil {
			b.keepDir = true
			return nil, fmt.Errorf("the embedded cluster did not start (its data and logs are kept in %s): %w", dir, err)
		}
		b.target = t
		b.res.Embedded = true
	}
	defer b.target.Close()
	b.res.TLS = b.target.TLS
	leader, err := b.target.AwaitLeader(ctx, readyTimeout)
	switch {
	case err != nil && b.target.Embedded():
		return nil, err
	case err != nil:
		// A cluster given by --addr may run without the tier: measure the
		// causal tier alone.
		b.noLinear = true
		b.skip("linearizable rows and the unique-guarded Put: " + err.Error())
	default:
		b.leader, b.res.Leader = leader, leader
		if b.voters, err = b.target.Voters(ctx, leader); err != nil {
			return nil, err
		}
		b.res.Voters = b.voters
		fmt.Fprintf(cfg.Log, "causeway: %d regions serving; the linearizable tier is led from %s\n", len(b.target.Regions), leader)
		// One claim through every region before any measurement, so that the
		// followers' forwarding connections to the leader exist and no timed
		// operation pays for setting one up over the emulated WAN.
		// A busy machine can make a follower lose sight of the leader for a
		// moment just after the tier reported ready: retry, within a bound.
		for _, r := range b.target.Regions {
			deadline := time.Now().Add(firstClaimLimit)
			claim := b.linearOp("claim", r)(0)
			for {
				cctx, cancel := context.WithTimeout(ctx, opTimeout)
				_, err := claim(cctx)
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil || time.Now().After(deadline) {
					return nil, fmt.Errorf("first claim through %s (retried for %v): %w", r, firstClaimLimit, err)
				}
				time.Sleep(200 * time.Millisecond) // let the tier settle before asking again
			}
		}
	}

	// The peer.
	if cfg.Faults {
		// The fault timeline measures Causeway alone.
	} else if cfg.Etcd != "none" {
		b.prog.step("starting etcd, one member per region, behind delay proxies", etcdStartEstimate)
		ecfg := etcdConfig{Binary: cfg.Etcd, Matrix: cfg.Matrix, Dir: dir + "/etcd", CADir: b.target.CertsDir}
		if b.target.TLS && ecfg.CADir == "" {
			// An --addr cluster with TLS: its CA's key is not the
			// benchmark's to use, so etcd's certificates come from a CA of
			// the run's own.
			ecfg.CADir = dir + "/etcd-ca"
			if err := supervisor.PrepareCerts(ecfg.CADir); err != nil {
				return nil, fmt.Errorf("etcd's certificates: %w", err)
			}
		}
		e, err := startEtcd(ctx, ecfg)
		switch {
		case errors.Is(err, errEtcdNotFound):
			b.skip("etcd rows: " + err.Error())
		case err != nil:
			b.skip("etcd rows: etcd did not start: " + err.Error())
		default:
			b.etcd = e
			defer e.Close()
			// The same leader region as Causeway's tier: the same floors.
			if err := e.moveLeader(ctx, b.leader); err != nil {
				fmt.Fprintf(cfg.Log, "causeway: etcd stays led from %s: %v\n", e.leaderRegion, err)
			}
			b.res.EtcdLeader, b.res.EtcdVersion, b.res.EtcdTLS = e.leaderRegion, e.version, e.tls
		}
	} else {
		b.skip("etcd rows: skipped by --etcd none")
	}

	b.warmUp(ctx, b.target.Regions)
	if cfg.Faults {
		if !b.target.Embedded() {
			return nil, errors.New("the fault timeline cuts and kills regions: it needs the embedded cluster, not --addr")
		}
		b.res.Faults = b.faultTimeline(ctx)
		if e := b.res.Faults.Error; e != "" {
			fmt.Fprintln(cfg.Log, "faults:", e)
		}
		b.res.Targets = evaluate(b.res)
		b.res.Finished = time.Now().UTC()
		return b.res, nil
	}

	// The no-WAN baseline of causal Put: the same cluster with every link's
	// delay set to 0, then set back.
	if b.target.Embedded() {
		b.prog.step("causal put, 1 client per region, WAN delays off (baseline)", cfg.Phase)
		if err := b.target.SetDelays(ctx, cfg.Matrix.Zero()); err != nil {
			return nil, err
		}
		b.phase(ctx, "causeway", "causal", "put", "closed", 1, 0, false)
		if err := b.target.SetDelays(ctx, cfg.Matrix); err != nil {
			return nil, err
		}
	} else {
		b.skip("causal put no-WAN baseline: needs the embedded cluster (the benchmark cannot change the links of an --addr cluster)")
	}

	for _, op := range causalOps {
		if op == "unique-put" && b.noLinear {
			continue
		}
		if op == "ycsb-a" {
			b.prog.step("loading the YCSB records", 0)
			if err := b.ycsbLoad(ctx); err != nil {
				return nil, err
			}
		}
		b.modes(ctx, "causeway", "causal", op)
	}
	for _, n := range cfg.Clients {
		b.prog.step(fmt.Sprintf("visibility latency, every pair, beside %d put client(s) per region", n), cfg.Phase)
		b.res.Visibility = append(b.res.Visibility, b.visibility(ctx, n, cfg.Phase)...)
	}
	if b.target.Embedded() {
		b.prog.step(fmt.Sprintf("catch-up: %s cut off while %s writes %g/s, then healed", b.target.Regions[len(b.target.Regions)-1], b.target.Regions[0], cfg.CausalRate), 2*cfg.Phase)
		b.res.CatchUp = b.catchUp(ctx, cfg.CausalRate, 2*cfg.Phase)
		if e := b.res.CatchUp.Error; e != "" {
			fmt.Fprintln(cfg.Log, "catch-up:", e)
		}
		// The linearizable tier may have lost its leader to the cut: wait
		// until it serves again before its rows.
		if leader, err := b.target.AwaitLeader(ctx, readyTimeout); err != nil {
			return nil, err
		} else if leader != b.leader {
			b.skip(fmt.Sprintf("note: the linearizable tier's leader moved from %s to %s during the catch-up row; its rows use the new leader's floors", b.leader, leader))
			b.leader, b.res.Leader = leader, leader
		}
	} else {
		b.skip("catch-up row: needs the embedded cluster (it cuts a region's links)")
	}
	for _, op := range linearOps {
		if !b.noLinear {
			b.modes(ctx, "causeway", "linear", op)
		}
	}
	if b.etcd != nil {
		for _, op := range etcdOps {
			b.modes(ctx, "etcd", "etcd", op)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.res.Targets = evaluate(b.res)
	b.res.Finished = time.Now().UTC()
	return b.res, nil
}

// warmUp runs an unmeasured Put load in every region, so that the first
// measured row does not pay for a cluster that just started (Pebble's first
// flushes and compactions, the first replication batches, connection set-up).
func (b *bench) warmUp(ctx context.Context, regions []string) {
	d := min(b.cfg.Phase, 3*time.Second)
	b.prog.step("warming up: unmeasured puts in every region", d)
	var wg sync.WaitGroup
	for _, r := range regions {
		wg.Go(func() { closedLoop(ctx, b.cfg.Clients[len(b.cfg.Clients)-1], d, b.causalOp("put", r)) })
	}
	wg.Wait()
}

// firstClaimLimit bounds the retries of the claim that opens each region's
// path to the leader.
const firstClaimLimit = time.Minute

// Estimates of the unmeasured steps, for the progress bar's time left.
const (
	startEstimate     = 20 * time.Second
	etcdStartEstimate = 8 * time.Second
)

// plan is the total time the progress bar expects.
func (b *bench) plan() time.Duration {
	if len(b.cfg.Scale) > 0 {
		return b.scaleTimeEstimate(len(b.cfg.Scale))
	}
	if b.cfg.Faults {
		return startEstimate + min(b.cfg.Phase, 3*time.Second) + 7*b.cfg.Phase
	}
	modes := len(b.cfg.Clients) + 1
	rows := 1 + modes*(len(causalOps)+len(linearOps)) + len(b.cfg.Clients)
	total := time.Duration(rows)*b.cfg.Phase + min(b.cfg.Phase, 3*time.Second)
	if b.cfg.Addr == "" {
		total += 2 * b.cfg.Phase // the catch-up row's cut
	}
	if b.cfg.Addr == "" {
		total += startEstimate
	}
	if b.cfg.Etcd != "none" {
		total += etcdStartEstimate + time.Duration(modes*len(etcdOps))*b.cfg.Phase
	}
	return total
}

func (b *bench) skip(why string) {
	b.res.Skipped = append(b.res.Skipped, why)
	fmt.Fprintln(b.cfg.Log, "skipped:", why)
}

// modes runs op from every region at every closed-loop client count, then
// in open loop.
func (b *bench) modes(ctx context.Context, system, tier, op string) {
	for _, n := range b.cfg.Clients {
		b.prog.step(fmt.Sprintf("%s %s, %d client(s) per region", tier, op, n), b.cfg.Phase)
		b.phase(ctx, system, tier, op, "closed", n, 0, true)
	}
	rate := b.cfg.CausalRate
	if tier != "causal" {
		rate = b.cfg.LinearRate
	}
	b.prog.step(fmt.Sprintf("%s %s, open loop at %g/s per region", tier, op, rate), b.cfg.Phase)
	b.phase(ctx, system, tier, op, "open", 0, rate, true)
}

// phase measures op from every region at once and appends a row per
// region.
func (b *bench) phase(ctx context.Context, system, tier, op, mode string, clients int, rate float64, wan bool) {
	rows := make([]Row, len(b.target.Regions))
	var wg sync.WaitGroup
	for i, region := range b.target.Regions {
		newOp := b.newOp(tier, op, region)
		wg.Go(func() {
			var s *samples
			var elapsed time.Duration
			if mode == "open" {
				s, elapsed = openLoop(ctx, rate, b.cfg.OpenWorkers, b.cfg.Phase, newOp)
			} else {
				s, elapsed = closedLoop(ctx, clients, b.cfg.Phase, newOp)
			}
			row := Row{System: system, Tier: tier, Op: op, Region: region, Mode: mode, Clients: clients, RatePerSec: rate, WAN: wan, Summary: s.summarize(elapsed)}
			row.CDF = cdf(s.d, 100)
			if s.lastErr != nil {
				row.LastError = s.lastErr.Error()
			}
			if wan {
				row.FloorMs, row.FloorNote = b.floor(tier, op, region)
			}
			rows[i] = row
		})
	}
	wg.Wait()
	b.res.Rows = append(b.res.Rows, rows...)
}

func (b *bench) newOp(tier, op, region string) NewOp {
	switch tier {
	case "causal":
		return b.causalOp(op, region)
	case "linear":
		return b.linearOp(op, region)
	default:
		return b.etcd.op(op, region, b)
	}
}

// floor is the physical floor of op from region and what it is made of.
func (b *bench) floor(tier, op, region string) (float64, string) {
	switch {
	case tier == "causal" && op == "move-read":
		from := b.moveFrom(region)
		return ms(b.matrix.OneWay(from, region)), "one-way delay from " + from + " (the write must arrive)"
	case tier == "causal" && op == "unique-put", tier == "linear":
		return ms(QuorumFloor(b.matrix, b.voters, b.leader, region)), b.floorNote(b.leader, region)
	case tier == "etcd" && b.etcd != nil:
		return ms(QuorumFloor(b.matrix, b.matrix.Regions, b.etcd.leaderRegion, region)), b.floorNote(b.etcd.leaderRegion, region)
	}
	return 0, ""
}

func (b *bench) floorNote(leader, region string) string {
	if leader == region {
		return "quorum round trip from the leader (" + leader + ")"
	}
	return "forwarding round trip to the leader (" + leader + ") + its quorum round trip"
}

func sameRegions(got, want []string) error {
	g, w := strings.Join(sortedCopy(got), ","), strings.Join(sortedCopy(want), ",")
	if g != w {
		return fmt.Errorf("--addr names regions %s but the WAN matrix has %s: give --wan a matrix of the cluster's regions", g, w)
	}
	return nil
}
