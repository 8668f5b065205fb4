//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// End-to-end tests of a multi-region cluster: every region is a real
// `causeway serve` child process on 127.0.0.1 (see serveRegions), and the tests
// talk to them only through the public API. Replication is asynchronous, so
// the tests wait for it by polling Status or by reading with a causal token
// (the server waits for the token's causal past); none of them sleeps to
// synchronise.

const (
	// clusterRPCTimeout bounds one request. A read with a token waits for
	// the token's causal past up to (a little before) this deadline, so on
	// 127.0.0.1 it is far more than replication needs; running out means
	// replication is stuck.
	clusterRPCTimeout = 10 * time.Second
	// clusterConvergeTimeout bounds a wait for every region to hold the same
	// writes. It covers the replication streams' reconnect backoff (at most
	// 5s) after a region restarts.
	clusterConvergeTimeout = 30 * time.Second
	// clusterPollInterval is how often a wait polls Status.
	clusterPollInterval = 20 * time.Millisecond
)

// testCluster is a set of regions sharing one cluster id.
type testCluster struct {
	t      *testing.T
	ctx    context.Context
	id     string
	client *http.Client
	procs  *serveRegions
}

// testRegion is one region's `causeway serve` process and clients for it.
// Its addresses are fixed, so a restart keeps the address the other
// regions have stored.
type testRegion struct {
	name      string
	clusterID string
	dataDir   string
	listen    string // host:port
	url       string // http://listen
	peers     string // value of --peers
	kv        causewayv1connect.KVServiceClient
	admin     causewayv1connect.AdminServiceClient
}

func newTestCluster(t *testing.T, ctx context.Context) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a cluster of causeway serve processes")
	}
	// The regions run with TLS, as a deployment does: replication,
	// snapshots and gossip between them over mutual TLS, the test's
	// requests (Connect over HTTP/1.1) as the admin client.
	procs := newSecureServeRegions(t)
	return &testCluster{t: t, ctx: ctx, id: uuid.NewString(), client: procs.client(32, false), procs: procs}
}

// start starts a new region with an empty data directory on free ports,
// replicating with peers.
func (c *testCluster) start(name string, peers ...*testRegion) *testRegion {
	c.t.Helper()
	var named []string
	for _, p := range peers {
		named = append(named, p.name+"="+p.listen)
	}
	r := &testRegion{name: name, clusterID: c.id, dataDir: c.t.TempDir(), peers: strings.Join(named, ",")}
	r.listen = c.procs.add(name, r.dataDir).Addrs.API
	r.url = c.procs.start(c.ctx, name, r.args()...)
	r.kv = causewayv1connect.NewKVServiceClient(c.client, r.url)
	r.admin = causewayv1connect.NewAdminServiceClient(c.client, r.url)
	return r
}

func (r *testRegion) args() []string {
	// The linearizable tier is off: these tests restart regions on fixed
	// ports, and exercise the causal tier (linear_test.go covers the other).
	args := []string{"--cluster-id", r.clusterID, "--linear", "off"}
	if r.peers != "" {
		args = append(args, "--peers", r.peers)
	}
	return args
}

// restart starts a stopped region again on its data directory and address
// (the supervisor fails a start on another address).
func (c *testCluster) restart(r *testRegion) {
	c.t.Helper()
	c.client.CloseIdleConnections()
	c.procs.start(c.ctx, r.name, r.args()...)
}

// kill stops r with SIGKILL and checks that the signal is what ended it.
func (c *testCluster) kill(r *testRegion) {
	c.t.Helper()
	c.procs.kill(r.name)
	c.client.CloseIdleConnections()
}

// terminate stops r with SIGTERM and checks that it shut down cleanly
// (exit status 0) within grace.
func (c *testCluster) terminate(r *testRegion, grace time.Duration) {
	c.t.Helper()
	start := time.Now()
	forced, err := c.procs.sup.Stop(r.name, grace)
	c.client.CloseIdleConnections()
	if forced {
		c.t.Fatalf("region %s did not exit within %v of SIGTERM; killed it", r.name, grace)
	}
	if err != nil {
		c.t.Fatalf("region %s after SIGTERM: %v, want exit status 0", r.name, err)
	}
	c.t.Logf("region %s shut down %v after SIGTERM", r.name, time.Since(start).Round(time.Millisecond))
}

func rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, clusterRPCTimeout)
}

func (r *testRegion) put(ctx context.Context, key, value, token string) (*v1.PutResponse, error) {
	ctx, cancel := rpcContext(ctx)
	defer cancel()
	res, err := r.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value), CausalToken: token}))
	if err != nil {
		return nil, fmt.Errorf("put %s in region %s: %w", key, r.name, err)
	}
	return res.Msg, nil
}

func (r *testRegion) get(ctx context.Context, key, token string, siblings bool) (*v1.GetResponse, error) {
	ctx, cancel := rpcContext(ctx)
	defer cancel()
	res, err := r.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token, Siblings: siblings}))
	if err != nil {
		return nil, fmt.Errorf("get %s in region %s: %w", key, r.name, err)
	}
	return res.Msg, nil
}

func (r *testRegion) readMany(ctx context.Context, keys []string, token string) (*v1.ReadManyResponse, error) {
	ctx, cancel := rpcContext(ctx)
	defer cancel()
	res, err := r.kv.ReadMany(ctx, connect.NewRequest(&v1.ReadManyRequest{Keys: keys, CausalToken: token}))
	if err != nil {
		return nil, fmt.Errorf("read %v in region %s: %w", keys, r.name, err)
	}
	if len(res.Msg.GetResults()) != len(keys) {
		return nil, fmt.Errorf("read %v in region %s: %d results", keys, r.name, len(res.Msg.GetResults()))
	}
	for i, kr := range res.Msg.GetResults() {
		if kr.GetKey() != keys[i] {
			return nil, fmt.Errorf("read %v in region %s: result %d is for key %q", keys, r.name, i, kr.GetKey())
		}
	}
	return res.Msg, nil
}

func (r *testRegion) status(ctx context.Context) (*v1.StatusResponse, error) {
	ctx, cancel := rpcContext(ctx)
	defer cancel()
	res, err := r.admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		return nil, fmt.Errorf("status of region %s: %w", r.name, err)
	}
	return res.Msg, nil
}

func (c *testCluster) mustPut(r *testRegion, key, value, token string) *v1.PutResponse {
	c.t.Helper()
	res, err := r.put(c.ctx, key, value, token)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

func (c *testCluster) mustGet(r *testRegion, key, token string, siblings bool) *v1.GetResponse {
	c.t.Helper()
	res, err := r.get(c.ctx, key, token, siblings)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// awaitConverged polls Status until every region of regions has applied
// the same writes and has none waiting, and returns that vector. Once
// writes have stopped this means every region holds every acknowledged
// write: a region's own entry is its newest durable write.
func (c *testCluster) awaitConverged(regions ...*testRegion) map[string]uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, clusterConvergeTimeout)
	defer cancel()
	tick := time.NewTicker(clusterPollInterval)
	defer tick.Stop()
	for {
		var (
			first   map[string]uint64
			same    = true
			summary []string
		)
		for i, r := range regions {
			st, err := r.status(ctx)
			if err != nil {
				same = false
				summary = append(summary, err.Error())
				continue
			}
			summary = append(summary, fmt.Sprintf("%s: vector %v, %d pending", r.name, st.GetVector(), st.GetPendingWrites()))
			if i == 0 {
				first = st.GetVector()
			}
			if st.GetPendingWrites() != 0 || !maps.Equal(st.GetVector(), first) {
				same = false
			}
		}
		if same {
			return first
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("regions did not converge within %v:\n%s", clusterConvergeTimeout, strings.Join(summary, "\n"))
		case <-tick.C:
		}
	}
}

// describeKey is a canonical text of what a region holds for a key: its
// winning version and value, and every sibling.
func describeKey(found bool, value []byte, version *v1.Version, hasSiblings bool, siblings []*v1.Sibling) string {
	var b strings.Builder
	fmt.Fprintf(&b, "found=%v value=%q version=%s has_siblings=%v siblings=[", found, value, versionString(version), hasSiblings)
	for i, s := range siblings {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{found=%v value=%q version=%s}", s.GetFound(), s.GetValue(), versionString(s.GetVersion()))
	}
	b.WriteString("]")
	return b.String()
}

func describeGet(res *v1.GetResponse) string {
	return describeKey(res.GetFound(), res.GetValue(), res.GetVersion(), res.GetHasSiblings(), res.GetSiblings())
}

// compareKeys reads every key with its siblings in every region and
// reports keys on which the regions disagree. It returns what the first
// region holds, by key.
func (c *testCluster) compareKeys(keys []string, regions ...*testRegion) map[string]*v1.GetResponse {
	c.t.Helper()
	var (
		mu       sync.Mutex
		problems []string
		held     = make(map[string]*v1.GetResponse, len(keys))
	)
	forEachConcurrently(8, keys, func(key string) {
		var (
			first       *v1.GetResponse
			firstRegion string
		)
		for _, r := range regions {
			res, err := r.get(c.ctx, key, "", true)
			mu.Lock()
			switch {
			case err != nil:
				problems = append(problems, err.Error())
			case first == nil:
				first, firstRegion = res, r.name
				held[key] = res
			case describeGet(res) != describeGet(first):
				problems = append(problems, fmt.Sprintf("key %s: region %s holds %s\n  but region %s holds %s",
					key, firstRegion, describeGet(first), r.name, describeGet(res)))
			}
			mu.Unlock()
		}
	})
	if len(problems) > 0 {
		slices.Sort(problems)
		c.t.Fatalf("%d disagreements between regions after convergence:\n%s", len(problems), joinFirst(problems, 20))
	}
	return held
}

// startThree starts regions a, b and c the way an operator would: a alone,
// b pointing at a, c pointing at both.
func (c *testCluster) startThree() []*testRegion {
	c.t.Helper()
	a := c.start("a")
	b := c.start("b", a)
	cc := c.start("c", a, b)
	regions := []*testRegion{a, b, cc}
	c.awaitPeered(regions...)
	return regions
}

// awaitPeered waits until every region lists every other as a peer it
// replicates with. Until a region knows a new one as a peer, it truncates
// its log without waiting for it, and a write made in that window reaches
// the new region as a snapshot, during which it refuses clients: a test
// that starts work before would meet that (more often with TLS on a loaded
// machine, where streams take longer to open).
func (c *testCluster) awaitPeered(regions ...*testRegion) {
	c.t.Helper()
	pollUntil(c.t, clusterConvergeTimeout, "every region replicating with every other", func() bool {
		for _, r := range regions {
			st, err := r.status(c.ctx)
			if err != nil {
				return false
			}
			peers := map[string]bool{}
			for _, p := range st.GetPeers() {
				peers[p.GetRegion()] = true
			}
			for _, o := range regions {
				if o != r && !peers[o.name] {
					return false
				}
			}
		}
		return true
	})
}

// TestClusterReadYourWritesAcrossRegions checks the session guarantees when
// a session moves between regions carrying its token: a write made in one
// region is read, with its exact version, in every other region at once (the
// region waits for the token's causal past instead of answering stale), and
// sessions that only read never see the value go back.
func TestClusterReadYourWritesAcrossRegions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	c := newTestCluster(t, ctx)
	regions := c.startThree()
	const (
		writes  = 50
		readers = 2
		counter = "ryw/counter"
	)

	// Reader sessions move between regions with their own tokens while the
	// writer works: what they read of the counter never goes back.
	writerDone := make(chan struct{})
	var readersWG sync.WaitGroup
	readCounts := make([]int, readers)
	for rd := range readers {
		readersWG.Go(func() {
			token, last := "", 0
			for i := 0; ; i++ {
				select {
				case <-writerDone:
					return
				default:
				}
				r := regions[(i+rd)%len(regions)]
				res, err := r.get(ctx, counter, token, false)
				if err != nil {
					t.Errorf("reader %d: %v", rd, err)
					return
				}
				token = res.GetCausalToken()
				if !res.GetFound() {
					if last != 0 {
						t.Errorf("reader %d: counter not found in region %s after reading %d", rd, r.name, last)
						return
					}
					continue
				}
				n, err := strconv.Atoi(string(res.GetValue()))
				if err != nil {
					t.Errorf("reader %d: counter holds %q", rd, res.GetValue())
					return
				}
				if n < last {
					t.Errorf("monotonic reads violated: reader %d read counter %d, then %d in region %s", rd, last, n, r.name)
					return
				}
				last = n
				readCounts[rd]++
			}
		})
	}

	// The writer writes in region i%3, then reads in the two others.
	token := ""
	var lastVersion *v1.Version
	for i := 1; i <= writes && !t.Failed(); i++ {
		w := regions[i%len(regions)]
		put := c.mustPut(w, counter, strconv.Itoa(i), token)
		token = put.GetCausalToken()
		if put.GetVersion().GetOriginRegion() != w.name {
			t.Fatalf("write %d in region %s got version %s", i, w.name, versionString(put.GetVersion()))
		}
		if lastVersion != nil && !timestampLess(lastVersion.GetTimestamp(), put.GetVersion().GetTimestamp()) {
			t.Fatalf("write %d got timestamp %s, not after the session's previous write %s",
				i, versionString(put.GetVersion()), versionString(lastVersion))
		}
		lastVersion = put.GetVersion()
		for k := 1; k < len(regions); k++ {
			r := regions[(i+k)%len(regions)]
			got := c.mustGet(r, counter, token, false)
			if !got.GetFound() || string(got.GetValue()) != strconv.Itoa(i) || !proto.Equal(got.GetVersion(), put.GetVersion()) || got.GetHasSiblings() {
				t.Fatalf("read-your-writes violated: write %d made in region %s with version %s; region %s then returned %s",
					i, w.name, versionString(put.GetVersion()), r.name, describeGet(got))
			}
			token = got.GetCausalToken()
		}
	}
	close(writerDone)
	readersWG.Wait()
	t.Logf("readers made %v successful reads while the writer wrote", readCounts)

	// Every region serves the session's last write to a session handed the
	// writer's token.
	for _, r := range regions {
		got := c.mustGet(r, counter, token, false)
		if string(got.GetValue()) != strconv.Itoa(writes) || !proto.Equal(got.GetVersion(), lastVersion) {
			t.Errorf("region %s with the writer's final token returned %s; want value %d, version %s",
				r.name, describeGet(got), writes, versionString(lastVersion))
		}
	}
}

// TestClusterPhotoAlbumAnomaly is the classic example of what causal
// consistency prevents: Alice removes Bob from her album's access list in
// one region, then adds a private photo in another. No reader, in any
// region, may see the new photo together with the old access list: not in
// one snapshot read, and not when it reads the photo and then, with the
// token of that read, the access list.
func TestClusterPhotoAlbumAnomaly(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	c := newTestCluster(t, ctx)
	regions := c.startThree()
	a, b := regions[0], regions[1]
	const rounds = 20

	var seenIntermediate, seenPhoto atomic.Int64
	for round := range rounds {
		acl, photo := fmt.Sprintf("album%02d/acl", round), fmt.Sprintf("album%02d/photo", round)
		setup := c.mustPut(a, acl, "alice,bob", "")
		for _, r := range regions[1:] {
			if got := c.mustGet(r, acl, setup.GetCausalToken(), false); string(got.GetValue()) != "alice,bob" {
				t.Fatalf("round %d: region %s holds %s for the access list just set to alice,bob", round, r.name, describeGet(got))
			}
		}

		// checkPair judges one observation of the album.
		checkPair := func(how string, reader *testRegion, aclRes, photoRes *v1.KeyResult) bool {
			if !photoRes.GetFound() {
				if string(photoRes.GetValue()) != "" {
					t.Errorf("round %d, %s in region %s: photo not found but has a value", round, how, reader.name)
					return false
				}
				if v := string(aclRes.GetValue()); !aclRes.GetFound() || (v != "alice,bob" && v != "alice") {
					t.Errorf("round %d, %s in region %s: access list %s", round, how, reader.name,
						describeKey(aclRes.GetFound(), aclRes.GetValue(), aclRes.GetVersion(), aclRes.GetHasSiblings(), nil))
					return false
				}
				if string(aclRes.GetValue()) == "alice" {
					seenIntermediate.Add(1)
				}
				return true
			}
			seenPhoto.Add(1)
			if string(photoRes.GetValue()) != "private" || !aclRes.GetFound() || string(aclRes.GetValue()) != "alice" {
				t.Errorf("causality violated in round %d (%s in region %s): photo %s with access list %s",
					round, how, reader.name,
					describeKey(photoRes.GetFound(), photoRes.GetValue(), photoRes.GetVersion(), photoRes.GetHasSiblings(), nil),
					describeKey(aclRes.GetFound(), aclRes.GetValue(), aclRes.GetVersion(), aclRes.GetHasSiblings(), nil))
				return false
			}
			return true
		}

		// One reader per region. Each iteration is two fresh sessions: a
		// snapshot read of both keys, and a read of the photo followed by
		// a read of the access list with that read's token, in the same
		// region or another one. A reader stops once it has seen the photo
		// both ways.
		started := make(chan struct{}, len(regions))
		var wg sync.WaitGroup
		for ri, reader := range regions {
			wg.Go(func() {
				signalled := false
				signal := func() {
					if !signalled {
						signalled = true
						started <- struct{}{}
					}
				}
				defer signal()
				sawSnapshot, sawChain := false, false
				for i := 0; !sawSnapshot || !sawChain; i++ {
					if i == 1 {
						signal()
					}
					rm, err := reader.readMany(ctx, []string{acl, photo}, "")
					if err != nil {
						t.Errorf("round %d: %v", round, err)
						return
					}
					if !checkPair("ReadMany", reader, rm.GetResults()[0], rm.GetResults()[1]) {
						return
					}
					sawSnapshot = sawSnapshot || rm.GetResults()[1].GetFound()

					ph, err := reader.get(ctx, photo, "", false)
					if err != nil {
						t.Errorf("round %d: %v", round, err)
						return
					}
					next := regions[(ri+i)%len(regions)]
					al, err := next.get(ctx, acl, ph.GetCausalToken(), false)
					if err != nil {
						t.Errorf("round %d: %v", round, err)
						return
					}
					how := fmt.Sprintf("Get photo, then Get access list with its token in region %s", next.name)
					if !checkPair(how, reader,
						&v1.KeyResult{Found: al.GetFound(), Value: al.GetValue(), Version: al.GetVersion()},
						&v1.KeyResult{Found: ph.GetFound(), Value: ph.GetValue(), Version: ph.GetVersion()}) {
						return
					}
					sawChain = sawChain || ph.GetFound()
				}
			})
		}
		// The updates start once every reader has looked at the album.
		for range regions {
			select {
			case <-started:
			case <-ctx.Done():
				t.Fatalf("round %d: readers did not start: %v", round, ctx.Err())
			}
		}
		removed := c.mustPut(a, acl, "alice", setup.GetCausalToken())
		added := c.mustPut(b, photo, "private", removed.GetCausalToken())
		if !timestampLess(removed.GetVersion().GetTimestamp(), added.GetVersion().GetTimestamp()) {
			t.Errorf("round %d: the photo (%s) was not timestamped after the access list change it depends on (%s)",
				round, versionString(added.GetVersion()), versionString(removed.GetVersion()))
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds: %d observations saw Bob removed but no photo yet, %d saw the photo (all with Bob removed)",
		rounds, seenIntermediate.Load(), seenPhoto.Load())

	// On 127.0.0.1 the access list change almost always reaches region c
	// before the photo, so the rounds above rarely test the dependency
	// check. Here the order is forced: c is down while Alice makes both
	// changes, and a is frozen (SIGSTOP) when c comes back, so c receives
	// the photo from b while the access list change it depends on is held
	// up in a.
	c.photoAlbumWithHeldBackDependency(regions)
}

// photoAlbumWithHeldBackDependency is the deterministic part of
// TestClusterPhotoAlbumAnomaly: region c receives the photo before the
// access list change it depends on, and must hold the photo back (and
// answer a session that needs the change with unavailable) until the
// change arrives.
func (c *testCluster) photoAlbumWithHeldBackDependency(regions []*testRegion) {
	t := c.t
	t.Helper()
	a, b, lagging := regions[0], regions[1], regions[2]
	const acl, photo = "album-held/acl", "album-held/photo"
	setup := c.mustPut(a, acl, "alice,bob", "")
	c.awaitConverged(regions...)

	c.kill(lagging)
	removed := c.mustPut(a, acl, "alice", setup.GetCausalToken())
	added := c.mustPut(b, photo, "private", removed.GetCausalToken())
	bobSession := c.mustGet(b, photo, "", false) // a session that saw the photo in b
	if string(bobSession.GetValue()) != "private" {
		t.Fatalf("region %s holds %s for the photo it just accepted", b.name, describeGet(bobSession))
	}
	if err := c.procs.sup.Pause(a.name); err != nil {
		t.Fatalf("freeze region %s: %v", a.name, err)
	}
	frozen := true
	thaw := func() {
		if frozen {
			frozen = false
			if err := c.procs.sup.Resume(a.name); err != nil {
				t.Errorf("resume region %s: %v", a.name, err)
			}
		}
	}
	defer thaw()
	c.restart(lagging)

	// Wait until the photo has reached c: buffered (or, were the
	// dependency ignored, applied).
	ctx, cancel := context.WithTimeout(c.ctx, clusterConvergeTimeout)
	defer cancel()
	tick := time.NewTicker(clusterPollInterval)
	defer tick.Stop()
	for {
		st, err := lagging.status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.GetPendingWrites() > 0 || st.GetVector()[b.name] >= added.GetVersion().GetOriginSeq() {
			if st.GetPendingWrites() != 1 || st.GetVector()[b.name] >= added.GetVersion().GetOriginSeq() {
				t.Errorf("region %s received the photo (write %d of %s) before the access list change (write %d of %s) it depends on: "+
					"vector %v, %d writes pending; want the photo pending", lagging.name, added.GetVersion().GetOriginSeq(), b.name,
					removed.GetVersion().GetOriginSeq(), a.name, st.GetVector(), st.GetPendingWrites())
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the photo written in region %s did not reach region %s: %v", b.name, lagging.name, ctx.Err())
		case <-tick.C:
		}
	}

	// A fresh session in c sees the album as it was before both changes.
	rm, err := lagging.readMany(c.ctx, []string{acl, photo}, "")
	if err != nil {
		t.Fatal(err)
	}
	if aclRes, photoRes := rm.GetResults()[0], rm.GetResults()[1]; photoRes.GetFound() || string(aclRes.GetValue()) != "alice,bob" {
		t.Errorf("causality violated: region %s, holding the photo back, served access list %s and photo %s; want alice,bob and no photo",
			lagging.name,
			describeKey(aclRes.GetFound(), aclRes.GetValue(), aclRes.GetVersion(), aclRes.GetHasSiblings(), nil),
			describeKey(photoRes.GetFound(), photoRes.GetValue(), photoRes.GetVersion(), photoRes.GetHasSiblings(), nil))
	}
	// The session that saw the photo cannot read the access list in c:
	// c answers unavailable, naming what it lacks, not the old list.
	short, cancelShort := context.WithTimeout(c.ctx, time.Second)
	got, err := lagging.kv.Get(short, connect.NewRequest(&v1.GetRequest{Key: acl, CausalToken: bobSession.GetCausalToken()}))
	cancelShort()
	if err == nil {
		t.Errorf("region %s served access list %s to a session that saw the photo, before it has the change the photo depends on",
			lagging.name, describeKey(got.Msg.GetFound(), got.Msg.GetValue(), got.Msg.GetVersion(), got.Msg.GetHasSiblings(), nil))
	} else if want := fmt.Sprintf("%s writes %d..", a.name, removed.GetVersion().GetOriginSeq()); connect.CodeOf(err) != connect.CodeUnavailable ||
		!strings.Contains(err.Error(), want) {
		t.Errorf("region %s, asked with a token it cannot serve yet: %v; want unavailable naming %q", lagging.name, err, want)
	}

	// Once a runs again, c catches up and shows both changes.
	thaw()
	c.awaitConverged(regions...)
	rm, err = lagging.readMany(c.ctx, []string{acl, photo}, bobSession.GetCausalToken())
	if err != nil {
		t.Fatal(err)
	}
	if aclRes, photoRes := rm.GetResults()[0], rm.GetResults()[1]; string(photoRes.GetValue()) != "private" || string(aclRes.GetValue()) != "alice" {
		t.Errorf("after catching up, region %s serves access list %q and photo %q; want alice and private",
			lagging.name, aclRes.GetValue(), photoRes.GetValue())
	}
}

// TestClusterAvailableDuringOutageAndConverges stops one region, checks that
// the other two keep accepting writes and serving them to sessions, also
// concurrent writes to one key (siblings), then restarts the stopped region
// and checks that all three converge to identical data, and that a write
// that saw the siblings supersedes them everywhere.
func TestClusterAvailableDuringOutageAndConverges(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	c := newTestCluster(t, ctx)
	regions := c.startThree()
	a, b, down := regions[0], regions[1], regions[2]

	written := map[string]*v1.Version{} // key -> version acknowledged
	var keys []string
	for _, r := range regions {
		key := "outage/before/" + r.name
		written[key] = c.mustPut(r, key, "written in "+r.name, "").GetVersion()
		keys = append(keys, key)
	}
	c.awaitConverged(regions...)

	// serve gives in-flight requests (replication streams included) up to
	// 10s to finish before it exits.
	c.terminate(down, 30*time.Second)

	// One session alternates between the live regions, reading each write
	// back in the other one.
	live := []*testRegion{a, b}
	token := ""
	for i := range 20 {
		w, r := live[i%2], live[(i+1)%2]
		key := fmt.Sprintf("outage/during/%02d", i)
		value := fmt.Sprintf("write %d in %s while %s is down", i, w.name, down.name)
		put := c.mustPut(w, key, value, token)
		got := c.mustGet(r, key, put.GetCausalToken(), false)
		if string(got.GetValue()) != value || !proto.Equal(got.GetVersion(), put.GetVersion()) {
			t.Fatalf("during the outage, %s written in region %s with version %s; region %s returned %s",
				key, w.name, versionString(put.GetVersion()), r.name, describeGet(got))
		}
		token = got.GetCausalToken()
		written[key] = put.GetVersion()
		keys = append(keys, key)
	}

	// Concurrent writes to one key: two fresh sessions, neither having
	// seen the other's write, in the two live regions at once.
	const conflict = "outage/conflict"
	var conflictVersions [2]*v1.Version
	var wg sync.WaitGroup
	for i, r := range live {
		wg.Go(func() {
			put, err := r.put(ctx, conflict, "from "+r.name, "")
			if err != nil {
				t.Error(err)
				return
			}
			conflictVersions[i] = put.GetVersion()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	c.awaitConverged(live...)
	for _, r := range live {
		got := c.mustGet(r, conflict, "", true)
		if !got.GetHasSiblings() || len(got.GetSiblings()) != 2 {
			t.Fatalf("region %s holds %s for %s; want both concurrent writes (%s, %s) as siblings",
				r.name, describeGet(got), conflict, versionString(conflictVersions[0]), versionString(conflictVersions[1]))
		}
	}

	c.restart(down)
	c.awaitConverged(regions...)
	keys = append(keys, conflict)
	held := c.compareKeys(keys, regions...)
	for key, v := range written {
		if got := held[key]; !got.GetFound() || !proto.Equal(got.GetVersion(), v) || got.GetHasSiblings() {
			t.Errorf("after convergence every region holds %s for %s; want the acknowledged version %s", describeGet(got), key, versionString(v))
		}
	}
	// Every region holds both concurrent writes, and the same winner: the
	// greater timestamp.
	winner, loser := conflictVersions[0], conflictVersions[1]
	if timestampLess(winner.GetTimestamp(), loser.GetTimestamp()) ||
		(proto.Equal(winner.GetTimestamp(), loser.GetTimestamp()) && winner.GetOriginRegion() < loser.GetOriginRegion()) {
		winner, loser = loser, winner
	}
	got := held[conflict]
	if !got.GetHasSiblings() || len(got.GetSiblings()) != 2 ||
		!proto.Equal(got.GetVersion(), winner) || !proto.Equal(got.GetSiblings()[0].GetVersion(), winner) ||
		!proto.Equal(got.GetSiblings()[1].GetVersion(), loser) ||
		string(got.GetValue()) != "from "+winner.GetOriginRegion() {
		t.Fatalf("after convergence every region holds %s for %s; want siblings %s (winner, the greater timestamp) and %s",
			describeGet(got), conflict, versionString(winner), versionString(loser))
	}

	// A session that read the siblings writes a merge in the restarted
	// region: it supersedes both, everywhere.
	read := c.mustGet(down, conflict, "", true)
	merged := c.mustPut(down, conflict, "merged", read.GetCausalToken())
	c.awaitConverged(regions...)
	held = c.compareKeys([]string{conflict}, regions...)
	if got := held[conflict]; string(got.GetValue()) != "merged" || got.GetHasSiblings() || len(got.GetSiblings()) != 1 ||
		!proto.Equal(got.GetVersion(), merged.GetVersion()) {
		t.Errorf("after the merge written in region %s (version %s), every region holds %s; want the merge alone",
			down.name, versionString(merged.GetVersion()), describeGet(got))
	}
}

// clusterAck is a write a region acknowledged.
type clusterAck struct {
	region, key, value, requestID string
	version                       *v1.Version
}

// TestClusterSIGKILLLosesNoAcknowledgedWrite runs a write load on every
// region, SIGKILLs one of them in the middle of it, keeps writing to the
// others, restarts it and writes there again. After convergence every
// region holds every acknowledged write with the version acknowledged,
// including the killed region's writes from before the kill, and a retry of
// an acknowledged write, with its request id, in another region returns the
// original version and writes nothing.
func TestClusterSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	c := newTestCluster(t, ctx)
	regions := c.startThree()
	victim := regions[2]
	const (
		writersPerRegion = 3
		acksBeforeKill   = 100 // per region
		acksDuringOutage = 100 // per surviving region
		acksAfterRestart = 20
	)

	var (
		mu         sync.Mutex
		acks       []clusterAck
		perRegion  = map[string]int{}
		unexpected []error
		victimDown atomic.Bool
		inFlight   atomic.Int64 // writes in flight to the victim
		progress   = make(chan struct{}, 1)
		wg         sync.WaitGroup
	)
	record := func(a clusterAck) {
		mu.Lock()
		acks = append(acks, a)
		perRegion[a.region]++
		mu.Unlock()
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	// write runs one session in region r until stop, limit writes or a
	// failure, and returns how many writes were acknowledged. Failures of
	// the victim while it is down are expected.
	write := func(stop context.Context, r *testRegion, name string, limit int) (acked int) {
		token := ""
		for i := 0; i < limit && stop.Err() == nil; i++ {
			a := clusterAck{region: r.name, key: fmt.Sprintf("kill/%s/%s/%04d", r.name, name, i), requestID: uuid.NewString()}
			a.value = fmt.Sprintf("write %d of %s in %s: %s", i, name, r.name, uuid.NewString())
			if r == victim {
				inFlight.Add(1)
			}
			rctx, rcancel := rpcContext(stop)
			res, err := r.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: a.key, Value: []byte(a.value), CausalToken: token, RequestId: a.requestID}))
			rcancel()
			if r == victim {
				inFlight.Add(-1)
			}
			if err != nil {
				if stop.Err() == nil && !(r == victim && victimDown.Load()) {
					mu.Lock()
					unexpected = append(unexpected, fmt.Errorf("put %s in region %s: %w", a.key, r.name, err))
					mu.Unlock()
				}
				return acked
			}
			a.version = res.Msg.GetVersion()
			token = res.Msg.GetCausalToken()
			record(a)
			acked++
		}
		return acked
	}
	// awaitAcks waits until want(perRegion) holds.
	awaitAcks := func(what string, want func(map[string]int) bool) {
		t.Helper()
		for {
			mu.Lock()
			ok, failed, counts := want(perRegion), len(unexpected) > 0, maps.Clone(perRegion)
			mu.Unlock()
			if failed {
				t.Fatalf("writes failed: %v", errors.Join(unexpected...))
			}
			if ok {
				return
			}
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v (acknowledged so far: %v)", what, ctx.Err(), counts)
			}
		}
	}

	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for _, r := range regions {
		for w := range writersPerRegion {
			wg.Go(func() { write(load, r, fmt.Sprintf("w%d", w), 1<<30) })
		}
	}
	awaitAcks("writes before the kill", func(n map[string]int) bool {
		for _, r := range regions {
			if n[r.name] < acksBeforeKill {
				return false
			}
		}
		return true
	})
	victimDown.Store(true)
	inFlightAtKill := inFlight.Load()
	c.kill(victim)
	mu.Lock()
	victimAcks := perRegion[victim.name]
	mu.Unlock()
	if inFlightAtKill == 0 {
		t.Fatalf("no write was in flight to region %s at the kill; the test did not crash it mid-write", victim.name)
	}
	t.Logf("SIGKILL of region %s after it acknowledged %d writes, %d in flight", victim.name, victimAcks, inFlightAtKill)

	awaitAcks("writes during the outage", func(n map[string]int) bool {
		for _, r := range regions[:2] {
			if n[r.name] < acksBeforeKill+acksDuringOutage {
				return false
			}
		}
		return true
	})
	c.restart(victim)
	victimDown.Store(false)
	// The restarted region accepts writes again, while the others still
	// write.
	afterRestart := write(ctx, victim, "after-restart", acksAfterRestart)
	stopLoad()
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("writes failed: %v", errors.Join(unexpected...))
	}
	if afterRestart != acksAfterRestart {
		t.Fatalf("region %s acknowledged %d writes after its restart; want %d", victim.name, afterRestart, acksAfterRestart)
	}

	vector := c.awaitConverged(regions...)
	t.Logf("%d acknowledged writes (%v); converged at %v", len(acks), perRegion, vector)
	for _, r := range regions {
		var greatest uint64
		for _, a := range acks {
			if a.region == r.name {
				greatest = max(greatest, a.version.GetOriginSeq())
			}
		}
		if vector[r.name] < greatest {
			t.Errorf("converged vector %v: region %s has %d writes, but acknowledged one with sequence number %d", vector, r.name, vector[r.name], greatest)
		}
	}

	var problems []string
	forEachConcurrently(8, acks, func(a clusterAck) {
		for _, r := range regions {
			got, err := r.get(ctx, a.key, "", false)
			var problem string
			switch {
			case err != nil:
				problem = err.Error()
			case !got.GetFound() || string(got.GetValue()) != a.value || !proto.Equal(got.GetVersion(), a.version):
				problem = fmt.Sprintf("region %s holds %s for %s; region %s acknowledged %q with version %s",
					r.name, describeGet(got), a.key, a.region, a.value, versionString(a.version))
			default:
				continue
			}
			mu.Lock()
			problems = append(problems, problem)
			mu.Unlock()
		}
	})
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Fatalf("%d of %d acknowledged writes are missing or wrong somewhere:\n%s", len(problems), len(acks)*len(regions), joinFirst(problems, 20))
	}

	// A client whose region failed retries in another region with the
	// same request id: the retry returns the original version.
	var sample []clusterAck
	for i, a := range acks {
		if i%20 == 0 {
			sample = append(sample, a)
		}
	}
	for i, a := range sample {
		var other *testRegion
		for k := range regions {
			if r := regions[(i+k)%len(regions)]; r.name != a.region {
				other = r
				break
			}
		}
		rctx, rcancel := rpcContext(ctx)
		again, err := other.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: a.key, Value: []byte(a.value), RequestId: a.requestID}))
		rcancel()
		switch {
		case err != nil:
			t.Errorf("retry of put %s (request id %s) in region %s: %v", a.key, a.requestID, other.name, err)
		case !proto.Equal(again.Msg.GetVersion(), a.version):
			t.Errorf("retry of put %s (request id %s) in region %s returned version %s; region %s acknowledged %s",
				a.key, a.requestID, other.name, versionString(again.Msg.GetVersion()), a.region, versionString(a.version))
		}
	}
	if after := c.awaitConverged(regions...); !maps.Equal(after, vector) {
		t.Errorf("retries with known request ids wrote: vector went from %v to %v", vector, after)
	}
}

// TestClusterNewRegionBootstrapsFromSnapshot starts a new region after the
// existing ones have truncated their replication logs, so it can only catch
// up from a snapshot: it must end with all their data (values, deletions
// and siblings), and its own writes must reach them.
func TestClusterNewRegionBootstrapsFromSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	c := newTestCluster(t, ctx)
	a := c.start("a")
	b := c.start("b", a)

	var keys []string
	for _, r := range []*testRegion{a, b} {
		token := ""
		for i := range 30 {
			key := fmt.Sprintf("boot/%s/%02d", r.name, i)
			token = c.mustPut(r, key, fmt.Sprintf("value %d from %s", i, r.name), token).GetCausalToken()
			keys = append(keys, key)
		}
		// Overwrites, and a deletion.
		for i := range 3 {
			token = c.mustPut(r, "boot/overwritten/"+r.name, fmt.Sprintf("version %d", i), token).GetCausalToken()
		}
		rctx, rcancel := rpcContext(ctx)
		_, err := r.kv.Delete(rctx, connect.NewRequest(&v1.DeleteRequest{Key: fmt.Sprintf("boot/%s/00", r.name), CausalToken: token}))
		rcancel()
		if err != nil {
			t.Fatalf("delete in region %s: %v", r.name, err)
		}
		keys = append(keys, "boot/overwritten/"+r.name)
	}
	// Concurrent writes to one key: siblings, which the snapshot must keep.
	const conflict = "boot/conflict"
	c.mustPut(a, conflict, "from a", "")
	c.mustPut(b, conflict, "from b", "")
	keys = append(keys, conflict)
	c.awaitConverged(a, b)

	// Wait until each region has acknowledged the other's writes and the
	// replication logs are truncated: a new region can no longer replay
	// them and must bootstrap from a snapshot.
	c.awaitPeersAcked(a, b)
	for _, r := range []*testRegion{a, b} {
		c.awaitLogTruncated(r)
	}

	n := c.start("c", a, b)
	all := []*testRegion{a, b, n}
	c.awaitConverged(all...)
	if !strings.Contains(c.procs.stderrOf(n.name), "merged a snapshot") {
		t.Errorf("region %s converged without logging a merged snapshot; the test did not exercise it", n.name)
	}
	held := c.compareKeys(keys, all...)
	if got := held["boot/a/00"]; got.GetFound() || got.GetVersion() == nil {
		t.Errorf("deleted key boot/a/00: every region holds %s; want the deletion", describeGet(got))
	}
	if got := held["boot/b/07"]; string(got.GetValue()) != "value 7 from b" {
		t.Errorf("key boot/b/07: every region holds %s; want value 7 from b", describeGet(got))
	}
	if got := held["boot/overwritten/a"]; string(got.GetValue()) != "version 2" || got.GetHasSiblings() {
		t.Errorf("key boot/overwritten/a: every region holds %s; want its last write alone", describeGet(got))
	}
	if got := held[conflict]; !got.GetHasSiblings() || len(got.GetSiblings()) != 2 {
		t.Errorf("key %s: every region holds %s; want the two concurrent writes as siblings", conflict, describeGet(got))
	}

	// The new region's writes reach the others.
	token := ""
	var mine []string
	for i := range 10 {
		key := fmt.Sprintf("boot/%s/%02d", n.name, i)
		token = c.mustPut(n, key, fmt.Sprintf("value %d from %s", i, n.name), token).GetCausalToken()
		mine = append(mine, key)
	}
	for _, r := range []*testRegion{a, b} {
		if got := c.mustGet(r, mine[len(mine)-1], token, false); string(got.GetValue()) != "value 9 from c" {
			t.Errorf("region %s, reading with the token of region %s's writes, holds %s", r.name, n.name, describeGet(got))
		}
	}
	vector := c.awaitConverged(all...)
	if vector[n.name] != uint64(len(mine)) {
		t.Errorf("converged vector %v; want %d writes of region %s", vector, len(mine), n.name)
	}
	c.compareKeys(append(keys, mine...), all...)
}

// awaitPeersAcked polls Status until every region of regions lists every
// other one as a peer that has acknowledged all of its writes.
func (c *testCluster) awaitPeersAcked(regions ...*testRegion) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, clusterConvergeTimeout)
	defer cancel()
	tick := time.NewTicker(clusterPollInterval)
	defer tick.Stop()
	for {
		var lagging []string
		for _, r := range regions {
			st, err := r.status(ctx)
			if err != nil {
				lagging = append(lagging, err.Error())
				continue
			}
			own := st.GetVector()[r.name]
			for _, o := range regions {
				if o == r {
					continue
				}
				i := slices.IndexFunc(st.GetPeers(), func(p *v1.PeerStatus) bool { return p.GetRegion() == o.name })
				if i < 0 || st.GetPeers()[i].GetAckedSeq() < own {
					lagging = append(lagging, fmt.Sprintf("region %s has %d writes; its peers: %v", r.name, own, st.GetPeers()))
					break
				}
			}
		}
		if len(lagging) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("regions did not acknowledge each other's writes within %v:\n%s", clusterConvergeTimeout, strings.Join(lagging, "\n"))
		case <-tick.C:
		}
	}
}

// awaitLogTruncated waits until region r's replication log no longer holds
// its first write: every peer has acknowledged it and the log was
// truncated (once per second). It asks the way a new region does, with a
// Replicate stream from sequence number 1, and expects failed_precondition.
func (c *testCluster) awaitLogTruncated(r *testRegion) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, clusterConvergeTimeout)
	defer cancel()
	// The probe is a node of its own region (replication is for nodes).
	repl := causewayv1connect.NewReplicationServiceClient(c.procs.nodeClient("log-probe"), r.url)
	tick := time.NewTicker(clusterPollInterval)
	defer tick.Stop()
	var last error
	for {
		last = probeLogStart(ctx, repl, c.id)
		var ce *connect.Error
		if errors.As(last, &ce) && ce.Code() == connect.CodeFailedPrecondition {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("the replication log of region %s was not truncated within %v; last probe: %v", r.name, clusterConvergeTimeout, last)
		case <-tick.C:
		}
	}
}

// probeLogStart opens a replication stream from sequence number 1 for a
// region that advertises no address (so it is not added as a peer), and
// returns the first answer's error: nil if the log still holds write 1.
func probeLogStart(ctx context.Context, repl causewayv1connect.ReplicationServiceClient, clusterID string) error {
	ctx, cancel := context.WithTimeout(ctx, clusterRPCTimeout)
	defer cancel()
	stream := repl.Replicate(ctx)
	defer stream.CloseResponse()
	defer stream.CloseRequest()
	if err := stream.Send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Start{Start: &v1.ReplicateStart{
		ClusterId: clusterID, Region: "log-probe", FromSeq: 1,
	}}}); err != nil {
		return err
	}
	msg, err := stream.Receive()
	if err != nil {
		return err
	}
	if len(msg.GetWrites()) == 0 {
		return fmt.Errorf("replication stream answered with no writes (head %d)", msg.GetHeadSeq())
	}
	return nil
}

// TestClusterWriteManyIsAtomicEverywhere writes several keys at once,
// again and again, from a session that moves between regions, while
// readers in every region read all the keys in one ReadMany: no reader may
// ever see some keys of a write without the others.
func TestClusterWriteManyIsAtomicEverywhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	c := newTestCluster(t, ctx)
	regions := c.startThree()
	const writes = 40
	keys := []string{"atomic/0", "atomic/1", "atomic/2", "atomic/3", "atomic/4"}
	// Write n sets every key to n, except that when n%3 == 0 it deletes
	// the last key.
	deletesLast := func(n int) bool { return n%3 == 0 }

	// check verifies that one ReadMany saw a single write whole, and
	// returns its number (0: none yet).
	check := func(where string, res *v1.ReadManyResponse) (int, bool) {
		rs := res.GetResults()
		describe := func() string {
			var parts []string
			for _, kr := range rs {
				parts = append(parts, kr.GetKey()+": "+describeKey(kr.GetFound(), kr.GetValue(), kr.GetVersion(), kr.GetHasSiblings(), nil))
			}
			return strings.Join(parts, "\n  ")
		}
		if rs[0].GetVersion() == nil {
			for _, kr := range rs {
				if kr.GetFound() || kr.GetVersion() != nil {
					t.Errorf("partial write seen %s:\n  %s", where, describe())
					return 0, false
				}
			}
			return 0, true
		}
		n, err := strconv.Atoi(string(rs[0].GetValue()))
		if err != nil || n < 1 || n > writes {
			t.Errorf("unexpected value seen %s:\n  %s", where, describe())
			return 0, false
		}
		for i, kr := range rs {
			wantFound := i < len(rs)-1 || !deletesLast(n)
			wantValue := ""
			if wantFound {
				wantValue = strconv.Itoa(n)
			}
			if !proto.Equal(kr.GetVersion(), rs[0].GetVersion()) || kr.GetFound() != wantFound || string(kr.GetValue()) != wantValue || kr.GetHasSiblings() {
				t.Errorf("partial write seen %s:\n  %s", where, describe())
				return 0, false
			}
		}
		return n, true
	}

	writerDone := make(chan struct{})
	var wg sync.WaitGroup
	reads := make([][2]int, len(regions)) // per reader: reads, reads that saw a write
	for ri, reader := range regions {
		wg.Go(func() {
			// Alternate fresh sessions and one session with a token, whose
			// reads must also never go back.
			token, last := "", 0
			for i := 0; ; i++ {
				select {
				case <-writerDone:
					return
				default:
				}
				useToken := i%2 == 1
				tok := ""
				if useToken {
					tok = token
				}
				res, err := reader.readMany(ctx, keys, tok)
				if err != nil {
					t.Error(err)
					return
				}
				n, ok := check("by a reader in region "+reader.name, res)
				if !ok {
					return
				}
				reads[ri][0]++
				if n > 0 {
					reads[ri][1]++
				}
				if useToken {
					if n < last {
						t.Errorf("monotonic reads violated in region %s: write %d, then write %d", reader.name, last, n)
						return
					}
					token, last = res.GetCausalToken(), n
				}
			}
		})
	}

	token := ""
	for n := 1; n <= writes && !t.Failed(); n++ {
		w := regions[n%len(regions)]
		ops := make([]*v1.WriteOp, len(keys))
		for i, k := range keys {
			ops[i] = &v1.WriteOp{Key: k, Value: []byte(strconv.Itoa(n))}
		}
		if deletesLast(n) {
			ops[len(ops)-1] = &v1.WriteOp{Key: keys[len(keys)-1], Delete: true}
		}
		rctx, rcancel := rpcContext(ctx)
		res, err := w.kv.WriteMany(rctx, connect.NewRequest(&v1.WriteManyRequest{Ops: ops, CausalToken: token}))
		rcancel()
		if err != nil {
			t.Fatalf("write %d in region %s: %v", n, w.name, err)
		}
		token = res.Msg.GetCausalToken()
		// The session reads its write whole in the next region.
		r := regions[(n+1)%len(regions)]
		got, err := r.readMany(ctx, keys, token)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := check(fmt.Sprintf("by the writer in region %s", r.name), got); ok && (m != n || !proto.Equal(got.GetResults()[0].GetVersion(), res.Msg.GetVersion())) {
			t.Fatalf("write %d made in region %s with version %s; region %s, read with its token, returned write %d (version %s)",
				n, w.name, versionString(res.Msg.GetVersion()), r.name, m, versionString(got.GetResults()[0].GetVersion()))
		}
		token = got.GetCausalToken()
	}
	close(writerDone)
	wg.Wait()
	t.Logf("readers per region (reads, reads that saw a write): %v", reads)
	for ri, r := range regions {
		if reads[ri][1] == 0 {
			t.Errorf("the reader in region %s never saw a write; it checked nothing", r.name)
		}
	}
}
