package campaign

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// CausalMix weighs the causal operations a client picks from.
type CausalMix struct {
	Get, Put, Delete, ReadMany, WriteMany int
}

// DefaultCausalMix reads and writes about equally, with enough snapshot
// reads and atomic writes to catch a torn or causally open snapshot.
func DefaultCausalMix() CausalMix {
	return CausalMix{Get: 30, Put: 25, Delete: 5, ReadMany: 25, WriteMany: 15}
}

// CausalWorkload drives the causal tier: registers read and written on a
// small key set, so that writes in different regions conflict, snapshot
// reads of several keys (ReadMany) and atomic multi-key writes
// (WriteMany). Clients carry a causal session from request to request,
// move it between regions, and hand it to one another (the token passed
// through a channel the store does not see).
//
// Chains add the cross-channel case of the design (Alice and Bob): in each
// chain a writer puts a photo in one region and hands its token to a
// commenter in the next region, who reads the photo with it and writes a
// comment; an observer in a third region takes snapshot reads of photo and
// comment. A region that shows the comment without the photo breaks
// causality, and the chain makes that visible to the checker every time,
// not only when no newer write hides it.
//
// Every put writes a value unique in the campaign (client.N), so a version
// read can be traced to its write even when the write's acknowledgement was
// lost. A write whose outcome is unknown is retried with the same request
// id in the same region, where Causeway promises to apply it at most once.
type CausalWorkload struct {
	// ClientsPerRegion is how many clients start in each region (default 2).
	ClientsPerRegion int
	// Keys is the size of the key set (default 8).
	Keys int
	// Mix weighs the operations (default DefaultCausalMix).
	Mix CausalMix
	// Move is the probability that a client moves its session to another
	// region before an operation (default 0.05).
	Move float64
	// Handoff is the probability that a client hands its session to
	// another client before an operation (default 0.02).
	Handoff float64
	// Pace is the pause between two operations of one client: it bounds
	// the load on a small machine (0: none).
	Pace time.Duration
	// MaxRetries bounds the retries of a write whose outcome is unknown
	// (default 2).
	MaxRetries int
	// Chains is the number of photo/comment chains (default: one per
	// region; negative for none). They need at least two regions.
	Chains int

	mu       sync.Mutex
	parked   []*causalSession // sessions handed off, waiting for a client
	sessions atomic.Int64
}

func (w *CausalWorkload) defaults() {
	if w.ClientsPerRegion == 0 {
		w.ClientsPerRegion = 2
	}
	if w.Keys == 0 {
		w.Keys = 8
	}
	if w.Mix == (CausalMix{}) {
		w.Mix = DefaultCausalMix()
	}
	if w.Move == 0 {
		w.Move = 0.05
	}
	if w.Handoff == 0 {
		w.Handoff = 0.02
	}
	if w.MaxRetries == 0 {
		w.MaxRetries = 2
	}
}

func (w *CausalWorkload) chains(regions int) int {
	switch {
	case regions < 2 || w.Chains < 0:
		return 0
	case w.Chains == 0:
		return regions
	}
	return w.Chains
}

// Name implements Workload.
func (w *CausalWorkload) Name() string { return "causal" }

// Tier implements Workload.
func (w *CausalWorkload) Tier() string { return TierCausal }

// KeySet lists the registers the clients read and write.
func (w *CausalWorkload) KeySet() []string {
	w.defaults()
	keys := make([]string, w.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	return keys
}

// chainKeys are the photo and comment keys of chain n.
func chainKeys(n int) (photo, comment string) {
	return fmt.Sprintf("photo%d", n), fmt.Sprintf("comment%d", n)
}

// allKeys lists every key the workload writes, for the final reads.
func (w *CausalWorkload) allKeys(regions int) []string {
	keys := w.KeySet()
	for n := range w.chains(regions) {
		p, c := chainKeys(n)
		keys = append(keys, p, c)
	}
	return keys
}

func (w *CausalWorkload) newSession(token string) *causalSession {
	return &causalSession{id: fmt.Sprintf("s%d", w.sessions.Add(1)), token: token}
}

// causalSession is one lineage of causal tokens: used by one client at a
// time, its operations are sequential.
type causalSession struct {
	id    string
	token string
	index int
}

type causalClient struct {
	w      *CausalWorkload
	env    *Env
	id     string
	rng    *rand.Rand
	region string
	sess   *causalSession
	keys   []string
	values int
}

// Run implements Workload.
func (w *CausalWorkload) Run(ctx context.Context, env *Env) error {
	w.defaults()
	keys := w.KeySet()
	var wg sync.WaitGroup
	n := 0
	for _, region := range env.Regions {
		for range w.ClientsPerRegion {
			n++
			c := &causalClient{
				w: w, env: env, id: fmt.Sprintf("c%d", n), region: region, keys: keys,
				rng:  rand.New(rand.NewPCG(env.Seed, uint64(n))),
				sess: w.newSession(""),
			}
			wg.Go(func() { c.loop(ctx) })
		}
	}
	for chain := range w.chains(len(env.Regions)) {
		n++
		regions := env.Regions
		photo, comment := chainKeys(chain)
		newClient := func(name string, region int) *causalClient {
			return &causalClient{
				w: w, env: env, id: fmt.Sprintf("%s%d", name, chain), region: regions[(chain+region)%len(regions)],
				rng: rand.New(rand.NewPCG(env.Seed, uint64(n))), sess: w.newSession(""),
			}
		}
		writer, commenter, observer := newClient("writer", 0), newClient("commenter", 1), newClient("observer", 2)
		commenter.sess = nil // it works with the writer's session
		wg.Go(func() { chainLoop(ctx, writer, commenter, photo, comment) })
		wg.Go(func() {
			for ctx.Err() == nil {
				ok := observer.readKeys(ctx, []string{photo, comment})
				observer.pause(ctx, ok)
			}
		})
	}
	wg.Wait()
	return nil
}

// chainLoop runs one photo/comment chain: the writer puts a photo in its
// region and hands its session (token) to the commenter, in another
// region, who reads the photo with it, writes a comment, and hands the
// session back. The session moves; its operations stay sequential.
func chainLoop(ctx context.Context, writer, commenter *causalClient, photo, comment string) {
	for ctx.Err() == nil {
		ok := writer.putKey(ctx, photo)
		commenter.take(writer)
		if ok {
			ok = commenter.readKeys(ctx, []string{photo}) && commenter.putKey(ctx, comment)
		}
		writer.take(commenter)
		writer.pause(ctx, ok)
	}
}

// take continues the session of from, which hands it over (through a
// channel the store does not see).
func (c *causalClient) take(from *causalClient) {
	s := from.sess
	rec := c.env.Recorder
	rec.Record(Event{Type: EventHandoff, Phase: HandoffGive, Tier: TierCausal, Workload: c.w.Name(), Client: from.id, Session: s.id, Region: from.region, Token: s.token})
	from.sess, c.sess = nil, s
	rec.Record(Event{Type: EventHandoff, Phase: HandoffTake, Tier: TierCausal, Workload: c.w.Name(), Client: c.id, Session: s.id, Region: c.region, Token: s.token})
}

// pause waits between two operations: Pace, or longer after a failure.
func (c *causalClient) pause(ctx context.Context, ok bool) {
	pause := c.w.Pace
	if !ok {
		pause = max(pause, 100*time.Millisecond)
	}
	if pause > 0 {
		waitUntil(ctx, time.Now().Add(pause))
	}
}

func (c *causalClient) loop(ctx context.Context) {
	for ctx.Err() == nil {
		if len(c.env.Regions) > 1 && c.rng.Float64() < c.w.Move {
			c.move()
		}
		if c.rng.Float64() < c.w.Handoff {
			c.handoff()
		}
		ok := c.step(ctx)
		if !ok && len(c.env.Regions) > 1 && c.rng.IntN(3) == 0 {
			c.move() // sometimes leave a region that fails
		}
		c.pause(ctx, ok)
	}
}

func (c *causalClient) move() {
	others := slices.DeleteFunc(slices.Clone(c.env.Regions), func(r string) bool { return r == c.region })
	c.region = others[c.rng.IntN(len(others))]
}

// handoff parks the client's session for another client to continue, and
// continues a parked one. With none parked, the client starts a new session
// from its own token: it still knows what it knew, but what it does next is
// not ordered after what the receiver of its old token does, so to the
// checker it is a new session (a past that is too small can hide an
// anomaly, never invent one).
func (c *causalClient) handoff() {
	w := c.w
	old := c.sess
	w.mu.Lock()
	var next *causalSession
	if len(w.parked) > 0 {
		i := c.rng.IntN(len(w.parked))
		next = w.parked[i]
		w.parked = slices.Delete(w.parked, i, i+1)
	}
	w.parked = append(w.parked, old)
	w.mu.Unlock()
	rec := c.env.Recorder
	rec.Record(Event{Type: EventHandoff, Phase: HandoffGive, Tier: TierCausal, Workload: w.Name(), Client: c.id, Session: old.id, Region: c.region, Token: old.token})
	detail := ""
	if next == nil {
		next = w.newSession(old.token)
		detail = "new session continuing from the token of " + old.id
	}
	c.sess = next
	rec.Record(Event{Type: EventHandoff, Phase: HandoffTake, Tier: TierCausal, Workload: w.Name(), Client: c.id, Session: next.id, Region: c.region, Token: next.token, Detail: detail})
}

func (c *causalClient) kv() causewayv1connect.KVServiceClient { return c.env.Cluster.KV(c.region) }

func (c *causalClient) invoke(f string, e Event) int64 {
	c.sess.index++
	e.Tier, e.Workload, e.Client, e.Session, e.Index, e.Region, e.F = TierCausal, c.w.Name(), c.id, c.sess.id, c.sess.index, c.region, f
	e.Token = c.sess.token
	return c.env.Recorder.Invoke(e)
}

func (c *causalClient) value() string {
	c.values++
	return fmt.Sprintf("%s.%d", c.id, c.values)
}

func (c *causalClient) someKeys(lo, hi int) []string {
	n := min(lo+c.rng.IntN(hi-lo+1), len(c.keys))
	idx := c.rng.Perm(len(c.keys))[:n]
	slices.Sort(idx)
	out := make([]string, n)
	for i, j := range idx {
		out[i] = c.keys[j]
	}
	return out
}

// requestContext bounds one request. It does not end with ctx: a request
// under way when the campaign stops writing completes (or times out), so
// fewer outcomes are left unknown.
func (c *causalClient) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.env.RequestTimeout)
}

// step issues one operation; false when it did not succeed.
func (c *causalClient) step(ctx context.Context) bool {
	m := c.w.Mix
	pick := c.rng.IntN(m.Get + m.Put + m.Delete + m.ReadMany + m.WriteMany)
	switch {
	case pick < m.Get:
		return c.get(ctx)
	case pick < m.Get+m.Put:
		return c.put(ctx)
	case pick < m.Get+m.Put+m.Delete:
		return c.del(ctx)
	case pick < m.Get+m.Put+m.Delete+m.ReadMany:
		return c.readMany(ctx)
	default:
		return c.writeMany(ctx)
	}
}

func versionOf(v *v1.Version) *Version {
	if v == nil {
		return nil
	}
	return &Version{Origin: v.GetOriginRegion(), Seq: v.GetOriginSeq(), WallMs: v.GetTimestamp().GetWallMs(), Logical: v.GetTimestamp().GetLogical()}
}

func (c *causalClient) failRead(op int64, err error) bool {
	c.env.Recorder.Complete(op, EventFail, Event{Code: ErrorCode(err), Error: err.Error()})
	return false
}

func (c *causalClient) get(ctx context.Context) bool {
	return c.getKey(ctx, c.keys[c.rng.IntN(len(c.keys))])
}

func (c *causalClient) getKey(ctx context.Context, key string) bool {
	op := c.invoke(FGet, Event{Key: key})
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	res, err := c.kv().Get(rctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: c.sess.token}))
	if err != nil {
		return c.failRead(op, err)
	}
	m := res.Msg
	c.sess.token = m.GetCausalToken()
	c.env.Recorder.Complete(op, EventOK, Event{Token: m.GetCausalToken(), Reads: []KeyRead{{
		Key: key, Found: m.GetFound(), Value: string(m.GetValue()), Version: versionOf(m.GetVersion()), HasSiblings: m.GetHasSiblings(),
	}}})
	return true
}

func (c *causalClient) readMany(ctx context.Context) bool {
	return c.readKeys(ctx, c.someKeys(2, 5))
}

// readKeys reads keys: with Get when there is one, else with ReadMany.
func (c *causalClient) readKeys(ctx context.Context, keys []string) bool {
	if len(keys) == 1 {
		return c.getKey(ctx, keys[0])
	}
	op := c.invoke(FReadMany, Event{Keys: keys})
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	res, err := c.kv().ReadMany(rctx, connect.NewRequest(&v1.ReadManyRequest{Keys: keys, CausalToken: c.sess.token}))
	if err != nil {
		return c.failRead(op, err)
	}
	m := res.Msg
	c.sess.token = m.GetCausalToken()
	reads := make([]KeyRead, 0, len(m.GetResults()))
	for _, r := range m.GetResults() {
		reads = append(reads, KeyRead{Key: r.GetKey(), Found: r.GetFound(), Value: string(r.GetValue()), Version: versionOf(r.GetVersion()), HasSiblings: r.GetHasSiblings()})
	}
	c.env.Recorder.Complete(op, EventOK, Event{Token: m.GetCausalToken(), Reads: reads})
	return true
}

func (c *causalClient) put(ctx context.Context) bool {
	return c.putKey(ctx, c.keys[c.rng.IntN(len(c.keys))])
}

func (c *causalClient) putKey(ctx context.Context, key string) bool {
	value, id := c.value(), uuid.NewString()
	op := c.invoke(FPut, Event{Key: key, Value: value, RequestID: id})
	return c.write(ctx, op, func(rctx context.Context, token string) (*v1.Version, string, error) {
		res, err := c.kv().Put(rctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value), CausalToken: token, RequestId: id}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetVersion(), res.Msg.GetCausalToken(), nil
	})
}

func (c *causalClient) del(ctx context.Context) bool {
	key, id := c.keys[c.rng.IntN(len(c.keys))], uuid.NewString()
	op := c.invoke(FDelete, Event{Key: key, RequestID: id})
	return c.write(ctx, op, func(rctx context.Context, token string) (*v1.Version, string, error) {
		res, err := c.kv().Delete(rctx, connect.NewRequest(&v1.DeleteRequest{Key: key, CausalToken: token, RequestId: id}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetVersion(), res.Msg.GetCausalToken(), nil
	})
}

// writeMany writes 2 to 4 keys atomically. It writes values only: a
// deletion carries no value, so a deletion whose acknowledgement was lost
// could not be told apart from another one when a read returns it.
func (c *causalClient) writeMany(ctx context.Context) bool {
	keys := c.someKeys(2, 4)
	writes := make([]KeyWrite, len(keys))
	ops := make([]*v1.WriteOp, len(keys))
	for i, k := range keys {
		writes[i] = KeyWrite{Key: k, Value: c.value()}
		ops[i] = &v1.WriteOp{Key: k, Value: []byte(writes[i].Value)}
	}
	id := uuid.NewString()
	op := c.invoke(FWriteMany, Event{Writes: writes, RequestID: id})
	return c.write(ctx, op, func(rctx context.Context, token string) (*v1.Version, string, error) {
		res, err := c.kv().WriteMany(rctx, connect.NewRequest(&v1.WriteManyRequest{Ops: ops, CausalToken: token, RequestId: id}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetVersion(), res.Msg.GetCausalToken(), nil
	})
}

// write sends a write, retrying it with the same request id while its
// outcome is unknown, and records the outcome: ok, fail when it definitely
// did not happen, info when it may have.
func (c *causalClient) write(ctx context.Context, op int64, call func(context.Context, string) (*v1.Version, string, error)) bool {
	uncertain := false
	for attempt := 1; ; attempt++ {
		rctx, cancel := c.requestContext(ctx)
		version, token, err := call(rctx, c.sess.token)
		cancel()
		switch {
		case err == nil:
			c.sess.token = token
			c.env.Recorder.Complete(op, EventOK, Event{Version: versionOf(version), Token: token, Attempts: attempt})
			return true
		case DefiniteFailure(err) && !uncertain:
			// An earlier attempt that may have been applied keeps the
			// outcome unknown, whatever a later attempt says.
			c.env.Recorder.Complete(op, EventFail, Event{Code: ErrorCode(err), Error: err.Error(), Attempts: attempt})
			return false
		}
		if !DefiniteFailure(err) {
			uncertain = true
		}
		if attempt > c.w.MaxRetries || !waitUntil(ctx, time.Now().Add(time.Duration(attempt)*100*time.Millisecond)) {
			c.env.Recorder.Complete(op, EventInfo, Event{Code: ErrorCode(err), Error: err.Error(), Attempts: attempt})
			return false
		}
	}
}

// Final implements Finalizer: it waits until every region has applied the
// same writes, then reads every key in every region.
func (w *CausalWorkload) Final(ctx context.Context, env *Env) error {
	rec := env.Recorder
	start := time.Now()
	vector, err := env.Cluster.AwaitConverged(ctx, env.ConvergeTimeout)
	ev := Event{Type: EventFinal, Tier: TierCausal, Workload: w.Name(), F: FConverge,
		Detail: fmt.Sprintf("applied vector %v in every region after %v", vector, time.Since(start).Round(time.Millisecond))}
	if err != nil {
		ev.Detail, ev.Error = "regions did not converge", err.Error()
	}
	rec.Record(ev)
	keys := w.allKeys(len(env.Regions))
	for _, region := range env.Regions {
		var reads []KeyRead
		err := poll(ctx, 30*time.Second, func(ctx context.Context) (bool, string) {
			rctx, cancel := context.WithTimeout(ctx, env.RequestTimeout)
			defer cancel()
			res, err := env.Cluster.KV(region).ReadMany(rctx, connect.NewRequest(&v1.ReadManyRequest{Keys: keys}))
			if err != nil {
				return false, err.Error()
			}
			reads = reads[:0]
			for _, r := range res.Msg.GetResults() {
				reads = append(reads, KeyRead{Key: r.GetKey(), Found: r.GetFound(), Value: string(r.GetValue()), Version: versionOf(r.GetVersion()), HasSiblings: r.GetHasSiblings()})
			}
			return true, ""
		})
		e := Event{Type: EventFinal, Tier: TierCausal, Workload: w.Name(), Region: region, F: FReadMany, Reads: reads}
		if err != nil {
			e.Error = err.Error()
		}
		rec.Record(e)
	}
	return nil
}
