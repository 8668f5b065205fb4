package linear

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	causewayv1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/linear/internal/fsm"
)

// Approved voters. Who may join the tier as a voter is deliberate: with
// TLS, only a node with a node certificate of the cluster reaches the Raft
// transport at all, and when the operator names regions (serve --voters,
// or LinearService/ApproveVoter) the leader adds a region that is not yet
// a member only if it is named. A region already in the configuration
// (under any server id) was admitted before: its node coming back under a
// new id, after losing its data directory, is re-added as it always was.
// Existing voters are never removed for not being named; RemoveRegion is
// how a region leaves.
//
// The approvals live in the tier itself, in the register votersKey (a
// comma-separated, sorted list of regions), so that every leader to come
// holds the same ones; they add to Config.Voters. Clients cannot touch the
// register: keys and claim namespaces beginning with reservedPrefix are
// refused by LinearService (invalid_argument).

const (
	reservedPrefix = "causeway."
	votersKey      = reservedPrefix + "voters"
)

var regionPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func validRegion(s string) bool { return regionPattern.MatchString(s) }

// reserved reports whether a client-supplied key or namespace is the
// tier's own.
func reserved(name string) bool { return strings.HasPrefix(name, reservedPrefix) }

func reservedError(what, name string) error {
	return api.ConnectError(api.Errorf(api.ErrInvalidArgument,
		"%s %q: names beginning with %q are reserved for the tier's own records (approved voters); choose another", what, name, reservedPrefix))
}

// approvedInTier reads the approvals committed through the tier, from this
// voter's applied state, and the register's version (0: none yet).
func (n *Node) approvedInTier() ([]string, uint64, error) {
	if n.machine == nil {
		return nil, 0, nil
	}
	res, err := n.machine.Read(&fsm.Command{Op: fsm.OpGet, Key: votersKey})
	if err != nil {
		return nil, 0, err
	}
	if res.Code != fsm.CodeOK || len(res.Value) == 0 {
		return nil, res.Version, nil
	}
	return strings.Split(string(res.Value), ","), res.Version, nil
}

// approvedVoters is every region named: Config.Voters and the tier's
// approvals, sorted, without duplicates.
func (n *Node) approvedVoters() ([]string, error) {
	inTier, _, err := n.approvedInTier()
	out := slices.Concat(n.cfg.Voters, inTier)
	slices.Sort(out)
	return slices.Compact(out), err
}

// voterAllowed reports whether the leader may add a node of region, not
// yet a member, to the configuration. A state that cannot be read allows
// nothing new (and says why in the log): membership waits, safety holds.
func (n *Node) voterAllowed(region string) bool {
	approved, err := n.approvedVoters()
	if err != nil {
		n.log.Warn("linearizable tier: approved voters unreadable; adding no new member", "err", err)
		return false
	}
	return len(approved) == 0 || slices.Contains(approved, region)
}

// refuseUnapproved notes, on the leader, a region that asks to join but is
// not named, logging it now and then rather than on every tick.
func (n *Node) refuseUnapproved(p Peer) {
	n.unapproved.mu.Lock()
	defer n.unapproved.mu.Unlock()
	if n.unapproved.logged == nil {
		n.unapproved.logged = map[string]time.Time{}
	}
	now := time.Now()
	if now.Sub(n.unapproved.logged[p.Region]) < promotionLogEvery {
		return
	}
	n.unapproved.logged[p.Region] = now
	n.log.Warn("linearizable tier: a node of a region not approved as a voter asks to join; not adding it "+
		"(approve it with `causeway approve-voter REGION`, or list it in --voters)",
		"region", p.Region, "server_id", peerServerID(p), "raft_addr", p.RaftAddr)
}

// unapprovedSeen lists the regions refused within the last minute.
func (n *Node) unapprovedSeen() []string {
	n.unapproved.mu.Lock()
	defer n.unapproved.mu.Unlock()
	var out []string
	for region, at := range n.unapproved.logged {
		if time.Since(at) < time.Minute+promotionLogEvery {
			out = append(out, region)
		}
	}
	slices.Sort(out)
	return out
}

// maxApproveAttempts bounds the compare-and-set retries of one approval
// (another approval committed in between makes one fail).
const maxApproveAttempts = 5

// ApproveVoter names region as a voter, committed through the tier. Only
// the leader serves it: it is not forwarded, since a node forwarding it
// would approve on the strength of a node certificate, which is what
// approvals exist to look beyond.
func (s *service) ApproveVoter(ctx context.Context, req *connect.Request[causewayv1.ApproveVoterRequest]) (*connect.Response[causewayv1.ApproveVoterResponse], error) {
	n := s.n
	region := req.Msg.GetRegion()
	if !validRegion(region) {
		return nil, api.ConnectError(api.Errorf(api.ErrInvalidArgument, "region %q: lowercase letters, digits and '-'", region))
	}
	if !n.isLeader() {
		leader := ""
		if n.raft != nil {
			_, id := n.raft.LeaderWithID()
			leader = regionOf(id)
		}
		if leader == "" {
			return nil, api.ConnectError(n.unavailable("no leader to approve voters"))
		}
		return nil, api.ConnectError(api.Errorf(api.ErrFailedPrecondition,
			"this node (region %s) does not lead the linearizable tier; region %s does: approve voters there (causeway approve-voter finds it)",
			n.cfg.Region, leader))
	}
	for range maxApproveAttempts {
		inTier, version, err := n.approvedInTier()
		if err != nil {
			return nil, api.ConnectError(err)
		}
		if !slices.Contains(inTier, region) {
			next := append(slices.Clone(inTier), region)
			slices.Sort(next)
			res, err := n.apply(ctx, &fsm.Command{Op: fsm.OpCAS, RequestID: uuid.NewString(), Key: votersKey,
				Value: []byte(strings.Join(next, ",")), Compare: fsm.CompareVersion, ExpectVersion: version})
			if err != nil {
				return nil, api.ConnectError(err)
			}
			if res.Code == fsm.CodeAborted {
				continue // approved by another call in between: read again
			}
			if err := resultError(res); err != nil {
				return nil, api.ConnectError(err)
			}
			n.log.Info("linearizable tier: region approved as a voter", "region", region)
		}
		approved, err := n.approvedVoters()
		if err != nil {
			return nil, api.ConnectError(err)
		}
		// The write above applied on this leader before apply returned,
		// but a state read back must name the region; if it does not,
		// say so rather than pretend.
		if !slices.Contains(approved, region) {
			continue
		}
		return connect.NewResponse(&causewayv1.ApproveVoterResponse{Approved: approved}), nil
	}
	return nil, api.ConnectError(api.Errorf(api.ErrAborted, "approving %s raced with %d other approvals; retry", region, maxApproveAttempts))
}
