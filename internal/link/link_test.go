package link

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"
)

// echoServer accepts through e's listener and echoes every line back.
func echoServer(t *testing.T, e *Emulator) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := e.Listener(raw)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return raw.Addr().String()
}

func dial(t *testing.T, e *Emulator, peer, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.DialPeer(ctx, peer, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, msg string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return line[:len(line)-1], time.Since(start)
}

func TestLinkCarriesAndCountsBytes(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	addr := echoServer(t, b)
	c := dial(t, a, "eu-west", addr)
	r := bufio.NewReader(c)
	if got, _ := roundTrip(t, c, r, "hello"); got != "hello" {
		t.Fatalf("echo = %q", got)
	}
	preamble := uint64(4 + 1 + len("us-east"))
	if got := a.Counters("eu-west"); got.Sent != preamble+6 || got.Received != 6 {
		t.Fatalf("us-east counted %+v, want %d sent and 6 received", got, preamble+6)
	}
	// The echo server counts its write after the bytes left, so the client
	// can see them first: wait for the count.
	deadline := time.Now().Add(5 * time.Second)
	for got := b.Counters("us-east"); got.Received != preamble+6 || got.Sent != 6; got = b.Counters("us-east") {
		if time.Now().After(deadline) {
			t.Fatalf("eu-west counted %+v, want %d received and 6 sent", got, preamble+6)
		}
		time.Sleep(time.Millisecond) // polling a counter, not waiting for an event
	}
}

// TestCutLetsNoByteThrough cuts the link at each end and in each direction
// and checks, by the counters, that nothing crosses.
func TestCutLetsNoByteThrough(t *testing.T) {
	cases := []struct {
		name    string
		cutAt   string // the node whose emulator holds the cut
		link    Link
		dropped func(a, b Counters) uint64
	}{
		{"sender cuts outgoing", "a", Link{CutOut: true}, func(a, b Counters) uint64 { return a.DroppedOut }},
		{"receiver cuts incoming", "b", Link{CutIn: true}, func(a, b Counters) uint64 { return b.DroppedIn }},
		{"both directions at the sender", "a", Link{CutOut: true, CutIn: true}, func(a, b Counters) uint64 { return a.DroppedOut }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := New("us-east"), New("eu-west")
			addr := echoServer(t, b)
			c := dial(t, a, "eu-west", addr)
			r := bufio.NewReader(c)
			roundTrip(t, c, r, "before")
			// Let eu-west finish counting the echo it sent before the cut.
			deadline := time.Now().Add(5 * time.Second)
			for b.Counters("us-east").Sent != a.Counters("eu-west").Received {
				if time.Now().After(deadline) {
					t.Fatalf("counts never agreed: %+v vs %+v", a.Counters("eu-west"), b.Counters("us-east"))
				}
				time.Sleep(time.Millisecond) // polling a counter, not waiting for an event
			}
			beforeA, beforeB := a.Counters("eu-west"), b.Counters("us-east")

			if tc.cutAt == "a" {
				must(t, a.Set("eu-west", tc.link))
			} else {
				must(t, b.Set("us-east", tc.link))
			}
			if _, err := io.WriteString(c, "during the cut\n"); err != nil {
				t.Fatal(err)
			}
			// Wait until the layer has seen the bytes (dropped them).
			deadline = time.Now().Add(5 * time.Second)
			for tc.dropped(a.Counters("eu-west"), b.Counters("us-east")) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the bytes written during the cut were never accounted for")
				}
				time.Sleep(time.Millisecond) // polling a counter, not waiting for an event
			}
			afterA, afterB := a.Counters("eu-west"), b.Counters("us-east")
			if afterA.Received != beforeA.Received || afterB.Sent != beforeB.Sent {
				t.Fatalf("bytes crossed the cut: us-east %+v -> %+v, eu-west %+v -> %+v", beforeA, afterA, beforeB, afterB)
			}
			if afterB.Received != beforeB.Received && tc.cutAt == "a" {
				t.Fatalf("eu-west received bytes us-east dropped: %+v -> %+v", beforeB, afterB)
			}
			// New connections to a cut peer do not get through either.
			if tc.cutAt == "a" {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				if _, err := a.DialPeer(ctx, "eu-west", "tcp", addr); !errors.Is(err, ErrCut) {
					t.Fatalf("dial across a cut: %v, want ErrCut", err)
				}
			}
			// Healing closes the connection that lost bytes; a new one works.
			must(t, a.Set("eu-west", Link{}))
			must(t, b.Set("us-east", Link{}))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := r.ReadString('\n'); err == nil {
				t.Fatal("a connection with a gap in it survived the heal")
			}
			c2 := dial(t, a, "eu-west", addr)
			if got, _ := roundTrip(t, c2, bufio.NewReader(c2), "after"); got != "after" {
				t.Fatalf("after heal: %q", got)
			}
		})
	}
}

// TestDelayShapesRoundTrip: 50 ms one way in each direction makes a round
// trip of 100 ms. No round trip may be shorter (the delay is a floor); the
// fastest of several must be close to it (a delay applied twice, or per
// read, would show as 150 ms or more). Scheduling on a shared machine only
// lengthens round trips, so the fastest one is the emulator's own figure.
func TestDelayShapesRoundTrip(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	must(t, a.Set("eu-west", Link{Delay: 50 * time.Millisecond}))
	must(t, b.Set("us-east", Link{Delay: 50 * time.Millisecond}))
	addr := echoServer(t, b)
	c := dial(t, a, "eu-west", addr)
	r := bufio.NewReader(c)
	var rtts []time.Duration
	for range 7 {
		_, rtt := roundTrip(t, c, r, "ping")
		rtts = append(rtts, rtt)
	}
	slices.Sort(rtts)
	if rtts[0] < 100*time.Millisecond || rtts[0] > 125*time.Millisecond {
		t.Fatalf("fastest round trip %v (all %v), want 100ms, at most 25ms late", rtts[0], rtts)
	}
	// Delay never reorders: a burst arrives in order.
	for i := range 20 {
		if _, err := io.WriteString(c, string(rune('a'+i))+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		line, err := r.ReadString('\n')
		if err != nil || line != string(rune('a'+i))+"\n" {
			t.Fatalf("line %d = %q, %v", i, line, err)
		}
	}
}

func TestJitterStaysInRangeAndOrder(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	must(t, a.Set("eu-west", Link{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond}))
	addr := echoServer(t, b)
	c := dial(t, a, "eu-west", addr)
	r := bufio.NewReader(c)
	for i := range 30 {
		msg := string(rune('A' + i))
		got, rtt := roundTrip(t, c, r, msg)
		if got != msg {
			t.Fatalf("got %q, want %q", got, msg)
		}
		if rtt < 5*time.Millisecond {
			t.Fatalf("round trip %v below the least delay 5ms", rtt)
		}
	}
}

func TestClientsWithoutPreamblePassThrough(t *testing.T) {
	e := New("us-east")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(e.Listener(raw))
	t.Cleanup(func() { srv.Close() })
	res, err := http.Get("http://" + raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("plain HTTP through the listener: %q", body)
	}
}

func TestInvalidLinks(t *testing.T) {
	e := New("us-east")
	for _, l := range []Link{{Delay: -time.Millisecond}, {Delay: 2 * MaxDelay}, {Jitter: -1}, {CorruptEvery: -1},
		{Delay: 10 * time.Millisecond, Jitter: 11 * time.Millisecond}, {Jitter: time.Millisecond}} {
		if err := e.Set("eu-west", l); !errors.Is(err, ErrInvalidLink) {
			t.Errorf("Set(%+v) = %v, want ErrInvalidLink", l, err)
		}
	}
	if err := e.Set("eu-west", Link{Delay: 10 * time.Millisecond, Jitter: 10 * time.Millisecond}); err != nil {
		t.Errorf("a jitter equal to the delay was refused: %v", err)
	}
	if err := e.Set("us-east", Link{}); !errors.Is(err, ErrInvalidLink) {
		t.Errorf("a link to the node's own region was accepted: %v", err)
	}
}

// TestCorruptEveryDamagesCountedWrites: with CorruptEvery n, exactly every
// n-th write (counted from the setting) arrives with the lowest bit of its
// middle byte flipped, delayed or not; the caller's buffer is untouched.
func TestCorruptEveryDamagesCountedWrites(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	addr := echoServer(t, b)
	c := dial(t, a, "eu-west", addr)
	r := bufio.NewReader(c)
	msg := []byte("abcdefgh\n") // middle byte 'e'; damaged it reads 'd'
	send := func() string {
		t.Helper()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	steps := []struct {
		link Link
		want []string // echoes of successive writes
	}{
		{Link{CorruptEvery: 3}, []string{"abcdefgh\n", "abcdefgh\n", "abcddfgh\n", "abcdefgh\n", "abcdefgh\n", "abcddfgh\n"}},
		// A new setting counts afresh.
		{Link{CorruptEvery: 2}, []string{"abcdefgh\n", "abcddfgh\n", "abcdefgh\n"}},
		{Link{CorruptEvery: 1, Delay: 5 * time.Millisecond}, []string{"abcddfgh\n", "abcddfgh\n"}},
		{Link{}, []string{"abcdefgh\n", "abcdefgh\n", "abcdefgh\n"}},
	}
	damaged := uint64(0)
	for _, step := range steps {
		must(t, a.Set("eu-west", step.link))
		for i, want := range step.want {
			if got := send(); got != want {
				t.Fatalf("link %+v, write %d: echo %q, want %q", step.link, i+1, got, want)
			}
			if want != "abcdefgh\n" {
				damaged++
			}
		}
		if string(msg) != "abcdefgh\n" {
			t.Fatalf("the caller's buffer was damaged: %q", msg)
		}
		if got := a.Counters("eu-west").Corrupted; got != damaged {
			t.Fatalf("link %+v: %d writes counted as damaged, want %d", step.link, got, damaged)
		}
	}
	if got := b.Counters("us-east").Corrupted; got != 0 {
		t.Fatalf("eu-west, which damages nothing, counted %d damaged writes", got)
	}
}

// TestQueuedCountsDelayedBytes: bytes waiting out a delay are counted as
// queued until they leave.
func TestQueuedCountsDelayedBytes(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	addr := echoServer(t, b)
	c := dial(t, a, "eu-west", addr)
	sentBefore := a.Counters("eu-west").Sent
	must(t, a.Set("eu-west", Link{Delay: MaxDelay}))
	for range 3 {
		if _, err := io.WriteString(c, "waiting\n"); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Counters("eu-west"); got.Queued != 3*8 || got.Sent != sentBefore {
		t.Fatalf("counters %+v, want 24 bytes queued and none sent", got)
	}
}

// TestCloseDeliversWhatWasWritten: closing a connection is closing a
// socket. A reply written just before Close reaches the peer after the
// link's delay, then the peer reads the end of the stream; this side's
// reads and writes fail at once.
func TestCloseDeliversWhatWasWritten(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := b.Listener(raw)
	t.Cleanup(func() { ln.Close() })
	const delay = 150 * time.Millisecond
	must(t, b.Set("us-east", Link{Delay: delay}))

	type result struct {
		readErr error
		closed  time.Time
	}
	served := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- result{readErr: err}
			return
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ask\n" {
			served <- result{readErr: fmt.Errorf("request %q, %v", line, err)}
			return
		}
		io.WriteString(c, "answer\n")
		c.Close() // at once, as memberlist does after a push/pull answer
		closedAt := time.Now()
		// This side of a closed connection reads and writes no more.
		_, rerr := c.Read(make([]byte, 1))
		if _, werr := c.Write([]byte("late")); !errors.Is(werr, net.ErrClosed) {
			rerr = fmt.Errorf("write after close: %v", werr)
		}
		served <- result{readErr: rerr, closed: closedAt}
	}()

	c := dial(t, a, "eu-west", raw.Addr().String())
	if _, err := io.WriteString(c, "ask\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	received := time.Now()
	if err != nil || string(got) != "answer\n" {
		t.Fatalf("peer read %q, %v; want the answer, then the end of the stream", got, err)
	}
	r := <-served
	if !errors.Is(r.readErr, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", r.readErr)
	}
	if lag := received.Sub(r.closed); lag < delay/2 {
		t.Fatalf("answer arrived %v after the close; the link's delay is %v", lag, delay)
	}
	if q := b.Counters("us-east").Queued; q != 0 {
		t.Fatalf("%d bytes still queued after delivery", q)
	}
}

// TestCloseDiscardsWhatCannotArrive: bytes queued behind a cut are
// dropped on Close, not held for their delay.
func TestCloseDiscardsWhatCannotArrive(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	addr := echoServer(t, b)
	c := dial(t, a, "eu-west", addr)
	must(t, a.Set("eu-west", Link{Delay: MaxDelay}))
	if _, err := io.WriteString(c, "never\n"); err != nil {
		t.Fatal(err)
	}
	must(t, a.Set("eu-west", Link{Delay: MaxDelay, CutOut: true}))
	sentBefore := a.Counters("eu-west").Sent
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for a.Counters("eu-west").Queued != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("closing a cut connection left %+v", a.Counters("eu-west"))
		}
		time.Sleep(time.Millisecond) // polling a counter, not waiting for an event
	}
	if got := a.Counters("eu-west").Sent; got != sentBefore {
		t.Fatalf("%d bytes sent through a cut link", got-sentBefore)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPacketsCrossAndAreCut(t *testing.T) {
	a, b := New("us-east"), New("eu-west")
	rawA, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rawB, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := a.PacketConn(rawA), b.PacketConn(rawB)
	t.Cleanup(func() { pa.Close(); pb.Close() })
	a.Learn(rawB.LocalAddr().String(), "eu-west")

	recv := func() (string, error) {
		buf := make([]byte, 64)
		pb.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := pb.ReadFrom(buf)
		return string(buf[:n]), err
	}
	if _, err := pa.WriteTo([]byte("hello"), rawB.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, err := recv(); err != nil || got != "hello" {
		t.Fatalf("datagram = %q, %v", got, err)
	}
	// The receiver learnt the sender's region from the header.
	if b.RegionOf(rawA.LocalAddr().String()) != "us-east" {
		t.Fatal("receiver did not learn the sender's region")
	}
	recvBefore := b.Counters("us-east").Received
	must(t, a.Set("eu-west", Link{CutOut: true}))
	pa.WriteTo([]byte("lost"), rawB.LocalAddr())
	if got, err := recv(); err == nil {
		t.Fatalf("a datagram crossed an outgoing cut: %q", got)
	}
	must(t, a.Set("eu-west", Link{}))
	must(t, b.Set("us-east", Link{CutIn: true}))
	pa.WriteTo([]byte("lost too"), rawB.LocalAddr())
	if got, err := recv(); err == nil {
		t.Fatalf("a datagram crossed an incoming cut: %q", got)
	}
	if a.Counters("eu-west").DroppedOut == 0 || b.Counters("us-east").DroppedIn == 0 {
		t.Fatalf("drops not counted: %+v %+v", a.Counters("eu-west"), b.Counters("us-east"))
	}
	if b.Counters("us-east").Received != recvBefore {
		t.Fatalf("eu-west counted bytes received through a cut")
	}
	// Delay applies to datagrams too.
	must(t, b.Set("us-east", Link{}))
	must(t, a.Set("eu-west", Link{Delay: 30 * time.Millisecond}))
	start := time.Now()
	pa.WriteTo([]byte("late"), rawB.LocalAddr())
	if got, err := recv(); err != nil || got != "late" {
		t.Fatalf("delayed datagram = %q, %v", got, err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("a 30ms link delivered in %v", waited)
	}
}
