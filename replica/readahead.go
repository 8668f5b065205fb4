package replica

import (
	"context"
	"sync/atomic"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// Read-ahead bounds. A stream's receiver holds at most readAheadBytes of
// frames it has received and not yet applied (plus the one message that
// crossed the bound), and at most readAheadMessages messages; past either,
// it stops reading and the transport's flow control holds the origin back.
const (
	readAheadBytes    = 2 * maxFrameBatchBytes
	readAheadMessages = 1024
)

// readAhead receives a replication stream's messages ahead of the apply
// loop. The origin sends what became durable each time its durable vector
// moves, so under load it sends many small messages; applying them one by
// one costs an fsync each, and a receiver that applies fewer messages per
// second than the origin sends falls further behind every second, its
// backlog waiting in the transport's buffers. With the messages read
// ahead, the loop applies everything that arrived during its previous
// apply as one batch (up to maxFrameBatchBytes of frames), with one fsync.
type readAhead struct {
	msgs   chan received
	taken  chan struct{} // signalled (capacity 1) when the loop takes a message
	queued atomic.Int64  // frame bytes in msgs
	done   chan struct{}
}

// received is one Receive's result.
type received struct {
	msg  *v1.ReplicateResponse
	size int64 // frame bytes
	err  error
}

// startReadAhead starts reading recv until it fails or ctx ends; arrived
// is called as each message (or error) arrives.
func startReadAhead(ctx context.Context, recv func() (*v1.ReplicateResponse, error), arrived func()) *readAhead {
	ra := &readAhead{msgs: make(chan received, readAheadMessages), taken: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		for {
			for ra.queued.Load() >= readAheadBytes {
				select {
				case <-ctx.Done():
					return
				case <-ra.taken:
				}
			}
			msg, err := recv()
			arrived()
			r := received{msg: msg, err: err}
			if err == nil {
				for _, f := range msg.Writes {
					r.size += int64(len(f))
				}
			}
			ra.queued.Add(r.size)
			select {
			case ra.msgs <- r:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

// batch waits for the next message and takes with it every message that
// has already arrived, up to maxFrameBatchBytes of frames (at least one
// message): what the apply loop applies as one batch. A Receive that
// failed ends the batch: the messages before it are returned with ended
// set to its error (first, when it is the first). ok is false once ctx has
// ended.
func (ra *readAhead) batch(ctx context.Context) (msgs []*v1.ReplicateResponse, ended error, ok bool) {
	first, ok := ra.next(ctx)
	if !ok {
		return nil, nil, false
	}
	if first.err != nil {
		return nil, first.err, true
	}
	msgs = []*v1.ReplicateResponse{first.msg}
	for size := first.size; size < maxFrameBatchBytes; {
		more, ok := ra.more()
		if !ok {
			break
		}
		if more.err != nil {
			return msgs, more.err, true
		}
		msgs = append(msgs, more.msg)
		size += more.size
	}
	return msgs, nil, true
}

// next waits for the next message. ok is false once ctx has ended.
func (ra *readAhead) next(ctx context.Context) (r received, ok bool) {
	select {
	case r = <-ra.msgs:
		ra.take(r)
		return r, true
	case <-ctx.Done():
		return received{}, false
	}
}

// more returns a message that has already arrived, without waiting.
func (ra *readAhead) more() (r received, ok bool) {
	select {
	case r = <-ra.msgs:
		ra.take(r)
		return r, true
	default:
		return received{}, false
	}
}

func (ra *readAhead) take(r received) {
	ra.queued.Add(-r.size)
	select {
	case ra.taken <- struct{}{}:
	default:
	}
}

// wait returns once the reader has stopped (after its context ended or a
// Receive failed).
func (ra *readAhead) wait() { <-ra.done }
