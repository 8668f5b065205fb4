package sim

import (
	"errors"
	"sort"
	"strings"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/check"
)

// Watchers: clients of the change feed (causal.FeedCursor), checked with
// check.CheckWatch. Each region's durable state keeps its feed: every
// write it applies, in apply order, with the applied vector after it,
// persisted in the same batch as the write (so it survives crashes), cut
// to the newest feedKeep entries at every GC tick, and emptied by a
// snapshot merge (whose writes have no entries: the floor becomes the
// merged vector). A watcher holds only its token (a vector): at every
// tick it resumes from it in its current region, as a client would after
// a disconnect, steps over a few entries, and sometimes moves to another
// region. A token behind the region's floor is refused
// (causal.ErrFeedTruncated); the watcher then re-reads its keys, as Scan
// would, and watches on from the region's applied vector: a new segment
// of its history, checked on its own.

// feedKeep is how many entries a region's feed keeps: few, so that
// schedules reach the truncation path.
const feedKeep = 40

// watchedKey is the watchers' range: every key but the photo album's.
func watchedKey(key string) bool { return !strings.HasPrefix(key, "photo") }

type feedEntry struct {
	w       *causal.Write
	applied clocks.Vector
}

type watcher struct {
	region   int
	token    clocks.Vector
	segments []watchSegment
}

// watchSegment is a run of events from one start (a scan's vector).
type watchSegment struct {
	start     clocks.Vector
	delivered []check.WatchWrite
}

// recordFeed appends wr to r's feed; called where wr is made durable.
func (r *region) recordFeed(wr *causal.Write) {
	r.durable.feed = append(r.durable.feed, feedEntry{w: wr, applied: r.durable.applied.Clone()})
	if wr.Origin() == r.name {
		r.w.made = append(r.w.made, wr)
	}
}

// resetFeed empties the feed after a snapshot merge.
func (r *region) resetFeed() {
	r.durable.feed = nil
	r.durable.feedFloor = r.durable.applied.Clone()
}

// truncateFeed keeps the newest feedKeep entries.
func (r *region) truncateFeed() {
	if drop := len(r.durable.feed) - feedKeep; drop > 0 {
		r.durable.feedFloor = r.durable.feed[drop-1].applied
		r.durable.feed = append([]feedEntry(nil), r.durable.feed[drop:]...)
		r.w.stats.FeedTruncations++
	}
}

func (w *world) startWatchers() {
	for range 2 {
		wt := &watcher{region: w.rng.IntN(len(w.regions)), token: clocks.Vector{}}
		wt.segments = []watchSegment{{start: clocks.Vector{}}}
		w.watchers = append(w.watchers, wt)
		w.after(w.rng.Int64N(w.cfg.ResumeEveryMs), func() { w.watchTick(wt) })
	}
}

func (w *world) watchTick(wt *watcher) {
	if w.chance(0.2) {
		wt.region = w.rng.IntN(len(w.regions))
	}
	w.follow(wt, 1+w.rng.IntN(8))
	w.after(w.cfg.ResumeEveryMs, func() { w.watchTick(wt) })
}

// follow resumes wt in its region from its token and steps over up to n
// entries; a region that does not serve clients answers nothing.
func (w *world) follow(wt *watcher, n int) {
	r := w.regions[wt.region]
	if !r.serving() {
		return
	}
	c, err := causal.NewFeedCursor(wt.token, r.durable.feedFloor)
	if errors.Is(err, causal.ErrFeedTruncated) {
		w.stats.WatchRescans++
		wt.token = r.durable.applied.Clone()
		wt.segments = append(wt.segments, watchSegment{start: wt.token.Clone()})
		return
	}
	if err != nil {
		w.fail(KindProtocolError, "", "watcher in %s: %v", r.name, err)
		return
	}
	feed := r.durable.feed
	start := sort.Search(len(feed), func(i int) bool { return !c.Skippable(feed[i].applied) })
	seg := &wt.segments[len(wt.segments)-1]
	if start > 0 || len(seg.delivered) > 0 {
		w.stats.WatchResumes++
	}
	for _, e := range feed[start:min(start+n, len(feed))] {
		if !c.Step(e.w.Origin(), e.w.Seq, e.applied) {
			continue
		}
		if ev := watchWrite(e.w, nil); len(ev.Keys) > 0 {
			seg.delivered = append(seg.delivered, ev)
			w.stats.WatchEvents++
		}
	}
	wt.token = c.Token()
}

func watchWrite(wr *causal.Write, vector clocks.Vector) check.WatchWrite {
	out := check.WatchWrite{Origin: wr.Origin(), Seq: wr.Seq, Vector: vector}
	for _, op := range wr.Ops {
		if watchedKey(op.Key) {
			out.Keys = append(out.Keys, op.Key)
		}
	}
	return out
}

// checkWatchers drains every watcher at quiescence (in a serving region)
// and checks each segment of its history: the writes made that its start
// had not seen, in a causal order, none repeated, and for the last
// segment all of them.
func (w *world) checkWatchers() {
	for i, wt := range w.watchers {
		for tries := 0; tries < len(w.regions) && !w.regions[wt.region].serving(); tries++ {
			wt.region = (wt.region + 1) % len(w.regions)
		}
		for range 3 { // a rescan, then the rest
			w.follow(wt, 1<<30)
		}
		for s, seg := range wt.segments {
			var made []check.WatchWrite
			for _, wr := range w.made {
				if wr.Seq <= seg.start.Get(wr.Origin()) {
					continue
				}
				if ev := watchWrite(wr, wr.Vector); len(ev.Keys) > 0 {
					made = append(made, ev)
				}
			}
			for _, v := range check.CheckWatch(seg.delivered, made, s == len(wt.segments)-1) {
				v.Detail = "watcher " + string(rune('A'+i)) + ": " + v.Detail
				w.violations = append(w.violations, v)
			}
		}
	}
}
