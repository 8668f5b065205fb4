package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/campaign"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// Config configures a demo cluster. Zero fields take the defaults stated.
type Config struct {
	// Command runs `causeway serve` (required).
	Command supervisor.Command
	// Regions are the regions' names, one process each (required).
	Regions []string
	// WAN is every region's --wan-latency ("" for none).
	WAN string
	// DataDir holds the regions' data (DataDir/data/REGION), their logs
	// (DataDir/logs/REGION.log) and the history of the demo's clients
	// (DataDir/history.jsonl). Required.
	DataDir string
	// ClusterID is the cluster's UUID (default: a new one).
	ClusterID string
	// NoLinear runs the regions without the linearizable tier (default:
	// every region a voter).
	NoLinear bool
	// Insecure runs the regions without TLS. By default they run with TLS
	// on certificates created in DataDir/certs, and the demo's clients and
	// dashboard call them as the admin client (supervisor.AdminClient).
	Insecure bool
	// RequestTimeout bounds one client operation (default 3s): a region
	// that lacks a session's causal past answers unavailable after it.
	RequestTimeout time.Duration
	// StartTimeout bounds one start of one region (default 60s).
	StartTimeout time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Limits on what the demo keeps (see the package documentation).
const (
	maxEvents     = 200
	maxRecording  = 1000
	maxSessions   = 1024
	maxVisibility = 256
)

// Demo is a running demo cluster. Its methods are safe for concurrent use.
type Demo struct {
	cfg     Config
	cluster *campaign.Cluster
	lin     map[string]causewayv1connect.LinearServiceClient
	rec     *campaign.Recorder
	history *os.File
	events  *eventLog
	poller  *poller
	started time.Time

	// faults serialises the actions that change the cluster, so that the
	// remembered link state is what the regions were told.
	faults sync.Mutex
	links  *linkState

	mu        sync.Mutex
	sessions  map[string]int // session -> operations issued (its history index)
	recording []string       // the actions done, as scenario lines
	runs      int            // scenario runs started
	skews     map[string]time.Duration
	closed    bool
	fault     *campaign.Fault // the fault window open in the history (nil: healthy)
	faultIDs  int
}

// Start starts every region, waits until each serves and sees the others
// alive, and starts polling their status.
func Start(ctx context.Context, cfg Config) (*Demo, error) {
	if cfg.Command.Path == "" || len(cfg.Regions) == 0 || cfg.DataDir == "" {
		return nil, errors.New("demo: Command, Regions and DataDir are required")
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 3 * time.Second
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = uuid.NewString()
	}
	wan, err := supervisor.ParseWAN(cfg.WAN)
	if err != nil {
		return nil, fmt.Errorf("demo: --wan-latency: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	history, err := os.OpenFile(filepath.Join(cfg.DataDir, "history.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	d := &Demo{
		cfg:      cfg,
		lin:      map[string]causewayv1connect.LinearServiceClient{},
		rec:      campaign.NewRecorder(history),
		history:  history,
		events:   newEventLog(maxEvents),
		started:  time.Now(),
		links:    newLinkState(cfg.Regions, wan),
		sessions: map[string]int{},
		skews:    map[string]time.Duration{},
	}
	serveArgs := func(*campaign.Region) []string { return []string{"--linear", "voter"} }
	if cfg.NoLinear {
		serveArgs = nil
	}
	d.logf("starting %d regions (%v) in %s", len(cfg.Regions), cfg.Regions, cfg.DataDir)
	d.cluster, err = campaign.StartCluster(ctx, campaign.ClusterConfig{
		Command:      cfg.Command,
		Regions:      cfg.Regions,
		DataDir:      filepath.Join(cfg.DataDir, "data"),
		LogDir:       filepath.Join(cfg.DataDir, "logs"),
		WAN:          cfg.WAN,
		ClusterID:    cfg.ClusterID,
		StartTimeout: cfg.StartTimeout,
		ServeArgs:    serveArgs,
		Insecure:     cfg.Insecure,
		CertsDir:     filepath.Join(cfg.DataDir, "certs"),
	})
	if err != nil {
		history.Close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	for _, name := range cfg.Regions {
		d.lin[name] = causewayv1connect.NewLinearServiceClient(d.cluster.HTTPClient(), d.cluster.Region(name).URL)
	}
	d.poller = newPoller(d)
	d.event("cluster", "", fmt.Sprintf("%d regions started: %v", len(cfg.Regions), cfg.Regions))
	return d, nil
}

// AwaitLinear waits until the linearizable tier has a leader every region
// follows (nothing to wait for with Config.NoLinear).
func (d *Demo) AwaitLinear(ctx context.Context, limit time.Duration) error {
	if d.cfg.NoLinear {
		return nil
	}
	return d.cluster.AwaitLinear(ctx, limit)
}

// Regions lists the regions in configuration order.
func (d *Demo) Regions() []string { return slices.Clone(d.cfg.Regions) }

// URL is a region's API base URL.
func (d *Demo) URL(region string) string { return d.cluster.Region(region).URL }

// CertsDir is the cluster's certs directory ("" when it runs without
// TLS): ca.crt and the admin client certificate are what a client needs.
func (d *Demo) CertsDir() string { return d.cluster.CertsDir() }

// ClusterID is the cluster's UUID.
func (d *Demo) ClusterID() string { return d.cfg.ClusterID }

// LogFiles returns each region's log file.
func (d *Demo) LogFiles() map[string]string { return d.cluster.LogFiles() }

// HistoryPath is the file the clients' history is written to.
func (d *Demo) HistoryPath() string { return d.history.Name() }

// Close stops polling and kills every region's process.
func (d *Demo) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	d.poller.close()
	d.cluster.Close()
	_ = d.rec.Flush()
	d.history.Close()
}

func (d *Demo) logf(format string, args ...any) {
	if d.cfg.Log != nil {
		fmt.Fprintf(d.cfg.Log, format+"\n", args...)
	}
}

// event adds an event to the timeline.
func (d *Demo) event(kind, region, text string) {
	d.events.add(Event{Time: time.Now(), Kind: kind, Region: region, Text: text})
	if d.poller != nil {
		d.poller.changed()
	}
}

// Recording returns the actions done so far as scenario text.
func (d *Demo) Recording() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := "# Recorded by causeway demo on " + time.Now().UTC().Format(time.RFC3339) + "\n"
	for _, l := range d.recording {
		out += l + "\n"
	}
	return out
}

func (d *Demo) record(a Action) {
	if a.Op == OpSay || a.Op == OpWait || a.Op == OpSleep {
		return
	}
	a.Expect = nil
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.recording) >= maxRecording {
		d.recording = slices.Delete(d.recording, 0, 1)
	}
	d.recording = append(d.recording, a.String())
}

func (d *Demo) known(region string) error {
	if !slices.Contains(d.cfg.Regions, region) {
		return fmt.Errorf("no region %q (the regions are %v)", region, d.cfg.Regions)
	}
	return nil
}

// Do runs one action and returns its result. A client operation that the
// cluster refuses is not an error: its Result says what the region
// answered (OK false, Code, Error). err is for actions that could not be
// done: a bad argument, a region down, a fault the region refused.
func (d *Demo) Do(ctx context.Context, a Action) (*Result, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	for _, r := range append([]string{a.Region, a.Peer}, slices.Concat(a.Groups...)...) {
		if r == "" {
			continue
		}
		if err := d.known(r); err != nil {
			return nil, err
		}
	}
	if a.Peer != "" && a.Peer == a.Region {
		return nil, fmt.Errorf("a region has no link to itself (%s)", a.Region)
	}
	var res *Result
	var err error
	switch a.Op {
	case OpCut, OpHeal, OpDelay, OpIsolate, OpSplit, OpHealAll:
		res, err = d.doLink(ctx, a)
		d.noteFaults(a)
	case OpKill, OpRestart, OpPause, OpResume, OpSkew:
		res, err = d.doProcess(ctx, a)
		d.noteFaults(a)
	case OpPut, OpGet, OpDelete, OpClaim, OpLookup:
		res, err = d.doClient(ctx, a)
	case OpSay:
		d.event("say", "", a.What)
		res = &Result{OK: true, Text: a.What}
	case OpSleep:
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(a.Delay)):
		}
		res = &Result{OK: true, Text: "slept " + a.Delay.String()}
	case OpWait:
		res, err = d.doWait(ctx, a)
	default:
		return nil, fmt.Errorf("unknown action %q", a.Op)
	}
	if err != nil {
		return nil, err
	}
	d.record(a)
	return res, nil
}

// doProcess kills, restarts, pauses, resumes or skews a region.
func (d *Demo) doProcess(ctx context.Context, a Action) (*Result, error) {
	d.faults.Lock()
	defer d.faults.Unlock()
	name := a.Region
	state, _ := d.cluster.State(name)
	var text string
	switch a.Op {
	case OpKill:
		if err := d.cluster.Kill(name); err != nil {
			return nil, err
		}
		text = name + " killed (SIGKILL); the other regions keep serving"
	case OpPause:
		if err := d.cluster.Pause(name); err != nil {
			return nil, err
		}
		text = name + " paused (SIGSTOP): its process is frozen, its sockets stay open"
	case OpResume:
		if err := d.cluster.Resume(name); err != nil {
			return nil, err
		}
		// Links changed while it was frozen were not told to it.
		if err := d.links.apply(ctx, d, name); err != nil {
			return nil, fmt.Errorf("%s resumed, but setting its links failed: %w", name, err)
		}
		text = name + " resumed (SIGCONT)"
	case OpRestart, OpSkew:
		d.mu.Lock()
		if a.Op == OpSkew {
			d.skews[name] = time.Duration(a.Delay)
		}
		skew := d.skews[name]
		d.mu.Unlock()
		if state != string(supervisor.Down) {
			if err := d.cluster.Kill(name); err != nil {
				return nil, err
			}
		}
		d.event("process", name, fmt.Sprintf("%s starting (was %s)", name, state))
		if err := d.cluster.Start(ctx, name, skew); err != nil {
			return nil, err
		}
		// A new process starts with the WAN delays of its flags and no
		// cut: tell it what the demo's links are now.
		if err := d.links.apply(ctx, d, name); err != nil {
			return nil, fmt.Errorf("%s restarted, but setting its links failed: %w", name, err)
		}
		text = name + " restarted on its data directory; it catches up with what it missed"
		if a.Op == OpSkew {
			text = fmt.Sprintf("%s restarted with its clock off by %v", name, skew)
			if skew == 0 {
				text = name + " restarted with its clock right again"
			}
		}
	}
	d.poller.kick(name)
	d.event("process", name, text)
	return &Result{OK: true, Text: text}, nil
}

// doWait waits for the cluster to converge, a region to serve, or a
// region's linear tier to become (un)available.
func (d *Demo) doWait(ctx context.Context, a Action) (*Result, error) {
	limit := time.Duration(a.Delay)
	if limit == 0 {
		limit = 60 * time.Second
	}
	start := time.Now()
	switch a.What {
	case "converged":
		vector, err := d.cluster.AwaitConverged(ctx, limit)
		if err != nil {
			return &Result{Code: "deadline_exceeded", Error: "the regions did not converge: " + err.Error()}, nil
		}
		text := fmt.Sprintf("every region applied %s after %v", formatVector(vector), time.Since(start).Round(time.Millisecond))
		d.event("converged", "", text)
		return &Result{OK: true, Vector: vector, Text: text}, nil
	case "serving":
		err := supervisor.AwaitCausalServing(ctx, d.cluster.HTTPClient(), d.URL(a.Region), limit)
		if err != nil {
			return &Result{Code: "deadline_exceeded", Error: a.Region + " " + err.Error()}, nil
		}
		return &Result{OK: true, Text: a.Region + " serves"}, nil
	case "linear-available", "linear-unavailable":
		want := a.What == "linear-available"
		var last string
		err := supervisor.Poll(ctx, limit, func(ctx context.Context) (bool, string) {
			st, err := d.cluster.Status(ctx, a.Region)
			if err != nil {
				return false, err.Error()
			}
			last = st.GetLinear().GetReason()
			return st.GetLinear().GetAvailable() == want, fmt.Sprintf("available=%v (%s)", st.GetLinear().GetAvailable(), last)
		})
		if err != nil {
			return &Result{Code: "deadline_exceeded", Error: fmt.Sprintf("%s's linear tier: %v", a.Region, err)}, nil
		}
		text := a.Region + "'s linearizable tier is available"
		if !want {
			text = a.Region + "'s linearizable tier refuses: " + last
		}
		return &Result{OK: true, Text: text}, nil
	}
	return nil, fmt.Errorf("wait %q: want converged, serving or linear", a.What)
}

// setLink tells region from what its link to region to is.
func (d *Demo) setLink(ctx context.Context, from, to string, l linkSetting) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cut := v1.LinkCut_LINK_CUT_UNSPECIFIED
	switch {
	case l.cutOut && l.cutIn:
		cut = v1.LinkCut_LINK_CUT_BOTH
	case l.cutOut:
		cut = v1.LinkCut_LINK_CUT_OUTGOING
	case l.cutIn:
		cut = v1.LinkCut_LINK_CUT_INCOMING
	}
	_, err := d.cluster.Admin(from).SetLink(ctx, connect.NewRequest(&v1.SetLinkRequest{
		Region: to, Delay: durationpb.New(l.delay), Jitter: durationpb.New(l.jitter), Cut: cut,
	}))
	if err != nil {
		return fmt.Errorf("set %s's link to %s: %w", from, to, err)
	}
	return nil
}
