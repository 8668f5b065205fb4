package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/groupcommit"
)

// Node is one region's replica: it accepts reads and writes, stores them
// durably, replicates its own writes to the other regions and applies theirs
// in causal order.
//
// Write path: validate, wait for the token's causal past, then under mu let
// the causal state machine assign the write's timestamp, sequence number and
// vector, resolve each key's siblings, and enqueue one Pebble batch (versions
// + replication log entry + request outcome + node state). mu is released
// before the fsync; concurrent writers share fsyncs (group commit), and WAL
// order equals sequence order because the enqueue happens under mu. A write
// is acknowledged only after its fsync. Remote writes take the same path
// (apply.go), in the order the state machine releases them.
//
// Reads never expose a write before it is durable here: Pebble makes a batch
// visible before its fsync completes, so a read waits until the durable
// vector covers what it returns.
type Node struct {
	cfg     Config
	log     *slog.Logger
	store   *Store
	cluster uuid.UUID
	nodeID  string
	started time.Time
	metrics *nodeMetrics

	mu       sync.Mutex         // orders every write; guards causal and clock
	causal   *causal.Replica    // the protocol state machine
	clock    *clocks.Clock      // owned by causal; read under mu for Status
	siblings *siblingCache      // recently written keys' sibling sets
	group    *groupcommit.Pacer // paces fsyncs under load

	durMu     sync.Mutex
	durable   clocks.Vector // writes applied here and durable; replaced, never mutated
	durableCh chan struct{} // closed and replaced whenever durable advances

	repl  *replication // streams to and from the other regions
	state regionState  // joining, or stopped after losing writes

	clockFence *clockFence // refuses local writes while the clock is off (clockoffset.go)
	backupBusy atomic.Bool // a backup is being streamed (backup.go)

	feed  *changeFeed // the change feed's positions and watchers (feed.go)
	hub   *watchHub   // dispatches the feed to live watchers (watch_hub.go)
	scans *scanCache  // snapshots of paginated scans (scan.go)
	// onWatchReaderExit, set by tests only, learns why a watch's feed
	// reader ended, before its stream does.
	onWatchReaderExit func(error)

	linear LinearTier // the linearizable tier; nil when off

	stop       chan struct{}
	closed     atomic.Bool
	background sync.WaitGroup
}

// Open opens or creates the node's store and restores its clock and vector.
// Replication with the configured peers starts when a Server serves the
// node.
func Open(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	gc := groupcommit.New(cfg.GroupCommitDelay, cfg.GroupCommitWriters)
	store, err := OpenStore(cfg.DataDir, StoreOptions{FS: cfg.FS, Logger: cfg.Logger, MinSyncInterval: gc.MinSyncInterval, format: cfg.storeFormat})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger.With("region", cfg.Region),
		store:     store,
		started:   cfg.Now(),
		clock:     clocks.NewClock(cfg.Region, cfg.Now, cfg.MaxClockOffset),
		siblings:  newSiblingCache(siblingCacheKeys),
		group:     gc,
		durableCh: make(chan struct{}),
		stop:      make(chan struct{}),
	}
	n.clockFence = newClockFence(&cfg, n.log)
	st, err := n.loadMeta()
	if err != nil {
		store.Close()
		return nil, err
	}
	n.clock.Restore(st.Clock)
	n.causal = causal.NewReplica(causal.Config{
		Region:                 cfg.Region,
		Clock:                  n.clock,
		Applied:                st.Vector,
		MaxPending:             cfg.MaxPendingWrites,
		UnsafeSkipDependencies: cfg.UnsafeSkipDependencies,
	})
	n.durable = st.Vector.Clone()
	floorPos, floor, last, err := store.feedBounds()
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("read change feed: %w", err)
	}
	n.feed = newChangeFeed(floorPos, floor, last)
	n.hub = newWatchHub(n.feed, n.cluster, n.cfg.Feed.WatchBuffer)
	n.scans = newScanCache()
	n.metrics = newNodeMetrics(n)
	n.repl = newReplication(n)
	if cfg.Linear != nil {
		if err := n.openLinear(); err != nil {
			store.Close()
			return nil, err
		}
	}
	n.background.Add(1)
	go n.sweepRequestIDs()
	n.background.Add(3)
	go n.retainFeed()
	go func() {
		defer n.background.Done()
		n.hub.run(n.stop)
	}()
	go n.sweepScans()
	n.log.Info("node open", "node_id", n.nodeID, "cluster_id", n.cluster, "data", cfg.DataDir,
		"vector", n.durable.String(), "clock", n.clock.Last().String(), "peers", len(cfg.Peers))
	return n, nil
}

// loadMeta binds the data directory to its cluster, region and node id, and
// restores the applied vector and the clock from the last committed write.
func (n *Node) loadMeta() (nodeState, error) {
	raw, found, err := n.store.meta(metaRegion)
	if err != nil {
		return nodeState{}, err
	}
	if found && string(raw) != n.cfg.Region {
		return nodeState{}, fmt.Errorf("data directory %s holds region %q, not %q: start with --region %s or use another --data directory",
			n.cfg.DataDir, raw, n.cfg.Region, raw)
	}
	var writes [][]byte
	if !found {
		writes = append(writes, metaRegion, []byte(n.cfg.Region))
		if n.cfg.Join {
			writes = append(writes, metaJoining, nil)
		}
	}

	raw, found, err = n.store.meta(metaCluster)
	if err != nil {
		return nodeState{}, err
	}
	switch {
	case found:
		stored, perr := uuid.FromBytes(raw)
		if perr != nil {
			return nodeState{}, fmt.Errorf("%w: cluster id: %w", ErrCorruptRecord, perr)
		}
		if n.cfg.ClusterID != uuid.Nil && n.cfg.ClusterID != stored {
			return nodeState{}, fmt.Errorf("data directory %s belongs to cluster %s, not %s", n.cfg.DataDir, stored, n.cfg.ClusterID)
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
		return nodeState{}, err
	}
	if found {
		n.nodeID = string(raw)
	} else {
		n.nodeID = n.cfg.Region + "-" + uuid.NewString()[:8]
		writes = append(writes, metaNode, []byte(n.nodeID))
	}
	if len(writes) > 0 {
		if err := n.store.setMeta(writes...); err != nil {
			return nodeState{}, fmt.Errorf("write node metadata: %w", err)
		}
	}

	for _, key := range [][]byte{metaJoining, metaMerging} {
		if _, found, err := n.store.meta(key); err != nil {
			return nodeState{}, err
		} else if found {
			n.state.joining.Store(true)
		}
	}

	raw, found, err = n.store.meta(metaState)
	if err != nil {
		return nodeState{}, err
	}
	st := nodeState{Vector: clocks.Vector{}}
	if found {
		if st, err = decodeState(raw); err != nil {
			return nodeState{}, err
		}
	}
	return st, nil
}

// Close stops background work and closes the store. Every acknowledged
// write is already durable. Closing again does nothing.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil // closed already
	}
	close(n.stop)
	var lerr error
	if n.linear != nil {
		lerr = n.linear.Close()
	}
	n.repl.close()
	n.background.Wait()
	return errors.Join(lerr, n.store.Close())
}

// Region is the node's region name.
func (n *Node) Region() string { return n.cfg.Region }

// ClusterID is the cluster the node belongs to.
func (n *Node) ClusterID() uuid.UUID { return n.cluster }

// awaitCausalPast waits until this region has applied everything in need,
// bounded by the request's deadline or CausalWaitTimeout. It then fails with
// an unavailable error naming what is missing: never a silently stale answer.
func (n *Node) awaitCausalPast(ctx context.Context, need clocks.Vector) error {
	if have, _ := n.durableVector(); have.Dominates(need) {
		return nil // the common case: no timer, no context
	}
	// Give up a little before the request's own deadline, so the client
	// receives the explanation rather than a bare deadline_exceeded.
	var cancel context.CancelFunc
	if deadline, ok := ctx.Deadline(); ok {
		margin := min(time.Until(deadline)/4, maxAnswerMargin)
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-margin))
	} else {
		ctx, cancel = context.WithTimeout(ctx, n.cfg.CausalWaitTimeout)
	}
	defer cancel()
	for {
		have, changed := n.durableVector()
		if have.Dominates(need) {
			return nil
		}
		gaps := have.Missing(need)
		select {
		case <-changed:
		case <-ctx.Done():
			return missingPastError(n.cfg.Region, gaps)
		}
	}
}

// maxAnswerMargin is the most time a causal wait leaves before the request
// deadline for the unavailable answer to reach the client (a quarter of
// the time left, up to this): the deadline the server reads is already
// late by the request's trip, and the answer has the same trip back, on a
// busy machine or a long route more than 100ms.
const maxAnswerMargin = 250 * time.Millisecond

func missingPastError(region string, gaps []clocks.Gap) error {
	parts := make([]string, len(gaps))
	for i, g := range gaps {
		parts[i] = fmt.Sprintf("%s writes %d..%d (have up to %d)", g.Region, g.Have+1, g.Need, g.Have)
	}
	return api.Errorf(api.ErrUnavailable, "the causal token depends on writes region %s has not received yet: %s; retry later, or use a region that has them",
		region, strings.Join(parts, ", "))
}

// durableSeq is the last durable write of region applied here.
func (n *Node) durableSeq(region string) uint64 {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	return n.durable.Get(region)
}

// markDurable advances the durable vector to cover write seq of region.
// Writes that shared an fsync mark in any order, so a write often finds
// itself covered already and returns without building a vector.
func (n *Node) markDurable(region string, seq uint64) {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	if n.durable.Get(region) < seq {
		n.advanceDurable(clocks.Vector{region: seq})
	}
}

// markDurableVector advances the durable vector to cover v and wakes every
// request waiting for it.
func (n *Node) markDurableVector(v clocks.Vector) {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	if !n.durable.Dominates(v) {
		n.advanceDurable(v)
	}
}

// advanceDurable merges v, which the durable vector does not dominate, into
// it and wakes every request waiting. Called under durMu.
func (n *Node) advanceDurable(v clocks.Vector) {
	// durable is replaced, not mutated, so readers may keep the old map
	// after releasing durMu.
	n.durable = n.durable.Merge(v)
	close(n.durableCh)
	n.durableCh = make(chan struct{})
}

// durableVector is the vector of writes durable here (do not modify).
func (n *Node) durableVector() (clocks.Vector, <-chan struct{}) {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	return n.durable, n.durableCh
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
	PendingWrites  int // remote writes waiting for their causal past
	Peers          []PeerStatus
}

// Status reports the node's identity, applied vector, clock and store size.
func (n *Node) Status() Status {
	n.mu.Lock()
	clock := n.clock.Last()
	pending := n.causal.Pending()
	n.mu.Unlock()
	vec, _ := n.durableVector()
	return Status{
		NodeID:         n.nodeID,
		Region:         n.cfg.Region,
		ClusterID:      n.cluster,
		Vector:         vec.Clone(),
		Clock:          clock,
		Uptime:         n.cfg.Now().Sub(n.started),
		StoreSizeBytes: n.store.DiskUsage(),
		PendingWrites:  pending,
		Peers:          n.repl.status(),
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
	defer n.background.Done()
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
