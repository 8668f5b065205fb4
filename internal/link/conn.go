package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// preambleMagic starts every connection between nodes. Its first byte is
// NUL, which no HTTP/1 request and no HTTP/2 preface starts with.
var preambleMagic = [4]byte{0x00, 'C', 'W', 'L'}

// Conn is a connection to or from a peer region, with that link's delay
// and cuts applied.
type Conn struct {
	net.Conn
	e    *Emulator
	peer string

	broken atomic.Bool   // bytes were dropped: the stream has a gap
	ended  atomic.Bool   // Close was called (c.closed, readable without c.mu)
	done   chan struct{} // closed when what is queued is to be discarded

	mu          sync.Mutex
	cond        *sync.Cond
	queue       []delayed
	queued      int
	lastRelease time.Time
	writing     bool
	closed      bool
	writeErr    error
	closeOnce   sync.Once
	socketOnce  sync.Once
	socketErr   error
}

type delayed struct {
	b  []byte
	at time.Time
}

func newConn(e *Emulator, c net.Conn, peer string) *Conn {
	lc := &Conn{Conn: c, e: e, peer: peer, done: make(chan struct{})}
	lc.cond = sync.NewCond(&lc.mu)
	e.track(lc)
	return lc
}

// Peer is the region at the other end.
func (c *Conn) Peer() string { return c.peer }

// Write sends b after the link's delay, or drops it if the link is cut. If
// the link damages this write (Link.CorruptEvery), a damaged copy is sent.
func (c *Conn) Write(b []byte) (int, error) {
	l := c.e.Get(c.peer)
	ctr := c.e.counter(c.peer)
	if l.CutOut || c.broken.Load() {
		c.broken.Store(true)
		ctr.droppedOut.Add(uint64(len(b)))
		return len(b), nil
	}
	b = damage(l, ctr, b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	d := c.e.delay(l)
	if d == 0 && len(c.queue) == 0 {
		n, err := c.Conn.Write(b)
		ctr.sent.Add(uint64(n))
		return n, err
	}
	for c.queued+len(b) > MaxQueuedBytes && c.queued > 0 && !c.closed && c.writeErr == nil {
		c.cond.Wait()
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	at := time.Now().Add(d)
	if at.Before(c.lastRelease) {
		at = c.lastRelease // jitter never reorders a stream
	}
	c.lastRelease = at
	c.queue = append(c.queue, delayed{b: append([]byte(nil), b...), at: at})
	c.queued += len(b)
	ctr.queued.Add(int64(len(b)))
	if !c.writing {
		c.writing = true
		go c.deliver()
	}
	c.cond.Broadcast()
	return len(b), nil
}

// deliver writes queued bytes when their time comes, in order. After
// Close it goes on until the queue is empty (or discarded), then closes
// the socket.
func (c *Conn) deliver() {
	ctr := c.e.counter(c.peer)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 || c.discarding() {
			ctr.queued.Add(-int64(c.queued))
			c.queue, c.queued = nil, 0
			c.writing = false
			closed := c.closed
			c.mu.Unlock()
			if closed {
				c.closeSocket()
			}
			return
		}
		next := c.queue[0]
		c.mu.Unlock()

		if wait := time.Until(next.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.done:
				continue // discard the queue now, not after the delay
			}
		}
		var err error
		if c.e.Get(c.peer).CutOut || c.broken.Load() {
			c.broken.Store(true)
			ctr.droppedOut.Add(uint64(len(next.b)))
		} else {
			var n int
			n, err = c.Conn.Write(next.b)
			ctr.sent.Add(uint64(n))
		}
		c.mu.Lock()
		c.queue = c.queue[1:]
		c.queued -= len(next.b)
		ctr.queued.Add(-int64(len(next.b)))
		if err != nil {
			c.writeErr = err
			c.discard()
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// discarding reports whether what is queued is to be dropped.
func (c *Conn) discarding() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// discard makes deliver drop what is queued. Called with c.mu held.
func (c *Conn) discard() {
	if !c.discarding() {
		close(c.done)
	}
}

// Read returns what the peer sent, discarding (and counting) what arrives
// while the link is cut inward. After Close it fails with net.ErrClosed.
func (c *Conn) Read(b []byte) (int, error) {
	ctr := c.e.counter(c.peer)
	for {
		if c.isClosed() {
			return 0, net.ErrClosed
		}
		n, err := c.Conn.Read(b)
		if n > 0 {
			if c.e.Get(c.peer).CutIn || c.broken.Load() {
				c.broken.Store(true)
				ctr.droppedIn.Add(uint64(n))
				if err != nil {
					return 0, c.readErr(err)
				}
				continue
			}
			ctr.received.Add(uint64(n))
		}
		return n, c.readErr(err)
	}
}

func (c *Conn) isClosed() bool { return c.ended.Load() }

// readErr reports a read that Close ended (through the read deadline it
// sets) as the read of a closed connection.
func (c *Conn) readErr(err error) error {
	if err != nil && c.isClosed() {
		return net.ErrClosed
	}
	return err
}

// Close closes the connection as closing a TCP socket does: writes and
// reads fail from now on, and the bytes already written still reach the
// peer when their delay is over, followed by the end of the stream. Bytes
// that could not be delivered anyway (the link is cut outward, the stream
// has a gap, or a write failed) are discarded at once. Delivery after
// Close is bounded like any other: at most MaxQueuedBytes, and a peer that
// stops reading holds it for at most LingerTimeout past the last byte's
// release time.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.ended.Store(true)
		linger := c.writing && len(c.queue) > 0 && c.writeErr == nil &&
			!c.broken.Load() && !c.e.Get(c.peer).CutOut
		if !linger {
			c.discard()
		}
		last := c.lastRelease
		c.cond.Broadcast()
		c.mu.Unlock()
		c.e.untrack(c)
		if linger {
			// deliver closes the socket after the last queued byte.
			c.Conn.SetReadDeadline(time.Now())
			c.Conn.SetWriteDeadline(last.Add(LingerTimeout))
			return
		}
		err = c.closeSocket()
	})
	return err
}

func (c *Conn) closeSocket() error {
	c.socketOnce.Do(func() { c.socketErr = c.Conn.Close() })
	return c.socketErr
}

// DialContext dials addr as this node. If addr belongs to a known peer
// region (Learn), the connection announces this node's region and goes
// through that peer's link; other addresses are dialed plainly.
func (e *Emulator) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	peer := e.RegionOf(addr)
	if peer == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return e.DialPeer(ctx, peer, network, addr)
}

// DialPeer dials addr, which belongs to peer, through the peer's link.
func (e *Emulator) DialPeer(ctx context.Context, peer, network, addr string) (net.Conn, error) {
	if e.Get(peer).cut() {
		t := time.NewTimer(CutDialTimeout)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s (%s): %w: %w", addr, peer, ErrCut, ctx.Err())
		case <-t.C:
			return nil, fmt.Errorf("dial %s (%s): %w", addr, peer, ErrCut)
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := newConn(e, raw, peer)
	if len(e.local) > 255 {
		c.Close()
		return nil, fmt.Errorf("%w: region name too long for the preamble", ErrInvalidLink)
	}
	pre := append(preambleMagic[:], byte(len(e.local)))
	if _, err := c.Write(append(pre, e.local...)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Listener wraps ln: connections from nodes (which start with the
// preamble) go through their region's link; others pass through as they
// are.
func (e *Emulator) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, e: e} }

type listener struct {
	net.Listener
	e *Emulator
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &acceptedConn{Conn: c, e: l.e}, nil
}

// acceptedConn learns on its first read or write whether the other end is
// a node (preamble) or a client. Both HTTP/1 and HTTP/2 clients speak first,
// and so do nodes, so the first read never waits for this side.
type acceptedConn struct {
	net.Conn
	e      *Emulator
	once   sync.Once
	link   atomic.Pointer[Conn] // set when the other end is a node
	replay []byte               // bytes read while looking for the preamble
	err    error
}

func (a *acceptedConn) detect() {
	a.once.Do(func() {
		head := make([]byte, len(preambleMagic))
		n, err := io.ReadFull(a.Conn, head)
		if err != nil || [4]byte(head) != preambleMagic {
			a.replay, a.err = head[:n], err
			return
		}
		var size [1]byte
		if _, err := io.ReadFull(a.Conn, size[:]); err != nil {
			a.err = err
			return
		}
		region := make([]byte, size[0])
		if _, err := io.ReadFull(a.Conn, region); err != nil {
			a.err = err
			return
		}
		lc := newConn(a.e, a.Conn, string(region))
		// What the peer sent before its link was known was the preamble
		// only; count it so every byte from a node is accounted for.
		a.e.counter(lc.peer).received.Add(uint64(len(preambleMagic) + 1 + len(region)))
		a.link.Store(lc)
	})
}

func (a *acceptedConn) Read(b []byte) (int, error) {
	a.detect()
	if lc := a.link.Load(); lc != nil {
		return lc.Read(b)
	}
	if len(a.replay) > 0 {
		n := copy(b, a.replay)
		a.replay = a.replay[n:]
		return n, nil
	}
	if a.err != nil {
		err := a.err
		a.err = nil
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, err
		}
		return 0, io.EOF
	}
	return a.Conn.Read(b)
}

func (a *acceptedConn) Write(b []byte) (int, error) {
	a.detect()
	if lc := a.link.Load(); lc != nil {
		return lc.Write(b)
	}
	return a.Conn.Write(b)
}

// Close never waits for the preamble: closing the socket also ends a read
// blocked in detect.
func (a *acceptedConn) Close() error {
	if lc := a.link.Load(); lc != nil {
		return lc.Close()
	}
	return a.Conn.Close()
}
