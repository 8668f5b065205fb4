package replica

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/clocks"
)

// Node is one region's replica: it accepts reads and writes, stores them
// durably and tracks the causal past it has applied.
//
// Write path: validate, wait for the token's causal past, then under mu
// assign the hybrid timestamp and the next local sequence number and enqueue
// one Pebble batch (version + replication log entry + request outcome +
// node state). mu is released before the fsync; concurrent writers share
// fsyncs (group commit), and WAL order equals sequence order because the
// enqueue happens under mu. A write is acknowledged only after its fsync.
//
// Reads never expose a local write before it is durable: Pebble makes a
// batch visible before its fsync completes, so a read that finds a local
// version newer than the durable watermark waits for that watermark.
type Node struct {
	cfg     Config
	log     *slog.Logger
	store   *Store
	cluster uuid.UUID
	nodeID  string
	started time.Time

	mu       sync.Mutex // orders local writes; guards clock and assigned
	clock    *clocks.Clock
	assigned clocks.Vector // every write enqueued, durable or not

	durMu     sync.Mutex
	durable   clocks.Vector // writes applied here and durable
	durableCh chan struct{} // closed and replaced whenever durable advances

	stop     chan struct{}
	sweeping sync.WaitGroup
}

// Open opens or creates the node's store and restores its clock and vector.
func Open(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	store, err := OpenStore(cfg.DataDir, StoreOptions{FS: cfg.FS, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger.With("region", cfg.Region),
		store:     store,
		started:   cfg.Now(),
		clock:     clocks.NewClock(cfg.Region, cfg.Now, cfg.MaxClockOffset),
		durableCh: make(chan struct{}),
		stop:      make(chan struct{}),
	}
	if err := n.loadMeta(); err != nil {
		store.Close()
		return nil, err
	}
	n.sweeping.Add(1)
	go n.sweepRequestIDs()
	n.log.Info("node open", "node_id", n.nodeID, "cluster_id", n.cluster, "data", cfg.DataDir,
		"vector", n.durable.String(), "clock", n.clock.Last().String())
	return n, nil
}

// loadMeta binds the data directory to its cluster, region and node id, and
// restores the applied vector and the clock from the last committed write.
func (n *Node) loadMeta() error {
	raw, found, err := n.store.meta(metaRegion)
	if err != nil {
		return err
	}
	if found && string(raw) != n.cfg.Region {
		return fmt.Errorf("data directory %s holds region %q, not %q: start with --region %s or use another --data directory",
			n.cfg.DataDir, raw, n.cfg.Region, raw)
	}
	var writes [][]byte
	if !found {
		writes = append(writes, metaRegion, []byte(n.cfg.Region))
	}

	raw, found, err = n.store.meta(metaCluster)
	if err != nil {
		return err
	}
	switch {
	case found:
		stored, perr := uuid.FromBytes(raw)
		if perr != nil {
			return fmt.Errorf("%w: cluster id: %w", ErrCorruptRecord, perr)
		}
		if n.cfg.ClusterID != uuid.Nil && n.cfg.ClusterID != stored {
			return fmt.Errorf("data directory %s belongs to cluster %s, not %s", n.cfg.DataDir, stored, n.cfg.ClusterID)
		}
		n.cluster = stored
	case n.cfg.ClusterID != uuid.Nil:
		n.cluster = n.cfg.ClusterID
	default:
		n.cluster = uuid.New()
	}
	if !found {
		writes = append(writes, metaCluster, n.cluster[:])
	}

	raw, found, err = n.store.meta(metaNode)
	if err != nil {
		return err
	}
	if found {
		n.nodeID = string(raw)
	} else {
		n.nodeID = n.cfg.Region + "-" + uuid.NewString()[:8]
		writes = append(writes, metaNode, []byte(n.nodeID))
	}
	if len(writes) > 0 {
		if err := n.store.setMeta(writes...); err != nil {
			return fmt.Errorf("write node metadata: %w", err)
		}
	}

	raw, found, err = n.store.meta(metaState)
	if err != nil {
		return err
	}
	st := nodeState{Vector: clocks.Vector{}}
	if found {
		if st, err = decodeState(raw); err != nil {
			return err
		}
	}
	n.clock.Restore(st.Clock)
	n.assigned = st.Vector.Clone()
	n.durable = st.Vector.Clone()
	return nil
}

// Close stops background work and closes the store. Every acknowledged
// write is already durable.
func (n *Node) Close() error {
	close(n.stop)
	n.sweeping.Wait()
	return n.store.Close()
}

// Region is the node's region name.
func (n *Node) Region() string { return n.cfg.Region }

// ClusterID is the cluster the node belongs to.
func (n *Node) ClusterID() uuid.UUID { return n.cluster }

// Result is the outcome of a read or write: the version involved and the
// session's new causal token.
type Result struct {
	Record Record // for Get: the version read (zero if the key never existed)
	Found  bool   // for Get: a value (not a tombstone) was found
	Token  string
}

// Put writes value under key and returns once it is durable.
func (n *Node) Put(ctx context.Context, key string, value []byte, token, requestID string) (Result, error) {
	if len(value) > MaxValueBytes {
		return Result{}, api.Errorf(api.ErrInvalidArgument, "value is %d bytes; the limit is %d bytes (1 MiB)", len(value), MaxValueBytes)
	}
	return n.write(ctx, key, KindValue, value, token, requestID)
}

// Delete writes a tombstone for key and returns once it is durable.
func (n *Node) Delete(ctx context.Context, key, token, requestID string) (Result, error) {
	return n.write(ctx, key, KindTombstone, nil, token, requestID)
}

func (n *Node) write(ctx context.Context, key string, kind Kind, value []byte, token, requestID string) (Result, error) {
	if err := validateKey(key); err != nil {
		return Result{}, err
	}
	var reqID uuid.UUID
	if requestID != "" {
		var err error
		if reqID, err = parseRequestID(requestID); err != nil {
			return Result{}, err
		}
	}
	tok, err := clocks.DecodeToken(token, n.cluster)
	if err != nil {
		return Result{}, err
	}
	if err := n.awaitCausalPast(ctx, tok.Vector); err != nil {
		return Result{}, err
	}

	n.mu.Lock()
	if reqID != uuid.Nil {
		o, found, err := n.store.outcome(reqID)
		if err != nil {
			n.mu.Unlock()
			return Result{}, err
		}
		if found {
			n.mu.Unlock()
			return n.replayOutcome(ctx, reqID, key, kind, value, tok, &o)
		}
	}
	if err := n.clock.Observe(tok.Seen); err != nil {
		n.mu.Unlock()
		return Result{}, fmt.Errorf("causal token: %w", err)
	}
	ts := n.clock.Now()
	seq := n.assigned.Get(n.cfg.Region) + 1
	deps := tok.Vector.Clone()
	deps[n.cfg.Region] = seq
	rec := Record{Kind: kind, Timestamp: ts, Seq: seq, Vector: deps, Value: value}

	wb := n.store.newWriteBatch()
	dataKey := wb.putVersion(key, &rec)
	wb.putLog(seq, dataKey)
	if reqID != uuid.Nil {
		wb.putOutcome(reqID, &requestOutcome{Key: key, Kind: kind, Digest: sha256.Sum256(value), Timestamp: ts, Seq: seq, Vector: deps})
	}
	state := nodeState{Vector: n.assigned.Clone(), Clock: ts}
	state.Vector[n.cfg.Region] = seq
	wb.putState(&state)
	if err := n.store.commitNoWait(wb); err != nil {
		n.mu.Unlock()
		wb.abandon()
		return Result{}, fmt.Errorf("commit write: %w", err)
	}
	n.assigned[n.cfg.Region] = seq
	n.mu.Unlock()

	if err := wb.wait(); err != nil {
		return Result{}, fmt.Errorf("sync write: %w", err)
	}
	n.markDurable(n.cfg.Region, seq)
	out := clocks.Token{Cluster: n.cluster, Vector: tok.Vector.Merge(deps), Seen: ts}
	return Result{Record: rec, Found: kind == KindValue, Token: out.Encode()}, nil
}

// replayOutcome answers a retried write with the outcome of the original.
func (n *Node) replayOutcome(ctx context.Context, id uuid.UUID, key string, kind Kind, value []byte, tok clocks.Token, o *requestOutcome) (Result, error) {
	if o.Key != key || o.Kind != kind || o.Digest != sha256.Sum256(value) {
		return Result{}, api.Errorf(api.ErrInvalidArgument, "request_id %s was already used for a different write (key %q); use a new request id for a new write",
			id, o.Key)
	}
	// The original may still be waiting for its fsync.
	if err := n.awaitDurable(ctx, o.Timestamp.Region, o.Seq); err != nil {
		return Result{}, err
	}
	rec := Record{Kind: o.Kind, Timestamp: o.Timestamp, Seq: o.Seq, Vector: o.Vector}
	seen := tok.Seen
	if seen.Less(o.Timestamp) {
		seen = o.Timestamp
	}
	out := clocks.Token{Cluster: n.cluster, Vector: tok.Vector.Merge(o.Vector), Seen: seen}
	return Result{Record: rec, Found: kind == KindValue, Token: out.Encode()}, nil
}

// Get reads the latest version of key visible in this region.
func (n *Node) Get(ctx context.Context, key, token string) (Result, error) {
	if err := validateKey(key); err != nil {
		return Result{}, err
	}
	tok, err := clocks.DecodeToken(token, n.cluster)
	if err != nil {
		return Result{}, err
	}
	if err := n.awaitCausalPast(ctx, tok.Vector); err != nil {
		return Result{}, err
	}
	rec, found, err := n.store.Latest(key)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Token: tok.Encode()}, nil
	}
	if err := n.awaitDurable(ctx, rec.Timestamp.Region, rec.Seq); err != nil {
		return Result{}, err
	}
	out := clocks.Token{Cluster: n.cluster, Vector: tok.Vector.Merge(rec.Vector), Seen: tok.Seen}
	if out.Seen.Less(rec.Timestamp) {
		out.Seen = rec.Timestamp
	}
	return Result{Record: rec, Found: rec.Kind == KindValue, Token: out.Encode()}, nil
}

// awaitCausalPast waits until this region has applied everything in need,
// bounded by the request's deadline or CausalWaitTimeout. It then fails with
// an unavailable error naming what is missing: never a silently stale answer.
func (n *Node) awaitCausalPast(ctx context.Context, need clocks.Vector) error {
	if len(need) == 0 {
		return nil
	}
	// Give up a little before the request's own deadline, so the client
	// receives the explanation rather than a bare deadline_exceeded.
	var cancel context.CancelFunc
	if deadline, ok := ctx.Deadline(); ok {
		margin := min(time.Until(deadline)/10, maxAnswerMargin)
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-margin))
	} else {
		ctx, cancel = context.WithTimeout(ctx, n.cfg.CausalWaitTimeout)
	}
	defer cancel()
	for {
		n.durMu.Lock()
		have, changed := n.durable, n.durableCh
		ok := have.Dominates(need)
		var gaps []clocks.Gap
		if !ok {
			gaps = have.Missing(need)
		}
		n.durMu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return missingPastError(n.cfg.Region, gaps)
		}
	}
}

// maxAnswerMargin is the most time a causal wait leaves before the request
// deadline for the unavailable answer to reach the client.
const maxAnswerMargin = 100 * time.Millisecond

func missingPastError(region string, gaps []clocks.Gap) error {
	parts := make([]string, len(gaps))
	for i, g := range gaps {
		parts[i] = fmt.Sprintf("%s writes %d..%d (have up to %d)", g.Region, g.Have+1, g.Need, g.Have)
	}
	return api.Errorf(api.ErrUnavailable, "the causal token depends on writes region %s has not received yet: %s; retry later, or use a region that has them",
		region, strings.Join(parts, ", "))
}

// awaitDurable waits until origin's write seq is durable here. For local
// writes this is at most one group-commit fsync away.
func (n *Node) awaitDurable(ctx context.Context, origin string, seq uint64) error {
	return n.awaitCausalPast(ctx, clocks.Vector{origin: seq})
}

// durableSeq is the last durable write of region applied here.
func (n *Node) durableSeq(region string) uint64 {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	return n.durable.Get(region)
}

func (n *Node) markDurable(region string, seq uint64) {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	if seq <= n.durable[region] {
		return
	}
	// durable is replaced, not mutated, so readers may keep the old map
	// after releasing durMu.
	next := n.durable.Clone()
	next[region] = seq
	n.durable = next
	close(n.durableCh)
	n.durableCh = make(chan struct{})
}

// Status describes the node.
type Status struct {
	NodeID         string
	Region         string
	ClusterID      uuid.UUID
	Vector         clocks.Vector
	Clock          clocks.Timestamp
	Uptime         time.Duration
	StoreSizeBytes uint64
}

// Status reports the node's identity, applied vector, clock and store size.
func (n *Node) Status() Status {
	n.mu.Lock()
	clock := n.clock.Last()
	n.mu.Unlock()
	n.durMu.Lock()
	vec := n.durable
	n.durMu.Unlock()
	return Status{
		NodeID:         n.nodeID,
		Region:         n.cfg.Region,
		ClusterID:      n.cluster,
		Vector:         vec.Clone(),
		Clock:          clock,
		Uptime:         n.cfg.Now().Sub(n.started),
		StoreSizeBytes: n.store.DiskUsage(),
	}
}

func validateKey(key string) error {
	switch {
	case key == "":
		return api.Errorf(api.ErrInvalidArgument, "key is empty; keys are 1 to %d bytes of UTF-8", MaxKeyBytes)
	case len(key) > MaxKeyBytes:
		return api.Errorf(api.ErrInvalidArgument, "key is %d bytes; the limit is %d bytes", len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return api.Errorf(api.ErrInvalidArgument, "key is not valid UTF-8")
	}
	return nil
}

func parseRequestID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, api.Errorf(api.ErrInvalidArgument, "request_id %q is not a UUID (for example %s)", s, uuid.NewString())
	}
	return id, nil
}

// sweepRequestIDs deletes request ids older than RequestIDRetention, in
// bounded chunks, so the table of remembered retries stays bounded.
func (n *Node) sweepRequestIDs() {
	defer n.sweeping.Done()
	const chunk = 10000
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		cutoff := n.cfg.Now().Add(-n.cfg.RequestIDRetention).UnixMilli()
		if cutoff <= 0 {
			continue
		}
		for {
			deleted, err := n.store.expireRequests(uint64(cutoff), chunk)
			if err != nil {
				n.log.Error("expire request ids", "err", err)
				break
			}
			if deleted < chunk {
				break
			}
		}
	}
}
