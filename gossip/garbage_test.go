package gossip_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
)

// Packets memberlist must reject when gossip is unencrypted, one log line
// each: the first byte is memberlist's message type.
var badPackets = [][]byte{
	{0xee, 1, 2, 3},                   // unknown message type
	{0, 0xc1},                         // ping that is not msgpack (0xc1 is never valid)
	{2, 0xc1},                         // ack
	{3, 0xc1},                         // suspect
	{4, 0xc1},                         // alive
	{5, 0xc1},                         // dead
	{7, 5, 0},                         // compound whose length table is cut short
	{9, 0xc1},                         // compressed, not msgpack
	{12, 0, 0, 0, 0, 0},               // checksum that does not match
	{8, 1, 9, 0xff},                   // user message that is not Causeway's
	{244, 0},                          // empty label header
	{244, 200, 'x'},                   // truncated label header
	{8, 1, 1, 3, 'a', '/', 'b', 1, 1}, // Causeway heartbeat without flags
}

// Streams memberlist must reject when gossip is unencrypted, one log line
// each.
var badStreams = [][]byte{
	[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), // unknown message type
	{6, 0xc1, 0xc1},                          // push/pull that is not msgpack
	{10, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}, // encrypted, but no key here
	{0, 0xc1},                                // ping that is not msgpack
	{8, 0xc1},                                // user message that is not msgpack
}

// randomBytes returns n bytes from r whose first byte is not 10, memberlist's
// "encrypted" stream type: a stream announcing more encrypted bytes than it
// carries is closed by memberlist as if the peer hung up, without an error.
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	if b[0] == 10 {
		b[0] = 11
	}
	return b
}

func sendPacket(t *testing.T, addr string, b []byte) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// sendStream writes b on a new TCP connection to addr, half-closes it and
// waits for the node to close its end.
func sendStream(t *testing.T, addr string, b []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("waiting for %s to close a garbage stream: %v", addr, err)
	}
}

func TestGarbageIsDroppedAndCounted(t *testing.T) {
	key := []byte("0123456789abcdef")
	keyed := cluster(t, func(c *gossip.Config) { c.SecretKey = key }, "eu-west", "us-east")
	plain := cluster(t, nil, "eu-west", "us-east")
	rng := rand.New(rand.NewPCG(1, 2))

	for _, tc := range []struct {
		name  string
		nodes []*node
		// counted: garbage every piece of which must be counted.
		packets, streams [][]byte
	}{
		{"plaintext cluster", plain, badPackets, badStreams},
		{"encrypted cluster", keyed, append(append([][]byte{}, badPackets...), randomPackets(rng, 30)...),
			append(append([][]byte{}, badStreams...), randomStreams(rng, 10)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, peer := tc.nodes[0], tc.nodes[1]
			before := target.DroppedPackets()
			for _, p := range tc.packets {
				sendPacket(t, target.Addr(), p)
			}
			for _, s := range tc.streams {
				sendStream(t, target.Addr(), s)
			}
			want := before + uint64(len(tc.packets)+len(tc.streams))
			waitFor(t, "the garbage to be counted", func() string {
				if got := target.DroppedPackets(); got < want {
					return fmt.Sprintf("DroppedPackets = %d, want >= %d", got, want)
				}
				return ""
			})

			// Random garbage, for crashes rather than counts.
			for _, p := range randomPackets(rng, 200) {
				sendPacket(t, target.Addr(), p)
			}
			for _, s := range randomStreams(rng, 20) {
				sendStream(t, target.Addr(), s)
			}

			// The node still works: a new vector crosses both ways.
			v := clocks.Vector{"eu-west": rng.Uint64N(1000) + 1}
			target.applied.Set(v)
			peer.applied.Set(v)
			waitFor(t, "gossip after the garbage", func() string {
				if problem := allAlive(tc.nodes...); problem != "" {
					return problem
				}
				return stableIs(v, tc.nodes...)
			})
		})
	}
}

func randomPackets(r *rand.Rand, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = randomBytes(r, 1+r.IntN(1200))
	}
	return out
}

func randomStreams(r *rand.Rand, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = randomBytes(r, 1+r.IntN(4096))
	}
	return out
}
