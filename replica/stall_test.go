package replica

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/link"
)

// TestStalledPeerPinsBoundedMemory: a subscriber that opens its stream and
// then stops reading while us-east takes a burst of writes many times
// larger than any buffer. us-east keeps acknowledging writes; what it holds
// for the subscriber stays within its bounds (one batch in the replication
// stream, the link's delay queue, the subscriber's HTTP/2 window on the
// wire) and the rest of the burst waits in the log on disk; when the
// subscriber reads again, every write arrives, in order.
func TestStalledPeerPinsBoundedMemory(t *testing.T) {
	const (
		writers    = 8
		valueBytes = 64 << 10
		burst      = 96 // writes: 6 MiB of values, 24 windows
		// window is the subscriber's HTTP/2 receive window: what us-east
		// may send before the subscriber reads.
		window = 256 << 10
		// framing covers HTTP/2 and Connect framing, headers and settings
		// on top of the window's payload.
		framing = 64 << 10
	)
	// Nothing answers at eu-west's configured address, so us-east keeps
	// its log for eu-west; the stalled subscriber below speaks for it.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	cluster := uuid.New()
	a := serveRegion(t, "us-east", cluster, map[string]string{"eu-west": deadAddr})
	if err := a.node.cfg.Links.Set("eu-west", link.Link{Delay: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	peerLinks := link.New("eu-west")
	peerLinks.Learn(a.addr, "us-east")
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	transport := &http.Transport{
		Protocols:   protocols,
		DialContext: peerLinks.DialContext,
		HTTP2:       &http.HTTP2Config{MaxReceiveBufferPerStream: window, MaxReceiveBufferPerConnection: window},
	}
	t.Cleanup(transport.CloseIdleConnections)
	subscriber := causewayv1connect.NewReplicationServiceClient(&http.Client{Transport: transport}, "http://"+a.addr,
		connect.WithReadMaxBytes(maxReplicationMessageBytes))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := subscriber.Replicate(ctx)
	defer stream.CloseResponse()
	if err := stream.Send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Start{Start: &v1.ReplicateStart{
		ClusterId: cluster.String(), Region: "eu-west", FromSeq: 1,
	}}}); err != nil {
		t.Fatal(err)
	}

	// Sample what us-east holds for eu-west while the burst runs.
	var maxHeld int64
	var maxQueued uint64
	sample := func() {
		maxHeld = max(maxHeld, a.node.repl.holding("eu-west").Load())
		maxQueued = max(maxQueued, a.node.cfg.Links.Counters("eu-west").Queued)
	}
	sampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-tick.C:
				sample()
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < burst; i += writers {
				putCtx, putCancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := a.kv.Put(putCtx, connect.NewRequest(&v1.PutRequest{Key: fmt.Sprintf("k%04d", i), Value: seededValue(i, valueBytes)}))
				putCancel()
				if err != nil {
					errs <- fmt.Errorf("put %d while eu-west stalls: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The stream is stalled with a batch in hand, not idle between batches.
	waitFor(t, "us-east's stream to eu-west to block", 30*time.Second, func() bool {
		return a.node.repl.holding("eu-west").Load() > 0
	})
	close(sampling)
	<-sampled
	sample()

	ctr := a.node.cfg.Links.Counters("eu-west")
	left := ctr.Sent + ctr.Queued
	t.Logf("burst of %d writes; us-east held at most %d bytes in the stream and %d in the link queue; %d bytes left for eu-west",
		burst, maxHeld, maxQueued, left)
	// A batch stops at the first write that reaches maxFrameBatchBytes.
	if batchBound := int64(maxFrameBatchBytes + valueBytes + 1024); maxHeld > batchBound {
		t.Errorf("the stream held %d bytes, beyond one batch (%d)", maxHeld, batchBound)
	}
	if maxQueued > link.MaxQueuedBytes {
		t.Errorf("the link queued %d bytes, beyond its bound %d", maxQueued, link.MaxQueuedBytes)
	}
	if left > window+framing {
		t.Errorf("%d bytes left for a subscriber that reads nothing, beyond its window %d", left, window)
	}

	// The subscriber reads again: every write arrives, once, in order.
	next := uint64(1)
	for next <= burst {
		msg, err := stream.Receive()
		if err != nil {
			t.Fatalf("receiving write %d: %v", next, err)
		}
		for _, frame := range msg.Writes {
			w, err := decodeWrite(frame)
			if err != nil {
				t.Fatal(err)
			}
			if w.Seq != next {
				t.Fatalf("write %d arrived where %d was due", w.Seq, next)
			}
			next++
		}
	}
}
