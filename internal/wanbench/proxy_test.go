package wanbench

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// echoServer accepts connections on 127.0.0.1 and echoes every byte back.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveEcho(t, ln)
}

// serveEcho echoes every byte of every connection ln accepts until the
// test ends, and returns ln's address.
func serveEcho(t *testing.T, ln net.Listener) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestDelayProxyAddsItsStatedDelay measures what the proxy adds to a
// round trip: every round trip of a caller it knows takes at least twice
// the link's one-way delay (the link layer never releases a byte early),
// and the median at most proxyOverheadBound more.
func TestDelayProxyAddsItsStatedDelay(t *testing.T) {
	const oneWay = 40 * time.Millisecond
	emu := link.New("eu-west")
	if err := emu.Set("us-east", link.Link{Delay: oneWay}); err != nil {
		t.Fatal(err)
	}
	p, err := newDelayProxy(echoServer(t), emu, func(id string) string {
		if id == "8e9e05c52164694d" {
			return "us-east"
		}
		return ""
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	roundTrips := func(header string) []time.Duration {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		head := "GET /raft/stream/message/1 HTTP/1.1\r\nHost: x\r\n" + header + "\r\n"
		send := func(msg string) time.Duration {
			start := time.Now()
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(r, make([]byte, len(msg))); err != nil {
				t.Fatal(err)
			}
			return time.Since(start)
		}
		out := []time.Duration{send(head)}
		for range 10 {
			out = append(out, send("ping\n"))
		}
		return out
	}

	rtts := roundTrips(memberHeader + ": 8e9e05c52164694d\r\n")
	checkDelayedRoundTrips(t, "the proxy", rtts, oneWay)

	// A caller the proxy cannot name (no header, or an unknown member)
	// crosses undelayed: its bytes still arrive, in order.
	for _, header := range []string{"", memberHeader + ": 1234\r\n"} {
		if got := roundTrips(header); len(got) != 11 {
			t.Fatalf("%d round trips, want 11", len(got))
		}
	}
	if c := emu.Counters("us-east"); c.Sent == 0 {
		t.Errorf("no byte crossed the us-east link: %+v", c)
	}
}

func TestEtcdMemberIDIsDeterministicAndDistinct(t *testing.T) {
	// The formula (etcd's membership.NewMember: SHA-1 of the sorted peer
	// URLs and the cluster token, first 8 bytes big-endian) is checked
	// against a running etcd's member list by startEtcd, which fails the
	// run when they differ, so the smoke test of `causeway bench` checks it
	// wherever etcd is installed. Here: deterministic, and distinct for
	// distinct members.
	got := etcdMemberID("http://127.0.0.1:2380", "etcd-cluster")
	if len(got) == 0 || len(got) > 16 {
		t.Fatalf("id %q is not a 64-bit hex number", got)
	}
	if again := etcdMemberID("http://127.0.0.1:2380", "etcd-cluster"); again != got {
		t.Fatalf("id not deterministic: %s then %s", got, again)
	}
	if other := etcdMemberID("http://127.0.0.1:2381", "etcd-cluster"); other == got {
		t.Fatalf("two peer URLs give one id %s", got)
	}
}

// TestDelayProxyWithTLSKnowsTheCallerByItsCertificate: with the members'
// peer listeners on TLS the proxy terminates TLS, knows the calling
// member from its certificate and delays it as it delays a plain caller
// it knows (every round trip at least twice the one-way delay, the median
// at most proxyOverheadBound more); a caller whose certificate is no
// member's (the admin client's) crosses undelayed; a caller without a
// certificate from the CA is refused.
func TestDelayProxyWithTLSKnowsTheCallerByItsCertificate(t *testing.T) {
	const oneWay = 40 * time.Millisecond
	caDir := t.TempDir()
	if err := supervisor.PrepareCerts(caDir); err != nil {
		t.Fatal(err)
	}
	certs, err := newEtcdTLS(caDir, t.TempDir(), []string{"us-east", "eu-west"})
	if err != nil {
		t.Fatal(err)
	}
	// The member behind the proxy: a TLS echo server that requires a
	// client certificate from the CA, as etcd's peer listener does.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", certs.proxyTLS("eu-west").server)
	if err != nil {
		t.Fatal(err)
	}
	member := serveEcho(t, ln)

	emu := link.New("eu-west")
	if err := emu.Set("us-east", link.Link{Delay: oneWay}); err != nil {
		t.Fatal(err)
	}
	p, err := newDelayProxy(member, emu, func(string) string { return "" }, certs.proxyTLS("eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	roundTrips := func(cert tls.Certificate) ([]time.Duration, error) {
		c, err := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: certs.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		var out []time.Duration
		for range 11 {
			start := time.Now()
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				return nil, err
			}
			if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
				return nil, err
			}
			out = append(out, time.Since(start))
		}
		return out, nil
	}
	rtts, err := roundTrips(certs.members["us-east"])
	if err != nil {
		t.Fatal(err)
	}
	checkDelayedRoundTrips(t, "the TLS proxy", rtts, oneWay)
	if c := emu.Counters("us-east"); c.Sent == 0 {
		t.Errorf("no byte crossed the us-east link: %+v", c)
	}

	// The admin client's certificate names no member: undelayed, and its
	// bytes still arrive in order.
	if got, err := roundTrips(certs.admin); err != nil || len(got) != 11 {
		t.Fatalf("a caller with the admin certificate: %d round trips, %v", len(got), err)
	}
	// A certificate from another CA is refused.
	otherCA := t.TempDir()
	if err := supervisor.PrepareCerts(otherCA); err != nil {
		t.Fatal(err)
	}
	stranger, err := newEtcdTLS(otherCA, t.TempDir(), []string{"us-east"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrips(stranger.members["us-east"]); err == nil {
		t.Error("a caller with a certificate of another CA was let through")
	}
}

// checkDelayedRoundTrips: no round trip through the proxy (what) beat the
// emulated delay both ways, and the median is within proxyOverheadBound of
// it.
func checkDelayedRoundTrips(t *testing.T, what string, rtts []time.Duration, oneWay time.Duration) {
	t.Helper()
	for i, d := range rtts {
		if d < 2*oneWay {
			t.Errorf("round trip %d took %v, less than twice the one-way delay %v", i, d, oneWay)
		}
	}
	slices.Sort(rtts)
	median := rtts[len(rtts)/2]
	t.Logf("round trips through %s (one-way %v): min %v, median %v, max %v", what, oneWay, rtts[0], median, rtts[len(rtts)-1])
	if median > 2*oneWay+proxyOverheadBound {
		t.Errorf("median round trip %v: the proxy added more than %v beyond the emulated %v", median, proxyOverheadBound, 2*oneWay)
	}
}
