package replica

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/link"
)

// What a Node needs from its neighbours, in its own terms. A Node never
// sees package gossip or package linear: the composition root
// (internal/process) adapts them to these interfaces, and replica's tests
// use in-memory doubles. The interfaces are as narrow as the node's use.

// Member is one member of the cluster as membership reports it.
type Member struct {
	Region, NodeID string
	// GossipAddr is the member's membership address; the link emulator
	// learns from it which region an address belongs to.
	GossipAddr string
	// APIAddr and ReplicationAddr are where the member's API and
	// replication streams answer ("" for a member without a causal replica).
	APIAddr, ReplicationAddr string
	// State is the member's liveness as a word ("alive", "suspect",
	// "dead", "left"), Alive whether it is "alive", Since when it entered it.
	State string
	Alive bool
	Since time.Time
	// Applied is the newest applied vector the member reported (nil until
	// one arrives). Owned by the caller.
	Applied clocks.Vector
	// Removed: an operator removed the member's region for good.
	Removed bool
}

// Membership is the cluster's membership as the node uses it.
type Membership interface {
	// Members is every member known, this node included.
	Members() []Member
	// StableVector is the element-wise minimum of what every member with
	// a causal replica reported it applied (see gossip.StableVector).
	StableVector() clocks.Vector
	// Joined reports that membership has joined the cluster through a
	// seed once, so Members is complete enough for a join (runJoin).
	Joined() bool
	// Remove declares region gone for good, cluster-wide.
	Remove(region string) error
	// Close leaves the cluster and stops membership.
	Close() error
}

// MemberEvents is what membership tells the node; Node implements it.
type MemberEvents interface {
	// AppliedVector is the vector of writes durable here, which membership
	// spreads so every member can compute the stable vector.
	AppliedVector() clocks.Vector
	// MemberChanged reports a member that joined or changed state.
	MemberChanged(Member)
	// ClockReading reports one measurement of a member's clock.
	ClockReading(ClockReading)
}

// ClockReading is one answered probe of a member: sent at Sent, answered
// at Received (both by Config.Now), while the member's clock read Remote.
type ClockReading struct {
	Region string
	// CausalReplica: the member runs a causal replica (it has a replication
	// address); only those clocks meet this node's timestamps.
	CausalReplica          bool
	Sent, Received, Remote time.Time
}

// Env is what the node hands to the neighbours it starts: its identity and
// the plumbing every inter-region path shares.
type Env struct {
	Region, NodeID, DataDir string
	// Advertise is the address other regions reach the node's API at (""
	// while the linearizable tier opens: the listener may not exist yet).
	Advertise  string
	Links      *link.Emulator
	HTTPClient *http.Client
	Now        clocks.PhysicalClock
	Logger     *slog.Logger
	// Identity records the linearizable tier's server id in the node's
	// store (see linear.Identity).
	Identity RaftIdentity
}

// StartMembership starts membership once the node's API address is known
// (when a Server first serves). events receives membership's news; it may
// be called before StartMembership returns.
type StartMembership func(env Env, events MemberEvents) (Membership, error)

// LinearTier is the node's part of the linearizable tier, as the causal
// tier uses it: unique claims of guarded writes, fencing tokens, and its
// status. Its LinearService is mounted by the composition root (Service).
type LinearTier interface {
	// Claim claims namespace/name for owner, once per requestID; an error
	// reaches the client as it is.
	Claim(ctx context.Context, namespace, name, owner, requestID string) (uint64, error)
	// LatestToken is the newest fencing token for lock this replica of the
	// tier has applied, from local state (it may lag the leader). The node
	// asks before it takes its write lock, never while holding it.
	LatestToken(lock string) (uint64, error)
	// Status describes the tier (AdminService/Status).
	Status() *v1.LinearStatus
	// Close stops the tier.
	Close() error
}

// OpenLinear opens the node's part of the linearizable tier while the node
// opens (Env.Advertise is empty then).
type OpenLinear func(env Env) (LinearTier, error)

// RaftIdentity keeps the tier's server id outside the tier's own
// directory; it satisfies linear.Identity.
type RaftIdentity interface {
	RaftServerID() (string, error)
	SetRaftServerID(id string) error
}
