package replica

import (
	"sync"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/google/uuid"
)

// feedTail keeps the newest change-feed entries in memory, as the write
// path staged them, so that live watchers neither read nor decode what
// they follow: every watcher of a node shares one copy of each entry (and
// its encoded token). A watcher behind the tail reads the store instead.
// Bounded by feedTailEntries and feedTailBytes (values included); the
// oldest entries leave first.
//
// Measured on 2 shared cores (BenchmarkWatchPut, 64 writers): reading
// every entry back from Pebble per watcher cost 37% of Put throughput
// with one watcher and 85% with 100; see the closing note of issue 18
// for the figures with the tail.
type feedTail struct {
	mu      sync.RWMutex
	entries []*feedEntry // ring; positions first..first+len-1 in order
	head    int          // index of the oldest entry
	count   int
	bytes   int
}

const (
	feedTailEntries = 8192
	feedTailBytes   = 64 << 20
)

func newFeedTail() *feedTail { return &feedTail{entries: make([]*feedEntry, feedTailEntries)} }

// add appends e, which must follow the newest entry. Called under Node.mu.
func (t *feedTail) add(e *feedEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count > 0 && t.at(t.count-1).pos+1 != e.pos {
		t.resetLocked() // a gap (cannot happen; never serve across one)
	}
	for t.count > 0 && (t.count == len(t.entries) || t.bytes+e.size > feedTailBytes) {
		t.bytes -= t.entries[t.head].size
		t.entries[t.head] = nil
		t.head = (t.head + 1) % len(t.entries)
		t.count--
	}
	t.entries[(t.head+t.count)%len(t.entries)] = e
	t.count++
	t.bytes += e.size
}

func (t *feedTail) at(i int) *feedEntry { return t.entries[(t.head+i)%len(t.entries)] }

// read appends to dst the entries from..to (at most max), or returns ok
// false when from is older than the tail holds.
func (t *feedTail) read(dst []*feedEntry, from, to uint64, max int) (out []*feedEntry, ok bool) {
	out = dst
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.count == 0 {
		return out, false
	}
	first := t.at(0).pos
	if from < first || from > first+uint64(t.count)-1 {
		return out, false
	}
	for i := int(from - first); i < t.count && len(out)-len(dst) < max; i++ {
		e := t.at(i)
		if e.pos > to {
			break
		}
		out = append(out, e)
	}
	return out, true
}

// reset empties the tail (a snapshot merge replaced the feed).
func (t *feedTail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resetLocked()
}

func (t *feedTail) resetLocked() {
	clear(t.entries)
	t.head, t.count, t.bytes = 0, 0, 0
}

// sharedToken is an entry's resume token for a watcher that has seen
// exactly the region's applied vector after it (the usual live watcher),
// encoded once for all of them. Vector and Seen are the entry's.
type sharedToken struct {
	once  sync.Once
	token string
}

func (e *feedEntry) tokenFor(cluster uuid.UUID) string {
	e.shared.once.Do(func() {
		e.shared.token = clocks.Token{Cluster: cluster, Vector: e.applied, Seen: e.seen}.Encode()
	})
	return e.shared.token
}

// entrySize estimates the memory an entry holds.
func entrySize(w *causal.Write) int {
	size := 128 + 16*len(w.Vector)
	for _, op := range w.Ops {
		size += len(op.Key) + len(op.Value) + 32
	}
	return size
}
