package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// WriteResult is the outcome of a write: the version every op got and the
// session's new causal token.
type WriteResult struct {
	Version causal.Version // Kind and Value are those of the first op
	Token   string
}

// WriteOptions are the optional guards of a write.
type WriteOptions struct {
	// Fence refuses the write if a newer token for its lock has been seen.
	Fence *Fence
	// Unique values are claimed for the write's key through the
	// linearizable tier before the write (Put only).
	Unique []Unique
}

// Put writes value under key and returns once it is durable.
func (n *Node) Put(ctx context.Context, key string, value []byte, token, requestID string) (WriteResult, error) {
	return n.Write(ctx, []causal.Op{{Key: key, Kind: causal.KindValue, Value: value}}, token, requestID, WriteOptions{})
}

// Delete writes a tombstone for key and returns once it is durable.
func (n *Node) Delete(ctx context.Context, key, token, requestID string) (WriteResult, error) {
	return n.Write(ctx, []causal.Op{{Key: key, Kind: causal.KindTombstone}}, token, requestID, WriteOptions{})
}

// WriteMany applies ops atomically as one write, replicated as one unit.
func (n *Node) WriteMany(ctx context.Context, ops []causal.Op, token, requestID string) (WriteResult, error) {
	return n.Write(ctx, ops, token, requestID, WriteOptions{})
}

// Write applies ops atomically as one write, guarded by opts.
func (n *Node) Write(ctx context.Context, ops []causal.Op, token, requestID string, opts WriteOptions) (WriteResult, error) {
	if err := validateOps(ops); err != nil {
		return WriteResult{}, err
	}
	// A node whose clock is far from its peers' stamps nothing (before
	// any claim is made for the write): see clockoffset.go.
	if err := n.clockFence.check(); err != nil {
		return WriteResult{}, err
	}
	if opts.Fence != nil {
		if err := opts.Fence.validate(); err != nil {
			return WriteResult{}, err
		}
	}
	var reqID uuid.UUID
	if requestID != "" {
		var err error
		if reqID, err = parseRequestID(requestID); err != nil {
			return WriteResult{}, err
		}
	}
	tok, err := n.decodeToken(token)
	if err != nil {
		return WriteResult{}, err
	}
	if len(opts.Unique) > 0 {
		if reqID == uuid.Nil {
			reqID = uuid.New()
		}
		if err := n.claimUnique(ctx, ops, opts.Unique, reqID); err != nil {
			return WriteResult{}, err
		}
	}
	if err := n.awaitCausalPast(ctx, tok.Vector); err != nil {
		return WriteResult{}, err
	}

	tier := n.tierToken(opts.Fence)

	defer n.group.Enter()()
	n.mu.Lock()
	if reqID != uuid.Nil {
		o, found, err := n.store.outcome(reqID)
		if err != nil {
			n.mu.Unlock()
			return WriteResult{}, err
		}
		if found {
			n.mu.Unlock()
			return n.replayOutcome(ctx, reqID, ops, tok, &o)
		}
	}
	// The fence is checked before the state machine assigns a sequence
	// number: a refused write must not leave a gap in the region's log.
	wb := n.store.newWriteBatch()
	if opts.Fence != nil {
		if err := n.checkFence(wb, opts.Fence, tier); err != nil {
			n.mu.Unlock()
			wb.abandon()
			return WriteResult{}, err
		}
	}
	w, err := n.causal.Local(tok, ops, reqID)
	if err != nil {
		n.mu.Unlock()
		wb.abandon()
		return WriteResult{}, fmt.Errorf("causal token: %w", err)
	}
	if err := n.stageWrite(wb, w); err != nil {
		n.mu.Unlock()
		wb.abandon()
		return WriteResult{}, n.fail(err)
	}
	wb.putLog(w)
	applied := n.causal.Applied()
	feedPos := n.feed.stage(wb, w, applied, w.Timestamp)
	wb.putState(&nodeState{Vector: applied, Clock: w.Timestamp})
	if err := n.commit(wb); err != nil {
		n.mu.Unlock()
		wb.abandon()
		return WriteResult{}, n.fail(fmt.Errorf("commit write: %w", err))
	}
	n.mu.Unlock()

	if err := n.waitDurable(wb); err != nil {
		return WriteResult{}, n.fail(fmt.Errorf("sync write: %w", err))
	}
	n.feed.markDurable(feedPos)
	n.markDurable(n.cfg.Region, w.Seq)
	// w.Vector is the token's vector with this write added (Replica.Local),
	// so it is already the merge of the two.
	out := clocks.Token{Cluster: n.cluster, Vector: w.Vector, Seen: w.Timestamp}
	return WriteResult{Version: causal.VersionOf(w, ops[0]), Token: out.Encode()}, nil
}

// stageWrite adds w's effect to the batch: each op's version joins its key's
// siblings and replaces those it covers (causal.Resolve); a request id
// records the outcome. Called under mu, so the siblings read here include
// every write enqueued before.
func (n *Node) stageWrite(wb *writeBatch, w *causal.Write) error {
	for _, op := range w.Ops {
		if err := n.stageVersion(wb, op.Key, causal.VersionOf(w, op)); err != nil {
			return err
		}
	}
	if w.RequestID != uuid.Nil {
		wb.putOutcome(w.RequestID, &requestOutcome{Digest: opsDigest(w.Ops), Timestamp: w.Timestamp, Seq: w.Seq, Vector: w.Vector})
	}
	return nil
}

// stageVersion adds one version of key to the batch, the one way a version
// enters the store (local and replicated writes, snapshots): it joins the
// key's siblings, the versions it covers are deleted, and a tombstone is
// indexed for collection. A version already applied or covered is skipped.
func (n *Node) stageVersion(wb *writeBatch, key string, v causal.Version) error {
	siblings, err := n.stagedSiblings(wb, key)
	if err != nil {
		return err
	}
	next, superseded, applied := causal.Resolve(siblings, v)
	if !applied {
		return nil
	}
	for _, s := range superseded {
		wb.deleteVersion(key, s.Timestamp)
	}
	wb.putVersion(key, &v)
	if v.Kind == causal.KindTombstone {
		wb.indexTombstone(key, &v)
	}
	for i := range next {
		next[i].Value = nil // next is Resolve's own slice; only headers are kept
	}
	wb.stage(key, next)
	return nil
}

// stagedSiblings is key's sibling set (headers only) as the batch leaves
// it so far: what the batch staged, else what the store holds, from the
// sibling cache when the key is there. Called under mu.
func (n *Node) stagedSiblings(wb *writeBatch, key string) ([]causal.Version, error) {
	if s, ok := wb.staged[key]; ok {
		return s, nil
	}
	if s, ok := n.siblings.get(key); ok {
		return s, nil
	}
	return n.store.Siblings(key, false)
}

// commit enqueues wb (Store.commitNoWait; wait must follow) and, once it is
// in the store, caches the sibling sets it staged. Called under mu, so the
// cache changes in the same order as the store.
func (n *Node) commit(wb *writeBatch) error {
	wb.enqueued = time.Now()
	if err := n.store.commitNoWait(wb); err != nil {
		return err
	}
	for key, s := range wb.staged {
		n.siblings.put(key, s)
	}
	return nil
}

// waitDurable waits for the fsync that makes wb durable (wb.wait) and
// records how long the batch took from the WAL to disk: the durable commit
// every acknowledgement waits for, the fsync itself included.
func (n *Node) waitDurable(wb *writeBatch) error {
	enqueued := wb.enqueued
	err := wb.wait()
	if err == nil && !enqueued.IsZero() {
		n.metrics.fsyncLatency.Observe(time.Since(enqueued).Seconds())
	}
	return err
}

// replayOutcome answers a retried write with the outcome of the original.
func (n *Node) replayOutcome(ctx context.Context, id uuid.UUID, ops []causal.Op, tok clocks.Token, o *requestOutcome) (WriteResult, error) {
	if o.Digest != opsDigest(ops) {
		return WriteResult{}, api.Errorf(api.ErrInvalidArgument,
			"request_id %s was already used for a different write; use a new request id for a new write", id)
	}
	// The original may still be waiting for its fsync.
	if err := n.awaitCausalPast(ctx, o.Vector); err != nil {
		return WriteResult{}, err
	}
	seen := tok.Seen
	if seen.Less(o.Timestamp) {
		seen = o.Timestamp
	}
	v := causal.Version{Kind: ops[0].Kind, Timestamp: o.Timestamp, Seq: o.Seq, Vector: o.Vector, Value: ops[0].Value}
	out := clocks.Token{Cluster: n.cluster, Vector: tok.Vector.Merge(o.Vector), Seen: seen}
	return WriteResult{Version: v, Token: out.Encode()}, nil
}

func validateOps(ops []causal.Op) error {
	switch {
	case len(ops) == 0:
		return api.Errorf(api.ErrInvalidArgument, "a write needs at least one key")
	case len(ops) > MaxWriteOps:
		return api.Errorf(api.ErrInvalidArgument, "a write may change at most %d keys; this one changes %d", MaxWriteOps, len(ops))
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if err := validateKey(op.Key); err != nil {
			return err
		}
		if seen[op.Key] {
			return api.Errorf(api.ErrInvalidArgument, "key %q appears twice in one write", op.Key)
		}
		seen[op.Key] = true
		if len(op.Value) > MaxValueBytes {
			return api.Errorf(api.ErrInvalidArgument, "value of key %q is %d bytes; the limit is %d bytes (1 MiB)", op.Key, len(op.Value), MaxValueBytes)
		}
	}
	return nil
}

// fail records a storage failure after which the node's memory and disk may
// disagree. The node stops (Config.OnFatal): restarting recovers from the
// durable state, which is always consistent.
func (n *Node) fail(err error) error {
	n.log.Error("storage failure; stopping", "err", err)
	n.cfg.OnFatal(err)
	return err
}
