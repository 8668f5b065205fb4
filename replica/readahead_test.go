package replica

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// fakeStream hands out queued messages, then blocks until ctx ends.
type fakeStream struct {
	ctx   context.Context
	queue chan received
	calls atomic.Int64
}

func newFakeStream(ctx context.Context, rs ...received) *fakeStream {
	f := &fakeStream{ctx: ctx, queue: make(chan received, len(rs))}
	for _, r := range rs {
		f.queue <- r
	}
	return f
}

func (f *fakeStream) recv() (*v1.ReplicateResponse, error) {
	f.calls.Add(1)
	select {
	case r := <-f.queue:
		return r.msg, r.err
	case <-f.ctx.Done():
		return nil, f.ctx.Err()
	}
}

func message(head uint64, frameBytes ...int) received {
	m := &v1.ReplicateResponse{HeadSeq: head}
	for _, n := range frameBytes {
		m.Writes = append(m.Writes, make([]byte, n))
	}
	return received{msg: m}
}

// awaitQueued waits until the reader holds n messages.
func awaitQueued(t *testing.T, ra *readAhead, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(ra.msgs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("reader holds %d messages after 10s, want %d", len(ra.msgs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Messages that arrived while the loop was busy are applied together; a
// batch stops once it holds a message's worth of frames.
func TestReadAheadBatchesWhatArrived(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rs []received
	for i := range 10 {
		rs = append(rs, message(uint64(i+1), 100))
	}
	big := maxFrameBatchBytes / 3
	for i := range 4 {
		rs = append(rs, message(uint64(11+i), big, 1))
	}
	f := newFakeStream(ctx, rs...)
	var arrived atomic.Int64
	ra := startReadAhead(ctx, f.recv, func() { arrived.Add(1) })
	defer func() { cancel(); ra.wait() }()
	awaitQueued(t, ra, len(rs))

	msgs, ended, ok := ra.batch(ctx)
	if !ok || ended != nil || len(msgs) != 13 {
		t.Fatalf("first batch: %d messages, ended %v, ok %v; want the 10 small ones and 3 large ones (the third crosses %d bytes)", len(msgs), ended, ok, maxFrameBatchBytes)
	}
	for i, m := range msgs {
		if m.HeadSeq != uint64(i+1) {
			t.Fatalf("message %d of the batch has head %d: order lost", i, m.HeadSeq)
		}
	}
	msgs, _, _ = ra.batch(ctx)
	if len(msgs) != 1 || msgs[0].HeadSeq != 14 {
		t.Fatalf("second batch: %d messages, want the last one", len(msgs))
	}
	if arrived.Load() < int64(len(rs)) {
		t.Fatalf("arrived called %d times for %d messages", arrived.Load(), len(rs))
	}
	if ra.queued.Load() != 0 {
		t.Fatalf("%d bytes counted as queued after every message was taken", ra.queued.Load())
	}
}

// A failed Receive ends the batch after the messages before it, and the
// reader stops.
func TestReadAheadEndsAtAFailedReceive(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broken := errors.New("connection reset")
	f := newFakeStream(ctx, message(1, 10), message(2, 10), received{err: broken}, message(3, 10))
	ra := startReadAhead(ctx, f.recv, func() {})
	defer func() { cancel(); ra.wait() }()
	awaitQueued(t, ra, 3)
	msgs, ended, ok := ra.batch(ctx)
	if !ok || len(msgs) != 2 || !errors.Is(ended, broken) {
		t.Fatalf("got %d messages, ended %v, ok %v; want 2 messages, then the error", len(msgs), ended, ok)
	}
	ra.wait() // the reader stopped at the error without reading message 3
	if got := f.calls.Load(); got != 3 {
		t.Fatalf("reader called Receive %d times, want 3 (it stops at the error)", got)
	}
}

// The reader stops reading once it holds readAheadBytes, so a loop that
// falls behind leaves the backlog to the transport's flow control, not to
// memory.
func TestReadAheadIsBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	size := maxFrameBatchBytes / 2
	var rs []received
	for i := range 20 {
		rs = append(rs, message(uint64(i+1), size))
	}
	f := newFakeStream(ctx, rs...)
	ra := startReadAhead(ctx, f.recv, func() {})
	defer func() { cancel(); ra.wait() }()
	fits := int(readAheadBytes / int64(size)) // the message that reaches the bound is the last read
	awaitQueued(t, ra, fits)
	if got := f.calls.Load(); got != int64(fits) {
		t.Fatalf("reader called Receive %d times holding %d bytes, want %d", got, ra.queued.Load(), fits)
	}
	// Taking a batch makes room, and the reader goes on.
	msgs, _, _ := ra.batch(ctx)
	if len(msgs) != 2 {
		t.Fatalf("batch of %d half-size messages, want 2", len(msgs))
	}
	awaitQueued(t, ra, fits-2+2)
	if got := f.calls.Load(); got != int64(fits+2) {
		t.Fatalf("after a batch was taken, Receive called %d times, want %d", got, fits+2)
	}
}
