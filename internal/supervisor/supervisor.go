package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Command is how to run the causeway binary: Path with Args before the
// "serve" verb, and Env added to this process's environment.
type Command struct {
	Path string
	Args []string
	Env  []string
}

// Addrs are a region's listening addresses, fixed across its restarts.
type Addrs struct {
	API    string // host:port of the API (--listen)
	Gossip string // --gossip-listen
	// Raft is the linearizable tier's Raft transport (--raft-listen); "" to
	// leave the flag out (serve then uses the API port + 200).
	Raft string
}

// Region describes one region: its name, data directory and addresses.
type Region struct {
	Name    string
	DataDir string
	Addrs   Addrs
	// TLS is set by Supervisor.Add when the supervisor runs the cluster
	// with TLS (Config.CertsDir).
	TLS bool
}

// URL is the base URL of the region's API: https:// when it serves TLS.
func (r Region) URL() string {
	if r.TLS {
		return "https://" + r.Addrs.API
	}
	return "http://" + r.Addrs.API
}

// Exit reports a region whose process ended without being told to.
type Exit struct {
	Region string
	// Err is what waiting for the process returned: nil for exit status 0,
	// an *exec.ExitError otherwise.
	Err error
	// Stderr is the end of what the process wrote to stderr.
	Stderr string
}

// Config configures a Supervisor. Zero fields take the defaults stated.
type Config struct {
	Command Command
	// StartTimeout bounds one Start of one region, retries included
	// (default 60s).
	StartTimeout time.Duration
	// StartAttempts is how often a start that exits before it serves is
	// tried (default 5: a port can still be held for a moment by the
	// process just killed). 1 never retries.
	StartAttempts int
	// Output returns where the n-th start (from 1) of a region writes its
	// stdout and stderr; nil writers discard. Nil Output discards both.
	// The readiness line is written to stdout like any other line.
	Output func(region string, n int) (stdout, stderr io.Writer)
	// OnExit, if set, is called (from the supervisor's own goroutine) when a
	// region's process ends without Kill, Stop, Wipe or Close: the region is
	// down, the others keep running.
	OnExit func(Exit)
	// CertsDir, when set, runs every region with TLS and authentication:
	// the supervisor keeps the cluster's certificates there (PrepareCerts:
	// a CA, a node certificate per region, the admin client certificate
	// and the gossip key, created where missing), starts each region with
	// --certs-dir RegionCertsDir(CertsDir, region), and calls the regions
	// over TLS as the admin client. Empty: plain HTTP, as `causeway serve`
	// allows on loopback.
	CertsDir string
	// HTTP is the client for the regions' admin API (default: one with a 2s
	// dial timeout, over TLS with the admin certificate when CertsDir is
	// set: NewHTTPClient). A caller that gives its own must give one that
	// speaks to the regions as they run.
	HTTP *http.Client
}

// State is a region's process state.
type State string

// The states of a region's process.
const (
	Running State = "running"
	Paused  State = "paused"
	Down    State = "down"
)

// ErrDown is returned for a fault on a region whose process is not running.
var ErrDown = errors.New("region is down")

// Supervisor starts and stops the regions' processes. It is safe for
// concurrent use; operations on one region are serialised.
type Supervisor struct {
	cfg     Config
	certErr error // preparing Config.CertsDir failed: every Add returns it
	mu      sync.Mutex
	regions map[string]*region
	order   []string
}

type region struct {
	spec   Region
	mu     sync.Mutex
	state  State
	proc   *process
	starts int
}

// process is one child: its reaper closes done after reading all its output
// and waiting for it.
type process struct {
	cmd      *exec.Cmd
	done     chan struct{}
	err      error // Wait's result; read after done
	stderr   *tail
	stopping bool // guarded by region.mu: an exit now is expected
}

// New returns a supervisor with no regions.
func New(cfg Config) *Supervisor {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.StartAttempts <= 0 {
		cfg.StartAttempts = 5
	}
	s := &Supervisor{cfg: cfg, regions: map[string]*region{}}
	if cfg.CertsDir != "" {
		s.certErr = PrepareCerts(cfg.CertsDir)
	}
	if s.cfg.HTTP == nil {
		var err error
		s.cfg.HTTP, err = NewHTTPClient(cfg.CertsDir, 8)
		if err != nil {
			s.certErr = errors.Join(s.certErr, err)
			s.cfg.HTTP, _ = NewHTTPClient("", 8) // every Add fails; Close still works
		}
	}
	return s
}

// Secure reports whether the regions run with TLS (Config.CertsDir).
func (s *Supervisor) Secure() bool { return s.cfg.CertsDir != "" }

// CertsDir is the cluster's certs directory ("" without TLS).
func (s *Supervisor) CertsDir() string { return s.cfg.CertsDir }

// Add adds a region, down. Its addresses must be complete (see FreeAddrs).
// With Config.CertsDir it issues the region's node certificate if it has
// none yet.
func (s *Supervisor) Add(r Region) error {
	if r.Name == "" || r.DataDir == "" || r.Addrs.API == "" || r.Addrs.Gossip == "" {
		return fmt.Errorf("region %q: name, data directory, API and gossip addresses are required", r.Name)
	}
	if s.certErr != nil {
		return fmt.Errorf("certificates for a cluster with TLS: %w", s.certErr)
	}
	if s.cfg.CertsDir != "" {
		if inside(r.DataDir, s.cfg.CertsDir) {
			return fmt.Errorf("region %s: its data directory %s is inside the certs directory %s", r.Name, r.DataDir, s.cfg.CertsDir)
		}
		if err := PrepareCerts(s.cfg.CertsDir, r.Name); err != nil {
			return err
		}
		r.TLS = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.regions[r.Name]; ok {
		return fmt.Errorf("region %s is already added", r.Name)
	}
	s.regions[r.Name] = &region{spec: r, state: Down}
	s.order = append(s.order, r.Name)
	return nil
}

// inside reports whether dir is parent or inside it.
func inside(dir, parent string) bool {
	a, errA := filepath.Abs(dir)
	b, errB := filepath.Abs(parent)
	if errA != nil || errB != nil {
		return false
	}
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Regions lists the regions in the order they were added.
func (s *Supervisor) Regions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// Region returns a region's description; ok is false for an unknown name.
func (s *Supervisor) Region(name string) (r Region, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg, ok := s.regions[name]
	if !ok {
		return Region{}, false
	}
	return reg.spec, true
}

func (s *Supervisor) region(name string) (*region, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.regions[name]
	if !ok {
		return nil, fmt.Errorf("no region %q", name)
	}
	return r, nil
}

// State reports a region's process state (Down for an unknown name).
func (s *Supervisor) State(name string) State {
	r, err := s.region(name)
	if err != nil {
		return Down
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Starts is how many times a region has been started.
func (s *Supervisor) Starts(name string) int {
	r, err := s.region(name)
	if err != nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

// Args is the command line of a start: the command's own arguments, then
// `serve --region R --data DIR --listen API --gossip-listen G
// [--raft-listen RAFT] [--certs-dir RegionCertsDir(CertsDir, R)]`, then
// extra.
func (s *Supervisor) Args(r Region, extra []string) []string {
	args := append(slices.Clone(s.cfg.Command.Args), "serve",
		"--region", r.Name, "--data", r.DataDir, "--listen", r.Addrs.API, "--gossip-listen", r.Addrs.Gossip)
	if r.Addrs.Raft != "" {
		args = append(args, "--raft-listen", r.Addrs.Raft)
	}
	if s.cfg.CertsDir != "" {
		args = append(args, "--certs-dir", RegionCertsDir(s.cfg.CertsDir, r.Name))
	}
	return append(args, extra...)
}

// Start starts a region that is down, with the serve flags extra added to
// the ones Args names, and returns once it prints its readiness line on
// its own address.
func (s *Supervisor) Start(ctx context.Context, name string, extra []string) error {
	r, err := s.region(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != Down {
		return fmt.Errorf("region %s is %s, not down", name, r.state)
	}
	args := s.Args(r.spec, extra)
	r.starts++
	deadline := time.Now().Add(s.cfg.StartTimeout)
	for attempt := 1; ; attempt++ {
		p, err := s.startOnce(ctx, r, args, deadline)
		if err == nil {
			r.proc, r.state = p, Running
			go s.watch(r, p)
			return nil
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) || attempt >= s.cfg.StartAttempts {
			return fmt.Errorf("start region %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // back off before retrying a port
		}
	}
}

func (s *Supervisor) startOnce(ctx context.Context, r *region, args []string, deadline time.Time) (*process, error) {
	var stdout, stderr io.Writer = io.Discard, io.Discard
	if s.cfg.Output != nil {
		o, e := s.cfg.Output(r.spec.Name, r.starts)
		if o != nil {
			stdout = o
		}
		if e != nil {
			stderr = e
		}
	}
	cmd := exec.Command(s.cfg.Command.Path, args...)
	cmd.Env = append(os.Environ(), s.cfg.Command.Env...)
	p := &process{cmd: cmd, done: make(chan struct{}), stderr: &tail{max: 16 << 10}}
	cmd.Stderr = io.MultiWriter(stderr, p.stderr)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan Serving, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		announced := false
		for sc.Scan() {
			if l, ok := ParseServingLine(sc.Text()); ok && !announced {
				announced = true
				ready <- l
			}
			fmt.Fprintf(stdout, "%s\n", sc.Text())
		}
		// Keep draining, so the child never blocks on a full pipe.
		_, _ = io.Copy(stdout, pipe)
		p.err = cmd.Wait()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case l := <-ready:
		// A secure supervisor's region must serve TLS; another's may,
		// when the caller passes its own --certs-dir.
		if l.Region == r.spec.Name && l.Addr == r.spec.Addrs.API && (l.TLS || !r.spec.TLS) {
			return p, nil
		}
		err = fmt.Errorf("serves region %s on %s, not region %s on %s", l.Region, l.URL(), r.spec.Name, r.spec.URL())
	case <-p.done:
		return nil, fmt.Errorf("exited before serving (%v): %s", p.err, p.stderr.lastLines(5))
	case <-timer.C:
		err = fmt.Errorf("did not print its readiness line within %v", s.cfg.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Kill()
	<-p.done
	return nil, err
}

// watch reports p's exit unless it was asked for.
func (s *Supervisor) watch(r *region, p *process) {
	<-p.done
	r.mu.Lock()
	unexpected := r.proc == p && !p.stopping
	if unexpected {
		r.proc, r.state = nil, Down
	}
	r.mu.Unlock()
	if unexpected && s.cfg.OnExit != nil {
		s.cfg.OnExit(Exit{Region: r.spec.Name, Err: p.err, Stderr: p.stderr.String()})
	}
}

// Kill sends SIGKILL to a region's process (also a paused one) and reaps
// it. The error is nil only if the signal is what ended the process; a
// region that is down already gives an error wrapping ErrDown.
func (s *Supervisor) Kill(name string) error {
	r, err := s.region(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kill()
}

func (r *region) kill() error {
	p := r.proc
	if p == nil {
		return fmt.Errorf("region %s: %w", r.spec.Name, ErrDown)
	}
	p.stopping = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	r.proc, r.state = nil, Down
	if killedBy(p.err, syscall.SIGKILL) {
		return nil
	}
	return fmt.Errorf("region %s was not running when killed: %v", r.spec.Name, p.err)
}

// DumpStacks ends a region's process with SIGQUIT, on which a Go process
// writes every goroutine's stack to its stderr (Config.Output) before it
// exits: for a region that runs but does not answer, it shows where the
// process was stuck. A process still running after grace is killed. The
// region is down afterwards; the exit is not reported through OnExit.
func (s *Supervisor) DumpStacks(name string, grace time.Duration) error {
	r, err := s.region(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.proc
	if p == nil {
		return fmt.Errorf("region %s: %w", r.spec.Name, ErrDown)
	}
	p.stopping = true
	if r.state == Paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	r.proc, r.state = nil, Down
	return nil
}

func killedBy(err error, sig syscall.Signal) bool {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == sig {
			return true
		}
	}
	return false
}

// Restart kills a running region (if it runs) and starts it again on the
// same addresses and data directory.
func (s *Supervisor) Restart(ctx context.Context, name string, extra []string) error {
	if err := s.Kill(name); err != nil && !errors.Is(err, ErrDown) {
		return err
	}
	return s.Start(ctx, name, extra)
}

// Pause stops a running region's process with SIGSTOP.
func (s *Supervisor) Pause(name string) error {
	return s.signal(name, syscall.SIGSTOP, Running, Paused)
}

// Resume continues a paused region with SIGCONT.
func (s *Supervisor) Resume(name string) error {
	return s.signal(name, syscall.SIGCONT, Paused, Running)
}

func (s *Supervisor) signal(name string, sig syscall.Signal, from, to State) error {
	r, err := s.region(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != from {
		return fmt.Errorf("region %s is %s, not %s", name, r.state, from)
	}
	if err := r.proc.cmd.Process.Signal(sig); err != nil {
		return err
	}
	r.state = to
	return nil
}

// Stop sends SIGTERM to a region's process (continuing it if paused) and
// reaps it; a process still running after grace is killed, and forced
// reports that. err is the process's exit: nil for exit status 0.
func (s *Supervisor) Stop(name string, grace time.Duration) (forced bool, err error) {
	r, err := s.region(name)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop(grace)
}

func (r *region) stop(grace time.Duration) (forced bool, err error) {
	p := r.proc
	if p == nil {
		return false, fmt.Errorf("region %s: %w", r.spec.Name, ErrDown)
	}
	p.stopping = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if r.state == Paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process handles SIGTERM only once continued
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		forced = true
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	r.proc, r.state = nil, Down
	return forced, p.err
}

// StopAll stops every running region at once, as Stop does.
func (s *Supervisor) StopAll(grace time.Duration) {
	s.each(func(r *region) { _, _ = r.stop(grace) })
}

// Close kills every process still running and reaps it.
func (s *Supervisor) Close() {
	s.each(func(r *region) { _ = r.kill() })
	if t, ok := s.cfg.HTTP.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

func (s *Supervisor) each(f func(*region)) {
	s.mu.Lock()
	regions := make([]*region, 0, len(s.regions))
	for _, name := range s.order {
		regions = append(regions, s.regions[name])
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range regions {
		wg.Go(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			f(r)
		})
	}
	wg.Wait()
}

// Stderr returns the end of what a region's current (or last failed)
// process wrote to stderr.
func (s *Supervisor) Stderr(name string) string {
	r, err := s.region(name)
	if err != nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return ""
	}
	return r.proc.stderr.String()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (t *tail) lastLines(n int) string {
	lines := strings.Split(strings.TrimRight(t.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
