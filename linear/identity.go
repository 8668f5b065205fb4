package linear

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/linear/internal/logstore"
)

// A voter's Raft server id is its region, a slash, and eight random hex
// digits chosen when its Raft state is created, kept in the stable store
// beside the term and the vote (serverIDKey). Raft's safety rests on a
// voter never forgetting its log and its vote; a node that lost them must
// come back as a new member, never as the voter it was. Keeping the id in
// the same store as the vote makes that hold by construction: the id is
// forgotten exactly when the vote is, so empty Raft state always comes
// with a new id.
//
// Rejected: deriving the id from the replica's node id. That id lives in
// another store (the data directory's root), which survives when only the
// tier's directory is lost, and would bring the node back under its old
// id with an empty log. Rejected too: the region alone (the id before
// issue 21), under which a voter that lost its disk came back as itself,
// voted for a stale follower, and acknowledged writes were lost.
//
// Raft state from before the suffix (an id equal to the region) keeps its
// id: that node remembers its log and its vote.

// serverIDKey is where the stable store keeps this node's server id.
var serverIDKey = []byte("causeway/server-id")

// Identity keeps, outside the tier's directory (in the node's own store),
// the Raft server id the node holds. It is how a node notices that its
// Raft state was lost while the rest of its data directory was not, and
// refuses to start (ErrLostRaftState) instead of joining under a new id
// or, worse, bootstrapping a second group.
type Identity interface {
	// RaftServerID returns the id recorded, "" when this node never was a
	// voter.
	RaftServerID() (string, error)
	// SetRaftServerID records id durably.
	SetRaftServerID(id string) error
}

// ErrLostRaftState is returned by Open when the node's identity says it
// was a voter but its Raft state (log, term, vote) is empty or missing.
var ErrLostRaftState = errors.New("this node was a voter of the linearizable tier, but its Raft state is empty or missing")

// newServerID is a fresh server id for a voter of region.
func newServerID(region string) raft.ServerID {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return raft.ServerID(region + "/" + hex.EncodeToString(b[:]))
}

// regionOf is the region of server id.
func regionOf(id raft.ServerID) string {
	region, _, _ := strings.Cut(string(id), "/")
	return region
}

// peerServerID is the server id p announces (its region, for a node that
// predates announced ids).
func peerServerID(p Peer) raft.ServerID {
	if p.RaftID != "" {
		return raft.ServerID(p.RaftID)
	}
	return raft.ServerID(p.Region)
}

// loadServerID returns this voter's server id: the one kept with its Raft
// state, or a new one for new state. It refuses a node whose identity says
// it was a voter when the Raft state is empty.
func (n *Node) loadServerID(snaps raft.SnapshotStore) (_ raft.ServerID, err error) {
	stored := false
	var id raft.ServerID
	switch raw, err := n.logs.Get(serverIDKey); {
	case err == nil:
		id = raft.ServerID(raw)
		stored = true
	case !errors.Is(err, logstore.ErrKeyNotFound):
		return "", fmt.Errorf("linear tier: read server id: %w", err)
	}
	has, err := raft.HasExistingState(n.logs, n.logs, snaps)
	if err != nil {
		return "", fmt.Errorf("linear tier: %w", err)
	}
	recorded := ""
	if n.cfg.Identity != nil {
		if recorded, err = n.cfg.Identity.RaftServerID(); err != nil {
			return "", fmt.Errorf("linear tier: read recorded server id: %w", err)
		}
	}
	safeWay := fmt.Sprintf("a voter that forgot its log and its vote could elect a leader that lacks acknowledged writes. "+
		"The safe way back: stop this node, empty its whole data directory (the one that holds %s), and start it again with --join; "+
		"it then rejoins as a new member under a new server id, catches up as a non-voter before it votes, and the leader removes the old id",
		n.cfg.Dir)
	switch {
	case id != "":
		if recorded != "" && recorded != string(id) {
			return "", fmt.Errorf("linear tier: the Raft state in %s belongs to server %s, but this node was server %s: %s",
				n.cfg.Dir, id, recorded, safeWay)
		}
	case recorded != "":
		return "", fmt.Errorf("linear tier: %w (server %s; %s holds no log, term or vote): %s", ErrLostRaftState, recorded, n.cfg.Dir, safeWay)
	case has:
		id = raft.ServerID(n.cfg.Region) // state from before suffixed ids
	default:
		id = newServerID(n.cfg.Region)
	}
	if !stored {
		if err := n.logs.Set(serverIDKey, []byte(id)); err != nil {
			return "", fmt.Errorf("linear tier: store server id: %w", err)
		}
	}
	if n.cfg.Identity != nil && recorded != string(id) {
		if err := n.cfg.Identity.SetRaftServerID(string(id)); err != nil {
			return "", fmt.Errorf("linear tier: record server id: %w", err)
		}
	}
	return id, nil
}
