package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/link"
)

// liveRegion is a node serving its API on loopback.
type liveRegion struct {
	node *Node
	addr string
	kv   causewayv1connect.KVServiceClient
}

// serveRegion opens a node in a fresh directory and serves it; t.Cleanup
// stops both.
func serveRegion(t *testing.T, name string, cluster uuid.UUID, peers map[string]string, mutate ...func(*Config)) *liveRegion {
	t.Helper()
	cfg := Config{Region: name, DataDir: t.TempDir(), ClusterID: cluster, Peers: peers, Logger: discardLogger()}
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	srv := NewServer(n)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-served
		n.Close()
	})
	addr := ln.Addr().String()
	return &liveRegion{node: n, addr: addr, kv: causewayv1connect.NewKVServiceClient(http.DefaultClient, "http://"+addr)}
}

func withFaultInjection(c *Config) { c.FaultInjection = true }

// counterValue reads a Prometheus counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitFor polls cond (a state check) until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// seededValue is the value of the i-th write of a test: size bytes drawn
// from a generator seeded with i, so the values of two writes differ and
// compression cannot shrink them.
func seededValue(i, size int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	v := make([]byte, size)
	rand.NewChaCha8(seed).Read(v)
	return v
}

// checkStoreIntact decodes every version and replication log entry n
// stores, each checked against its CRC, and returns the versions by key.
func checkStoreIntact(t *testing.T, n *Node) map[string][]causal.Version {
	t.Helper()
	it, err := n.store.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string][]causal.Version{}
	for ok := it.First(); ok; ok = it.Next() {
		raw, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		switch it.Key()[0] {
		case spaceData:
			key, _ := decodeDataKey(it.Key())
			v, err := decodeVersion(bytes.Clone(raw))
			if err != nil {
				t.Fatalf("%s stores a damaged version of %q: %v", n.Region(), key, err)
			}
			out[key] = append(out[key], v)
		case spaceLog:
			if _, err := decodeWrite(raw); err != nil {
				t.Fatalf("%s stores a damaged replication log entry: %v", n.Region(), err)
			}
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCorruptedLinkIsRejectedAndResumed flips bits in what us-east sends to
// eu-west (Link.CorruptEvery) while writes flow. Damage is caught by
// HTTP/2's framing, by the checksum of a message's compression, or by a
// frame's own CRC; eu-west counts the damaged messages it refuses, resets
// the stream and resumes from its durable position. Once the link is clean
// again every write is in eu-west exactly once, byte for byte as in
// us-east, and no damaged record is stored anywhere.
func TestCorruptedLinkIsRejectedAndResumed(t *testing.T) {
	cluster := uuid.New()
	a := serveRegion(t, "us-east", cluster, nil, withFaultInjection)
	b := serveRegion(t, "eu-west", cluster, map[string]string{"us-east": a.addr}, withFaultInjection)
	ctx := context.Background()

	var written atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			req := &v1.PutRequest{Key: fmt.Sprintf("k%05d", i), Value: seededValue(i, 2048)}
			if _, err := a.kv.Put(ctx, connect.NewRequest(req)); err != nil {
				writerDone <- fmt.Errorf("put %d in us-east: %w", i, err)
				return
			}
			written.Add(1)
		}
	}()
	stopWriter := func() {
		t.Helper()
		close(stop)
		if err := <-writerDone; err != nil {
			t.Fatal(err)
		}
	}
	waitAtLeast := func(what string, n int64) {
		t.Helper()
		waitFor(t, what, 30*time.Second, func() bool { return written.Load() >= n })
	}

	// Clean, then damaged, then clean again; writes flow throughout.
	waitAtLeast("writes before the damage", 30)
	waitFor(t, "eu-west to replicate", 30*time.Second, func() bool { return b.node.durableSeq("us-east") >= 10 })
	if err := a.node.SetLink("eu-west", link.Link{CorruptEvery: 4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eu-west to refuse damaged frames", 30*time.Second, func() bool {
		return counterValue(t, b.node.metrics.badFrames) >= 3
	})
	if err := a.node.SetLink("eu-west", link.Link{}); err != nil {
		t.Fatal(err)
	}
	waitAtLeast("writes after the damage", written.Load()+30)
	stopWriter()

	total := uint64(written.Load())
	waitFor(t, "eu-west to catch up", 60*time.Second, func() bool { return b.node.durableSeq("us-east") == total })
	corrupted := a.node.cfg.Links.Counters("eu-west").Corrupted
	refused := counterValue(t, b.node.metrics.badFrames)
	t.Logf("%d writes; us-east damaged %d writes to eu-west's link, eu-west refused %v messages", total, corrupted, refused)
	if corrupted == 0 {
		t.Fatal("the link damaged nothing")
	}

	// Each write applied exactly once, byte for byte the origin's.
	if applied := counterValue(t, b.node.metrics.applied); applied != float64(total) {
		t.Fatalf("eu-west applied %v writes, want %d", applied, total)
	}
	want, got := checkStoreIntact(t, a.node), checkStoreIntact(t, b.node)
	if len(got) != int(total) || len(want) != int(total) {
		t.Fatalf("us-east holds %d keys, eu-west %d, want %d each", len(want), len(got), total)
	}
	for i := range int(total) {
		key := fmt.Sprintf("k%05d", i)
		wv, gv := want[key], got[key]
		if len(wv) != 1 || len(gv) != 1 {
			t.Fatalf("%s: us-east holds %d versions, eu-west %d, want 1", key, len(wv), len(gv))
		}
		if !bytes.Equal(wv[0].Value, seededValue(i, 2048)) {
			t.Fatalf("%s: us-east holds %q", key, wv[0].Value)
		}
		if gv[0].Timestamp != wv[0].Timestamp || gv[0].Seq != wv[0].Seq || gv[0].Kind != wv[0].Kind ||
			!bytes.Equal(gv[0].Value, wv[0].Value) || !maps.Equal(gv[0].Vector, wv[0].Vector) {
			t.Fatalf("%s: eu-west holds %v, us-east %v", key, gv[0], wv[0])
		}
	}
}

// fakeOrigin serves ReplicationService as region us-east, each stream
// following the next script: it records where the subscriber asked to
// start, sends the script's messages, and holds the stream open.
type fakeOrigin struct {
	causewayv1connect.UnimplementedReplicationServiceHandler
	scripts [][]*v1.ReplicateResponse

	mu    sync.Mutex
	froms []uint64
}

func (f *fakeOrigin) Replicate(ctx context.Context, stream *connect.BidiStream[v1.ReplicateRequest, v1.ReplicateResponse]) error {
	first, err := stream.Receive()
	if err != nil {
		return err
	}
	f.mu.Lock()
	i := len(f.froms)
	f.froms = append(f.froms, first.GetStart().GetFromSeq())
	f.mu.Unlock()
	if i < len(f.scripts) {
		for _, msg := range f.scripts[i] {
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
	}
	<-ctx.Done()
	return nil
}

func (f *fakeOrigin) startedFrom() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.froms)
}

// serveFake serves h on loopback behind a link emulator of region, as a
// node would (peers' connections start with the link preamble).
func serveFake(t *testing.T, region string, h causewayv1connect.ReplicationServiceHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(causewayv1connect.NewReplicationServiceHandler(h))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols}
	go srv.Serve(link.New(region).Listener(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// originFrame is us-east's write seq, setting key k<seq> to v<seq>.
func originFrame(seq uint64) []byte {
	return encodeWrite(nil, &causal.Write{
		Timestamp: clocks.Timestamp{WallMs: uint64(time.Now().UnixMilli()), Region: "us-east"},
		Seq:       seq,
		Vector:    clocks.Vector{"us-east": seq},
		RequestID: uuid.New(),
		Ops:       []causal.Op{{Key: fmt.Sprintf("k%d", seq), Kind: causal.KindValue, Value: fmt.Appendf(nil, "v%d", seq)}},
	})
}

// TestCorruptOrImpossibleMessagesAreRefused: a subscriber refuses, counts
// and resets on a frame whose checksum fails, a frame out of sequence (one
// vanished) and a head behind the frames it came with; each new stream
// starts from the writes it has made durable, and in the end it holds every
// write exactly once. It also never takes a peer's clock reading beyond its
// own as the peer's caught-up time.
func TestCorruptOrImpossibleMessagesAreRefused(t *testing.T) {
	frames := func(head uint64, seqs ...uint64) *v1.ReplicateResponse {
		msg := &v1.ReplicateResponse{HeadSeq: head, SentWallMs: uint64(time.Now().UnixMilli())}
		for _, s := range seqs {
			msg.Writes = append(msg.Writes, originFrame(s))
		}
		return msg
	}
	damaged := frames(7, 3)
	damaged.Writes[0][len(damaged.Writes[0])/2] ^= 1
	farFuture := &v1.ReplicateResponse{HeadSeq: 6, SentWallMs: uint64(time.Now().Add(24 * time.Hour).UnixMilli())}
	origin := &fakeOrigin{scripts: [][]*v1.ReplicateResponse{
		{frames(7, 1, 2), damaged},   // 3 fails its checksum
		{frames(7, 3), frames(7, 5)}, // 4 is missing
		{frames(2, 4)},               // head 2 with write 4
		{frames(6, 4, 5, 6), farFuture, frames(7, 7)},
	}}
	addr := serveFake(t, "us-east", origin)
	b := serveRegion(t, "eu-west", uuid.New(), map[string]string{"us-east": addr})

	waitFor(t, "eu-west to hold us-east's 7 writes", 30*time.Second, func() bool { return b.node.durableSeq("us-east") == 7 })
	if got, want := origin.startedFrom(), []uint64{1, 3, 4, 4}; !slices.Equal(got, want) {
		t.Fatalf("streams started from %v, want %v", got, want)
	}
	if got := counterValue(t, b.node.metrics.badFrames); got != 3 {
		t.Fatalf("eu-west counted %v refused messages, want 3", got)
	}
	if got := counterValue(t, b.node.metrics.applied); got != 7 {
		t.Fatalf("eu-west applied %v writes, want 7", got)
	}
	stored := checkStoreIntact(t, b.node)
	for seq := 1; seq <= 7; seq++ {
		key := fmt.Sprintf("k%d", seq)
		if v := stored[key]; len(v) != 1 || string(v[0].Value) != fmt.Sprintf("v%d", seq) || v[0].Seq != uint64(seq) {
			t.Fatalf("eu-west holds %s = %v", key, v)
		}
	}
	b.node.repl.mu.Lock()
	p := b.node.repl.peers["us-east"]
	b.node.repl.mu.Unlock()
	if caughtUp, now := p.caughtUpWallMs.Load(), uint64(time.Now().UnixMilli()); caughtUp > now {
		t.Fatalf("us-east's caught-up time is %d, ahead of eu-west's clock %d", caughtUp, now)
	}
}

// TestCorruptAckBeyondWhatWasSentEndsTheStream: an acknowledgement of
// writes the stream never carried is refused, and does not let the log be
// truncated.
func TestCorruptAckBeyondWhatWasSentEndsTheStream(t *testing.T) {
	cluster := uuid.New()
	a := serveRegion(t, "us-east", cluster, nil)
	for i := range 2 {
		if _, err := a.kv.Put(context.Background(), connect.NewRequest(&v1.PutRequest{Key: fmt.Sprint(i), Value: []byte("v")})); err != nil {
			t.Fatal(err)
		}
	}
	client := causewayv1connect.NewReplicationServiceClient(newH2CClient(new(net.Dialer).DialContext), "http://"+a.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := client.Replicate(ctx)
	defer stream.CloseResponse()
	send := func(req *v1.ReplicateRequest) {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Start{Start: &v1.ReplicateStart{ClusterId: cluster.String(), Region: "eu-west", FromSeq: 1}}})
	msg, err := stream.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Writes) != 2 {
		t.Fatalf("first message carries %d writes, want 2", len(msg.Writes))
	}
	send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Ack{Ack: &v1.ReplicateAck{AppliedSeq: 2}}})
	send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Ack{Ack: &v1.ReplicateAck{AppliedSeq: 1000}}})
	for {
		_, err = stream.Receive()
		if err != nil {
			break
		}
	}
	if connect.CodeOf(err) != connect.CodeInvalidArgument || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream ended with %v, want invalid_argument", err)
	}
	a.node.repl.mu.Lock()
	acked := a.node.repl.acks["eu-west"]
	a.node.repl.mu.Unlock()
	if acked != 2 {
		t.Fatalf("us-east records eu-west's acknowledgement as %d, want 2", acked)
	}
}
