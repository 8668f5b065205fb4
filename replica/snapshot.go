package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/causal"
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
	if err := r.checkPeer(ctx, req.Msg.ClusterId, req.Msg.Region); err != nil {
		return err
	}
	version, err := r.agree(req.Msg.Region, req.Msg.Protocol)
	if err != nil {
		return err
	}
	n.mu.Lock()
	vec := n.causal.Applied()
	view := n.store.view()
	n.mu.Unlock()
	defer view.Close()
	waitCtx, cancel := context.WithTimeout(ctx, snapshotWait)
	defer cancel()
	if err := n.awaitCausalPast(waitCtx, vec); err != nil {
		return n.connectError(err)
	}
	if err := stream.Send(&v1.SnapshotResponse{Vector: vec, ProtocolVersion: version}); err != nil {
		return err
	}
	for _, space := range []byte{spaceData, spaceRequest} {
		var batch []*v1.SnapshotRecord
		size := 0
		sendErr, err := view.scan(space, func(key, value []byte) error {
			batch = append(batch, &v1.SnapshotRecord{Key: bytes.Clone(key), Value: bytes.Clone(value)})
			size += len(key) + len(value)
			if size >= maxFrameBatchBytes {
				if err := stream.Send(&v1.SnapshotResponse{Records: batch}); err != nil {
					return err
				}
				batch, size = nil, 0
			}
			return nil
		})
		if sendErr {
			return err
		}
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

// catchUp merges a snapshot of peer p after p answered that its log no
// longer holds the writes this region lacks (from onwards; its log starts at
// firstSeq, 0 when empty): a region that is new, joining, or was cut off
// while p's log moved on.
func (r *replication) catchUp(ctx context.Context, p *peer, from, firstSeq uint64) error {
	_, err := r.mergeSnapshot(ctx, p.region, p.addr, func() bool {
		// Our position moved since the stream asked (a snapshot from
		// another peer was merged meanwhile): resume the stream from there.
		next := r.n.durableSeq(p.region) + 1
		return next > from && (firstSeq == 0 || next >= firstSeq)
	})
	return err
}

// mergeSnapshot copies a snapshot of region (at addr) into this region and
// counts its writes as applied; it returns the snapshot's vector. Into an
// empty region it is a copy; into one with data of its own it is the merge
// causal.MergeSnapshot defines, key by key, so the region ends up as if it
// had applied the snapshot's writes one by one. Client requests are refused
// meanwhile (the data is incomplete) and remote writes wait. unneeded, if
// not nil, is asked once the merge holds the lock; true skips the merge (and
// the vector returned is nil).
func (r *replication) mergeSnapshot(ctx context.Context, region, addr string, unneeded func() bool) (clocks.Vector, error) {
	n := r.n
	r.bootstrapMu.Lock()
	defer r.bootstrapMu.Unlock()
	if unneeded != nil && unneeded() {
		return nil, nil
	}
	// A region that stops sending (a cut link does not always close the
	// connection) must not hold the merge, and the requests it refuses,
	// for ever.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := time.AfterFunc(silenceTimeout, cancel)
	defer watchdog.Stop()
	r.bootstrapping.Store(true)
	defer r.bootstrapping.Store(false)
	n.log.Info("merging a snapshot", "peer", region)

	client := causewayv1connect.NewReplicationServiceClient(n.cfg.HTTPClient, "http://"+addr,
		connect.WithReadMaxBytes(maxReplicationMessageBytes))
	stream, err := client.Snapshot(ctx, connect.NewRequest(&v1.SnapshotRequest{
		ClusterId: n.cluster.String(), Region: n.cfg.Region, Protocol: r.protocolsProto()}))
	if err != nil {
		r.refusedByServer(region, err)
		return nil, err
	}
	defer stream.Close()
	if !stream.Receive() {
		if r.refusedByServer(region, stream.Err()) {
			return nil, fmt.Errorf("snapshot from %s: %w", region, stream.Err())
		}
		return nil, fmt.Errorf("snapshot from %s: %w", region, errors.Join(stream.Err(), errors.New("no vector")))
	}
	watchdog.Reset(silenceTimeout)
	if err := r.checkAnswer(region, stream.Msg().ProtocolVersion); err != nil {
		return nil, fmt.Errorf("snapshot from %s: %w", region, err)
	}
	vec := clocks.Vector(stream.Msg().Vector).Clone()
	if err := vec.Validate(); err != nil {
		return nil, fmt.Errorf("snapshot from %s: %w", region, err)
	}
	// Until the merged vector is recorded, the data holds part of the
	// snapshot: a crash meanwhile must not leave the region serving it.
	if err := n.store.setMeta(metaMerging, nil); err != nil {
		return nil, n.fail(err)
	}
	merged := false
	defer func() {
		if !merged {
			r.rejoin(region)
		}
	}()
	n.mu.Lock()
	m := &snapshotMerge{n: n, vector: vec, applied: n.causal.Applied()}
	n.mu.Unlock()
	for stream.Receive() {
		watchdog.Reset(silenceTimeout)
		if err := m.add(stream.Msg().Records); err != nil {
			return nil, fmt.Errorf("snapshot from %s: %w", region, err)
		}
	}
	if err := stream.Err(); err != nil {
		return nil, fmt.Errorf("snapshot from %s: %w", region, err)
	}
	if err := m.flush(); err != nil {
		return nil, fmt.Errorf("snapshot from %s: %w", region, err)
	}

	// The vector is persisted last, in one synced batch: a crash before it
	// leaves the region at its old vector with metaMerging set, and it
	// merges every region again before it serves (merging is idempotent).
	n.mu.Lock()
	n.causal.Bootstrap(vec)
	n.clock.Restore(m.latest)
	wb := n.store.newWriteBatch()
	mergedVec := n.causal.Applied()
	wb.putState(&nodeState{Vector: mergedVec, Clock: n.clock.Last()})
	feedFloor := n.resetFeedAfterMerge(wb, mergedVec)
	wb.deleteMeta(metaMerging)
	err = n.commit(wb)
	n.mu.Unlock()
	if err != nil {
		wb.abandon()
		return nil, n.fail(err)
	}
	if err := wb.wait(); err != nil {
		return nil, n.fail(err)
	}
	merged = true
	n.feed.setFloor(feedFloor, mergedVec)
	n.markDurableVector(vec)
	n.log.Info("merged a snapshot", "peer", region, "vector", vec.String(), "versions", m.versions)
	return vec, nil
}

// snapshotMerge stores a snapshot's records as they arrive. Records come in
// key order, the versions of one key together (though perhaps split between
// two messages), so each key is merged once all its versions are in.
type snapshotMerge struct {
	n        *Node
	vector   clocks.Vector // the snapshot's
	applied  clocks.Vector // this region's, before the merge
	key      string
	pending  []causal.Version // the versions of key received so far
	latest   clocks.Timestamp
	versions int
}

// add stores one message's records: every record is checked first, then
// the keys completed by this message are merged in one batch.
func (m *snapshotMerge) add(records []*v1.SnapshotRecord) error {
	n := m.n
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
			if m.latest.Less(v.Timestamp) {
				m.latest = v.Timestamp
			}
			if key != m.key && len(m.pending) > 0 {
				if err := m.stageKey(wb); err != nil {
					wb.abandon()
					return err
				}
			}
			m.key = key
			m.pending = append(m.pending, v)
			m.versions++
		case len(rec.Key) == 17 && rec.Key[0] == spaceRequest:
			if _, err := decodeOutcome(rec.Value); err != nil {
				wb.abandon()
				return err
			}
			wb.putOutcomeRecord(rec.Key, rec.Value)
		default:
			wb.abandon()
			return fmt.Errorf("%w: unexpected snapshot record", ErrCorruptRecord)
		}
	}
	return m.commit(wb)
}

// flush merges the last key.
func (m *snapshotMerge) flush() error {
	n := m.n
	n.mu.Lock()
	defer n.mu.Unlock()
	wb := n.store.newWriteBatch()
	if len(m.pending) > 0 {
		if err := m.stageKey(wb); err != nil {
			wb.abandon()
			return err
		}
	}
	return m.commit(wb)
}

// commit writes wb and waits for it. Called under mu; the wait does not
// hold it back from anything, since client requests and remote writes are
// held off during a merge anyway.
func (m *snapshotMerge) commit(wb *writeBatch) error {
	if err := m.n.commit(wb); err != nil {
		wb.abandon()
		return err
	}
	return wb.wait()
}

// stageKey merges the pending versions of m.key into the key's siblings
// (causal.MergeSnapshot). Called under mu.
func (m *snapshotMerge) stageKey(wb *writeBatch) error {
	key, snap := m.key, m.pending
	m.pending = m.pending[:0]
	// Pebble orders a key's versions by timestamp, oldest first; siblings
	// are newest first.
	slices.SortFunc(snap, func(a, b causal.Version) int {
		switch {
		case b.Timestamp.Less(a.Timestamp):
			return -1
		case a.Timestamp.Less(b.Timestamp):
			return 1
		}
		return 0
	})
	local, err := m.n.stagedSiblings(wb, key)
	if err != nil {
		return err
	}
	next, removed, added := causal.MergeSnapshot(local, m.applied, snap, m.vector)
	if len(removed) == 0 && len(added) == 0 {
		return nil
	}
	for _, v := range removed {
		wb.deleteVersion(key, v.Timestamp)
	}
	for i := range added {
		wb.putVersion(key, &added[i])
		if added[i].Kind == causal.KindTombstone {
			wb.indexTombstone(key, &added[i])
		}
	}
	for i := range next {
		next[i].Value = nil // only headers are staged
	}
	wb.stage(key, next)
	return nil
}
