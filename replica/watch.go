package replica

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// WatchStart is where a watch without a resume token begins.
type WatchStart int

const (
	// WatchFromNow: changes made durable here after the watch starts.
	WatchFromNow WatchStart = iota
	// WatchWithState: the current live keys first (one snapshot), then
	// every change after that snapshot.
	WatchWithState
)

// WatchEvent is one write's effect on the watched keys, or with State one
// key's current value.
type WatchEvent struct {
	Changes []causal.Op // the write's ops in the range, in key order
	Version causal.Version
	State   bool
	Token   string // resumes after this event; empty on state events
}

// WatchMessage is what a watch sends at once: events, or none (progress),
// and the token after them.
type WatchMessage struct {
	Events []WatchEvent
	Token  string
}

// WatchOptions are a watch's optional parts.
type WatchOptions struct {
	Token    string // resume after this causal token; "" uses Start
	Start    WatchStart
	KeysOnly bool
}

// feedReadEntries and feedReadBytes bound one read of the feed.
const (
	feedReadEntries = 256
	feedReadBytes   = 1 << 20
	// progressEntries: a watcher that has caught up is sent a progress
	// message after this many entries outside its keys, and whenever the
	// feed goes idle, so a resume need not step over them again.
	progressEntries = 1000
	// stateBatch is the state events sent in one message.
	stateBatch = 100
)

// Watch streams the changes to r (its first message, a progress message
// with the starting token or the end of the state, says the watch is
// established), starting after o.Token (or as o.Start
// says), until ctx ends or an error ends the stream: causal.ErrFeedTruncated
// (failed_precondition: the token is older than the feed), resource
// exhausted (the consumer is slow; see FeedConfig.WatchBuffer), or
// unavailable when the node shuts down. Every error that ends a started
// stream carries the token after the last message sent (a
// v1.WatchResumeToken detail). send is called from one goroutine.
//
// The feed is read through causal.FeedCursor, whose rules make the
// delivered sequence, across resumes in any region, a linear extension of
// happens-before on the watched keys, without gap or repeat.
func (n *Node) Watch(ctx context.Context, r KeyRange, o WatchOptions, send func(WatchMessage) error) error {
	if err := r.validate(); err != nil {
		return err
	}
	if _, err := n.clientRefusal(); err != nil {
		return err
	}
	if !n.feed.admit(n.cfg.Feed.MaxWatchers) {
		return api.Errorf(api.ErrResourceExhausted, "this node serves %d watches already (the limit); close unused ones or watch on another node", n.cfg.Feed.MaxWatchers)
	}
	defer n.feed.leave()

	tok, err := n.decodeToken(o.Token)
	if err != nil {
		return err
	}
	tok.Cluster = n.cluster
	// A watch from now (or after the current state) starts caught up; a
	// resumed one is live once it has read its way to the head.
	w := &watcher{n: n, r: r, keysOnly: o.KeysOnly, seen: tok.Seen, startLive: o.Token == "",
		queue: make(chan queued, n.cfg.Feed.WatchBuffer), hubIndex: -1, hubExit: make(chan hubExit, 1)}
	var resume clocks.Vector
	switch {
	case o.Token != "":
		resume = tok.Vector
	case o.Start == WatchWithState:
		snap := n.openScanSnapshot()
		err := n.sendState(ctx, snap, r, o.KeysOnly, &tok, send)
		snap.view.Close()
		if err != nil {
			return err
		}
		resume = tok.Vector
	default:
		resume, _ = n.durableVector()
	}
	_, _, floor, _ := n.feed.state()
	if w.cursor, err = causal.NewFeedCursor(resume, floor); err != nil {
		return n.feedTruncatedError(err, floor)
	}
	w.lastSent.Store(w.token())
	if o.Token != "" || o.Start != WatchWithState {
		// The first message goes out at once, with the starting token: the
		// client knows the watch is established before any change arrives.
		if err := send(WatchMessage{Token: *w.lastSent.Load()}); err != nil {
			return err
		}
	}
	return w.run(ctx, send)
}

// sendState sends the live keys of r in snap as state events, then a
// progress message whose token covers the snapshot; tok becomes it.
func (n *Node) sendState(ctx context.Context, snap *scanSnapshot, r KeyRange, keysOnly bool, tok *clocks.Token, send func(WatchMessage) error) error {
	if err := n.awaitCausalPast(ctx, snap.vector); err != nil {
		return err
	}
	after := ""
	for {
		keys, more, err := snap.view.scanRange(r, after, ScanOptions{Limit: stateBatch, KeysOnly: keysOnly})
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			m := WatchMessage{Events: make([]WatchEvent, len(keys))}
			for i, k := range keys {
				m.Events[i] = WatchEvent{State: true, Version: k.Version,
					Changes: []causal.Op{{Key: k.Key, Kind: causal.KindValue, Value: k.Version.Value}}}
			}
			if err := send(m); err != nil {
				return err
			}
			after = keys[len(keys)-1].Key
		}
		if !more {
			break
		}
	}
	tok.Vector = tok.Vector.Merge(snap.vector)
	if tok.Seen.Less(snap.seen) {
		tok.Seen = snap.seen
	}
	return send(WatchMessage{Token: tok.Encode()})
}

// watcher is one Watch stream: a reader goroutine follows the feed and
// queues messages; the caller's goroutine sends them.
type watcher struct {
	n        *Node
	r        KeyRange
	keysOnly bool
	cursor   *causal.FeedCursor
	seen     clocks.Timestamp // greatest timestamp stepped over
	readBuf  []*feedEntry     // reused between reads of the tail
	// startLive: the watch began at the head of the feed (see read).
	startLive bool

	queue    chan queued            // messages for the sender, bounded by WatchBuffer
	queued   atomic.Int64           // bytes of values queued
	events   atomic.Int64           // events queued
	lastSent atomic.Pointer[string] // token after the last message sent

	// While the hub (watch_hub.go) dispatches to the watcher, the reader
	// sleeps until hubExit; the hub owns the fields below, under its lock.
	hubIndex      int          // position in the hub's synced list; -1 if not there
	hubExit       chan hubExit // capacity 1
	hubFailed     bool         // a message did not fit the queue
	sinceProgress int          // entries without an event since the last message
}

// tokenAfter is the token after entry e: the one all watchers share when
// the cursor has seen exactly the region's applied vector after e (and no
// later timestamp), else the watcher's own.
func (w *watcher) tokenAfter(e *feedEntry) string {
	if e.shared != nil && w.cursor.Aligned() && w.seen == e.seen {
		return e.tokenFor(w.n.cluster)
	}
	return *w.token()
}

func (w *watcher) token() *string {
	t := clocks.Token{Cluster: w.n.cluster, Vector: w.cursor.Token(), Seen: w.seen}
	s := t.Encode()
	return &s
}

// errSlowConsumer ends the reader when a caught-up watcher's queue is full.
var errSlowConsumer = errors.New("slow consumer")

type queued struct {
	m     WatchMessage
	bytes int64
}

func (q *queued) events() int64 { return int64(len(q.m.Events)) }

func (w *watcher) run(ctx context.Context, send func(WatchMessage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	queue := w.queue
	readerDone := make(chan error, 1)
	readerExited := make(chan struct{})
	go func() {
		defer close(readerExited)
		err := w.read(ctx)
		w.n.hub.leave(w)
		if w.n.onWatchReaderExit != nil {
			w.n.onWatchReaderExit(err)
		}
		readerDone <- err
	}()
	// The reader reads the store: it must be gone before the handler
	// returns (and the node may close the store).
	defer func() { cancel(); <-readerExited }()

	for {
		// An ended reader wins over queued messages: a slow consumer's
		// stream ends now, with the token of what it was actually sent.
		select {
		case err := <-readerDone:
			return w.endError(err)
		default:
		}
		select {
		case err := <-readerDone:
			return w.endError(err)
		case q := <-queue:
			if err := send(q.m); err != nil {
				w.n.metrics.watchEnded.WithLabelValues("client").Inc()
				return err
			}
			w.n.metrics.watchEvents.Add(float64(len(q.m.Events)))
			w.queued.Add(-q.bytes)
			w.events.Add(-q.events())
			w.lastSent.Store(&q.m.Token)
		}
	}
}

// endError is the error that ends a stream, with the resume token.
func (w *watcher) endError(err error) error {
	w.n.metrics.watchEnded.WithLabelValues(endReason(err)).Inc()
	detail := &v1.WatchResumeToken{ResumeToken: *w.lastSent.Load()}
	switch {
	case errors.Is(err, errSlowConsumer):
		return api.WithDetails(api.Errorf(api.ErrResourceExhausted,
			"the watch was read too slowly: more than %d events (or %d bytes of values) waited for the client; resume from the token of the last event received (also in this error's WatchResumeToken detail)",
			w.n.cfg.Feed.WatchBuffer, w.n.cfg.Feed.WatchBufferBytes), detail)
	case errors.Is(err, errNodeStopping):
		return api.WithDetails(api.Errorf(api.ErrUnavailable,
			"the node is shutting down; resume the watch on another node or later, from the token of the last event received"), detail)
	}
	return api.WithDetails(err, detail)
}

var errNodeStopping = errors.New("node stopping")

// endReason is the reason label of causeway_watch_streams_ended_total.
func endReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "client"
	case errors.Is(err, errSlowConsumer):
		return "slow_consumer"
	case errors.Is(err, errNodeStopping):
		return "node_stopping"
	case api.Code(err) == connect.CodeFailedPrecondition:
		return "feed_truncated"
	}
	return "error"
}

// read follows the feed from the cursor, queueing a message per event
// (and progress messages), until ctx ends or an error.
func (w *watcher) read(ctx context.Context) error {
	n := w.n
	queue := w.queue
	pos := uint64(0) // the next feed position to read; 0: find it
	sinceProgress := 0
	var last *feedEntry // the last entry stepped over
	// live: the reader has caught up with the feed once. From then on the
	// consumer must keep up with the writes (a full queue ends the
	// stream); before, the reader reads history at the consumer's pace.
	live := w.startLive
	for {
		durable, floorPos, floor, changed := n.feed.state()
		if err := w.cursor.CheckFloor(floor); err != nil {
			return n.feedTruncatedError(err, floor)
		}
		if pos == 0 {
			var err error
			if pos, err = w.start(floorPos, durable); err != nil {
				return err
			}
		}
		pos = max(pos, floorPos+1) // below the floor: covered by it, hence seen
		if pos > durable {
			live = true
			if sinceProgress > 0 {
				if !w.push(ctx, queue, WatchMessage{Token: *w.token()}, 0, true) {
					return w.pushFailed(ctx)
				}
				sinceProgress = 0
			}
			// Caught up and aligned with the region: the hub dispatches
			// to the watcher until it hands it back (watch_hub.go).
			if last != nil && last.pos+1 == pos && w.alignedTo(last) && n.hub.join(w, last, floorPos) {
				x, err := w.parked(ctx)
				if err != nil {
					return err
				}
				if w.cursor, err = causal.NewFeedCursor(x.at.applied, clocks.Vector{}); err != nil {
					return err
				}
				w.seen = x.at.seen
				pos, last, sinceProgress = x.at.pos+1, x.at, x.sinceProgress
				continue
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-n.stop:
				return errNodeStopping
			case <-n.repl.ctx.Done():
				return errNodeStopping
			case <-changed:
			}
			continue
		}
		es, inTail := n.feed.tail.read(w.readBuf[:0], pos, durable, feedReadEntries)
		w.readBuf = es[:0]
		if !inTail {
			var err error
			if es, err = n.store.feedRange(pos, durable, feedReadEntries, feedReadBytes); err != nil {
				return err
			}
		}
		if len(es) == 0 || es[0].pos != pos {
			// Truncated meanwhile: the next state() sees the new floor.
			if _, newFloorPos, _, _ := n.feed.state(); newFloorPos < pos {
				return api.Errorf(api.ErrUnavailable, "the change feed lacks entry %d; see the node's log", pos)
			}
			continue
		}
		caughtUp := es[len(es)-1].pos == durable
		if !live {
			caughtUp = false // progress messages are for a live watcher
		}
		// Events of one read go out in messages of up to maxBatch, so a
		// burst costs one queue operation and one send per batch.
		maxBatch := min(64, w.n.cfg.Feed.WatchBuffer)
		var batch []WatchEvent
		var batchBytes int64
		flush := func() bool {
			if len(batch) == 0 {
				return true
			}
			m := WatchMessage{Events: batch, Token: batch[len(batch)-1].Token}
			ok := w.push(ctx, queue, m, batchBytes, live)
			batch, batchBytes = nil, 0
			return ok
		}
		for _, e := range es {
			last = e
			deliver := w.cursor.Step(e.write.Origin(), e.write.Seq, e.applied)
			if w.seen.Less(e.write.Timestamp) {
				w.seen = e.write.Timestamp
			}
			if w.seen.Less(e.seen) {
				w.seen = e.seen
			}
			var ev WatchEvent
			var size int64
			if deliver {
				ev, size = w.event(e.write)
			}
			if len(ev.Changes) == 0 {
				sinceProgress++
				if caughtUp && sinceProgress >= progressEntries {
					if !flush() || !w.push(ctx, queue, WatchMessage{Token: *w.token()}, 0, true) {
						return w.pushFailed(ctx)
					}
					sinceProgress = 0
				}
				continue
			}
			ev.Token = w.tokenAfter(e)
			if batch == nil {
				batch = make([]WatchEvent, 0, min(maxBatch, len(es)))
			}
			batch = append(batch, ev)
			batchBytes += size
			sinceProgress = 0
			if len(batch) >= maxBatch && !flush() {
				return w.pushFailed(ctx)
			}
		}
		if !flush() {
			return w.pushFailed(ctx)
		}
		pos = es[len(es)-1].pos + 1
	}
}

// alignedTo reports whether the watcher's token is exactly the shared
// token after e, the last entry it stepped over.
func (w *watcher) alignedTo(e *feedEntry) bool {
	return e.shared != nil && w.cursor.Aligned() && w.seen == e.seen
}

// parked waits while the hub dispatches to the watcher: until the hub
// hands it back (after the entry x.at), or ends it.
func (w *watcher) parked(ctx context.Context) (hubExit, error) {
	select {
	case x := <-w.hubExit:
		return x, x.err
	case <-ctx.Done():
		return hubExit{}, ctx.Err()
	case <-w.n.stop:
		return hubExit{}, errNodeStopping
	case <-w.n.repl.ctx.Done():
		return hubExit{}, errNodeStopping
	}
}

// pushFailed is why a message could not be queued.
func (w *watcher) pushFailed(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return errSlowConsumer
}

// start finds the first feed position the cursor has not fully seen: the
// applied vectors along the feed only grow, so the last entry whose vector
// the cursor covers is found by binary search, and reading starts after it.
func (w *watcher) start(floorPos, durable uint64) (uint64, error) {
	lo, hi := floorPos, durable // invariant: entries <= lo are seen; answer in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		vec, found, err := w.n.store.feedAppliedAt(mid)
		if err != nil {
			return 0, err
		}
		if found && w.cursor.Skippable(vec) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo + 1, nil
}

// event is w's effect on the watched keys (no changes if none), and the
// bytes of values it carries.
func (w *watcher) event(lw *causal.Write) (WatchEvent, int64) {
	ev := WatchEvent{Version: versionOfWrite(lw)}
	var size int64
	if w.sharesOps(lw) {
		// Every op is in range, in key order, values wanted: the write's
		// own ops are the event's (read-only; shared by every watcher).
		for _, op := range lw.Ops {
			size += int64(len(op.Value))
		}
		ev.Changes = lw.Ops
		return ev, size
	}
	for _, op := range lw.Ops {
		if !w.r.Contains(op.Key) {
			continue
		}
		if w.keysOnly {
			op.Value = nil
		}
		size += int64(len(op.Value))
		ev.Changes = append(ev.Changes, op)
	}
	slices.SortFunc(ev.Changes, func(a, b causal.Op) int { return strings.Compare(a.Key, b.Key) })
	return ev, size
}

// sharesOps: lw's ops can be the event's as they are.
func (w *watcher) sharesOps(lw *causal.Write) bool {
	if w.keysOnly {
		return false
	}
	for i, op := range lw.Ops {
		if !w.r.Contains(op.Key) || i > 0 && lw.Ops[i-1].Key >= op.Key {
			return false
		}
	}
	return true
}

// push queues m. A watcher that has caught up with the feed (live) must
// keep up: if its queue is full it is a slow consumer (false). While it
// catches up with history, the reader waits for room instead. A burst of
// more than FeedConfig.WatchBuffer writes faster than the client reads
// them therefore ends a live watch too, as in etcd: it resumes from its
// token, reading the burst as history.
func (w *watcher) push(ctx context.Context, queue chan<- queued, m WatchMessage, size int64, live bool) bool {
	if live {
		return w.pushLive(m, size)
	}
	q := queued{m: m, bytes: size}
	// Count first: the sender may take the message at once.
	w.queued.Add(size)
	w.events.Add(q.events())
	select {
	case queue <- q:
		return true
	case <-ctx.Done():
		return false
	}
}

// pushLive queues m for a watcher that has caught up, or reports a slow
// consumer (false).
func (w *watcher) pushLive(m WatchMessage, size int64) bool {
	q := queued{m: m, bytes: size}
	if w.events.Load() > 0 {
		// Something is still queued: the consumer is behind. Past either
		// bound it is a slow consumer. (An empty queue takes any batch,
		// so no bound below a batch can stop a watch for good.)
		if w.events.Load()+q.events() > int64(w.n.cfg.Feed.WatchBuffer) ||
			w.queued.Load()+size > int64(w.n.cfg.Feed.WatchBufferBytes) {
			return false
		}
	}
	// Count first: the sender may take the message at once.
	w.queued.Add(size)
	w.events.Add(q.events())
	select {
	case w.queue <- q:
		return true
	default:
		w.queued.Add(-size)
		w.events.Add(-q.events())
		return false
	}
}

// feedTruncatedError carries the floor as a FeedTruncated detail.
func (n *Node) feedTruncatedError(err error, floor clocks.Vector) error {
	if !errors.Is(err, causal.ErrFeedTruncated) {
		return err
	}
	return api.WithDetails(api.Errorf(api.ErrFailedPrecondition,
		"%v: this region keeps changes for %s (at most %d); read the keys again with Scan and watch from the scan's causal token",
		err, n.cfg.Feed.Retention, n.cfg.Feed.MaxEntries), &v1.FeedTruncated{RetainedFrom: floor})
}
