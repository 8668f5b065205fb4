package replica

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/pki"
)

// Replication tuning. Each constant bounds a buffer or a wait.
const (
	// maxFrameBatchBytes bounds one ReplicateResponse (frames are sent in
	// batches so a catching-up region is not limited by round trips).
	maxFrameBatchBytes = 1 << 20
	// maxReplicationMessageBytes bounds what a receiver reads per message:
	// one batch plus one maximal write.
	maxReplicationMessageBytes = maxFrameBatchBytes + 2*MaxRequestBytes
	// heartbeatInterval: an idle stream still reports the origin's head, so
	// lag is measured and dead connections are noticed.
	heartbeatInterval = time.Second
	// silenceTimeout: a stream with no message for this long is reset.
	silenceTimeout = 3 * heartbeatInterval
	// ackInterval: how often a receiver reports its durable position.
	ackInterval = 50 * time.Millisecond
	// gcInterval: how often the replication log is truncated to what every
	// region has acknowledged.
	gcInterval  = time.Second
	dialTimeout = 5 * time.Second
	minBackoff  = 50 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// replication runs the streams between this region and the others: for
// each peer, a follower that pulls the peer's writes from its durable
// position (the receiver drives resumption, so a disconnect, partition or
// restart on either side loses nothing and applies nothing twice), and on
// the serving side one stream per subscriber. It also truncates the
// replication log once every known region has acknowledged an entry.
type replication struct {
	n      *Node
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// bootstrapMu: merging a snapshot excludes remote applies.
	bootstrapMu   sync.RWMutex
	bootstrapping atomic.Bool
	startOnce     sync.Once

	mu         sync.Mutex
	held       map[string]*atomic.Int64 // by subscribing region; see holding
	membership Membership               // nil without Config.Membership, or before start
	removed    map[string]bool          // regions an operator removed
	peers      map[string]*peer         // by region
	acks       map[string]uint64
	truncated  uint64 // log deleted up to here
	advertise  string
	versions   map[string]peerVersion // by region; replication_version.go
}

type peer struct {
	region, addr string
	cancel       context.CancelFunc
	head         atomic.Uint64 // the peer's newest write, as last reported
	// caughtUpWallMs is the peer's physical clock (ms) when it last reported
	// a head this node had already applied: every write the peer issues
	// later has a greater timestamp.
	caughtUpWallMs atomic.Uint64
}

func newReplication(n *Node) *replication {
	ctx, cancel := context.WithCancel(context.Background())
	return &replication{n: n, ctx: ctx, cancel: cancel, peers: map[string]*peer{}, acks: map[string]uint64{}, removed: map[string]bool{},
		held: map[string]*atomic.Int64{}, advertise: n.cfg.Advertise, versions: map[string]peerVersion{}}
}

// start begins replicating with the configured peers, telling them to
// replicate back from advertise (unless Config.Advertise overrides it). The
// server calls it once it listens, so peers never learn an address that
// does not answer yet.
func (r *replication) start(advertise string) {
	r.startOnce.Do(func() {
		r.mu.Lock()
		if r.advertise == "" {
			r.advertise = advertise
		}
		r.mu.Unlock()
		// Peers this region learnt earlier (regions that connected to it)
		// are remembered, so a restart does not forget whom the log is
		// kept for; --peers overrides their addresses.
		remembered, err := r.n.store.peers()
		if err != nil {
			r.n.log.Error("read remembered peers", "err", err)
		}
		for region, addr := range remembered {
			if _, configured := r.n.cfg.Peers[region]; !configured {
				r.addPeer(region, addr)
			}
		}
		for region, addr := range r.n.cfg.Peers {
			r.addPeer(region, addr)
		}
		r.wg.Add(1)
		go r.collectGarbage()
		if r.n.cfg.Membership != nil {
			if err := r.startMembership(r.advertise); err != nil {
				r.n.log.Error("gossip did not start; replicating with --peers only", "err", err)
				why := err.Error()
				r.n.state.noMembership.Store(&why)
			}
		}
		if r.n.state.joining.Load() {
			r.wg.Add(1)
			go r.runJoin()
		}
	})
}

func (r *replication) close() {
	r.stopMembership()
	r.cancel()
	r.wg.Wait()
}

// addPeer starts following region at addr, or moves the follower to a new
// address.
func (r *replication) addPeer(region, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil || r.removed[region] {
		return
	}
	if p, ok := r.peers[region]; ok {
		if p.addr == addr {
			return
		}
		p.cancel()
	}
	r.n.cfg.Links.Learn(addr, region)
	if err := r.n.store.rememberPeer(region, addr); err != nil {
		r.n.log.Error("remember peer", "peer", region, "err", err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	p := &peer{region: region, addr: addr, cancel: cancel}
	r.peers[region] = p
	r.wg.Add(1)
	go r.follow(ctx, p)
	r.n.log.Info("replicating with peer", "peer", region, "addr", addr)
}

// PeerStatus describes the stream from one other region.
type PeerStatus struct {
	Region, Addr string
	Applied      uint64 // that region's writes durable here
	Acked        uint64 // this region's writes that region has acknowledged
	Head         uint64 // that region's newest write, as last reported
	Protocol     uint32 // the replication protocol version of the last stream from that region
	Refused      string // why the last stream with that region was refused for its version, if it was
}

func (r *replication) status() []PeerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PeerStatus, 0, len(r.peers))
	for _, p := range r.peers {
		v := r.versions[p.region]
		out = append(out, PeerStatus{Region: p.region, Addr: p.addr, Applied: r.n.durableSeq(p.region), Acked: r.acks[p.region], Head: p.head.Load(),
			Protocol: v.protocol, Refused: v.refused})
	}
	// A region refused for its version before this node learnt its
	// address is listed too: the operator must see it.
	for region, v := range r.versions {
		if _, ok := r.peers[region]; !ok && v.refused != "" {
			out = append(out, PeerStatus{Region: region, Refused: v.refused})
		}
	}
	return out
}

// follow pulls one peer's writes for as long as the node runs, reconnecting
// with jittered exponential backoff.
func (r *replication) follow(ctx context.Context, p *peer) {
	defer r.wg.Done()
	backoff := minBackoff
	for ctx.Err() == nil {
		progressed, err := r.followOnce(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = minBackoff
		}
		r.n.log.Debug("replication stream ended", "peer", p.region, "err", err)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// followOnce runs one stream from p until it fails. progressed reports
// whether any write arrived (which resets the backoff).
func (r *replication) followOnce(ctx context.Context, p *peer) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := r.n
	client := causewayv1connect.NewReplicationServiceClient(n.cfg.HTTPClient, "http://"+p.addr,
		connect.WithReadMaxBytes(maxReplicationMessageBytes))
	stream := client.Replicate(ctx)
	defer stream.CloseResponse()
	r.mu.Lock()
	advertise := r.advertise
	r.mu.Unlock()
	from := n.durableSeq(p.region) + 1
	if err := stream.Send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Start{Start: &v1.ReplicateStart{
		ClusterId: n.cluster.String(), Region: n.cfg.Region, FromSeq: from, Advertise: advertise,
		Protocol: r.protocolsProto(),
	}}}); err != nil {
		return false, err
	}
	acking := make(chan struct{})
	go func() {
		defer close(acking)
		defer stream.CloseRequest()
		t := time.NewTicker(ackInterval)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if d := n.durableSeq(p.region); d != last {
				if stream.Send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Ack{Ack: &v1.ReplicateAck{AppliedSeq: d}}}) != nil {
					return
				}
				last = d
			}
		}
	}()
	defer func() { cancel(); <-acking }()

	// A peer that stops sending (even heartbeats) is presumed gone: a cut
	// link does not always close the connection.
	watchdog := time.AfterFunc(silenceTimeout, cancel)
	defer watchdog.Stop()
	caughtUp := time.Now()
	// Every check below refuses a message the origin could not have sent:
	// the link, a peer's bug or a damaged disk changed it. Refusing resets
	// the stream, and the next one resumes from this node's durable
	// position, so nothing damaged is applied and nothing is skipped.
	reject := func(err error) (bool, error) {
		n.metrics.badFrames.Inc()
		n.log.Warn("corrupt replication message; resetting stream", "peer", p.region, "err", err)
		return progressed, err
	}
	inbox := causal.NewInbox(p.region, from)
	ahead := startReadAhead(ctx, stream.Receive, func() { watchdog.Reset(silenceTimeout) })
	defer func() { cancel(); ahead.wait() }()
	// streamEnded handles a failed Receive: the origin's refusal, a
	// truncated log (merge a snapshot), a damaged message, or a broken
	// connection.
	streamEnded := func(err error) (bool, error) {
		if r.refusedByServer(p.region, err) {
			return progressed, err
		}
		if first, ok := truncated(err); ok {
			watchdog.Stop() // a snapshot may take longer than a silence
			return progressed, r.catchUp(ctx, p, from, first)
		}
		if damagedMessage(err) {
			return reject(err)
		}
		return progressed, err
	}
	for first := true; ; first = false {
		// Every message that has already arrived joins this apply, up to
		// one message's worth of frames: one fsync for all of them.
		msgs, ended, ok := ahead.batch(ctx)
		if !ok {
			return progressed, ctx.Err()
		}
		if len(msgs) == 0 {
			return streamEnded(ended)
		}
		if first {
			if err := r.checkAnswer(p.region, msgs[0].ProtocolVersion); err != nil {
				return progressed, err
			}
		}
		// Messages are checked in order; those before a damaged one are
		// applied, as they would have been one by one, and then the stream
		// resets.
		var writes []*causal.Write
		var damaged error
		good := 0
		for _, msg := range msgs {
			ws, err := r.accept(inbox, msg)
			if err != nil {
				damaged = err
				break
			}
			writes = append(writes, ws...)
			good++
		}
		if len(writes) > 0 {
			progressed = true
			n.metrics.applyMessages.Observe(float64(good))
			if err := n.applyRemote(writes); err != nil {
				return progressed, err
			}
		}
		if good == 0 {
			return reject(damaged)
		}
		// The latest report, not the greatest: a damaged report heals with
		// the next message.
		last := msgs[good-1]
		p.head.Store(last.HeadSeq)
		durable := n.durableSeq(p.region)
		lag := int64(last.HeadSeq) - int64(durable)
		if lag <= 0 {
			caughtUp = time.Now()
			lag = 0
			sentWallMs := causal.CaughtUpWallMs(last.SentWallMs, uint64(n.cfg.Now().UnixMilli()))
			if sentWallMs > p.caughtUpWallMs.Load() {
				p.caughtUpWallMs.Store(sentWallMs)
			}
		}
		n.metrics.lagEntries.WithLabelValues(p.region).Set(float64(lag))
		n.metrics.lagSeconds.WithLabelValues(p.region).Set(time.Since(caughtUp).Seconds())
		if damaged != nil {
			return reject(damaged)
		}
		if ended != nil {
			return streamEnded(ended)
		}
	}
}

// accept decodes a message's writes and checks them, and the head it
// reports, against what the stream has delivered so far.
func (r *replication) accept(inbox *causal.Inbox, msg *v1.ReplicateResponse) ([]*causal.Write, error) {
	writes := make([]*causal.Write, 0, len(msg.Writes))
	for _, frame := range msg.Writes {
		w, err := decodeWrite(frame)
		if err != nil {
			return nil, err
		}
		if err := inbox.Accept(w); err != nil {
			return nil, err
		}
		writes = append(writes, w)
	}
	if err := inbox.CheckHead(msg.HeadSeq, len(writes) > 0); err != nil {
		return nil, err
	}
	return writes, nil
}

// damagedMessage reports whether err is this node's failure to decode a
// message that arrived (decompression, protobuf, or a length beyond any
// message the origin sends), rather than an error the origin sent or a
// broken connection: the origin only sends what it encoded, so the bytes
// were damaged on the way. Compression checksums the message, so most
// damage on the wire is caught here, before a frame's own checksum.
func damagedMessage(err error) bool {
	if connect.IsWireError(err) {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeResourceExhausted:
		return true
	}
	return false
}

// truncated reports whether err is the server's answer that it no longer
// holds the writes asked for, and the oldest write it still holds (0: none).
func truncated(err error) (firstSeq uint64, ok bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return 0, false
	}
	for _, d := range ce.Details() {
		if m, err := d.Value(); err == nil {
			if lt, ok := m.(*v1.LogTruncated); ok {
				return lt.FirstSeq, true
			}
		}
	}
	return 0, false
}

// replicationHandler serves causeway.v1.ReplicationService.
type replicationHandler struct{ r *replication }

var _ causewayv1connect.ReplicationServiceHandler = replicationHandler{}

func (h replicationHandler) Replicate(ctx context.Context, stream *connect.BidiStream[v1.ReplicateRequest, v1.ReplicateResponse]) error {
	r, n := h.r, h.r.n
	first, err := stream.Receive()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return api.ConnectError(api.Errorf(api.ErrInvalidArgument, "a replication stream starts with ReplicateStart"))
	}
	if err := r.checkPeer(ctx, start.ClusterId, start.Region); err != nil {
		return err
	}
	version, err := r.agree(start.Region, start.Protocol)
	if err != nil {
		return err
	}
	if !n.state.joining.Load() {
		// While joining, a subscriber may well hold more of this region's
		// writes than it does: the join is finding out how many.
		if err := causal.CheckResume(n.cfg.Region, n.durableSeq(n.cfg.Region), start.FromSeq); err != nil {
			n.lostWrites(start.Region, err)
			return api.ConnectError(err) // causal.ErrLostWrites: failed_precondition
		}
	}
	if start.Advertise != "" {
		if _, _, err := net.SplitHostPort(start.Advertise); err == nil {
			r.addPeer(start.Region, start.Advertise)
		}
	}
	pos := max(start.FromSeq, 1)
	held := r.holding(start.Region)
	// sentThrough is the last write handed to this stream (set before the
	// send: the subscriber may acknowledge before Send returns).
	var sentThrough atomic.Uint64
	sentThrough.Store(pos - 1)

	// Acknowledgements arrive on the same stream. One beyond what was sent
	// is damaged or bogus; believing it would truncate the log of writes
	// the subscriber still lacks.
	acksDone := make(chan struct{})
	var ackErr error // set before acksDone closes
	go func() {
		defer close(acksDone)
		for {
			msg, err := stream.Receive()
			if err != nil {
				return
			}
			if ack := msg.GetAck(); ack != nil {
				if err := causal.CheckAck(start.Region, ack.AppliedSeq, sentThrough.Load()); err != nil {
					n.log.Warn("replication acknowledgement beyond what was sent; resetting stream", "peer", start.Region, "err", err)
					ackErr = api.ConnectError(err)
					return
				}
				r.ack(start.Region, ack.AppliedSeq)
			}
		}
	}()

	heartbeat := time.NewTicker(heartbeatInterval)
	defer heartbeat.Stop()
	for {
		// Only durable writes leave the region: a write lost in a crash
		// here must not exist anywhere else.
		durable, changed := n.durableVector()
		head := durable.Get(n.cfg.Region)
		if pos <= head {
			first, err := r.logFirst()
			if err != nil {
				return n.connectError(err)
			}
			if decision, _ := causal.ResumeAt(n.cfg.Region, head, first, pos); decision == causal.ResumeSnapshot {
				return api.ConnectError(api.WithDetails(api.Errorf(api.ErrFailedPrecondition,
					"region %s no longer holds its writes from %d (region %s asked for them); %s must merge a snapshot",
					n.cfg.Region, pos, start.Region, start.Region),
					&v1.LogTruncated{Region: n.cfg.Region, FirstSeq: first}))
			}
			frames, err := n.store.logRange(pos, head, maxFrameBatchBytes)
			if err != nil {
				return n.connectError(err)
			}
			size := int64(0)
			for _, f := range frames {
				size += int64(len(f))
			}
			held.Add(size)
			sentThrough.Store(pos + uint64(len(frames)) - 1)
			err = stream.Send(&v1.ReplicateResponse{Writes: frames, HeadSeq: head, SentWallMs: uint64(n.cfg.Now().UnixMilli()), ProtocolVersion: version})
			held.Add(-size)
			if err != nil {
				return err
			}
			pos += uint64(len(frames))
			continue
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if err := stream.Send(&v1.ReplicateResponse{HeadSeq: head, SentWallMs: uint64(n.cfg.Now().UnixMilli()), ProtocolVersion: version}); err != nil {
				return err
			}
		case <-acksDone:
			return ackErr
		case <-ctx.Done():
			return nil
		case <-r.ctx.Done():
			return api.ConnectError(api.Errorf(api.ErrUnavailable, "node is shutting down"))
		}
	}
}

// holding returns the count of bytes of replication frames this node has
// read from its log for region's streams and not yet handed to the
// transport: the memory a slow or stalled subscriber can pin here. A stream
// holds one batch at a time (at most maxFrameBatchBytes plus one write;
// while sending it, the transport holds an encoded copy too); what the
// subscriber has not taken stays in the log, on disk.
func (r *replication) holding(region string) *atomic.Int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.held[region]
	if h == nil {
		h = new(atomic.Int64)
		r.held[region] = h
	}
	return h
}

// logFirst is the oldest write the replication log holds (0: none).
func (r *replication) logFirst() (uint64, error) {
	first, found, err := r.n.store.firstLogSeq()
	if err != nil || !found {
		return 0, err
	}
	return first, nil
}

func (r *replication) checkPeer(ctx context.Context, cluster, region string) error {
	// With security on, the caller is a node (the process let nothing
	// else through) whose certificate names its region: it may speak only
	// for that region, so that no node can subscribe, acknowledge, advertise
	// an address or take a snapshot in another region's name.
	if id, ok := pki.IdentityFrom(ctx); ok && (id.Role != pki.RoleNode || id.Region != region) {
		r.n.metrics.forgedPeers.Inc()
		r.n.log.Warn("replication request refused: the caller's certificate names another region", "caller", id.String(), "claimed_region", region)
		return api.ConnectError(api.Errorf(api.ErrPermissionDenied,
			"%v may not replicate as region %s: a node speaks only for the region its certificate names", id, region))
	}
	if cluster != r.n.cluster.String() {
		return api.ConnectError(api.Errorf(api.ErrFailedPrecondition,
			"cluster mismatch: region %s is in cluster %s, this node (%s) in cluster %s; start every region with the same --cluster-id",
			region, cluster, r.n.cfg.Region, r.n.cluster))
	}
	if err := clocks.ValidateRegion(region); err != nil {
		return api.ConnectError(err) // clocks.ErrInvalidRegion: invalid_argument
	}
	if region == r.n.cfg.Region {
		return api.ConnectError(api.Errorf(api.ErrFailedPrecondition,
			"two nodes claim region %s; every region needs its own name", region))
	}
	return nil
}

func (r *replication) ack(region string, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq > r.acks[region] {
		r.acks[region] = seq
	}
}

// collectGarbage truncates the replication log to the lowest position every
// known region has acknowledged. A region that has never acknowledged since
// this node started holds the log back entirely.
func (r *replication) collectGarbage() {
	defer r.wg.Done()
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if stable, ok := r.stableVector(); ok {
			if _, err := r.n.collectTombstones(stable, r.safeWallMs()); err != nil {
				r.n.log.Error("collect tombstones", "err", err)
			}
		}
		r.mu.Lock()
		upTo := causal.TruncationPoint(r.n.durableSeq(r.n.cfg.Region), slices.Collect(maps.Keys(r.peers)), r.acks)
		truncated := r.truncated
		r.mu.Unlock()
		if upTo <= truncated {
			continue
		}
		if err := r.n.store.truncateLog(upTo); err != nil {
			r.n.log.Error("truncate replication log", "err", err)
			continue
		}
		r.mu.Lock()
		r.truncated = upTo
		r.mu.Unlock()
	}
}

// refuseUnlessServing refuses client requests while the region joins,
// after it found that it lost writes, and while it merges a snapshot (its
// data is incomplete until the snapshot is in).
func (r *replication) refuseUnlessServing() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if _, err := r.n.clientRefusal(); err != nil {
				return nil, r.n.connectError(err)
			}
			return next(ctx, req)
		}
	}
}

// newH2CClient is an HTTP/2 client without TLS, for replication streams
// (bidirectional streaming needs HTTP/2), dialing through dial (the link
// layer).
func newH2CClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols: protocols,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			return dial(ctx, network, addr)
		},
	}}
}

// knownRegion reports whether region is a peer of this node.
func (r *replication) knownRegion(region string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.peers[region]
	return ok
}
