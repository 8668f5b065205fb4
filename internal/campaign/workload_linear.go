package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/check/lincheck"
)

// Operations of the linear tier (Event.F). Those the checkers read are
// named as lincheck names them (lincheck.Kind); leases are recorded for
// availability only.
const (
	FClaim          = string(lincheck.KindClaim)
	FRelease        = string(lincheck.KindRelease)
	FLookup         = string(lincheck.KindLookup)
	FCAS            = string(lincheck.KindCAS)
	FLinearGet      = string(lincheck.KindGet)
	FLock           = string(lincheck.KindLock)
	FUnlock         = string(lincheck.KindUnlock)
	FFencedWrite    = string(lincheck.KindFencedWrite)
	FLeaseGrant     = "lease-grant"
	FLeaseKeepAlive = "lease-keepalive"
)

// claimNamespace is the namespace of the names the linear clients claim.
const claimNamespace = "names"

// LinearMix weighs the linear operations a client picks from. Lock is a
// whole cycle: keep the lease alive (or grant one), lock, a fenced write,
// unlock. LateWrite is a fenced write with the token of a lock the client
// held earlier, as a holder that stalled past its lease would send it.
type LinearMix struct {
	Claim, Release, Lookup, CAS, Get, Lock, LateWrite int
}

// DefaultLinearMix favours compare-and-set and claims, where orders
// matter, with enough reads to observe them and enough lock cycles and
// late writes to exercise fencing.
func DefaultLinearMix() LinearMix {
	return LinearMix{Claim: 15, Release: 10, Lookup: 10, CAS: 25, Get: 15, Lock: 15, LateWrite: 10}
}

// LinearWorkload drives the linear tier: claims of a few names
// (claim, release, lookup), compare-and-set registers (conditional on
// the version or the value last seen, deletes included) with
// linearizable reads, and locks under leases whose fencing tokens guard
// writes, some sent late with a token that may have gone stale.
//
// Clients stay in their region, also during faults: a region cut off
// from a quorum of voters must answer `unavailable`, and the history
// shows it. A request whose outcome is unknown (unavailable,
// deadline_exceeded, a lost connection) is retried with the same request
// id for a while: the tier answers a retry with the first attempt's
// outcome, so the operation stays one operation and often ends with a
// known outcome.
//
// Every operation is recorded as lincheck needs it: Event.F is the
// lincheck kind, Event.Key the object (namespace/name, register or lock),
// Event.Session the client, and Event.Extra (linearExtra) the arguments on
// the invocation and the results on the completion. LinearizableChecker
// and FencingChecker rebuild the lincheck history from these events alone.
type LinearWorkload struct {
	// ClientsPerRegion is how many clients run in each region (default 2).
	ClientsPerRegion int
	// Names, Registers and Locks size the objects the clients share
	// (defaults 3, 2 and 2): few, so that operations contend.
	Names, Registers, Locks int
	// Mix weighs the operations (default DefaultLinearMix).
	Mix LinearMix
	// Pace is the pause between two operations of one client (0: none).
	Pace time.Duration
	// RetryFor bounds how long a request whose outcome is unknown is
	// retried (default 1s). Long enough to ride out a short leader change,
	// short enough that a region without a quorum is seen refusing.
	RetryFor time.Duration
	// LeaseTTL is the TTL of the leases locks are held under (default 3s).
	LeaseTTL time.Duration
	// ReadyTimeout bounds the wait, before the campaign starts, for every
	// region to join the Raft group as a voter (default 60s).
	ReadyTimeout time.Duration
}

func (w *LinearWorkload) defaults() {
	if w.ClientsPerRegion == 0 {
		w.ClientsPerRegion = 2
	}
	if w.Names == 0 {
		w.Names = 3
	}
	if w.Registers == 0 {
		w.Registers = 2
	}
	if w.Locks == 0 {
		w.Locks = 2
	}
	if w.Mix == (LinearMix{}) {
		w.Mix = DefaultLinearMix()
	}
	if w.RetryFor == 0 {
		w.RetryFor = time.Second
	}
	if w.LeaseTTL == 0 {
		w.LeaseTTL = 3 * time.Second
	}
	if w.ReadyTimeout == 0 {
		w.ReadyTimeout = 60 * time.Second
	}
}

// Name implements Workload.
func (w *LinearWorkload) Name() string { return "linear" }

// Tier implements Workload.
func (w *LinearWorkload) Tier() string { return TierLinear }

// Prepare implements Preparer: it waits until every region is a voter of
// the linear tier and they agree on a leader.
func (w *LinearWorkload) Prepare(ctx context.Context, env *Env) error {
	w.defaults()
	if env.Cluster == nil {
		return nil
	}
	return env.Cluster.AwaitLinear(ctx, w.ReadyTimeout)
}

// linearSeedStream separates the linear clients' random streams from the
// causal clients', which use the campaign's seed with their own numbers.
const linearSeedStream = 1 << 32

// Run implements Workload.
func (w *LinearWorkload) Run(ctx context.Context, env *Env) error {
	w.defaults()
	if w.Mix.Claim+w.Mix.Release+w.Mix.Lookup+w.Mix.CAS+w.Mix.Get+w.Mix.Lock+w.Mix.LateWrite <= 0 {
		return errors.New("linear workload: the mix weighs no operation")
	}
	var wg sync.WaitGroup
	n := 0
	for _, region := range env.Regions {
		for range w.ClientsPerRegion {
			n++
			c := w.newClient(env, fmt.Sprintf("lin%d", n), region, rand.New(rand.NewPCG(env.Seed, linearSeedStream+uint64(n))))
			wg.Go(func() { c.loop(ctx) })
		}
	}
	wg.Wait()
	return nil
}

func (w *LinearWorkload) newClient(env *Env, id, region string, rng *rand.Rand) *linearClient {
	c := &linearClient{w: w, env: env, id: id, region: region, rng: rng,
		versions: map[string]uint64{}, values: map[string]string{}, tokens: map[string]uint64{}}
	if env.HTTP != nil && env.URL != nil {
		c.lin = causewayv1connect.NewLinearServiceClient(env.HTTP, env.URL(region))
	}
	return c
}

// linearExtra is what a linear-tier operation records in Event.Extra: its
// arguments on the invocation, its results on the completion. The fields
// are lincheck.Op's (the object is Event.Key, the kind Event.F, the
// outcome the completion's type and code, the times the events').
type linearExtra struct {
	// Owner is the claimant (claim, release) or the lock holder (lock).
	Owner string `json:"owner,omitempty"`
	// CompareVersion and CompareValue are a cas condition.
	CompareVersion *uint64 `json:"compare_version,omitempty"`
	CompareValue   *string `json:"compare_value,omitempty"`
	// Value is what a cas or a fenced write writes (invocation), what a
	// get read or who a lookup found holding the name (completion).
	Value  string `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
	// Version is, on a completion, the version a cas wrote, the current
	// version an aborted cas reported (nil: none was reported), or the
	// version a get read (0: absent).
	Version *uint64 `json:"version,omitempty"`
	// Token is the fencing token a lock returned, or the one a fenced
	// write carried.
	Token uint64 `json:"token,omitempty"`
	// Register is the register a fenced write writes.
	Register string `json:"register,omitempty"`
	// Lease is the lease a lock, unlock or keep-alive named, or the one a
	// grant returned.
	Lease uint64 `json:"lease,omitempty"`
}

func (e linearExtra) raw() json.RawMessage {
	if e == (linearExtra{}) {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("campaign: encoding %+v: %v", e, err)) // plain fields: cannot fail
	}
	return b
}

func u64(v uint64) *uint64 { return &v }

// linearClient is one client of the linear tier, bound to one region.
type linearClient struct {
	w      *LinearWorkload
	env    *Env
	id     string
	region string
	rng    *rand.Rand
	lin    causewayv1connect.LinearServiceClient
	index  int
	writes int

	versions map[string]uint64 // register -> last version seen (0: absent)
	values   map[string]string // register -> last value seen ("": unknown or absent)
	lease    uint64            // a live lease this client may lock under (0: none)
	tokens   map[string]uint64 // lock -> the last token this client got
}

func (c *linearClient) loop(ctx context.Context) {
	for ctx.Err() == nil {
		ok := c.step(ctx)
		pause := c.w.Pace
		if !ok {
			pause = max(pause, 100*time.Millisecond)
		}
		if pause > 0 {
			waitUntil(ctx, time.Now().Add(pause))
		}
	}
}

// step issues one operation (a lock cycle issues several); false when it
// did not get an answer from the tier.
func (c *linearClient) step(ctx context.Context) bool {
	m := c.w.Mix
	pick := c.rng.IntN(m.Claim + m.Release + m.Lookup + m.CAS + m.Get + m.Lock + m.LateWrite)
	for _, o := range []struct {
		weight int
		run    func(context.Context) bool
	}{
		{m.Claim, c.claim}, {m.Release, c.release}, {m.Lookup, c.lookup}, {m.CAS, c.cas},
		{m.Get, c.get}, {m.Lock, c.lockCycle}, {m.LateWrite, c.lateWrite},
	} {
		if pick < o.weight {
			return o.run(ctx)
		}
		pick -= o.weight
	}
	return c.get(ctx)
}

func (c *linearClient) name() (key, namespace, name string) {
	name = fmt.Sprintf("n%d", c.rng.IntN(c.w.Names))
	return claimNamespace + "/" + name, claimNamespace, name
}

func (c *linearClient) register() string { return fmt.Sprintf("reg%d", c.rng.IntN(c.w.Registers)) }

func (c *linearClient) lockName() string { return fmt.Sprintf("lock%d", c.rng.IntN(c.w.Locks)) }

// value returns a value unique in the campaign, so a value read names its
// write.
func (c *linearClient) value() string {
	c.writes++
	return fmt.Sprintf("%s.%d", c.id, c.writes)
}

// invoke records the start of an operation.
func (c *linearClient) invoke(f, key, requestID string, args linearExtra) int64 {
	c.index++
	return c.env.Recorder.Invoke(Event{Tier: TierLinear, Workload: c.w.Name(), Client: c.id, Session: c.id, Index: c.index,
		Region: c.region, F: f, Key: key, RequestID: requestID, Extra: args.raw()})
}

// linearRefusals are the codes with which the tier answers a request it
// served but turned down for a reason the data gives (lincheck's state
// codes): the operation had no effect, and the answer is its result.
var linearRefusals = map[connect.Code]bool{
	connect.CodeAborted:            true,
	connect.CodeAlreadyExists:      true,
	connect.CodeNotFound:           true,
	connect.CodeFailedPrecondition: true,
}

// linearRejections are the codes of a request refused before it reached the
// Raft log: no effect, whatever the state.
var linearRejections = map[connect.Code]bool{
	connect.CodeInvalidArgument:   true,
	connect.CodePermissionDenied:  true,
	connect.CodeUnauthenticated:   true,
	connect.CodeUnimplemented:     true,
	connect.CodeResourceExhausted: true,
}

// attempts is what call learned about one operation's requests.
type attempts struct {
	n int
	// uncertain: some request reached (or may have reached) a server and
	// its outcome is unknown.
	uncertain bool
}

// call sends a request, retrying it while its outcome is unknown for up to
// RetryFor (f reuses one request id, so the tier answers a retry with the
// first attempt's outcome). It stops retrying when ctx ends; a request
// under way then still completes (or times out).
func (c *linearClient) call(ctx context.Context, f func(context.Context) error) (attempts, error) {
	var a attempts
	start := time.Now()
	for {
		a.n++
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.env.RequestTimeout)
		err := f(rctx)
		cancel()
		code := connect.CodeOf(err)
		if err == nil || linearRefusals[code] || linearRejections[code] {
			return a, err
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			a.uncertain = true
		}
		if time.Since(start) >= c.w.RetryFor || !waitUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return a, err
		}
	}
}

// complete records an operation's outcome. A refusal or a rejection is a
// failure without effect (any attempt's answer is the operation's, as the
// tier remembers outcomes by request id); so is a request that never
// reached a server, and a read whatever went wrong. Anything else may
// have taken effect: info. It returns whether the tier answered.
func (c *linearClient) complete(op int64, read bool, err error, a attempts, res linearExtra) bool {
	rec := c.env.Recorder
	if err == nil {
		rec.Complete(op, EventOK, Event{Attempts: a.n, Extra: res.raw()})
		return true
	}
	code := connect.CodeOf(err)
	e := Event{Code: ErrorCode(err), Error: err.Error(), Attempts: a.n, Extra: res.raw()}
	switch {
	case linearRefusals[code]:
		e.Refused = true
		rec.Complete(op, EventFail, e)
		return true
	case linearRejections[code], read, !a.uncertain:
		rec.Complete(op, EventFail, e)
	default:
		rec.Complete(op, EventInfo, e)
	}
	return false
}

func (c *linearClient) claim(ctx context.Context) bool {
	key, ns, name := c.name()
	rid := uuid.NewString()
	op := c.invoke(FClaim, key, rid, linearExtra{Owner: c.id})
	a, err := c.call(ctx, func(ctx context.Context) error {
		_, err := c.lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: ns, Name: name, Owner: c.id, RequestId: rid}))
		return err
	})
	return c.complete(op, false, err, a, linearExtra{})
}

func (c *linearClient) release(ctx context.Context) bool {
	key, ns, name := c.name()
	rid := uuid.NewString()
	op := c.invoke(FRelease, key, rid, linearExtra{Owner: c.id})
	a, err := c.call(ctx, func(ctx context.Context) error {
		_, err := c.lin.Release(ctx, connect.NewRequest(&v1.ReleaseRequest{Namespace: ns, Name: name, Owner: c.id, RequestId: rid}))
		return err
	})
	return c.complete(op, false, err, a, linearExtra{})
}

func (c *linearClient) lookup(ctx context.Context) bool {
	key, ns, name := c.name()
	op := c.invoke(FLookup, key, "", linearExtra{})
	var res *connect.Response[v1.LookupResponse]
	a, err := c.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.lin.Lookup(ctx, connect.NewRequest(&v1.LookupRequest{Namespace: ns, Name: name}))
		return err
	})
	var out linearExtra
	if err == nil && res.Msg.GetFound() {
		out.Value = res.Msg.GetOwner()
	}
	return c.complete(op, true, err, a, out)
}

// cas writes a register on a condition: mostly the version last seen (0
// when it is believed absent), sometimes the value last seen, sometimes
// unconditionally; a tenth of them delete.
func (c *linearClient) cas(ctx context.Context) bool {
	key := c.register()
	args := linearExtra{}
	req := &v1.CompareAndSetRequest{Key: key}
	byVersion := func() {
		args.CompareVersion = u64(c.versions[key])
		req.Expect = &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: c.versions[key]}
	}
	switch p := c.rng.IntN(100); {
	case p < 10:
		args.Delete, req.Delete = true, true
		byVersion()
	case p < 25:
		if v := c.values[key]; v != "" {
			args.CompareValue = &v
			req.Expect = &v1.CompareAndSetRequest_ExpectValue{ExpectValue: []byte(v)}
		} else {
			byVersion()
		}
	case p < 30:
		// unconditional
	default:
		byVersion()
	}
	if !args.Delete {
		args.Value = c.value()
		req.Value = []byte(args.Value)
	}
	req.RequestId = uuid.NewString()
	op := c.invoke(FCAS, key, req.RequestId, args)
	var res *connect.Response[v1.CompareAndSetResponse]
	a, err := c.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.lin.CompareAndSet(ctx, connect.NewRequest(req))
		return err
	})
	var out linearExtra
	switch {
	case err == nil:
		out.Version = u64(res.Msg.GetVersion())
		c.versions[key], c.values[key] = res.Msg.GetVersion(), args.Value
		if args.Delete {
			c.versions[key] = 0
		}
	case connect.CodeOf(err) == connect.CodeAborted:
		if cf := compareFailed(err); cf != nil {
			out.Version = u64(cf.GetCurrentVersion())
			c.versions[key], c.values[key] = cf.GetCurrentVersion(), ""
		}
	}
	return c.complete(op, false, err, a, out)
}

// compareFailed returns the register state an aborted compare-and-set
// reports, or nil.
func compareFailed(err error) *v1.CompareFailed {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if m, derr := d.Value(); derr == nil {
			if cf, ok := m.(*v1.CompareFailed); ok {
				return cf
			}
		}
	}
	return nil
}

func (c *linearClient) get(ctx context.Context) bool {
	key := c.register()
	op := c.invoke(FLinearGet, key, "", linearExtra{})
	var res *connect.Response[v1.LinearServiceGetResponse]
	a, err := c.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: key}))
		return err
	})
	var out linearExtra
	if err == nil {
		out.Version = u64(0)
		if res.Msg.GetFound() {
			out.Value, out.Version = string(res.Msg.GetValue()), u64(res.Msg.GetVersion())
		}
		c.versions[key], c.values[key] = *out.Version, out.Value
	}
	return c.complete(op, true, err, a, out)
}

// ensureLease keeps the client's lease alive, or grants a new one.
func (c *linearClient) ensureLease(ctx context.Context) bool {
	if c.lease != 0 {
		rid := uuid.NewString()
		op := c.invoke(FLeaseKeepAlive, "", rid, linearExtra{Lease: c.lease})
		a, err := c.call(ctx, func(ctx context.Context) error {
			_, err := c.lin.KeepAlive(ctx, connect.NewRequest(&v1.KeepAliveRequest{LeaseId: c.lease, RequestId: rid}))
			return err
		})
		if c.complete(op, false, err, a, linearExtra{}) && err == nil {
			return true
		}
		if connect.CodeOf(err) != connect.CodeNotFound {
			return false
		}
		c.lease = 0 // expired
	}
	rid := uuid.NewString()
	op := c.invoke(FLeaseGrant, "", rid, linearExtra{})
	var res *connect.Response[v1.GrantLeaseResponse]
	a, err := c.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.lin.GrantLease(ctx, connect.NewRequest(&v1.GrantLeaseRequest{TtlMs: c.w.LeaseTTL.Milliseconds(), RequestId: rid}))
		return err
	})
	var out linearExtra
	if err == nil {
		c.lease = res.Msg.GetLeaseId()
		out.Lease = c.lease
	}
	c.complete(op, false, err, a, out)
	return err == nil
}

// lockCycle takes a lock under the client's lease, writes with its fencing
// token, and unlocks. A lease whose lock or unlock ended without a known
// outcome is abandoned (it may still hold the lock until it expires):
// locking again under it would return the token it already has.
func (c *linearClient) lockCycle(ctx context.Context) bool {
	if !c.ensureLease(ctx) {
		return false
	}
	lock := c.lockName()
	rid := uuid.NewString()
	op := c.invoke(FLock, lock, rid, linearExtra{Owner: c.id, Lease: c.lease})
	var res *connect.Response[v1.LockResponse]
	lease := c.lease
	a, err := c.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.lin.Lock(ctx, connect.NewRequest(&v1.LockRequest{Lock: lock, LeaseId: lease, Owner: c.id, RequestId: rid}))
		return err
	})
	var out linearExtra
	if err == nil {
		out.Token = res.Msg.GetFencingToken()
	}
	answered := c.complete(op, false, err, a, out)
	switch {
	case err == nil:
	case !answered || connect.CodeOf(err) == connect.CodeNotFound:
		c.lease = 0
		return answered
	default:
		return true // held by another lease
	}
	c.tokens[lock] = out.Token
	wrote := c.fencedWrite(ctx, lock, out.Token)

	rid = uuid.NewString()
	op = c.invoke(FUnlock, lock, rid, linearExtra{Owner: c.id, Lease: lease, Token: out.Token})
	a, err = c.call(ctx, func(ctx context.Context) error {
		_, err := c.lin.Unlock(ctx, connect.NewRequest(&v1.UnlockRequest{Lock: lock, LeaseId: lease, RequestId: rid}))
		return err
	})
	c.complete(op, false, err, a, linearExtra{})
	if err != nil {
		c.lease = 0
	}
	return wrote && err == nil
}

// lateWrite sends a fenced write with the token of a lock the client held
// earlier: stale once another client locked it since, and then the tier
// must refuse it.
func (c *linearClient) lateWrite(ctx context.Context) bool {
	lock := c.lockName()
	token, ok := c.tokens[lock]
	if !ok {
		return c.get(ctx)
	}
	return c.fencedWrite(ctx, lock, token)
}

// fencedWrite writes the lock's register through compare-and-set, guarded
// by a fencing token.
func (c *linearClient) fencedWrite(ctx context.Context, lock string, token uint64) bool {
	rid := uuid.NewString()
	args := linearExtra{Token: token, Register: "fenced-" + lock, Value: c.value()}
	op := c.invoke(FFencedWrite, lock, rid, args)
	a, err := c.call(ctx, func(ctx context.Context) error {
		_, err := c.lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: args.Register, Value: []byte(args.Value),
			Fence: &v1.Fence{Lock: lock, Token: token}, RequestId: rid}))
		return err
	})
	return c.complete(op, false, err, a, linearExtra{})
}
