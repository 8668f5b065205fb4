package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// The change feed: every write this region applies (its own and other
// regions'), in apply order, each with the region's applied vector right
// after it. Watch (watch.go) reads it through causal.FeedCursor. It lives
// in the store, in the same batch as the write it records, so a watcher
// never sees a write the data lacks nor misses one the data holds, also
// across a crash.
//
// Positions number the entries 1, 2, 3, ... in apply order (WAL order:
// they are assigned under Node.mu, where batches are enqueued). They are
// this node's alone; what a watcher carries between regions is a vector.
//
// Retention: entries older than FeedConfig.Retention (by their write's
// timestamp) or beyond the newest FeedConfig.MaxEntries are deleted in the
// background; the floor record keeps the applied vector at the newest
// deleted entry, so a resume token that does not cover it is refused
// (causal.ErrFeedTruncated) instead of silently skipping writes. Merging a
// snapshot applies writes that have no entries: the feed is emptied and
// the floor set to the merged vector.

// FeedConfig bounds the change feed and its watchers (Config.Feed).
type FeedConfig struct {
	// Retention is how long a write stays in the feed, so that a watcher
	// can resume from a token that old. Default 1h.
	Retention time.Duration
	// MaxEntries bounds the writes retained, whatever their age. Default
	// 1,000,000 (at 100-byte values about 250 MB of disk).
	MaxEntries int
	// MaxWatchers bounds the Watch streams a node serves at once; beyond it
	// Watch fails with resource_exhausted. Default 1024.
	MaxWatchers int
	// WatchBuffer bounds the events queued for one watcher that has caught
	// up with the feed. A watcher that reads too slowly for the writes it
	// watches fills it, and its stream ends with resource_exhausted and
	// the token of the last event sent (it resumes from there). Default
	// 1024 events; with WatchBufferBytes, the most memory a slow consumer
	// holds.
	WatchBuffer int
	// WatchBufferBytes bounds the values queued for one watcher. Default
	// 8 MiB.
	WatchBufferBytes int
}

// Feed defaults.
const (
	DefaultFeedRetention    = time.Hour
	DefaultFeedMaxEntries   = 1_000_000
	DefaultMaxWatchers      = 1024
	DefaultWatchBuffer      = 1024
	DefaultWatchBufferBytes = 8 << 20
)

func (c *FeedConfig) ensureDefaults() {
	if c.Retention <= 0 {
		c.Retention = DefaultFeedRetention
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultFeedMaxEntries
	}
	if c.MaxWatchers <= 0 {
		c.MaxWatchers = DefaultMaxWatchers
	}
	if c.WatchBuffer <= 0 {
		c.WatchBuffer = DefaultWatchBuffer
	}
	if c.WatchBufferBytes <= 0 {
		c.WatchBufferBytes = DefaultWatchBufferBytes
	}
}

// spaceFeed holds the change feed: 'c' pos(8) -> feed entry.
const spaceFeed = 'c'

// metaFeedFloor records the newest deleted feed position and the applied
// vector at it.
var metaFeedFloor = []byte("m/feed-floor")

func feedKey(pos uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{spaceFeed}, pos)
}

// feedEntry is one write of the feed with the applied vector after it.
type feedEntry struct {
	pos     uint64
	applied clocks.Vector // never mutated: watchers share it
	write   *causal.Write
	size    int // stored bytes, for batching reads

	// Entries of the in-memory tail (feed_tail.go) also carry the
	// region's clock when the write was staged (at least the timestamp
	// of every write applied up to it) and a token shared by watchers.
	seen   clocks.Timestamp
	shared *sharedToken
}

// encodeFeedEntry: [format][applied vector][write frame][crc32c].
func encodeFeedEntry(dst []byte, applied clocks.Vector, w *causal.Write) []byte {
	start := len(dst)
	dst = append(dst, recordFormat)
	dst = clocks.AppendVector(dst, applied)
	dst = encodeWrite(dst, w)
	return sealed(dst, start)
}

// decodeFeedEntry decodes the applied vector, and the write too unless
// vectorOnly.
func decodeFeedEntry(src []byte, vectorOnly bool) (clocks.Vector, *causal.Write, error) {
	body, err := unseal(src, "feed entry")
	if err != nil {
		return nil, nil, err
	}
	vec, rest, err := clocks.ReadVector(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: feed entry: %w", ErrCorruptRecord, err)
	}
	if vectorOnly {
		return vec, nil, nil
	}
	w, err := decodeWrite(rest)
	return vec, w, err
}

func encodeFeedFloor(pos uint64, vec clocks.Vector) []byte {
	dst := []byte{recordFormat}
	dst = binary.AppendUvarint(dst, pos)
	dst = clocks.AppendVector(dst, vec)
	return sealed(dst, 0)
}

func decodeFeedFloor(src []byte) (uint64, clocks.Vector, error) {
	body, err := unseal(src, "feed floor")
	if err != nil {
		return 0, nil, err
	}
	pos, n := binary.Uvarint(body)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: feed floor position", ErrCorruptRecord)
	}
	vec, rest, err := clocks.ReadVector(body[n:])
	if err != nil || len(rest) != 0 {
		return 0, nil, fmt.Errorf("%w: feed floor vector", ErrCorruptRecord)
	}
	return pos, vec, nil
}

// putFeed records w at pos with the applied vector after it.
func (w *writeBatch) putFeed(pos uint64, applied clocks.Vector, lw *causal.Write) {
	w.key = append(w.key[:0], spaceFeed)
	w.key = binary.BigEndian.AppendUint64(w.key, pos)
	w.buf = encodeFeedEntry(w.buf[:0], applied, lw)
	_ = w.b.Set(w.key, w.buf, nil)
}

// resetFeed deletes every feed entry up to pos and records the floor.
func (w *writeBatch) resetFeed(pos uint64, floor clocks.Vector) {
	_ = w.b.DeleteRange(feedKey(0), feedKey(pos+1), nil)
	_ = w.b.Set(metaFeedFloor, encodeFeedFloor(pos, floor), nil)
}

// feedBounds reads the floor record and the newest entry's position.
func (s *Store) feedBounds() (floorPos uint64, floor clocks.Vector, last uint64, err error) {
	raw, found, err := s.meta(metaFeedFloor)
	if err != nil {
		return 0, nil, 0, err
	}
	floor = clocks.Vector{}
	if found {
		if floorPos, floor, err = decodeFeedFloor(raw); err != nil {
			return 0, nil, 0, err
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceFeed}, UpperBound: []byte{spaceFeed + 1}})
	if err != nil {
		return 0, nil, 0, err
	}
	defer it.Close()
	last = floorPos
	if it.Last() {
		last = max(last, binary.BigEndian.Uint64(it.Key()[1:]))
	}
	return floorPos, floor, last, it.Error()
}

// feedAppliedAt is the applied vector stored with the entry at pos;
// found is false when the entry is not (or no longer) there.
func (s *Store) feedAppliedAt(pos uint64) (clocks.Vector, bool, error) {
	raw, closer, err := s.db.Get(feedKey(pos))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	vec, _, err := decodeFeedEntry(raw, true)
	return vec, err == nil, err
}

// feedRange reads the entries from..to (inclusive) in order, stopping
// after maxEntries or maxBytes. An entry missing at the start or in the
// middle (deleted by retention meanwhile) ends the read early: the caller
// compares the first position with what it asked.
func (s *Store) feedRange(from, to uint64, maxEntries, maxBytes int) ([]*feedEntry, error) {
	if from > to {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: feedKey(from), UpperBound: feedKey(to + 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*feedEntry
	size := 0
	next := from
	for ok := it.First(); ok && len(out) < maxEntries && size < maxBytes; ok = it.Next() {
		pos := binary.BigEndian.Uint64(it.Key()[1:])
		if pos != next {
			break
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		vec, w, err := decodeFeedEntry(raw, false)
		if err != nil {
			return nil, fmt.Errorf("feed entry %d: %w", pos, err)
		}
		out = append(out, &feedEntry{pos: pos, applied: vec, write: w, size: len(raw)})
		size += len(raw)
		next++
	}
	return out, it.Error()
}

// feedTruncate deletes the entries up to pos and records the floor.
func (s *Store) feedTruncate(pos uint64, floor clocks.Vector) error {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(feedKey(0), feedKey(pos+1), nil)
	_ = b.Set(metaFeedFloor, encodeFeedFloor(pos, floor), nil)
	return b.Commit(pebble.Sync)
}

// changeFeed is the node's in-memory view of its feed: the next position
// to assign (under Node.mu), the newest durable one, and the floor.
// Watchers read the latter without a lock (many watchers look at every
// group commit) and wait on its changed channel.
type changeFeed struct {
	next uint64 // guarded by Node.mu

	mu       sync.Mutex // serializes changes of cur; guards watchers
	cur      atomic.Pointer[feedState]
	watchers int

	tail *feedTail // the newest entries, decoded, for live watchers
}

// feedState is replaced, never mutated.
type feedState struct {
	durable, floorPos uint64
	floor             clocks.Vector
	changed           chan struct{} // closed when the state is replaced
}

func newChangeFeed(floorPos uint64, floor clocks.Vector, last uint64) *changeFeed {
	f := &changeFeed{next: last + 1, tail: newFeedTail()}
	f.cur.Store(&feedState{durable: last, floorPos: floorPos, floor: floor, changed: make(chan struct{})})
	return f
}

// stage records w in the batch at the next position, with the applied
// vector after it (which must not be mutated afterwards) and the region's
// clock. Called under Node.mu.
func (f *changeFeed) stage(wb *writeBatch, w *causal.Write, applied clocks.Vector, clock clocks.Timestamp) uint64 {
	pos := f.next
	f.next++
	wb.putFeed(pos, applied, w)
	f.tail.add(&feedEntry{pos: pos, applied: applied, write: w, size: entrySize(w), seen: clock, shared: &sharedToken{}})
	return pos
}

// markDurable makes the entries up to pos visible to watchers (WAL order
// is position order, so all below are durable too).
func (f *changeFeed) markDurable(pos uint64) {
	if f.cur.Load().durable >= pos {
		return // a write that shared the fsync marked it already
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.cur.Load(); pos > old.durable {
		f.cur.Store(&feedState{durable: pos, floorPos: old.floorPos, floor: old.floor, changed: make(chan struct{})})
		close(old.changed)
	}
}

// setFloor records a new floor (after truncation or a snapshot merge).
func (f *changeFeed) setFloor(pos uint64, floor clocks.Vector) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.cur.Load()
	f.cur.Store(&feedState{durable: max(old.durable, pos), floorPos: pos, floor: floor, changed: make(chan struct{})})
	close(old.changed)
}

// state is what a watcher needs to read on: the durable head, the floor
// and a channel closed when either moves.
func (f *changeFeed) state() (durable, floorPos uint64, floor clocks.Vector, changed <-chan struct{}) {
	st := f.cur.Load()
	return st.durable, st.floorPos, st.floor, st.changed
}

// admit counts a new watcher, refusing past limit.
func (f *changeFeed) admit(limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watchers >= limit {
		return false
	}
	f.watchers++
	return true
}

func (f *changeFeed) watcherCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchers
}

func (f *changeFeed) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watchers--
}

// stageRemoteFeed records remote writes released together, in order, each
// with the applied vector right after it. after is the applied vector once
// all of them are applied. Called under Node.mu.
func (n *Node) stageRemoteFeed(wb *writeBatch, ready []*causal.Write, after clocks.Vector) uint64 {
	cur := after.Clone()
	for i := len(ready) - 1; i >= 0; i-- { // rewind to before the first of each origin
		cur[ready[i].Origin()] = ready[i].Seq - 1
	}
	var pos uint64
	clock := n.clock.Last()
	for _, w := range ready {
		cur[w.Origin()] = w.Seq
		pos = n.feed.stage(wb, w, cur.Clone(), clock)
	}
	return pos
}

// resetFeedAfterMerge empties the feed once a snapshot is merged: the
// writes it brought have no entries, so a watcher whose token does not
// cover the merged vector must re-read (causal.ErrFeedTruncated). Called
// under Node.mu with the batch that records the merged vector.
func (n *Node) resetFeedAfterMerge(wb *writeBatch, merged clocks.Vector) (pos uint64) {
	pos = n.feed.next - 1
	wb.resetFeed(pos, merged.Clone())
	n.feed.tail.reset()
	return pos
}

// retainFeed deletes feed entries beyond FeedConfig's bounds, every
// feedSweepInterval.
func (n *Node) retainFeed() {
	defer n.background.Done()
	t := time.NewTicker(feedSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if err := n.truncateFeedOnce(); err != nil {
			n.log.Error("truncate change feed", "err", err)
		}
	}
}

// feedSweepInterval is how often the feed's retention is enforced.
const feedSweepInterval = 10 * time.Second

// truncateFeedOnce enforces the retention bounds once.
func (n *Node) truncateFeedOnce() error {
	durable, floorPos, _, _ := n.feed.state()
	cut := floorPos
	if durable > floorPos+uint64(n.cfg.Feed.MaxEntries) {
		cut = durable - uint64(n.cfg.Feed.MaxEntries)
	}
	cutoffMs := uint64(max(n.cfg.Now().Add(-n.cfg.Feed.Retention).UnixMilli(), 0))
	// By age, in bounded chunks from the oldest; at most 100,000 entries a
	// sweep, so a sweep stays short.
	for read := 0; read < 100_000 && cut < durable; {
		es, err := n.store.feedRange(cut+1, durable, 1000, 4<<20)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			break
		}
		old := 0
		for old < len(es) && es[old].write.Timestamp.WallMs < cutoffMs {
			old++
		}
		if old == 0 {
			break
		}
		cut = es[old-1].pos
		read += len(es)
		if old < len(es) {
			break
		}
	}
	if cut <= floorPos {
		return nil
	}
	vec, found, err := n.store.feedAppliedAt(cut)
	if err != nil || !found {
		return err
	}
	if err := n.store.feedTruncate(cut, vec); err != nil {
		return err
	}
	n.feed.setFloor(cut, vec)
	return nil
}
