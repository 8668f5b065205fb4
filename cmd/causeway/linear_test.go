//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/check/lincheck"
)

// linearRegion is one `causeway serve` process of a linear-tier test; the
// supervisor keeps its addresses across a restart.
type linearRegion struct {
	name    string
	dataDir string
	args    []string // without the name, data directory and addresses
	gossip  string
	url     string
	kv      causewayv1connect.KVServiceClient
	admin   causewayv1connect.AdminServiceClient
	lin     causewayv1connect.LinearServiceClient
}

func (r *linearRegion) status(ctx context.Context) (*v1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := r.admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

type linearCluster struct {
	t       *testing.T
	ctx     context.Context
	client  *http.Client
	regions []*linearRegion
	procs   *serveRegions
}

// startLinearCluster starts three regions joined by gossip, each a voter of
// the linearizable tier, and waits until every region sees all three voters
// and a leader.
func startLinearCluster(t *testing.T, ctx context.Context) *linearCluster {
	t.Helper()
	// TLS on: Raft, forwarding and gossip between the regions over mutual
	// TLS, the test's clients as the admin client.
	procs := newSecureServeRegions(t)
	c := &linearCluster{t: t, ctx: ctx, client: procs.client(16, false), procs: procs}
	cluster := uuid.NewString()
	seed := ""
	for _, name := range []string{"us-east", "eu-west", "ap-south"} {
		r := &linearRegion{name: name, dataDir: t.TempDir(), args: []string{"--cluster-id", cluster, "--fault-injection"}}
		r.gossip = c.procs.add(name, r.dataDir).Addrs.Gossip
		if seed != "" {
			r.args = append(r.args, "--join", seed)
		}
		seed = r.gossip
		c.regions = append(c.regions, r)
		c.start(r)
	}
	c.awaitVoters(60 * time.Second)
	return c
}

func (c *linearCluster) start(r *linearRegion) {
	c.t.Helper()
	r.url = c.procs.start(c.ctx, r.name, r.args...)
	r.kv = causewayv1connect.NewKVServiceClient(c.client, r.url)
	r.admin = causewayv1connect.NewAdminServiceClient(c.client, r.url)
	r.lin = causewayv1connect.NewLinearServiceClient(c.client, r.url)
}

// awaitVoters waits until every running region sees three voters and a
// leader, and returns the leader's region.
func (c *linearCluster) awaitVoters(limit time.Duration) string {
	c.t.Helper()
	var leader string
	pollUntil(c.t, limit, "three voters and one leader seen by every region", func() bool {
		leader = ""
		for _, r := range c.regions {
			st, err := r.status(c.ctx)
			if err != nil || !st.Linear.GetAvailable() || len(st.Linear.Voters) != 3 || st.Linear.ReachableVoters != 3 {
				return false
			}
			if leader != "" && st.Linear.LeaderRegion != leader {
				return false
			}
			leader = st.Linear.LeaderRegion
		}
		return leader != ""
	})
	return leader
}

func (c *linearCluster) region(name string) *linearRegion {
	for _, r := range c.regions {
		if r.name == name {
			return r
		}
	}
	c.t.Fatalf("no region %s", name)
	return nil
}

// cut cuts (or heals) every link between r and the other regions, on both
// ends, so neither side hears the other.
func (c *linearCluster) cut(r *linearRegion, cut v1.LinkCut) {
	c.t.Helper()
	for _, o := range c.regions {
		if o == r {
			continue
		}
		for _, pair := range [][2]*linearRegion{{r, o}, {o, r}} {
			if _, err := pair[0].admin.SetLink(c.ctx, connect.NewRequest(&v1.SetLinkRequest{Region: pair[1].name, Cut: cut})); err != nil {
				c.t.Fatalf("set link %s→%s: %v", pair[0].name, pair[1].name, err)
			}
		}
	}
}

// recorder collects a history of linear-tier operations from many clients.
type recorder struct {
	mu  sync.Mutex
	ops []lincheck.Op
}

func (h *recorder) add(op lincheck.Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// finish fills in an operation's outcome from err.
func finish(op *lincheck.Op, err error) {
	op.Return = time.Now()
	if err == nil {
		op.Outcome = lincheck.OutcomeOK
		return
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		op.Outcome, op.Code = lincheck.OutcomeFail, ce.Code().String()
		return
	}
	op.Outcome, op.Return = lincheck.OutcomeInfo, time.Time{}
}

// retrying calls f with one request id until it gets a definite answer (not
// unavailable, not a timeout) or limit passes: the exactly-once promise lets
// a client retry a request whose outcome it does not know.
func retrying(ctx context.Context, limit time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(cctx)
		cancel()
		code := connect.CodeOf(err)
		if err == nil || (code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded) ||
			time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// linearClient runs a random mix of claims, releases, lookups, CAS, reads,
// and fenced writes under locks against one region until stop closes.
func linearClient(ctx context.Context, id int, r func() *linearRegion, h *recorder, stop <-chan struct{}, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	owner := fmt.Sprintf("client-%d", id)
	versions := map[string]uint64{} // last version seen per register
	var lease uint64
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		lin := r().lin
		switch p := rng.IntN(100); {
		case p < 25: // claim
			name := fmt.Sprintf("names/n%d", rng.IntN(3))
			op := lincheck.Op{Client: id, Kind: lincheck.KindClaim, Key: name, Owner: owner, Call: time.Now()}
			rid := uuid.NewString()
			ns, nm, _ := strings.Cut(name, "/")
			err := retrying(ctx, 8*time.Second, func(ctx context.Context) error {
				_, err := lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: ns, Name: nm, Owner: owner, RequestId: rid}))
				return err
			})
			finish(&op, err)
			h.add(op)
		case p < 40: // release
			name := fmt.Sprintf("names/n%d", rng.IntN(3))
			op := lincheck.Op{Client: id, Kind: lincheck.KindRelease, Key: name, Owner: owner, Call: time.Now()}
			rid := uuid.NewString()
			ns, nm, _ := strings.Cut(name, "/")
			err := retrying(ctx, 8*time.Second, func(ctx context.Context) error {
				_, err := lin.Release(ctx, connect.NewRequest(&v1.ReleaseRequest{Namespace: ns, Name: nm, Owner: owner, RequestId: rid}))
				return err
			})
			finish(&op, err)
			h.add(op)
		case p < 50: // lookup
			name := fmt.Sprintf("names/n%d", rng.IntN(3))
			op := lincheck.Op{Client: id, Kind: lincheck.KindLookup, Key: name, Call: time.Now()}
			ns, nm, _ := strings.Cut(name, "/")
			var res *connect.Response[v1.LookupResponse]
			err := retrying(ctx, 8*time.Second, func(ctx context.Context) (err error) {
				res, err = lin.Lookup(ctx, connect.NewRequest(&v1.LookupRequest{Namespace: ns, Name: nm}))
				return err
			})
			finish(&op, err)
			if err == nil {
				if res.Msg.Found {
					op.Value = res.Msg.Owner
				} else {
					op.Outcome, op.Code = lincheck.OutcomeFail, lincheck.CodeNotFound
				}
			}
			h.add(op)
		case p < 75: // cas against the last version seen
			key := fmt.Sprintf("reg-%d", rng.IntN(2))
			expect := versions[key]
			value := fmt.Sprintf("%s-%d", owner, n)
			op := lincheck.Op{Client: id, Kind: lincheck.KindCAS, Key: key, CompareVersion: &expect, Value: value, Call: time.Now()}
			rid := uuid.NewString()
			var res *connect.Response[v1.CompareAndSetResponse]
			err := retrying(ctx, 8*time.Second, func(ctx context.Context) (err error) {
				res, err = lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: key, Value: []byte(value),
					Expect: &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: expect}, RequestId: rid}))
				return err
			})
			finish(&op, err)
			switch {
			case err == nil:
				op.Version = res.Msg.Version
				versions[key] = res.Msg.Version
			case connect.CodeOf(err) == connect.CodeAborted:
				var ce *connect.Error
				errors.As(err, &ce)
				for _, d := range ce.Details() {
					if m, derr := d.Value(); derr == nil {
						if cf, ok := m.(*v1.CompareFailed); ok {
							op.Version = cf.CurrentVersion
							versions[key] = cf.CurrentVersion
						}
					}
				}
			}
			h.add(op)
		case p < 85: // linearizable read
			key := fmt.Sprintf("reg-%d", rng.IntN(2))
			op := lincheck.Op{Client: id, Kind: lincheck.KindGet, Key: key, Call: time.Now()}
			var res *connect.Response[v1.LinearServiceGetResponse]
			err := retrying(ctx, 8*time.Second, func(ctx context.Context) (err error) {
				res, err = lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: key}))
				return err
			})
			finish(&op, err)
			if err == nil {
				if res.Msg.Found {
					op.Value, op.Version = string(res.Msg.Value), res.Msg.Version
					versions[key] = res.Msg.Version
				} else {
					op.Outcome, op.Code = lincheck.OutcomeFail, lincheck.CodeNotFound
				}
			}
			h.add(op)
		default: // lock, fenced write, unlock
			if lease == 0 {
				rid := uuid.NewString()
				var res *connect.Response[v1.GrantLeaseResponse]
				err := retrying(ctx, 8*time.Second, func(ctx context.Context) (err error) {
					res, err = lin.GrantLease(ctx, connect.NewRequest(&v1.GrantLeaseRequest{TtlMs: 3000, RequestId: rid}))
					return err
				})
				if err != nil {
					continue
				}
				lease = res.Msg.LeaseId
			}
			op := lincheck.Op{Client: id, Kind: lincheck.KindLock, Key: "job", Owner: owner, Call: time.Now()}
			rid := uuid.NewString()
			var res *connect.Response[v1.LockResponse]
			err := retrying(ctx, 8*time.Second, func(ctx context.Context) (err error) {
				res, err = lin.Lock(ctx, connect.NewRequest(&v1.LockRequest{Lock: "job", LeaseId: lease, Owner: owner, RequestId: rid}))
				return err
			})
			finish(&op, err)
			if err == nil {
				op.Token = res.Msg.FencingToken
			}
			h.add(op)
			if err != nil {
				if connect.CodeOf(err) == connect.CodeNotFound { // the lease expired
					lease = 0
				}
				continue
			}
			w := lincheck.Op{Client: id, Kind: lincheck.KindFencedWrite, Key: "job", Token: op.Token, Call: time.Now()}
			wrid := uuid.NewString()
			err = retrying(ctx, 8*time.Second, func(ctx context.Context) error {
				_, err := lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: "job-output", Value: []byte(owner),
					Fence: &v1.Fence{Lock: "job", Token: op.Token}, RequestId: wrid}))
				return err
			})
			finish(&w, err)
			h.add(w)
			u := lincheck.Op{Client: id, Kind: lincheck.KindUnlock, Key: "job", Owner: owner, Token: op.Token, Call: time.Now()}
			urid := uuid.NewString()
			err = retrying(ctx, 8*time.Second, func(ctx context.Context) error {
				_, err := lin.Unlock(ctx, connect.NewRequest(&v1.UnlockRequest{Lock: "job", LeaseId: lease, RequestId: urid}))
				return err
			})
			finish(&u, err)
			h.add(u)

			if rng.IntN(2) == 0 {
				// A writer that lost its lock and does not know: its token
				// is stale once another client has locked since.
				stale := lincheck.Op{Client: id, Kind: lincheck.KindFencedWrite, Key: "job", Token: op.Token, Call: time.Now()}
				srid := uuid.NewString()
				err = retrying(ctx, 8*time.Second, func(ctx context.Context) error {
					_, err := lin.CompareAndSet(ctx, connect.NewRequest(&v1.CompareAndSetRequest{Key: "job-output", Value: []byte(owner + "-late"),
						Fence: &v1.Fence{Lock: "job", Token: op.Token}, RequestId: srid}))
					return err
				})
				finish(&stale, err)
				h.add(stale)
			}
		}
	}
}

// TestLinearTierUnderFaults drives the linearizable tier of three real
// processes with concurrent clients in every region while the leader's
// region is cut off from the others (and then healed), the leader is
// killed with SIGKILL and restarted, and a follower loses its disk (killed,
// its data directory deleted, restarted with --join: it rejoins as a new
// member). The history must be linearizable
// (porcupine), fencing tokens must strictly increase and stale fenced writes
// be refused; on the minority side the tier fails fast with `unavailable`
// and says why, while the causal tier on the same node keeps answering.
func TestLinearTierUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts causeway serve processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startLinearCluster(t, ctx)

	h := &recorder{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	assigned := map[int]*linearRegion{}
	for id := range 6 {
		assigned[id] = c.regions[id%3]
	}
	for id := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			linearClient(ctx, id, func() *linearRegion {
				mu.Lock()
				defer mu.Unlock()
				return assigned[id]
			}, h, stop, 1)
		}()
	}
	countOps := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.ops)
	}
	awaitProgress := func(what string, more int) {
		from := countOps()
		pollUntil(t, 60*time.Second, what, func() bool { return countOps() >= from+more })
	}
	awaitProgress("operations before any fault", 100)

	// Phase 1: cut the leader's region off. Its side has 1 of 3 voters.
	leader := c.awaitVoters(30 * time.Second)
	minority := c.region(leader)
	c.cut(minority, v1.LinkCut_LINK_CUT_BOTH)
	// The minority side fails fast and says why, within about two
	// election timeouts (~1s each here), once it has noticed.
	pollUntil(t, 30*time.Second, "the cut-off region refusing linear requests with a reason", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := minority.lin.Claim(cctx, connect.NewRequest(&v1.ClaimRequest{Namespace: "probe", Name: "x", Owner: "probe", RequestId: uuid.NewString()}))
		took := time.Since(start)
		if connect.CodeOf(err) != connect.CodeUnavailable {
			return false
		}
		msg := err.Error()
		if !strings.Contains(msg, "voters reachable") || !strings.Contains(msg, "causal reads and writes still available") {
			t.Fatalf("minority refusal does not say why: %v", err)
		}
		if took > 5*time.Second {
			t.Fatalf("minority refusal took %v, want about two election timeouts", took)
		}
		return true
	})
	// ... while its causal tier keeps serving reads and writes.
	put, err := minority.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "during-cut", Value: []byte("ok")}))
	if err != nil {
		t.Fatalf("causal write on the minority side: %v", err)
	}
	if got, err := minority.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "during-cut", CausalToken: put.Msg.CausalToken})); err != nil || string(got.Msg.Value) != "ok" {
		t.Fatalf("causal read on the minority side: %v %v", got, err)
	}
	st, err := minority.status(ctx)
	if err != nil || st.Linear.Available || st.Linear.Reason == "" {
		t.Fatalf("status of the cut-off region: available=%v reason=%q err=%v", st.GetLinear().GetAvailable(), st.GetLinear().GetReason(), err)
	}
	// The majority elects a new leader and goes on.
	var majority []*linearRegion
	for _, r := range c.regions {
		if r != minority {
			majority = append(majority, r)
		}
	}
	pollUntil(t, 30*time.Second, "a new leader on the majority side", func() bool {
		st, err := majority[0].status(ctx)
		return err == nil && st.Linear.Available && st.Linear.LeaderRegion != "" && st.Linear.LeaderRegion != minority.name
	})
	awaitProgress("operations during the cut", 150)
	c.cut(minority, v1.LinkCut_LINK_CUT_UNSPECIFIED)
	leader = c.awaitVoters(60 * time.Second)
	awaitProgress("operations after the heal", 100)

	// Phase 2: SIGKILL the leader, let the others elect, restart it.
	victim := c.region(leader)
	c.procs.kill(victim.name)
	c.client.CloseIdleConnections()
	mu.Lock()
	for id, r := range assigned {
		if r == victim { // its clients move to another region meanwhile
			assigned[id] = c.regions[(id+1)%3]
			if assigned[id] == victim {
				assigned[id] = c.regions[(id+2)%3]
			}
		}
	}
	mu.Unlock()
	awaitProgress("operations with the old leader dead", 150)
	c.start(victim)
	leader = c.awaitVoters(60 * time.Second)
	awaitProgress("operations after the restart", 150)

	// Phase 3: a follower loses its disk and rejoins with --join, as a new
	// member; its clients go elsewhere meanwhile, and come back to it.
	var lost *linearRegion
	for _, r := range c.regions {
		if r.name != leader {
			lost = r
		}
	}
	mu.Lock()
	home := map[int]*linearRegion{}
	for id, r := range assigned {
		home[id] = r
		if r == lost {
			assigned[id] = c.region(leader)
		}
	}
	mu.Unlock()
	c.wipe(lost)
	awaitProgress("operations while the wiped region rejoins", 100)
	c.awaitVoters(90 * time.Second)
	mu.Lock()
	for id, r := range home {
		assigned[id] = r
	}
	mu.Unlock()
	awaitProgress("operations after the rejoin", 150)
	close(stop)
	wg.Wait()

	ops := h.ops
	report, err := lincheck.CheckLinearizable(ops, 60*time.Second)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	dir := os.Getenv("CAUSEWAY_TEST_REPORT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if !report.OK {
		path := filepath.Join(dir, "linear-history.html")
		if err := report.WriteVisualization(path); err != nil {
			t.Log(err)
		}
		f, _ := os.Create(filepath.Join(dir, "linear-history.jsonl"))
		lincheck.WriteHistory(f, ops)
		f.Close()
		t.Fatalf("history of %d operations is not linearizable (visualisation in %s):\n%s", len(ops), path, report.String())
	}
	if anomalies := lincheck.CheckFencing(ops); len(anomalies) > 0 {
		t.Fatalf("fencing anomalies: %v", anomalies)
	}
	counts := map[string]int{}
	for _, op := range ops {
		counts[string(op.Kind)+" "+string(op.Outcome)+" "+op.Code]++
	}
	t.Logf("%d operations, linearizable; outcomes: %v", len(ops), counts)
	if counts["lock ok "] == 0 || counts["fenced-write ok "] == 0 || counts["cas ok "] == 0 || counts["claim ok "] == 0 {
		t.Fatalf("the workload did not exercise every operation: %v", counts)
	}
}
