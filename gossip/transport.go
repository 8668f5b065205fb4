package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// TransportConfig is what NewTransport builds a memberlist.Transport from:
// Go's standard network interfaces, so that whatever wraps them (Causeway's
// link emulation, a test double) carries all of memberlist's traffic.
type TransportConfig struct {
	// Dial opens a stream (TCP) connection; network is always "tcp".
	// Required. (*net.Dialer).DialContext fits, and so does a link
	// emulator's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Listener accepts incoming streams. Required. The transport owns it
	// and closes it at Shutdown.
	Listener net.Listener

	// PacketConn sends and receives packets (UDP). Required. The transport
	// owns it and closes it at Shutdown. Members advertise one port for
	// both: when both addresses are TCP/UDP addresses their ports must
	// match (ListenPair binds such a pair).
	PacketConn net.PacketConn

	// Logger receives accept and read errors. Nil means slog.Default().
	Logger *slog.Logger
}

// Transport is a memberlist.Transport over a dialer, a net.Listener and a
// net.PacketConn. It is safe for concurrent use.
type Transport struct {
	cfg      TransportConfig
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	wg       sync.WaitGroup
	dropped  atomic.Uint64
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// packetBufSize is the largest packet read; memberlist sends at most
// UDPBufferSize (1400) bytes, a UDP datagram at most 64 KiB.
const packetBufSize = 65536

// NewTransport starts a transport that reads packets from cfg.PacketConn and
// accepts streams from cfg.Listener until Shutdown.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	var errs []error
	if cfg.Dial == nil {
		errs = append(errs, errors.New("Dial is nil"))
	}
	if cfg.Listener == nil {
		errs = append(errs, errors.New("Listener is nil"))
	}
	if cfg.PacketConn == nil {
		errs = append(errs, errors.New("PacketConn is nil"))
	}
	if cfg.Listener != nil && cfg.PacketConn != nil {
		tcp, okT := cfg.Listener.Addr().(*net.TCPAddr)
		udp, okU := cfg.PacketConn.LocalAddr().(*net.UDPAddr)
		if okT && okU && tcp.Port != udp.Port {
			errs = append(errs, fmt.Errorf("listener port %d and packet conn port %d differ; members advertise one port for both (use ListenPair)", tcp.Port, udp.Port))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: transport: %w", ErrInvalidConfig, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Transport{
		cfg:      cfg,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t, nil
}

// ListenPair listens for TCP and UDP on the same host:port, as a Transport
// needs. With port 0 it picks a port free for both, retrying a few times when
// the port the kernel chose for TCP is taken for UDP.
func ListenPair(addr string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" {
		attempts = 10
	}
	for i := 0; ; i++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		tcpPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, tcpPort))
		if err == nil {
			return ln, pc, nil
		}
		_ = ln.Close()
		if i+1 >= attempts {
			return nil, nil, err
		}
	}
}

// Dropped counts packets discarded by the transport itself (empty ones).
func (t *Transport) Dropped() uint64 { return t.dropped.Load() }

func (t *Transport) readPackets() {
	defer t.wg.Done()
	for {
		buf := make([]byte, packetBufSize)
		n, from, err := t.cfg.PacketConn.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if t.stopping() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.cfg.Logger.Warn("gossip: packet read failed", "err", err)
			if !t.pause(10 * time.Millisecond) {
				return
			}
			continue
		}
		if n == 0 {
			t.dropped.Add(1)
			continue
		}
		select {
		case t.packetCh <- &memberlist.Packet{Buf: buf[:n], From: from, Timestamp: now}:
		case <-t.done:
			return
		}
	}
}

func (t *Transport) acceptStreams() {
	defer t.wg.Done()
	const maxDelay = time.Second
	delay := 5 * time.Millisecond
	for {
		conn, err := t.cfg.Listener.Accept()
		if err != nil {
			if t.stopping() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// net/http does, rather than spin.
			t.cfg.Logger.Warn("gossip: accept failed", "err", err, "retry_in", delay)
			if !t.pause(delay) {
				return
			}
			delay = min(2*delay, maxDelay)
			continue
		}
		delay = 5 * time.Millisecond
		select {
		case t.streamCh <- conn:
		case <-t.done:
			_ = conn.Close()
			return
		}
	}
}

// pause waits for d or until Shutdown; it reports whether to go on.
func (t *Transport) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.done:
		return false
	}
}

func (t *Transport) stopping() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// FinalAdvertiseAddr implements memberlist.Transport: the configured address
// if there is one, else the listener's, which must then be a specific IP.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP", ip)
		}
		if ip4 := addr.To4(); ip4 != nil {
			addr = ip4
		}
		return addr, port, nil
	}
	host, portStr, err := net.SplitHostPort(t.cfg.Listener.Addr().String())
	if err != nil {
		return nil, 0, fmt.Errorf("listener address %q: %w; set AdvertiseAddr", t.cfg.Listener.Addr(), err)
	}
	addr := net.ParseIP(host)
	if addr == nil || addr.IsUnspecified() {
		return nil, 0, fmt.Errorf("listener address %q is not a specific IP; set AdvertiseAddr", t.cfg.Listener.Addr())
	}
	if ip4 := addr.To4(); ip4 != nil {
		addr = ip4
	}
	p, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, 0, fmt.Errorf("listener address %q: %w", t.cfg.Listener.Addr(), err)
	}
	return addr, p, nil
}

// WriteTo implements memberlist.Transport.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.cfg.PacketConn.WriteTo(b, udpAddr)
	return time.Now(), err
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.cfg.Dial(ctx, "tcp", addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it closes the listener and the
// packet conn and waits for the reading goroutines to end. It is idempotent.
func (t *Transport) Shutdown() error {
	var err error
	t.stopOnce.Do(func() {
		close(t.done)
		err = errors.Join(t.cfg.Listener.Close(), t.cfg.PacketConn.Close())
		t.wg.Wait()
	})
	return err
}
