package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/causewaydb/causeway/clocks"
)

// MaxNodeIDLen is the longest node id, in bytes.
const MaxNodeIDLen = 64

// MaxMetaSize is the largest encoded Meta memberlist carries for a node
// (memberlist.MetaMaxSize). New rejects a Meta that does not fit rather than
// letting memberlist truncate or drop it at run time.
const MaxMetaSize = memberlist.MetaMaxSize

// MinRoundTrip is the smallest MaxRoundTrip the timing formula uses: below it
// the probe and gossip loops would spin (GossipInterval is half a round trip)
// without detecting failures any sooner in a way that matters.
const MinRoundTrip = 10 * time.Millisecond

// DefaultRoundTrip is the MaxRoundTrip assumed when Config leaves it zero. At
// one second the timing is exactly memberlist.DefaultWANConfig, which is tuned
// for round trips up to about a second.
const DefaultRoundTrip = time.Second

var (
	// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
	ErrInvalidConfig = errors.New("invalid gossip config")
	// ErrMetaTooLarge reports node metadata whose encoding exceeds
	// MaxMetaSize. It also wraps ErrInvalidConfig.
	ErrMetaTooLarge = fmt.Errorf("%w: node metadata too large", ErrInvalidConfig)
)

// Meta is what a node tells every other member about itself. It travels in
// memberlist's node metadata, so its encoding (see Meta.Size) must fit in
// MaxMetaSize bytes.
type Meta struct {
	// Region is the node's region, a valid clocks region name.
	Region string
	// NodeID names the node within its region: 1 to MaxNodeIDLen bytes of
	// ASCII letters, digits, '.', '_' and '-'. Region and NodeID together
	// are the node's memberlist name ("region/node-id"), so a node that
	// restarts under the same pair is recognised as the same node.
	NodeID string
	// APIAddr is where clients reach the node's API (host:port), if it
	// serves one.
	APIAddr string
	// ReplicationAddr is where the region's replication stream is served
	// (host:port). A node that sets it is a causal replica of its region:
	// its applied vector counts towards the stable vector. A node without
	// one (a Raft-only voter, say) is a member but holds nothing back.
	ReplicationAddr string
	// RaftAddr is the node's Raft transport address (host:port), when it is
	// a voter of the linearizable tier.
	RaftAddr string
	// RaftID is the node's Raft server id, when it is a voter: Region, or
	// Region, a slash and a suffix of the NodeID alphabet. A region whose
	// data directory was lost comes back under a new RaftID at the same
	// RaftAddr, which is how the Raft leader tells the new member from the
	// lost one. Empty from nodes that predate it (their id is the region).
	RaftID string
}

// name is the memberlist node name of a node with this Meta.
func (m Meta) name() string { return m.Region + "/" + m.NodeID }

// Size is the length in bytes of m's encoding in memberlist metadata.
func (m Meta) Size() int { return len(appendMeta(nil, m)) }

// Validate reports every problem with m, joined. A Meta that passes fits in
// MaxMetaSize when encoded.
func (m Meta) Validate() error {
	var errs []error
	if err := clocks.ValidateRegion(m.Region); err != nil {
		errs = append(errs, fmt.Errorf("Region: %w", err))
	}
	if err := validateNodeID(m.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("NodeID: %w", err))
	}
	for _, a := range []struct{ field, addr string }{
		{"APIAddr", m.APIAddr},
		{"ReplicationAddr", m.ReplicationAddr},
		{"RaftAddr", m.RaftAddr},
	} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port: %w", a.field, a.addr, err))
		}
	}
	if m.RaftID != "" {
		if m.RaftAddr == "" {
			errs = append(errs, fmt.Errorf("RaftID %q without a RaftAddr", m.RaftID))
		}
		if err := validateRaftID(m.Region, m.RaftID); err != nil {
			errs = append(errs, fmt.Errorf("RaftID: %w", err))
		}
	}
	if n := m.Size(); n > MaxMetaSize {
		errs = append(errs, fmt.Errorf("%w: %d bytes encoded, memberlist carries at most %d; shorten the addresses or ids",
			ErrMetaTooLarge, n, MaxMetaSize))
	}
	return errors.Join(errs...)
}

func validateNodeID(id string) error {
	if id == "" || len(id) > MaxNodeIDLen {
		return fmt.Errorf("%q must be 1 to %d bytes", id, MaxNodeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("%q: byte %d (%q) is not a letter, digit, '.', '_' or '-'", id, i, c)
	}
	return nil
}

// validateRaftID checks that id is region's own: region itself, or
// region/suffix with a suffix of the NodeID alphabet. A node may only speak
// in its own region's name.
func validateRaftID(region, id string) error {
	if id == region {
		return nil
	}
	suffix, ok := strings.CutPrefix(id, region+"/")
	if !ok {
		return fmt.Errorf("%q is not region %q or %q/suffix", id, region, region)
	}
	return validateNodeID(suffix)
}

// Config configures a Gossip member.
type Config struct {
	// Meta is this node's metadata. Required.
	Meta Meta

	// BindAddr is the host:port memberlist's own UDP and TCP listeners bind
	// when Transport is nil; port 0 picks a free port (the same one for both).
	// The host must be an IP literal. Ignored when Transport is set.
	// Default "0.0.0.0:7946", memberlist's port.
	BindAddr string

	// AdvertiseAddr is the host:port other members use to reach this node,
	// when it differs from the bound address (NAT, a wildcard bind). The host
	// must be an IP literal. Default: the bound address (for a wildcard bind,
	// memberlist picks a private IP of this host).
	AdvertiseAddr string

	// SecretKey, when set, encrypts and authenticates all gossip with
	// AES-GCM: 16, 24 or 32 bytes select AES-128, AES-192 or AES-256 (see
	// ParseSecretKey). Every member needs the same key; a node without it
	// cannot join, and packets from it are dropped (DroppedPackets). Without
	// a key gossip is plaintext and unauthenticated: anyone who can reach
	// the port can join.
	SecretKey []byte

	// MaxRoundTrip is the longest round trip expected between two members,
	// including emulated WAN delay and jitter. Probe, suspicion and gossip
	// timing scale with it (see TimingFor). Zero means DefaultRoundTrip.
	MaxRoundTrip time.Duration

	// Transport carries memberlist's packets and streams. Nil means
	// memberlist's NetTransport on BindAddr; NewTransport builds one from a
	// dialer, a listener and a packet conn, so that Causeway's link
	// emulation can sit under gossip. Gossip owns it: Shutdown (or a
	// failing New) shuts it down.
	Transport memberlist.Transport

	// Applied returns this node's applied vector; it is called once per
	// heartbeat (Timing.HeartbeatInterval), one call at a time, so it must be
	// cheap and safe to call concurrently with the rest of the program. The
	// vector must only grow. Nil means an empty vector.
	Applied func() clocks.Vector

	// OnChange is called when a member joins, changes state (alive, suspect,
	// dead, left, removed) or meta, or reports a new applied vector; this
	// node's own vector changes are reported too. Calls come one at a time
	// from a single goroutine, never from memberlist's, with the member's
	// state at the time of the call; changes that happen while a call is
	// running are coalesced into one later call per member. A slow OnChange
	// delays later notifications, not gossip. Nil means no notifications.
	OnChange func(Member)

	// Clock is the physical clock this node reports in its acks to probes,
	// so that members can measure their clocks against it (ClockReading).
	// Nil means time.Now; Causeway passes the clock its hybrid timestamps
	// read.
	Clock clocks.PhysicalClock

	// OnClockReading is called after every answered direct probe of a
	// member with that member's clock reading, about once per
	// Timing.ProbeInterval. It is called from memberlist's probe goroutine,
	// so it must be quick and must not block. Nil means no readings.
	OnClockReading func(ClockReading)

	// Logger receives memberlist's log, mapped to slog levels, and this
	// package's own. Nil means slog.Default().
	Logger *slog.Logger
}

// ParseSecretKey decodes a gossip key from standard base64 (with or without
// padding), as it is given on a command line or in a file, and checks its
// length.
func ParseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if key, err2 = base64.RawStdEncoding.DecodeString(s); err2 != nil {
			return nil, fmt.Errorf("%w: secret key is not base64: %w", ErrInvalidConfig, err)
		}
	}
	if err := validateKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

func validateKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: secret key is %d bytes; it must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256), e.g. from `head -c 32 /dev/urandom | base64`",
		ErrInvalidConfig, len(key))
}

// withDefaults returns c with defaults filled in, and every problem found.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if err := c.Meta.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err))
	}
	if c.Transport == nil {
		if c.BindAddr == "" {
			c.BindAddr = "0.0.0.0:7946"
		}
		if _, _, err := splitIPPort(c.BindAddr); err != nil {
			errs = append(errs, fmt.Errorf("%w: BindAddr: %w", ErrInvalidConfig, err))
		}
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitIPPort(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("%w: AdvertiseAddr: %w", ErrInvalidConfig, err))
		}
	}
	if len(c.SecretKey) > 0 {
		if err := validateKey(c.SecretKey); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxRoundTrip < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxRoundTrip %v is negative", ErrInvalidConfig, c.MaxRoundTrip))
	}
	if c.MaxRoundTrip == 0 {
		c.MaxRoundTrip = DefaultRoundTrip
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, errors.Join(errs...)
}

// splitIPPort parses "ip:port" with an IP literal host, as memberlist's
// NetTransport needs (it would silently bind every interface for a host
// name).
func splitIPPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q: host must be an IP address", addr)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port: %w", addr, err)
	}
	return host, int(port), nil
}

// Timing is the failure-detection and dissemination timing derived from a
// maximum round trip r (see TimingFor).
type Timing struct {
	// ProbeTimeout is how long a direct probe waits for its ack before
	// asking other members to probe indirectly: 3r.
	ProbeTimeout time.Duration
	// ProbeInterval is the time between probes of (random) members: 5r, so
	// that after a direct probe times out there are still 2r left for an
	// indirect probe's extra hop within the same interval.
	ProbeInterval time.Duration
	// SuspicionMult is memberlist's suspicion multiplier, 6 as in the WAN
	// defaults: a suspect is declared dead after SuspicionMult *
	// max(1, log10 n) * ProbeInterval (up to 6 times that while waiting for
	// independent confirmations), i.e. at least 30r. It stays constant
	// because ProbeInterval already carries the scale.
	SuspicionMult int
	// GossipInterval is how often queued broadcasts (state changes,
	// heartbeats) are sent to random members: r/2.
	GossipInterval time.Duration
	// PushPullInterval is the period of full state exchange (anti-entropy)
	// with a random member over TCP: 60r.
	PushPullInterval time.Duration
	// TCPTimeout bounds a push/pull or TCP probe connection: 30r, at least
	// one second, since it also covers transferring the state and CPU
	// scheduling, which do not shrink with the round trip.
	TCPTimeout time.Duration
	// GossipToTheDeadTime is how long memberlist keeps gossiping to, and
	// remembering, a dead member: 60r. This package remembers dead members
	// longer (until the region is removed).
	GossipToTheDeadTime time.Duration
	// DeadNodeReclaimTime is after how long a dead member's name may be
	// reused from another address (a restart on a new port): ProbeInterval.
	DeadNodeReclaimTime time.Duration
	// HeartbeatInterval is how often this node publishes its applied vector
	// and a heartbeat sequence number: ProbeInterval/2.
	HeartbeatInterval time.Duration
	// SuspectAfter is how long without a new heartbeat from a member this
	// node reports it Suspect: 2*ProbeInterval = 10r, four missed heartbeats.
	// It is shorter than memberlist's shortest path to dead (a failed probe,
	// then at least 30r of suspicion), so a crashed member is seen suspect
	// before dead.
	SuspectAfter time.Duration
	// ReconnectInterval is how often this node tries to rejoin each Dead
	// member (not Left, not removed): 6*ProbeInterval = 30r, 30s on the WAN
	// defaults, as Serf does. memberlist by itself stops contacting a dead
	// member after GossipToTheDeadTime, so without this two sides of a
	// healed partition would go on believing each other dead.
	ReconnectInterval time.Duration
}

// TimingFor returns the timing for a maximum round trip r. Zero means
// DefaultRoundTrip, and r below MinRoundTrip is raised to it. Every duration
// is proportional to r (TCPTimeout has a floor); at r = 1s the probe,
// suspicion, gossip, push/pull, TCP and gossip-to-the-dead settings equal memberlist's
// DefaultWANConfig, which is tuned for round trips up to about a second.
func TimingFor(r time.Duration) Timing {
	if r == 0 {
		r = DefaultRoundTrip
	}
	r = max(r, MinRoundTrip)
	probeInterval := 5 * r
	return Timing{
		ProbeTimeout:        3 * r,
		ProbeInterval:       probeInterval,
		SuspicionMult:       6,
		GossipInterval:      r / 2,
		PushPullInterval:    60 * r,
		TCPTimeout:          max(30*r, time.Second),
		GossipToTheDeadTime: 60 * r,
		DeadNodeReclaimTime: probeInterval,
		HeartbeatInterval:   probeInterval / 2,
		SuspectAfter:        2 * probeInterval,
		ReconnectInterval:   6 * probeInterval,
	}
}

// apply sets t on a memberlist config.
func (t Timing) apply(c *memberlist.Config) {
	c.ProbeTimeout = t.ProbeTimeout
	c.ProbeInterval = t.ProbeInterval
	c.SuspicionMult = t.SuspicionMult
	c.GossipInterval = t.GossipInterval
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.DeadNodeReclaimTime = t.DeadNodeReclaimTime
}
