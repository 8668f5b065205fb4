package replica

import (
	"context"
	"errors"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// ReadResult is one key as read: its winning version (zero if the key never
// existed) and, when asked for, every concurrent sibling, winner first.
type ReadResult struct {
	Key         string
	Found       bool // the winner holds a value (not a tombstone)
	Version     causal.Version
	HasSiblings bool
	Siblings    []causal.Version
}

// Get reads key.
func (n *Node) Get(ctx context.Context, key, token string, siblings bool) (ReadResult, string, error) {
	res, tok, err := n.ReadMany(ctx, []string{key}, token, siblings)
	if err != nil {
		return ReadResult{}, "", err
	}
	return res[0], tok, nil
}

// MaxReadKeys bounds the keys of one ReadMany.
const MaxReadKeys = 128

// ReadMany reads keys from one consistent snapshot of this region. A region
// applies writes in causal order, so every snapshot of it is causally
// consistent: if it holds a write, it holds that write's causal past.
//
// The session's new token covers every sibling of every key read, so a
// write sent with it supersedes them all.
func (n *Node) ReadMany(ctx context.Context, keys []string, token string, siblings bool) ([]ReadResult, string, error) {
	if len(keys) == 0 {
		return nil, "", api.Errorf(api.ErrInvalidArgument, "no keys to read")
	}
	if len(keys) > MaxReadKeys {
		return nil, "", api.Errorf(api.ErrInvalidArgument, "a read may name at most %d keys; this one names %d", MaxReadKeys, len(keys))
	}
	for _, k := range keys {
		if err := validateKey(k); err != nil {
			return nil, "", err
		}
	}
	tok, err := n.decodeToken(token)
	if err != nil {
		return nil, "", err
	}
	if err := n.awaitCausalPast(ctx, tok.Vector); err != nil {
		return nil, "", err
	}

	// One key needs no snapshot: its versions are read by one iterator.
	var reader interface {
		Siblings(key string, values bool) ([]causal.Version, error)
	} = n.store
	if len(keys) > 1 {
		view := n.store.view()
		defer view.Close()
		reader = view
	}
	out := make([]ReadResult, len(keys))
	seen := clocks.Vector{}
	for i, k := range keys {
		vs, err := reader.Siblings(k, true)
		if err != nil {
			return nil, "", err
		}
		out[i].Key = k
		if len(vs) == 0 {
			continue
		}
		out[i].Version = vs[0]
		out[i].Found = vs[0].Kind == causal.KindValue
		out[i].HasSiblings = len(vs) > 1
		if siblings {
			out[i].Siblings = vs
		}
		for j := range vs {
			seen.MergeInPlace(vs[j].Vector)
			if tok.Seen.Less(vs[j].Timestamp) {
				tok.Seen = vs[j].Timestamp
			}
		}
	}
	// Pebble shows a batch before its fsync; answer only with durable data.
	if err := n.awaitCausalPast(ctx, seen); err != nil {
		return nil, "", err
	}
	tok.Vector = tok.Vector.Merge(seen)
	tok.Cluster = n.cluster
	return out, tok.Encode(), nil
}

// decodeToken reads a request's causal token. A token of another cluster
// carries a ForeignToken detail, so a client can start a new session.
func (n *Node) decodeToken(token string) (clocks.Token, error) {
	tok, err := clocks.DecodeToken(token, n.cluster)
	if errors.Is(err, clocks.ErrForeignToken) {
		return tok, api.WithDetails(err, &v1.ForeignToken{ClusterId: n.cluster.String()})
	}
	return tok, err
}
