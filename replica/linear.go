package replica

import (
	"context"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
)

// openLinear opens the node's part of the linearizable tier (Config.Linear).
func (n *Node) openLinear() error {
	l, err := n.cfg.Linear(n.env(""))
	if err != nil {
		return err
	}
	n.linear = l
	return nil
}

// env is what the node hands to the neighbours it starts.
func (n *Node) env(advertise string) Env {
	return Env{
		Region: n.cfg.Region, NodeID: n.nodeID, DataDir: n.cfg.DataDir, Advertise: advertise,
		Links: n.cfg.Links, HTTPClient: n.cfg.HTTPClient, Now: n.cfg.Now, Logger: n.log,
		Identity: raftIdentity{n.store},
	}
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
