package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// fakeClock is a physical clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openMemNode(t *testing.T, fs vfs.FS, mutate ...func(*Config)) *Node {
	t.Helper()
	cfg := Config{Region: "us-east", DataDir: "node", FS: fs, Logger: discardLogger(), CausalWaitTimeout: 200 * time.Millisecond}
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestPutGetDelete(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())

	put, err := n.Put(ctx, "greeting", []byte("hello"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if put.Version.Seq != 1 || put.Version.Timestamp.Region != "us-east" {
		t.Fatalf("first put version = %+v, want seq 1 in us-east", put.Version)
	}
	get, err := nodeGet(n, ctx, "greeting", put.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !get.Found || string(get.Record.Value) != "hello" || get.Record.Timestamp != put.Version.Timestamp {
		t.Fatalf("get = %+v, want hello at %v", get, put.Version.Timestamp)
	}
	del, err := n.Delete(ctx, "greeting", get.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	if !put.Version.Timestamp.Less(del.Version.Timestamp) || del.Version.Seq != 2 {
		t.Fatalf("delete version %+v does not follow put %+v", del.Version, put.Version)
	}
	get, err = nodeGet(n, ctx, "greeting", del.Token)
	if err != nil {
		t.Fatal(err)
	}
	if get.Found || get.Record.Timestamp != del.Version.Timestamp {
		t.Fatalf("get after delete = %+v, want not found at the tombstone's version", get)
	}
	absent, err := nodeGet(n, ctx, "never", "")
	if err != nil || absent.Found || !absent.Record.Timestamp.IsZero() {
		t.Fatalf("get of absent key = %+v, %v", absent, err)
	}
}

func TestTokenCarriesSessionPast(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())
	r1, _ := n.Put(ctx, "a", []byte("1"), "", "")
	r2, _ := n.Put(ctx, "b", []byte("2"), r1.Token, "")
	tok, err := clocks.DecodeToken(r2.Token, n.ClusterID())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Vector.Get("us-east") != 2 || tok.Seen != r2.Version.Timestamp {
		t.Fatalf("token after two writes = %+v, want vector us-east:2 and seen %v", tok, r2.Version.Timestamp)
	}
	// A session that read b depends on b's causal past, which includes a.
	g, _ := nodeGet(n, ctx, "b", "")
	tok, _ = clocks.DecodeToken(g.Token, n.ClusterID())
	if tok.Vector.Get("us-east") != 2 {
		t.Fatalf("token after reading b = %v, want us-east:2", tok.Vector)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())
	good, err := n.Put(ctx, "k", []byte("v"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	foreign := clocks.Token{Cluster: uuid.New(), Vector: clocks.Vector{"us-east": 1}}.Encode()
	tampered := []byte(good.Token)
	tampered[len(tampered)/2] ^= 1 // still base64url, no longer the bytes that were checksummed
	if tampered[len(tampered)/2] == '-' || tampered[len(tampered)/2] == '_' {
		tampered[len(tampered)/2] = 'A'
	}
	cases := []struct {
		name, key, value, token, requestID string
		want                               error
	}{
		{"empty key", "", "v", "", "", api.ErrInvalidArgument},
		{"oversize key", strings.Repeat("k", MaxKeyBytes+1), "v", "", "", api.ErrInvalidArgument},
		{"invalid UTF-8 key", "\xff\xfe", "v", "", "", api.ErrInvalidArgument},
		{"oversize value", "k", strings.Repeat("v", MaxValueBytes+1), "", "", api.ErrInvalidArgument},
		{"garbage token", "k", "v", "not a token!", "", clocks.ErrInvalidToken},
		{"tampered token", "k", "v", string(tampered), "", clocks.ErrInvalidToken},
		{"foreign token", "k", "v", foreign, "", clocks.ErrForeignToken},
		{"bad request id", "k", "v", "", "not-a-uuid", api.ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := n.Put(ctx, c.key, []byte(c.value), c.token, c.requestID)
			if !errors.Is(err, c.want) {
				t.Fatalf("Put: err = %v, want %v", err, c.want)
			}
			if code := api.Code(err).String(); code != "invalid_argument" {
				t.Fatalf("Put: code %s, want invalid_argument", code)
			}
			if c.value == "v" { // Get takes no value; the other checks apply to it too
				if _, err := nodeGet(n, ctx, c.key, c.token); c.requestID == "" && !errors.Is(err, c.want) {
					t.Fatalf("Get: err = %v, want %v", err, c.want)
				}
			}
		})
	}
	// Multi-key writes: no keys, too many keys, one key twice.
	tooMany := make([]causal.Op, MaxWriteOps+1)
	for i := range tooMany {
		tooMany[i] = causal.Op{Key: fmt.Sprintf("m%d", i), Kind: causal.KindValue, Value: []byte("v")}
	}
	twice := []causal.Op{{Key: "a", Kind: causal.KindValue, Value: []byte("1")}, {Key: "a", Kind: causal.KindTombstone}}
	for name, ops := range map[string][]causal.Op{"no keys": nil, "too many keys": tooMany, "key twice": twice} {
		if _, err := n.WriteMany(ctx, ops, "", ""); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("WriteMany with %s: err = %v, want invalid_argument", name, err)
		}
	}
	st := n.Status()
	if st.Vector.Get("us-east") != 1 {
		t.Fatalf("after bad input the vector is %v, want only the one good write", st.Vector)
	}
	g, err := nodeGet(n, ctx, "k", good.Token)
	if err != nil || string(g.Record.Value) != "v" || g.Record.Timestamp != good.Version.Timestamp {
		t.Fatalf("k after bad input = %+v, %v; want the good write", g.Record, err)
	}
}

func TestRequestIDAppliesOnce(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())
	id := uuid.NewString()

	// Concurrent retries of one request: exactly one write happens, every
	// caller sees its version.
	const retries = 16
	results := make([]WriteResult, retries)
	var wg sync.WaitGroup
	for i := range retries {
		wg.Go(func() {
			r, err := n.Put(ctx, "k", []byte("v"), "", id)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	for _, r := range results[1:] {
		if r.Version.Timestamp != results[0].Version.Timestamp || r.Version.Seq != results[0].Version.Seq {
			t.Fatalf("retries got different versions: %+v vs %+v", r.Version, results[0].Version)
		}
	}
	if got := n.Status().Vector.Get("us-east"); got != 1 {
		t.Fatalf("%d retries of one request made %d writes, want 1", retries, got)
	}

	// Reusing the id for another write is refused and writes nothing.
	if _, err := n.Put(ctx, "other", []byte("v"), "", id); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("request id reused for another key: err = %v, want invalid argument", err)
	}
	if _, err := n.Put(ctx, "k", []byte("another value"), "", id); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("request id reused for another value: err = %v, want invalid argument", err)
	}
	if _, err := n.Delete(ctx, "k", "", id); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("request id reused for a delete: err = %v, want invalid argument", err)
	}
	if got := n.Status().Vector.Get("us-east"); got != 1 {
		t.Fatalf("refused reuse wrote something: vector us-east:%d", got)
	}
}

func TestTokenFromTheFutureWaitsThenUnavailable(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	tok := clocks.Token{Cluster: n.ClusterID(), Vector: clocks.Vector{"us-east": 5, "eu-west": 3}}.Encode()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := nodeGet(n, ctx, "k", tok)
	if !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	for _, want := range []string{"eu-west writes 1..3", "us-east writes 1..5", "region us-east"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}

	// Without a request deadline the node's CausalWaitTimeout bounds the wait.
	if _, err := n.Put(context.Background(), "k", []byte("v"), tok, ""); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("put: err = %v, want unavailable", err)
	}
}

func TestWaitingRequestProceedsWhenPastArrives(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.CausalWaitTimeout = 10 * time.Second })
	// A token that depends on our own third write, before it happened (as a
	// token from a peer region would before replication delivers).
	tok := clocks.Token{Cluster: n.ClusterID(), Vector: clocks.Vector{"us-east": 3}}.Encode()
	done := make(chan error, 1)
	go func() {
		_, err := nodeGet(n, ctx, "k", tok)
		done <- err
	}()
	for i := range 3 {
		select {
		case err := <-done:
			t.Fatalf("read returned after %d of 3 writes: %v", i, err)
		default:
		}
		if _, err := n.Put(ctx, "k", []byte{byte(i)}, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("read after its causal past arrived: %v", err)
	}
}

func TestClockOffsetGuard(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Now = clock.Now; c.MaxClockOffset = time.Second })
	ahead := clocks.Token{Cluster: n.ClusterID(), Seen: clocks.Timestamp{WallMs: 1_000_000 + 5_000, Region: "eu-west"}}.Encode()
	_, err := n.Put(context.Background(), "k", []byte("v"), ahead, "")
	if !errors.Is(err, clocks.ErrClockOffset) || api.Code(err).String() != "failed_precondition" {
		t.Fatalf("token 5s ahead with 1s max offset: err = %v, want a clock offset failure", err)
	}
	if n.Status().Vector.Get("us-east") != 0 {
		t.Fatal("a refused write was applied")
	}
	// Within the offset the write wins over what the session saw: the new
	// version's timestamp is above the token's even though the local
	// physical clock is behind it.
	near := clocks.Token{Cluster: n.ClusterID(), Seen: clocks.Timestamp{WallMs: 1_000_000 + 800, Region: "eu-west"}}
	r, err := n.Put(context.Background(), "k", []byte("v"), near.Encode(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !near.Seen.Less(r.Version.Timestamp) {
		t.Fatalf("write at %v does not follow the session's seen %v", r.Version.Timestamp, near.Seen)
	}
}

func TestConcurrentWritersGetDistinctOrderedVersions(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())
	const writers, each = 32, 20
	var mu sync.Mutex
	bySeq := map[uint64]clocks.Timestamp{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r, err := n.Put(ctx, fmt.Sprintf("w%d-%d", w, i), []byte("v"), "", "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				bySeq[r.Version.Seq] = r.Version.Timestamp
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bySeq) != writers*each {
		t.Fatalf("%d distinct sequence numbers for %d writes", len(bySeq), writers*each)
	}
	for seq := uint64(2); seq <= writers*each; seq++ {
		if !bySeq[seq-1].Less(bySeq[seq]) {
			t.Fatalf("seq %d has timestamp %v, not after seq %d's %v", seq, bySeq[seq], seq-1, bySeq[seq-1])
		}
	}
	if got := n.Status().Vector.Get("us-east"); got != writers*each {
		t.Fatalf("durable vector %d, want %d", got, writers*each)
	}
}

func TestRestartRecoversState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() // a real directory: the OS filesystem, real fsyncs
	open := func() *Node {
		n, err := Open(Config{Region: "us-east", DataDir: dir, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open()
	cluster := n.ClusterID()
	var last WriteResult
	id := uuid.NewString()
	for i := range 50 {
		r, err := n.Put(ctx, fmt.Sprintf("k%d", i%10), []byte(fmt.Sprint(i)), last.Token, map[bool]string{true: id}[i == 7])
		if err != nil {
			t.Fatal(err)
		}
		last = r
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = open()
	defer n.Close()
	if n.ClusterID() != cluster {
		t.Fatalf("cluster id changed across restart: %v -> %v", cluster, n.ClusterID())
	}
	// The old session's token is still valid and satisfied.
	for i := 40; i < 50; i++ {
		g, err := nodeGet(n, ctx, fmt.Sprintf("k%d", i%10), last.Token)
		if err != nil || string(g.Record.Value) != fmt.Sprint(i) {
			t.Fatalf("k%d after restart = %q, %v; want %d", i%10, g.Record.Value, err, i)
		}
	}
	r, err := n.Put(ctx, "k0", []byte("after"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version.Seq != 51 || !last.Version.Timestamp.Less(r.Version.Timestamp) {
		t.Fatalf("first write after restart %+v does not follow the last before it %+v", r.Version, last.Version)
	}
	if again, err := n.Put(ctx, "k7", []byte("7"), "", id); err != nil || again.Version.Seq != 8 {
		t.Fatalf("retry after restart = %+v, %v; want the original seq 8", again.Version, err)
	}
}

func TestDataDirectoryKeepsItsIdentity(t *testing.T) {
	fs := vfs.NewMem()
	n, err := Open(Config{Region: "us-east", DataDir: "d", FS: fs, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := Open(Config{Region: "eu-west", DataDir: "d", FS: fs, Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), `holds region "us-east"`) {
		t.Fatalf("open under another region: err = %v", err)
	}
	if _, err := Open(Config{Region: "us-east", DataDir: "d", FS: fs, ClusterID: uuid.New(), Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), "belongs to cluster") {
		t.Fatalf("open under another cluster id: err = %v", err)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{Region: "Bad Region", MaxClockOffset: -1, RequestIDRetention: time.Second}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"region", "data directory", "max clock offset", "request id retention"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, does not mention %q", err, want)
		}
	}
}

// getResult is a Get as the tests inspect it.
type getResult struct {
	Found  bool
	Record causal.Version
	Token  string
}

func nodeGet(n *Node, ctx context.Context, key, token string) (getResult, error) {
	res, tok, err := n.Get(ctx, key, token, false)
	return getResult{Found: res.Found, Record: res.Version, Token: tok}, err
}

// The durable vector only moves forward, and only a change wakes waiters:
// writes that shared an fsync mark themselves durable in any order.
func TestMarkDurableOnlyAdvances(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	_, before := n.durableVector()
	n.markDurable("us-east", 5)
	if got := n.durableSeq("us-east"); got != 5 {
		t.Fatalf("durable seq %d after marking 5, want 5", got)
	}
	select {
	case <-before:
	default:
		t.Fatal("advancing the durable vector did not wake waiters")
	}
	_, after := n.durableVector()
	n.markDurable("us-east", 3)
	n.markDurableVector(clocks.Vector{"us-east": 4})
	if got := n.durableSeq("us-east"); got != 5 {
		t.Fatalf("durable seq %d after marking 3 and 4 below 5, want 5", got)
	}
	select {
	case <-after:
		t.Fatal("marking writes already durable woke waiters")
	default:
	}
}
