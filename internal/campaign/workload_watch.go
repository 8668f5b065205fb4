package campaign

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/clocks"
)

// WatchWorkload follows the causal tier's change feed while the other
// workloads write and the nemesis injects faults: WatchersPerRegion
// watchers start in each region (every key, from now) before the clients
// do, and record every event they are delivered. When a stream ends (its
// region was killed, paused long enough to drop the connection, wiped, or
// refused the resume because its feed no longer holds the token's past),
// the watcher resumes from the token of the last message it received, in
// the same region or, as clients do, in another; now and then it also
// moves of its own accord. In the final phase, once replication has
// converged, each watcher runs until its token covers the converged
// applied vector: it has then been offered every write, so WatchChecker
// can require that it delivered every one.
//
// The workload issues no operations: it records EventWatch events (open,
// event, end, done), which WatchChecker judges against the writes of the
// history.
type WatchWorkload struct {
	// WatchersPerRegion is how many watchers start in each region
	// (default 1).
	WatchersPerRegion int
	// Move is the probability, after each message received, that a
	// watcher closes its stream and resumes in another region (default
	// 0.01).
	Move float64

	watchers []*campaignWatcher
	stop     context.CancelFunc
	done     sync.WaitGroup
}

// Watch event phases (Event.Phase of an EventWatch).
const (
	// WatchOpen: a stream was established (its first message arrived) in
	// Region; Token is the token it starts after, Detail says from what.
	WatchOpen = "open"
	// WatchDeliver: one event: Version, Writes (the changes, deletions
	// flagged) and Token (the event's resume token).
	WatchDeliver = "event"
	// WatchEnd: a stream ended, or could not be opened; Code and Error
	// say why (empty when the watcher moved of its own accord), Token is
	// where it resumes.
	WatchEnd = "end"
	// WatchDone: the watcher stopped in the final phase; no Error when its
	// token covered the converged applied vector (it was offered every
	// write), else Error says what it lacked.
	WatchDone = "done"
)

// watchResumePause is the pause before a watcher reopens a stream that
// failed: a killed region takes a while to come back.
const watchResumePause = 200 * time.Millisecond

func (w *WatchWorkload) defaults() {
	if w.WatchersPerRegion == 0 {
		w.WatchersPerRegion = 1
	}
	if w.Move == 0 {
		w.Move = 0.01
	}
}

// Name implements Workload.
func (w *WatchWorkload) Name() string { return "watch" }

// Tier implements Workload.
func (w *WatchWorkload) Tier() string { return TierCausal }

// watchSeedStream keeps the watchers' random streams apart from the
// causal and linear clients'.
const watchSeedStream = 1 << 40

// Prepare implements Preparer: it starts the watchers and waits until each
// has its stream established, so that every write of the campaign comes
// after their starting point. They run until Final (or ctx) stops them.
func (w *WatchWorkload) Prepare(ctx context.Context, env *Env) error {
	w.defaults()
	wctx, stop := context.WithCancel(ctx)
	w.stop = stop
	n := 0
	for _, region := range env.Regions {
		for range w.WatchersPerRegion {
			n++
			cw := &campaignWatcher{
				w: w, env: env, id: fmt.Sprintf("watch%d", n), region: region,
				rng:         rand.New(rand.NewPCG(env.Seed, watchSeedStream+uint64(n))),
				established: make(chan struct{}),
				changed:     make(chan struct{}),
			}
			w.watchers = append(w.watchers, cw)
			w.done.Go(func() { cw.loop(wctx) })
		}
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for _, cw := range w.watchers {
		select {
		case <-cw.established:
		case <-deadline.C:
			return fmt.Errorf("watcher %s in %s did not start within 30s", cw.id, cw.region)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Run implements Workload: the watchers run on their own from Prepare to
// Final; Run only waits for the clients' time to end.
func (w *WatchWorkload) Run(ctx context.Context, env *Env) error {
	<-ctx.Done()
	return nil
}

// Final implements Finalizer: once every region has applied the same
// writes, each watcher runs until its token covers that applied vector
// (bounded by the convergence timeout), then every watcher stops.
func (w *WatchWorkload) Final(ctx context.Context, env *Env) error {
	if w.stop == nil {
		return errors.New("the watchers were never started (Prepare failed)")
	}
	defer func() {
		w.stop()
		w.done.Wait()
	}()
	target, err := env.Cluster.AwaitConverged(ctx, env.ConvergeTimeout)
	if err != nil {
		for _, cw := range w.watchers {
			cw.record(Event{Phase: WatchDone, Token: cw.lastToken(), Error: "the regions did not converge, so no state covers every write: " + err.Error()})
		}
		return nil
	}
	deadline := time.Now().Add(env.ConvergeTimeout)
	for _, cw := range w.watchers {
		if missing := cw.awaitCovers(ctx, clocks.Vector(target), deadline); missing != "" {
			cw.record(Event{Phase: WatchDone, Token: cw.lastToken(),
				Error: fmt.Sprintf("the watcher's token did not cover the converged applied vector %v within %v: it lacks %s", target, env.ConvergeTimeout, missing)})
			continue
		}
		cw.record(Event{Phase: WatchDone, Token: cw.lastToken(), Detail: fmt.Sprintf("token covers the converged applied vector %v", target)})
	}
	return nil
}

// campaignWatcher is one watcher: a stream at a time, resumed from the
// token of the last message received.
type campaignWatcher struct {
	w      *WatchWorkload
	env    *Env
	id     string
	rng    *rand.Rand
	region string

	established chan struct{} // closed when the first stream is established
	once        sync.Once

	mu      sync.Mutex
	token   string        // the last message's resume token; "" before any
	vector  clocks.Vector // token's vector
	changed chan struct{} // closed and replaced when token changes
}

func (cw *campaignWatcher) record(e Event) {
	e.Type, e.Tier, e.Workload, e.Client = EventWatch, TierCausal, cw.w.Name(), cw.id
	if e.Region == "" {
		e.Region = cw.region
	}
	cw.env.Recorder.Record(e)
}

func (cw *campaignWatcher) lastToken() string {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.token
}

func (cw *campaignWatcher) setToken(token string) {
	tok, err := clocks.InspectToken(token)
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.token = token
	if err == nil {
		cw.vector = tok.Vector
	}
	close(cw.changed)
	cw.changed = make(chan struct{})
}

// awaitCovers waits until the watcher's token covers target or deadline
// passes; it returns what the token lacks ("" when it covers target).
func (cw *campaignWatcher) awaitCovers(ctx context.Context, target clocks.Vector, deadline time.Time) string {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		cw.mu.Lock()
		vec, changed := cw.vector, cw.changed
		cw.mu.Unlock()
		if vec.Dominates(target) {
			return ""
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Sprint(vec.Missing(target))
		case <-ctx.Done():
			return ctx.Err().Error()
		}
	}
}

// errMoved ends a stream the watcher closed to resume elsewhere.
var errMoved = errors.New("moved to another region")

func (cw *campaignWatcher) loop(ctx context.Context) {
	for ctx.Err() == nil {
		err := cw.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		end := Event{Phase: WatchEnd, Token: cw.lastToken()}
		switch {
		case errors.Is(err, errMoved):
			end.Detail = "moving to another region"
		case err != nil:
			end.Code, end.Error = ErrorCode(err), err.Error()
		default:
			end.Detail = "the stream ended without an error"
		}
		cw.record(end)
		// A watcher moves as a client would: always when it chose to, when
		// the region no longer holds the token's past (failed_precondition),
		// and sometimes when the region failed it.
		code := connect.CodeOf(err)
		if len(cw.env.Regions) > 1 && (errors.Is(err, errMoved) || code == connect.CodeFailedPrecondition || cw.rng.IntN(2) == 0) {
			others := slices.DeleteFunc(slices.Clone(cw.env.Regions), func(r string) bool { return r == cw.region })
			cw.region = others[cw.rng.IntN(len(others))]
		}
		if !errors.Is(err, errMoved) && !waitUntil(ctx, time.Now().Add(watchResumePause)) {
			return
		}
	}
}

// stream runs one Watch stream, from the last token (or from now, the
// first time), until it fails, ctx ends or the watcher moves.
func (cw *campaignWatcher) stream(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := cw.lastToken()
	req := &v1.WatchRequest{ResumeToken: from}
	if from == "" {
		req.StartAt = v1.WatchStart_WATCH_START_NOW
	}
	st, err := cw.env.Cluster.KV(cw.region).Watch(sctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	defer st.Close()
	first := true
	for st.Receive() {
		m := st.Msg()
		if first {
			first = false
			detail := "resumed from the last token received"
			if from == "" {
				detail = "started from now"
			}
			cw.record(Event{Phase: WatchOpen, Token: m.GetResumeToken(), Detail: detail})
			cw.once.Do(func() { close(cw.established) })
		}
		for _, e := range m.GetEvents() {
			writes := make([]KeyWrite, len(e.GetChanges()))
			for i, ch := range e.GetChanges() {
				writes[i] = KeyWrite{Key: ch.GetKey(), Value: string(ch.GetValue()), Delete: ch.GetDeleted()}
			}
			cw.record(Event{Phase: WatchDeliver, Version: versionOf(e.GetVersion()), Writes: writes, Token: e.GetResumeToken()})
		}
		if t := m.GetResumeToken(); t != "" {
			cw.setToken(t)
		}
		if len(cw.env.Regions) > 1 && len(m.GetEvents()) > 0 && cw.rng.Float64() < cw.w.Move {
			return errMoved
		}
	}
	if err := st.Err(); err != nil {
		return err
	}
	return nil
}
