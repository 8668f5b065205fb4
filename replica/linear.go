package replica

import (
	"context"
	"path/filepath"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/gossip"
	"github.com/causewaydb/causeway/linear"
)

// LinearConfig turns on the linearizable tier on this node (package
// linear). Its state lives in DataDir/linear; a voter's Raft server id
// (region/suffix, created with that state) is also recorded in the node's
// store, so that losing DataDir/linear alone is caught at start.
type LinearConfig struct {
	// Role: linear.RoleVoter (default) or linear.RoleForwarder.
	Role linear.Role
	// BindAddr is the Raft transport's listen address (voters).
	BindAddr string
	// Advertise is the Raft address other voters dial; default BindAddr.
	Advertise string
	// Bootstrap forms the group with this voter alone if it has no Raft
	// state yet: the first node of a cluster only.
	Bootstrap bool
}

// openLinear starts the node's part of the linearizable tier.
func (n *Node) openLinear() error {
	lc := n.cfg.Linear
	l, err := linear.Open(linear.Config{
		Region:     n.cfg.Region,
		Role:       lc.Role,
		Dir:        filepath.Join(n.cfg.DataDir, "linear"),
		BindAddr:   lc.BindAddr,
		Advertise:  lc.Advertise,
		Bootstrap:  lc.Bootstrap,
		Links:      n.cfg.Links,
		Peers:      n.linearPeers,
		HTTPClient: n.cfg.HTTPClient,
		Now:        n.cfg.Now,
		Logger:     n.log,
		Identity:   raftIdentity{n.store},
	})
	if err != nil {
		return err
	}
	n.linear = l
	return nil
}

// raftIdentity records the node's Raft server id in its store (meta key
// m/raft-id), outside the tier's own directory (see linear.Identity).
type raftIdentity struct{ store *Store }

func (r raftIdentity) RaftServerID() (string, error) {
	raw, _, err := r.store.meta(metaRaftID)
	return string(raw), err
}

func (r raftIdentity) SetRaftServerID(id string) error {
	return r.store.setMeta(metaRaftID, []byte(id))
}

// linearPeers is gossip's view in the linearizable tier's terms.
func (n *Node) linearPeers() []linear.Peer {
	members := n.repl.members()
	out := make([]linear.Peer, 0, len(members))
	for _, m := range members {
		out = append(out, linear.Peer{
			Region:   m.Meta.Region,
			APIAddr:  m.Meta.APIAddr,
			RaftAddr: m.Meta.RaftAddr,
			RaftID:   m.Meta.RaftID,
			Alive:    m.State == gossip.Alive,
			Removed:  m.Removed,
		})
	}
	return out
}

// Unique is a value a Put claims for its key through the linearizable tier.
type Unique struct {
	Namespace, Name string
}

// MaxUniquePerWrite bounds the unique constraints of one Put.
const MaxUniquePerWrite = 16

// claimUnique claims every constraint for the write's key, in order,
// before the write. The claims' request ids derive from the write's, so a
// retried Put retries the same claims and gets their original outcomes. A
// claim held for another key fails the write with already_exists before
// anything is written; claims taken before that one stay with this key
// (claiming them again for it succeeds), and a retry or a later Put of the
// key finds them its own.
func (n *Node) claimUnique(ctx context.Context, ops []causal.Op, uniques []Unique, reqID uuid.UUID) error {
	if n.linear == nil {
		return api.Errorf(api.ErrFailedPrecondition,
			"unique constraints need the linearizable tier, which this node runs without (start it with --linear voter or forwarder)")
	}
	if len(ops) != 1 || ops[0].Kind != causal.KindValue {
		return api.Errorf(api.ErrInvalidArgument, "unique constraints apply to a Put of one key")
	}
	if len(uniques) > MaxUniquePerWrite {
		return api.Errorf(api.ErrInvalidArgument, "%d unique constraints; at most %d per write", len(uniques), MaxUniquePerWrite)
	}
	for i, u := range uniques {
		for _, s := range []string{u.Namespace, u.Name} {
			if s == "" || len(s) > 512 || !utf8.ValidString(s) {
				return api.Errorf(api.ErrInvalidArgument, "unique constraint %d: namespace and name must be 1 to 512 bytes of UTF-8", i)
			}
		}
	}
	key := ops[0].Key
	for _, u := range uniques {
		id := uuid.NewSHA1(reqID, []byte(u.Namespace+"\x00"+u.Name)).String()
		// The tier's answer already names the namespace, the name and its
		// holder, and reaches the client as it is.
		if _, err := n.linear.Claim(ctx, u.Namespace, u.Name, key, id); err != nil {
			return err
		}
	}
	return nil
}
