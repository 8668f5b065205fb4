package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/clocks"
)

// snapshotWait bounds how long a snapshot waits for its own writes to
// become durable (at most one group-commit fsync in practice).
const snapshotWait = 10 * time.Second

// Snapshot streams a consistent copy of this region: the vector of writes
// it holds, then every stored version and request outcome. The vector and
// the Pebble snapshot are taken together under the write lock, so the data
// holds exactly the writes the vector names; the stream starts once they
// are all durable, so a crash here cannot take back what a new region
// received.
func (h replicationHandler) Snapshot(ctx context.Context, req *connect.Request[v1.SnapshotRequest], stream *connect.ServerStream[v1.SnapshotResponse]) error {
	r, n := h.r, h.r.n
	if err := r.checkPeer(req.Msg.ClusterId, req.Msg.Region); err != nil {
		return err
	}
	n.mu.Lock()
	vec := n.causal.Applied()
	snap := n.store.db.NewSnapshot()
	n.mu.Unlock()
	defer snap.Close()
	waitCtx, cancel := context.WithTimeout(ctx, snapshotWait)
	defer cancel()
	if err := n.awaitCausalPast(waitCtx, vec); err != nil {
		return n.connectError(err)
	}
	if err := stream.Send(&v1.SnapshotResponse{Vector: vec}); err != nil {
		return err
	}
	for _, space := range []byte{spaceData, spaceRequest} {
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{space}, UpperBound: []byte{space + 1}})
		if err != nil {
			return n.connectError(err)
		}
		var batch []*v1.SnapshotRecord
		size := 0
		for ok := it.First(); ok; ok = it.Next() {
			raw, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return n.connectError(err)
			}
			batch = append(batch, &v1.SnapshotRecord{Key: bytes.Clone(it.Key()), Value: bytes.Clone(raw)})
			size += len(it.Key()) + len(raw)
			if size >= maxFrameBatchBytes {
				if err := stream.Send(&v1.SnapshotResponse{Records: batch}); err != nil {
					it.Close()
					return err
				}
				batch, size = nil, 0
			}
		}
		err = errors.Join(it.Error(), it.Close())
		if err != nil {
			return n.connectError(err)
		}
		if len(batch) > 0 {
			if err := stream.Send(&v1.SnapshotResponse{Records: batch}); err != nil {
				return err
			}
		}
	}
	n.log.Info("sent snapshot", "to", req.Msg.Region, "vector", vec.String())
	return nil
}

// bootstrap fills an empty region from a snapshot of peer p, after p
// answered that its log no longer holds the writes this region lacks. A
// region that already holds data cannot be bootstrapped (its own writes
// would be lost), so for it the condition is reported, not repaired.
func (r *replication) bootstrap(ctx context.Context, p *peer, from, firstSeq uint64, cause error) error {
	n := r.n
	r.bootstrapMu.Lock()
	defer r.bootstrapMu.Unlock()
	if have, _ := n.durableVector(); len(have) > 0 {
		if next := have.Get(p.region) + 1; next > from && (firstSeq == 0 || next >= firstSeq) {
			// Our position moved since the stream asked (a bootstrap from
			// another peer ran meanwhile): resume the stream from there.
			return nil
		}
		n.log.Error("cannot catch up: the peer's replication log no longer holds writes this region lacks, and this region has data of its own",
			"peer", p.region, "have", have.String(), "err", cause)
		return cause
	}
	r.bootstrapping.Store(true)
	defer r.bootstrapping.Store(false)
	n.log.Info("bootstrapping from a snapshot", "peer", p.region)

	client := causewayv1connect.NewReplicationServiceClient(n.cfg.HTTPClient, "http://"+p.addr,
		connect.WithReadMaxBytes(maxReplicationMessageBytes))
	stream, err := client.Snapshot(ctx, connect.NewRequest(&v1.SnapshotRequest{ClusterId: n.cluster.String(), Region: n.cfg.Region}))
	if err != nil {
		return err
	}
	defer stream.Close()
	if !stream.Receive() {
		return fmt.Errorf("snapshot from %s: %w", p.region, errors.Join(stream.Err(), errors.New("no vector")))
	}
	vec := clocks.Vector(stream.Msg().Vector).Clone()
	if err := vec.Validate(); err != nil {
		return fmt.Errorf("snapshot from %s: %w", p.region, err)
	}
	var latest clocks.Timestamp
	records := 0
	for stream.Receive() {
		if err := n.ingest(stream.Msg().Records, &latest); err != nil {
			return fmt.Errorf("snapshot from %s: %w", p.region, err)
		}
		records += len(stream.Msg().Records)
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("snapshot from %s: %w", p.region, err)
	}

	// The vector is persisted last, in one synced batch: a crash before it
	// leaves an empty-vector region that bootstraps again (ingest is
	// idempotent).
	n.mu.Lock()
	n.causal.Bootstrap(vec)
	n.clock.Restore(latest)
	wb := n.store.newWriteBatch()
	wb.putState(&nodeState{Vector: n.causal.Applied(), Clock: n.clock.Last()})
	err = n.commit(wb)
	n.mu.Unlock()
	if err != nil {
		wb.abandon()
		return n.fail(err)
	}
	if err := wb.wait(); err != nil {
		return n.fail(err)
	}
	n.markDurableVector(vec)
	n.log.Info("bootstrapped from a snapshot", "peer", p.region, "vector", vec.String(), "records", records)
	return nil
}

// ingest stores snapshot records: versions join their keys' siblings as
// replicated writes do, request outcomes are kept as they are. Every record
// is checked before anything is stored.
func (n *Node) ingest(records []*v1.SnapshotRecord, latest *clocks.Timestamp) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	wb := n.store.newWriteBatch()
	for _, rec := range records {
		switch {
		case len(rec.Key) > 0 && rec.Key[0] == spaceData:
			key, ok := decodeDataKey(rec.Key)
			if !ok {
				wb.abandon()
				return fmt.Errorf("%w: snapshot data key", ErrCorruptRecord)
			}
			v, err := decodeVersion(rec.Value)
			if err != nil {
				wb.abandon()
				return err
			}
			if latest.Less(v.Timestamp) {
				*latest = v.Timestamp
			}
			if err := n.stageVersion(wb, key, v); err != nil {
				wb.abandon()
				return err
			}
		case len(rec.Key) == 17 && rec.Key[0] == spaceRequest:
			if _, err := decodeOutcome(rec.Value); err != nil {
				wb.abandon()
				return err
			}
			_ = wb.b.Set(rec.Key, rec.Value, nil)
		default:
			wb.abandon()
			return fmt.Errorf("%w: unexpected snapshot record", ErrCorruptRecord)
		}
	}
	if err := n.commit(wb); err != nil {
		wb.abandon()
		return err
	}
	return wb.wait()
}
