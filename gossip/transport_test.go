package gossip_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
)

// counting wraps the standard interfaces the way a link emulator would, and
// counts what crosses them.
type counting struct {
	dials, accepts, packetsOut, packetsIn atomic.Int64
}

func (c *counting) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.dials.Add(1)
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

type countingListener struct {
	net.Listener
	c *counting
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.c.accepts.Add(1)
	}
	return conn, err
}

type countingPacketConn struct {
	net.PacketConn
	c *counting
}

func (p countingPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	p.c.packetsOut.Add(1)
	return p.PacketConn.WriteTo(b, addr)
}

func (p countingPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := p.PacketConn.ReadFrom(b)
	if err == nil {
		p.c.packetsIn.Add(1)
	}
	return n, addr, err
}

// adapterNode starts a node whose gossip goes through NewTransport over
// plain net listeners, wrapped to count.
func adapterNode(t *testing.T, region string, key []byte) (*node, *counting) {
	t.Helper()
	ln, pc, err := gossip.ListenPair("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{}
	tr, err := gossip.NewTransport(gossip.TransportConfig{
		Dial:       c.dial,
		Listener:   countingListener{ln, c},
		PacketConn: countingPacketConn{pc, c},
		Logger:     testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, region, func(cfg *gossip.Config) {
		cfg.Transport = tr
		cfg.BindAddr = "" // unused with a Transport
		cfg.SecretKey = key
	})
	if want := ln.Addr().String(); n.Addr() != want {
		t.Errorf("%s advertises %s, want the listener's %s", region, n.Addr(), want)
	}
	return n, c
}

func TestTransportAdapter(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, ca := adapterNode(t, "eu-west", key)
	b, cb := adapterNode(t, "us-east", key)
	// A node on memberlist's own transport talks to them.
	c := startNode(t, "ap-south", func(cfg *gossip.Config) { cfg.SecretKey = key })
	join(t, b, a.Addr())
	join(t, c, a.Addr())
	nodes := []*node{a, b, c}
	waitFor(t, "all three alive", func() string { return allAlive(nodes...) })

	a.applied.Set(clocks.Vector{"eu-west": 3, "us-east": 2})
	b.applied.Set(clocks.Vector{"eu-west": 2, "us-east": 4})
	c.applied.Set(clocks.Vector{"eu-west": 2, "us-east": 1})
	waitFor(t, "vectors through the adapter", func() string {
		return stableIs(clocks.Vector{"eu-west": 2, "us-east": 1}, nodes...)
	})

	for name, got := range map[string]int64{
		"eu-west accepted streams": ca.accepts.Load(),
		"us-east dialed streams":   cb.dials.Load(),
		"eu-west sent packets":     ca.packetsOut.Load(),
		"eu-west received packets": ca.packetsIn.Load(),
		"us-east sent packets":     cb.packetsOut.Load(),
		"us-east received packets": cb.packetsIn.Load(),
	} {
		if got == 0 {
			t.Errorf("%s: 0; gossip bypassed the given interfaces", name)
		}
	}

	// An empty datagram is dropped by the adapter and counted.
	before := a.DroppedPackets()
	sendPacket(t, a.Addr(), nil)
	waitFor(t, "the empty packet to be counted", func() string {
		if got := a.DroppedPackets(); got <= before {
			return fmt.Sprintf("DroppedPackets = %d, was %d", got, before)
		}
		return ""
	})
}

func TestNewTransportValidates(t *testing.T) {
	if _, err := gossip.NewTransport(gossip.TransportConfig{}); !errors.Is(err, gossip.ErrInvalidConfig) {
		t.Errorf("empty TransportConfig: err = %v, want ErrInvalidConfig", err)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().(*net.TCPAddr).Port == pc.LocalAddr().(*net.UDPAddr).Port {
		// The kernel picked the same port for both: bind TCP elsewhere.
		ln2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln2.Close()
		ln = ln2
	}
	var d net.Dialer
	_, err = gossip.NewTransport(gossip.TransportConfig{Dial: d.DialContext, Listener: ln, PacketConn: pc})
	if !errors.Is(err, gossip.ErrInvalidConfig) {
		t.Errorf("listener and packet conn on different ports: err = %v, want ErrInvalidConfig", err)
	}
}

func TestTransportAdvertiseAddr(t *testing.T) {
	ln, pc, err := gossip.ListenPair("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	tr, err := gossip.NewTransport(gossip.TransportConfig{Dial: d.DialContext, Listener: ln, PacketConn: pc, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Shutdown(); err != nil {
			t.Error(err)
		}
		if err := tr.Shutdown(); err != nil { // idempotent
			t.Error(err)
		}
	})
	if _, _, err := tr.FinalAdvertiseAddr("", 0); err == nil {
		t.Error("wildcard listener without an advertise address: no error")
	}
	ip, port, err := tr.FinalAdvertiseAddr("192.0.2.7", 7946)
	if err != nil || !ip.Equal(net.ParseIP("192.0.2.7")) || port != 7946 {
		t.Errorf("FinalAdvertiseAddr(192.0.2.7, 7946) = %v, %d, %v", ip, port, err)
	}
}

// New owns the Transport it is given, also when it fails.
func TestNewShutsDownTransportOnError(t *testing.T) {
	ln, pc, err := gossip.ListenPair("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	tr, err := gossip.NewTransport(gossip.TransportConfig{Dial: d.DialContext, Listener: ln, PacketConn: pc, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gossip.New(gossip.Config{Transport: tr, Logger: testLogger()}); err == nil {
		t.Fatal("New accepted a config without Meta")
	}
	if conn, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		conn.Close()
		t.Error("the transport's listener still accepts connections after New failed")
	}
}
