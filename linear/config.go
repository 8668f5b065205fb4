package linear

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/pki"
)

// Role is what a node does in the linearizable tier.
type Role string

// Roles.
const (
	// RoleVoter runs a Raft voter for the node's region.
	RoleVoter Role = "voter"
	// RoleForwarder runs no Raft: requests are sent to a voter.
	RoleForwarder Role = "forwarder"
)

// Peer is another node as membership (gossip) knows it.
type Peer struct {
	Region   string
	APIAddr  string // host:port of its Connect API
	RaftAddr string // host:port of its Raft transport; "" for a forwarder
	RaftID   string // its Raft server id; "" from a node that predates announced ids (the id is then Region)
	Alive    bool   // gossip considers it alive
	Removed  bool   // its region was removed from the cluster
}

// Config configures a Node. Zero fields take the defaults of EnsureDefaults.
type Config struct {
	// Region names this node. A voter's Raft server id is the region, a
	// slash and a suffix chosen when its Raft state is created (see
	// identity.go).
	Region string
	// Role: voter (default) or forwarder.
	Role Role
	// Dir holds the Raft log, the state machine and snapshots.
	Dir string
	// BindAddr is where the Raft transport listens (voters only).
	BindAddr string
	// Advertise is the Raft address other voters dial; default BindAddr.
	Advertise string
	// Bootstrap forms a new group with this voter alone when Dir holds no
	// Raft state: set it on the first node of a cluster only. Later voters
	// are added by the leader when gossip shows them.
	Bootstrap bool
	// Voters names the regions whose nodes the leader may add as voters
	// (serve --voters); LinearService/ApproveVoter names more at run time
	// (see voters.go). Empty, with nothing approved: any node that reaches
	// the Raft transport, which with TLS on means any node with a node
	// certificate of the cluster. Give every node the same list. A voter
	// whose own region is not named cannot bootstrap a group.
	Voters []string
	// Links is the link-emulation layer the transport and forwarding go
	// through.
	Links *link.Emulator
	// MaxRoundTrip is the longest round trip expected between voters; the
	// Raft timeouts are derived from it (see timing). Zero: twice the
	// largest emulated delay plus jitter, at least 10ms.
	MaxRoundTrip time.Duration
	// Peers returns the other nodes as gossip knows them.
	Peers func() []Peer
	// HTTPClient forwards requests to other regions' APIs (HTTP/2, through
	// Links; over TLS when the process runs with security).
	HTTPClient *http.Client
	// TLS, when set, runs the Raft transport over mutual TLS: only nodes
	// of the cluster connect, and a voter dialed must present a
	// certificate of the region gossip says its address belongs to.
	TLS *pki.Certs
	// Now is the wall clock the leader stamps commands with (lease expiry).
	Now func() time.Time
	// Logger receives structured logs.
	Logger *slog.Logger
	// Identity, if set, records the voter's server id outside Dir, so that
	// a node whose Raft state was lost while its identity was not refuses
	// to start (ErrLostRaftState) rather than rejoin as a voter it no
	// longer is. Nil: no such check (tests).
	Identity Identity
}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.Role == "" {
		c.Role = RoleVoter
	}
	if c.Advertise == "" {
		c.Advertise = c.BindAddr
	}
	if c.Links == nil {
		c.Links = link.New(c.Region)
	}
	if c.MaxRoundTrip == 0 {
		c.MaxRoundTrip = 10 * time.Millisecond
		for _, l := range c.Links.Links() {
			c.MaxRoundTrip = max(c.MaxRoundTrip, 2*(l.Delay+l.Jitter))
		}
	}
	if c.Peers == nil {
		c.Peers = func() []Peer { return nil }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	switch c.Role {
	case RoleVoter:
		if c.Dir == "" {
			errs = append(errs, errors.New("a voter needs a data directory"))
		}
		if c.BindAddr == "" {
			errs = append(errs, errors.New("a voter needs a Raft listen address"))
		}
		if c.Bootstrap && len(c.Voters) > 0 && !slices.Contains(c.Voters, c.Region) {
			errs = append(errs, fmt.Errorf("region %s forms the group but is not among the voters %v", c.Region, c.Voters))
		}
	case RoleForwarder:
	default:
		errs = append(errs, fmt.Errorf("role %q: use %q or %q", c.Role, RoleVoter, RoleForwarder))
	}
	for _, v := range c.Voters {
		if !validRegion(v) {
			errs = append(errs, fmt.Errorf("voter %q is not a region name (lowercase letters, digits and '-')", v))
		}
	}
	if c.MaxRoundTrip < 0 || c.MaxRoundTrip > time.Minute {
		errs = append(errs, fmt.Errorf("max round trip %v: between 0 and 1m", c.MaxRoundTrip))
	}
	if c.HTTPClient == nil {
		errs = append(errs, errors.New("an HTTP client for forwarding is required"))
	}
	return errors.Join(errs...)
}

// timing derives the Raft timeouts from the largest round trip between
// voters. A follower starts an election after HeartbeatTimeout..2x without
// hearing from a leader, so the timeout must stay well above a round trip
// (plus fsync and scheduling noise) or a healthy leader gets deposed by
// delay alone: 500ms of headroom plus four round trips. The leader lease
// (how long a leader that hears from no quorum keeps believing it leads) is
// half of that, so a partitioned leader steps down before a new one can be
// elected on the other side.
type timing struct {
	heartbeat time.Duration // = election timeout
	lease     time.Duration
	// call bounds one request's wait for its entry to apply or for the
	// leader to answer: about two election timeouts.
	call time.Duration
}

func timingFor(rtt time.Duration) timing {
	hb := 500*time.Millisecond + 4*rtt
	return timing{heartbeat: hb, lease: hb / 2, call: 2 * hb}
}
