package link

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on link settings: beyond them a setting is a mistake, not a WAN.
const (
	MaxDelay = time.Minute
	// MaxQueuedBytes bounds the bytes delayed on one connection.
	MaxQueuedBytes = 8 << 20
	// CutDialTimeout is how long a dial to a cut peer hangs before failing,
	// as a SYN into a partition would (unless the caller's deadline is
	// sooner).
	CutDialTimeout = 3 * time.Second
	// LingerTimeout bounds how long a closed connection goes on
	// delivering its delayed bytes past the last one's release time, when
	// the peer does not read them.
	LingerTimeout = 5 * time.Second
)

var (
	// ErrInvalidLink reports a link setting out of range.
	ErrInvalidLink = errors.New("invalid link setting")
	// ErrCut is returned by a dial to a peer whose link is cut.
	ErrCut = errors.New("link cut")
)

// Link is the emulated network path from this node to one peer region.
type Link struct {
	// Delay is added to every byte this node sends to the peer (one way).
	Delay time.Duration
	// Jitter varies the delay uniformly within ±Jitter. It may not exceed
	// Delay: a delay that would go below zero is no longer varied evenly
	// around Delay, so the mean delay would not be the one set.
	Jitter time.Duration
	// CutOut drops everything this node sends to the peer.
	CutOut bool
	// CutIn drops everything the peer sends to this node.
	CutIn bool
	// CorruptEvery, when n > 0, damages one of every n writes this node
	// makes to stream connections to the peer: the n-th write after the
	// setting changed, the 2n-th, and so on (counted per link, across its
	// connections, in the order writes reach the layer). A damaged write
	// reaches the peer at full length with the lowest bit of its middle
	// byte flipped, as a faulty NIC or memory would leave it, and is
	// counted in Counters.Corrupted. Counting writes rather than drawing at
	// random makes a run repeatable. Datagrams are never damaged.
	//
	// A protocol without end-to-end checksums is silently damaged by it;
	// it exists to show that Causeway's replication rejects what it damages.
	CorruptEvery int
}

func (l Link) cut() bool { return l.CutOut || l.CutIn }

// Validate reports a delay, jitter or corruption rate out of range.
func (l Link) Validate() error {
	switch {
	case l.Delay < 0 || l.Delay > MaxDelay:
		return fmt.Errorf("%w: delay %v must be between 0 and %v", ErrInvalidLink, l.Delay, MaxDelay)
	case l.Jitter < 0 || l.Jitter > MaxDelay:
		return fmt.Errorf("%w: jitter %v must be between 0 and %v", ErrInvalidLink, l.Jitter, MaxDelay)
	case l.Jitter > l.Delay:
		return fmt.Errorf("%w: jitter %v exceeds the delay %v: a delay varies within delay±jitter, so jitter may be at most the delay (set both, or lower the jitter first)", ErrInvalidLink, l.Jitter, l.Delay)
	case l.CorruptEvery < 0:
		return fmt.Errorf("%w: corrupt-every %d must be 0 (never) or a number of writes", ErrInvalidLink, l.CorruptEvery)
	}
	return nil
}

// Counters are the bytes that crossed, or were dropped at, one link, the
// bytes it holds now, and the writes it damaged (Link.CorruptEvery).
type Counters struct {
	Sent, Received, DroppedOut, DroppedIn uint64
	// Queued is the bytes written to the peer and still waiting out the
	// link's delay, on all its connections (each holds at most
	// MaxQueuedBytes).
	Queued    uint64
	Corrupted uint64 // writes, not bytes
}

type counters struct {
	sent, received, droppedOut, droppedIn atomic.Uint64
	queued                                atomic.Int64
	corrupted                             atomic.Uint64
	// writes counts stream writes since CorruptEvery last changed.
	writes atomic.Uint64
}

// Emulator is one node's link table. It is safe for concurrent use.
type Emulator struct {
	local string

	mu       sync.RWMutex
	links    map[string]Link
	counters map[string]*counters
	conns    map[string]map[*Conn]struct{} // live connections by peer
	regionOf map[string]string             // dial address -> peer region

	rngMu sync.Mutex
	rng   *rand.Rand
}

// New returns the emulator of a node in region local, with every link
// clear (no delay, no cut).
func New(local string) *Emulator {
	return &Emulator{
		local:    local,
		links:    map[string]Link{},
		counters: map[string]*counters{},
		conns:    map[string]map[*Conn]struct{}{},
		regionOf: map[string]string{},
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x636175736577)),
	}
}

// Local is this node's region.
func (e *Emulator) Local() string { return e.local }

// Set changes the link to peer. Healing a cut closes the connections that
// lost bytes to it.
func (e *Emulator) Set(peer string, l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if peer == e.local {
		return fmt.Errorf("%w: %s is this node's own region", ErrInvalidLink, peer)
	}
	ctr := e.counter(peer)
	e.mu.Lock()
	if e.links[peer].CorruptEvery != l.CorruptEvery {
		ctr.writes.Store(0)
	}
	e.links[peer] = l
	var broken []*Conn
	if !l.cut() {
		for c := range e.conns[peer] {
			if c.broken.Load() {
				broken = append(broken, c)
			}
		}
	}
	e.mu.Unlock()
	for _, c := range broken {
		c.Close()
	}
	return nil
}

// Get returns the link to peer.
func (e *Emulator) Get(peer string) Link {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.links[peer]
}

// Links returns every link that has been set, by peer region.
func (e *Emulator) Links() map[string]Link {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make(map[string]Link, len(e.links))
	for p, l := range e.links {
		out[p] = l
	}
	return out
}

// Counters returns the bytes counted at the link to peer.
func (e *Emulator) Counters(peer string) Counters {
	c := e.counter(peer)
	return Counters{Sent: c.sent.Load(), Received: c.received.Load(), DroppedOut: c.droppedOut.Load(), DroppedIn: c.droppedIn.Load(),
		Queued: uint64(max(c.queued.Load(), 0)), Corrupted: c.corrupted.Load()}
}

func (e *Emulator) counter(peer string) *counters {
	e.mu.RLock()
	c := e.counters[peer]
	e.mu.RUnlock()
	if c != nil {
		return c
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c = e.counters[peer]; c == nil {
		c = &counters{}
		e.counters[peer] = c
	}
	return c
}

// Learn records that addr (host:port) belongs to peer region, so dials by
// address (as an HTTP client makes them) find their link.
func (e *Emulator) Learn(addr, peer string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.regionOf[addr] = peer
}

// RegionOf is the peer region learnt for addr ("" if unknown).
func (e *Emulator) RegionOf(addr string) string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.regionOf[addr]
}

// delay draws one write's delay on link l.
func (e *Emulator) delay(l Link) time.Duration {
	if l.Jitter == 0 {
		return l.Delay
	}
	e.rngMu.Lock()
	j := time.Duration(e.rng.Int64N(int64(2*l.Jitter)+1)) - l.Jitter
	e.rngMu.Unlock()
	return max(l.Delay+j, 0)
}

// damage returns b, or a damaged copy of it if link l damages this write
// (Link.CorruptEvery). b itself is never modified: it belongs to the
// caller.
func damage(l Link, ctr *counters, b []byte) []byte {
	if l.CorruptEvery <= 0 || len(b) == 0 {
		return b
	}
	if ctr.writes.Add(1)%uint64(l.CorruptEvery) != 0 {
		return b
	}
	d := append([]byte(nil), b...)
	d[len(d)/2] ^= 1
	ctr.corrupted.Add(1)
	return d
}

func (e *Emulator) track(c *Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns[c.peer] == nil {
		e.conns[c.peer] = map[*Conn]struct{}{}
	}
	e.conns[c.peer][c] = struct{}{}
}

func (e *Emulator) untrack(c *Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns[c.peer], c)
}
