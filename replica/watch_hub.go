package replica

import (
	"sync"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
)

// watchHub is the node's one dispatcher of live watchers, as etcd's
// watchableStore keeps a "synced" group: a watcher that has caught up with
// the feed, and whose token is exactly the region's applied vector after
// the last entry (the usual case for a watcher in its own region), hands
// itself over; its reader goroutine then sleeps. For every new feed entry
// the hub builds the event and its token once and gives the same immutable
// message to every synced watcher whose keys the write touches, through
// the watcher's bounded queue; a write costs one wake-up of the hub and
// one of each interested watcher's sender, instead of a reader goroutine
// per watcher stepping its own cursor.
//
// Guarantees are the reader's (watch.go): every synced watcher has stepped
// through exactly the entry h.last, with its cursor aligned to that entry's
// applied vector and its timestamp equal to that entry's; an entry whose
// applied vector grows from h.last's by its own write, and whose clock is
// not behind, leaves every synced watcher in the same state, so each is
// given the event (in range) with the entry's shared token — what its own
// causal.FeedCursor would have given it. Any other entry, a change of the
// feed's floor (truncation, snapshot merge), an entry no longer in the
// in-memory tail, or a full queue (slow consumer) hands the watchers back
// to their readers, at h.last, which continue with their cursors.
//
// Measured with BenchmarkWatchPut (64 writers, 100 watchers of the
// written keys, medians of 5 interleaved runs on 2 shared cores): with a
// reader per watcher (the "readers" variant), CPU per put +83% and Put
// throughput -28% against no watcher, most of it in waking a reader and
// a sender per watcher per group commit; with the hub, +7% and -4%.
type watchHub struct {
	feed    *changeFeed
	cluster uuid.UUID
	// maxBatch is the most events in one message.
	maxBatch int
	// off leaves every watcher with its reader: BenchmarkWatchPut's
	// baseline, the fan-out before the hub. Set before any watch starts.
	off bool

	// joined is signalled when a watcher joins an empty hub: an idle hub
	// waits for it, not for every group commit.
	joined chan struct{}

	mu       sync.Mutex
	synced   []*watcher // every one has stepped through last
	last     *feedEntry // nil when synced is empty
	floorPos uint64     // the floor when last was dispatched
	buf      []*feedEntry
	round    []hubEvent // the current round's entries, built once
	rounds   uint64     // rounds dispatched, for benchmarks
}

// hubEvent is one entry of a round as every watcher of all its keys sees it.
type hubEvent struct {
	e     *feedEntry
	ev    WatchEvent // Changes nil when the write's ops cannot be shared
	bytes int64
}

// hubExit hands a watcher back to its reader: it has stepped through at
// (applied vector and timestamp), or err ends its stream.
type hubExit struct {
	at            *feedEntry
	sinceProgress int
	err           error
}

func newWatchHub(feed *changeFeed, cluster uuid.UUID, watchBuffer int) *watchHub {
	return &watchHub{feed: feed, cluster: cluster, maxBatch: min(64, watchBuffer), joined: make(chan struct{}, 1)}
}

// join hands w over if it has stepped through exactly the entry the hub
// is at (or the hub has no watcher, and starts from w's entry); false
// leaves w with its reader. w's cursor must be aligned to at.applied and
// w.seen equal at.seen, and w must have checked its cursor against the
// floor at checkedFloor: a floor that moved since (a snapshot merge
// brought writes that have no entries) is the reader's to judge.
func (h *watchHub) join(w *watcher, at *feedEntry, checkedFloor uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, floorPos, _, _ := h.feed.state()
	switch {
	case h.off || floorPos != checkedFloor:
		return false
	case h.last == nil:
		h.last, h.floorPos = at, floorPos
		select {
		case h.joined <- struct{}{}:
		default: // signalled already
		}
	case h.last.pos != at.pos || h.floorPos != floorPos:
		return false
	}
	w.hubIndex, w.sinceProgress = len(h.synced), 0 // the reader sent its progress
	h.synced = append(h.synced, w)
	return true
}

// syncedCount is the number of watchers the hub dispatches to.
func (h *watchHub) syncedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.synced)
}

// leave removes w (its stream ended) if it is synced.
func (h *watchHub) leave(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(w)
}

func (h *watchHub) removeLocked(w *watcher) {
	i := w.hubIndex
	if i < 0 || i >= len(h.synced) || h.synced[i] != w {
		return
	}
	end := len(h.synced) - 1
	h.synced[i] = h.synced[end]
	h.synced[i].hubIndex = i
	h.synced[end] = nil
	h.synced = h.synced[:end]
	w.hubIndex = -1
	if len(h.synced) == 0 {
		h.last = nil
	}
}

// release hands w back to its reader with err (nil: continue reading
// after h.last).
func (h *watchHub) releaseLocked(w *watcher, err error) {
	if w.hubFailed {
		err, w.hubFailed = errSlowConsumer, false
	}
	x := hubExit{at: h.last, sinceProgress: w.sinceProgress, err: err}
	h.removeLocked(w)
	w.hubExit <- x // capacity 1, and a watcher is released once per join
}

func (h *watchHub) releaseAllLocked() {
	for len(h.synced) > 0 {
		h.releaseLocked(h.synced[len(h.synced)-1], nil)
	}
}

// run dispatches until stop closes (the synced watchers' readers see the
// node stopping too).
func (h *watchHub) run(stop <-chan struct{}) {
	for {
		durable, floorPos, _, changed := h.feed.state()
		if h.dispatch(durable, floorPos) == 0 {
			changed = nil // idle: wait for a watcher to join
		}
		select {
		case <-stop:
			return
		case <-changed:
		case <-h.joined:
		}
	}
}

// dispatch gives the synced watchers the entries up to durable, and says
// how many watchers it dispatches to then.
func (h *watchHub) dispatch(durable, floorPos uint64) (synced int) {
	h.mu.Lock()
	defer func() {
		synced = len(h.synced)
		h.mu.Unlock()
	}()
	for h.last != nil && h.last.pos < durable {
		if floorPos != h.floorPos {
			h.releaseAllLocked() // the readers check the new floor
			return
		}
		es, ok := h.feed.tail.read(h.buf[:0], h.last.pos+1, durable, feedReadEntries)
		h.buf = es[:0]
		if !ok || len(es) == 0 || es[0].pos != h.last.pos+1 {
			h.releaseAllLocked() // the readers read the store
			return
		}
		// The entries that keep every synced watcher aligned; the rest
		// are left to the readers.
		n := 0
		for prev := h.last; n < len(es) && keepsAligned(prev, es[n]); n++ {
			prev = es[n]
		}
		h.dispatchRound(es[:n])
		if n < len(es) {
			h.releaseAllLocked()
			return
		}
	}
	for _, w := range h.synced {
		if w.sinceProgress > 0 {
			// Caught up: a progress message, so a resume need not step
			// over what the watcher skipped again.
			if !h.push(w, WatchMessage{Token: h.last.tokenFor(h.cluster)}, 0) {
				continue
			}
			w.sinceProgress = 0
		}
	}
	h.releaseSlowLocked()
	return
}

// keepsAligned reports whether a watcher aligned to prev (cursor at
// prev.applied, timestamp prev.seen) stays aligned over e, delivering it:
// the causal.FeedCursor.Step and timestamp rules of watcher.read, for the
// one case the hub handles.
func keepsAligned(prev, e *feedEntry) bool {
	origin, seq := e.write.Origin(), e.write.Seq
	return e.pos == prev.pos+1 && e.shared != nil &&
		seq > prev.applied.Get(origin) && e.applied.Get(origin) >= seq && e.applied.Dominates(prev.applied) &&
		!e.seen.Less(e.write.Timestamp) && !e.seen.Less(prev.seen)
}

// dispatchRound gives es (each keeping the watchers aligned) to every
// synced watcher.
func (h *watchHub) dispatchRound(es []*feedEntry) {
	if len(es) == 0 {
		return
	}
	h.round = h.round[:0]
	h.rounds++
	for _, e := range es {
		he := hubEvent{e: e}
		if sortedOps(e.write.Ops) {
			he.ev = WatchEvent{Changes: e.write.Ops, Version: versionOfWrite(e.write), Token: e.tokenFor(h.cluster)}
			for _, op := range e.write.Ops {
				he.bytes += int64(len(op.Value))
			}
		}
		h.round = append(h.round, he)
	}
	h.last = es[len(es)-1]
	// Watchers that take every event of the round whole share its
	// messages, built on first use.
	var shared []queued
	for _, w := range h.synced {
		if w.hubFailed {
			continue
		}
		if w.takesWhole(h.round) {
			if shared == nil {
				shared = h.messages(h.round)
			}
			for _, q := range shared {
				if !h.push(w, q.m, q.bytes) {
					break
				}
			}
			w.sinceProgress = 0
			continue
		}
		h.dispatchOwn(w)
	}
}

// dispatchOwn gives w the round's events on its keys, built for it.
func (h *watchHub) dispatchOwn(w *watcher) {
	var batch []WatchEvent
	var bytes int64
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		ok := h.push(w, WatchMessage{Events: batch, Token: batch[len(batch)-1].Token}, bytes)
		batch, bytes = nil, 0
		return ok
	}
	for i := range h.round {
		he := &h.round[i]
		ev, size := w.event(he.e.write)
		if len(ev.Changes) == 0 {
			w.sinceProgress++
			if w.sinceProgress >= progressEntries {
				if !flush() || !h.push(w, WatchMessage{Token: he.e.tokenFor(h.cluster)}, 0) {
					return
				}
				w.sinceProgress = 0
			}
			continue
		}
		ev.Token = he.e.tokenFor(h.cluster)
		batch = append(batch, ev)
		bytes += size
		w.sinceProgress = 0
		if len(batch) >= h.maxBatch && !flush() {
			return
		}
	}
	flush()
}

// messages are the round's events in messages of at most maxBatch.
func (h *watchHub) messages(round []hubEvent) []queued {
	var out []queued
	for chunk := 0; chunk < len(round); chunk += h.maxBatch {
		part := round[chunk:min(chunk+h.maxBatch, len(round))]
		q := queued{m: WatchMessage{Events: make([]WatchEvent, len(part))}}
		for i := range part {
			q.m.Events[i] = part[i].ev
			q.bytes += part[i].bytes
		}
		q.m.Token = q.m.Events[len(part)-1].Token
		out = append(out, q)
	}
	return out
}

// push queues m for w; a full queue marks w a slow consumer, released
// at the end of the round.
func (h *watchHub) push(w *watcher, m WatchMessage, bytes int64) bool {
	if w.hubFailed {
		return false
	}
	if !w.pushLive(m, bytes) {
		w.hubFailed = true
		return false
	}
	return true
}

func (h *watchHub) releaseSlowLocked() {
	for i := 0; i < len(h.synced); {
		if w := h.synced[i]; w.hubFailed {
			h.releaseLocked(w, errSlowConsumer)
			continue // the last watcher moved to i
		}
		i++
	}
}

// takesWhole reports whether every event of the round is w's whole: all
// of each write's ops are in w's keys, in key order, with values.
func (w *watcher) takesWhole(round []hubEvent) bool {
	if w.keysOnly {
		return false
	}
	for i := range round {
		if round[i].ev.Changes == nil {
			return false
		}
		for _, op := range round[i].e.write.Ops {
			if !w.r.Contains(op.Key) {
				return false
			}
		}
	}
	return true
}

func sortedOps(ops []causal.Op) bool {
	for i := 1; i < len(ops); i++ {
		if ops[i-1].Key >= ops[i].Key {
			return false
		}
	}
	return len(ops) > 0
}

// versionOfWrite is the version of an event of lw.
func versionOfWrite(lw *causal.Write) causal.Version {
	return causal.Version{Timestamp: lw.Timestamp, Seq: lw.Seq, Vector: lw.Vector}
}
