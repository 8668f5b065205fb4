package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/link"
)

// Limits on client input. They are part of the API contract (README, kv.proto).
const (
	// MaxKeyBytes bounds a key. Keys are UTF-8 strings; the bound keeps index
	// entries small and is generous for any naming scheme.
	MaxKeyBytes = 1024
	// MaxValueBytes bounds a value. Larger blobs belong in object storage with
	// their address in Causeway.
	MaxValueBytes = 1 << 20
	// MaxRequestBytes bounds one request message as read from the wire
	// (base64 in JSON inflates a 1 MiB value to about 1.4 MiB).
	MaxRequestBytes = 4 << 20
)

// Config configures a Node. Zero fields take the defaults of EnsureDefaults.
type Config struct {
	// Region is this node's region name (see clocks.ValidateRegion). A data
	// directory remembers its region and refuses to open under another.
	Region string
	// DataDir holds the Pebble store.
	DataDir string
	// FS is the filesystem for the store; nil means the operating system's.
	FS vfs.FS
	// ClusterID names the cluster; tokens from other clusters are refused.
	// Zero means: the one stored in DataDir, or a new random one on first start.
	ClusterID uuid.UUID
	// MaxClockOffset is how far ahead of this node's physical clock a timestamp
	// from elsewhere (a token, later a peer) may be before it is refused rather
	// than absorbed into the hybrid clock. Default 500ms: well above NTP error,
	// well below what a user would notice as time travel.
	MaxClockOffset time.Duration
	// CausalWaitTimeout bounds how long a request waits for its token's causal
	// past when the request itself carries no deadline. Default 5s.
	CausalWaitTimeout time.Duration
	// RequestIDRetention is how long a write's request id is remembered for
	// retries. Default 24h; older ids are deleted in the background.
	RequestIDRetention time.Duration
	// Now is the physical clock; nil means time.Now. Tests inject their own.
	Now clocks.PhysicalClock
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger

	// Peers are the other regions to replicate with: region name to the
	// address (host:port) of its API. A region that subscribes to this one
	// is added at run time.
	Peers map[string]string
	// Advertise is the address other regions reach this node's API at; it
	// is sent to peers so they replicate back. Empty: learnt from Serve.
	Advertise string
	// MaxPendingWrites bounds the remote writes buffered while they wait for
	// their causal past (default causal.DefaultMaxPending).
	MaxPendingWrites int
	// UnsafeSkipDependencies applies remote writes without waiting for their
	// causal past. It breaks causal consistency; it exists only so tests can
	// prove their checkers catch that.
	UnsafeSkipDependencies bool
	// OnFatal is called after a storage failure that leaves memory and disk
	// in disagreement; default: exit the process (restart recovers).
	OnFatal func(error)
	// HTTPClient carries replication streams (HTTP/2 without TLS); nil means
	// a dedicated client whose connections go through Links.
	HTTPClient *http.Client
	// Links is the link-emulation layer every connection to or from another
	// region passes through; nil means a new one with every link clear.
	Links *link.Emulator
	// MaxInflightRequests bounds the client requests this node works on at
	// once; beyond it requests fail at once with resource_exhausted instead
	// of queueing without bound (a client storm must not grow memory).
	// Default 4096.
	MaxInflightRequests int
	// Join says the cluster exists already (serve --join). A data directory
	// created empty under it makes the node join (causal.Join): it serves
	// no request until it holds a snapshot of every other region, so its
	// writes cannot take sequence numbers other regions hold from an
	// earlier life of the region. Without Join an empty directory starts a
	// region that serves at once: the first region of a new cluster.
	Join bool
	// Membership, when set, starts cluster membership (gossip, wired by
	// internal/process) once a Server serves the node: regions find each
	// other from one address, replication follows membership, and failure
	// detection and the stable vector become visible in Status. nil: the
	// regions are Peers and those that subscribe.
	Membership StartMembership
	// FaultInjection allows AdminService/SetLink to change Links at run
	// time. Off by default: a production node refuses it.
	FaultInjection bool
	// Linear, when set, opens the node's part of the linearizable tier
	// (package linear, wired by internal/process) as the node opens; the
	// node closes it. Its state lives in DataDir/linear by convention; a
	// voter's server id is also recorded in the node's store, so that losing
	// DataDir/linear alone is caught at start.
	Linear OpenLinear
	// Metrics are more collectors for the node's registry, served at
	// /metrics: the composition root adds its neighbours' figures (gossip,
	// the linearizable tier) so that one scrape shows the whole process.
	Metrics []prometheus.Collector
	// GroupCommitDelay is how long the write-ahead log waits after an
	// fsync before starting the next while at least GroupCommitWriters
	// local writes are in progress, so that more writes share each fsync.
	// Default 1ms; negative disables the pause (every fsync starts as soon
	// as one is needed). It delays only acknowledgements, never durability.
	GroupCommitDelay time.Duration
	// GroupCommitWriters is the number of local writes in progress from
	// which GroupCommitDelay applies. Default 8.
	GroupCommitWriters int
	// Feed bounds the change feed Watch reads and its watchers (feed.go).
	Feed FeedConfig

	// protocols and storeFormat are this build's (version.go) unless a
	// test plays a node of an adjacent release (export_internal_test.go).
	protocols   versionRange
	storeFormat storeFormat
}

// Defaults.
const (
	DefaultMaxClockOffset     = 500 * time.Millisecond
	DefaultCausalWaitTimeout  = 5 * time.Second
	DefaultRequestIDRetention = 24 * time.Hour
	// DefaultMaxInflightRequests: a request waiting for its causal past holds
	// a goroutine and a few KiB; 4096 of them is a bounded, modest cost.
	DefaultMaxInflightRequests = 4096
	// DefaultGroupCommitDelay and DefaultGroupCommitWriters: on a 2-core
	// machine, full-stack Put at 64 clients (bench/, BenchmarkStack) went
	// from ~5.4k to ~8.2k ops/s with a 1ms pause; 2ms added only ~4%, and
	// where the disk rather than the CPU is the limit (replica's
	// BenchmarkNodePut) a longer pause costs throughput.
	DefaultGroupCommitDelay   = time.Millisecond
	DefaultGroupCommitWriters = 8
)

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	c.Feed.ensureDefaults()
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = DefaultMaxClockOffset
	}
	if c.CausalWaitTimeout == 0 {
		c.CausalWaitTimeout = DefaultCausalWaitTimeout
	}
	if c.RequestIDRetention == 0 {
		c.RequestIDRetention = DefaultRequestIDRetention
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OnFatal == nil {
		c.OnFatal = func(error) { os.Exit(1) }
	}
	if c.MaxInflightRequests == 0 {
		c.MaxInflightRequests = DefaultMaxInflightRequests
	}
	if c.GroupCommitDelay == 0 {
		c.GroupCommitDelay = DefaultGroupCommitDelay
	}
	if c.GroupCommitWriters == 0 {
		c.GroupCommitWriters = DefaultGroupCommitWriters
	}
	if c.Links == nil {
		c.Links = link.New(c.Region)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = newH2CClient(c.Links.DialContext)
	}
	if c.protocols == (versionRange{}) {
		c.protocols = thisBuildsProtocols
	}
}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if err := clocks.ValidateRegion(c.Region); err != nil {
		errs = append(errs, fmt.Errorf("region: %w", err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data directory: must be set"))
	}
	if c.MaxClockOffset < 0 {
		errs = append(errs, fmt.Errorf("max clock offset %v: must be positive", c.MaxClockOffset))
	}
	if c.CausalWaitTimeout < 0 {
		errs = append(errs, fmt.Errorf("causal wait timeout %v: must be positive", c.CausalWaitTimeout))
	}
	for region, addr := range c.Peers {
		if err := clocks.ValidateRegion(region); err != nil {
			errs = append(errs, fmt.Errorf("peer %q: %w", region, err))
		} else if region == c.Region {
			errs = append(errs, fmt.Errorf("peer %q: is this node's own region", region))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("peer %s address %q: want host:port", region, addr))
		}
	}
	if c.MaxInflightRequests < 0 {
		errs = append(errs, fmt.Errorf("max inflight requests %d: must be positive", c.MaxInflightRequests))
	}
	if c.GroupCommitWriters < 0 {
		errs = append(errs, fmt.Errorf("group commit writers %d: must be positive", c.GroupCommitWriters))
	}
	if c.GroupCommitDelay > time.Second {
		errs = append(errs, fmt.Errorf("group commit delay %v: at most 1s (every write under load waits up to this long)", c.GroupCommitDelay))
	}
	if c.RequestIDRetention < time.Minute {
		errs = append(errs, fmt.Errorf("request id retention %v: must be at least 1m so retries find their outcome", c.RequestIDRetention))
	}
	return errors.Join(errs...)
}
