package gossip

import (
	"log"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// Lines as memberlist v0.7.0 writes them (see net.go and state.go there).
func TestIsRejection(t *testing.T) {
	rejected := []string{
		"memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.1:5000",
		"memberlist: failed to receive: encryption is configured but remote state is not encrypted from=127.0.0.1:5000",
		"memberlist: failed to receive: no installed keys could decrypt the message from=127.0.0.1:5000",
		"memberlist: failed to receive: remote state is encrypted and encryption is not configured from=127.0.0.1:5000",
		"memberlist: Failed to decode ping request: msgpack decode error from=127.0.0.1:5000",
		"memberlist: Failed to decode compound request: truncated len slice from=127.0.0.1:5000",
		"memberlist: Failed to read remote state: EOF from=127.0.0.1:5000",
		"memberlist: Failed to decompress payload: unexpected EOF from=127.0.0.1:5000",
		"memberlist: msg type (238) not supported from=127.0.0.1:5000",
		"memberlist: Received invalid msgType (71) from=127.0.0.1:5000",
		"memberlist: Got invalid checksum for UDP packet: 0, d202ef8d",
		"memberlist: discarding packet with unacceptable label \"x\": from=127.0.0.1:5000",
		"memberlist: cannot decode label; packet has been truncated from=127.0.0.1:5000",
		"memberlist: UDP packet too short (0 bytes) from=127.0.0.1:5000",
		"memberlist: Failed to receive user message: EOF from=127.0.0.1:5000",
		"memberlist: ignoring alive message for 'x': corrupt gossip message",
	}
	kept := []string{
		"memberlist: Failed to send gossip to 127.0.0.1:5000: label \"x\" is too long",
		"memberlist: Push/Pull with eu-west/n1 failed: failed to decode: EOF",
		"memberlist: Failed to send ack: write: broken pipe from=127.0.0.1:5000",
		"memberlist: Refuting a suspect message (from: eu-west/n1)",
		"memberlist: Was able to connect to eu-west/n1 over TCP but UDP probes failed, network may be misconfigured",
		"memberlist: handler queue full, dropping message (3) from=127.0.0.1:5000",
	}
	for _, msg := range rejected {
		if !isRejection(msg) {
			t.Errorf("not counted as dropped input: %q", msg)
		}
	}
	for _, msg := range kept {
		if isRejection(msg) {
			t.Errorf("counted as dropped input: %q", msg)
		}
	}
}

// The bridge counts rejections written through a *log.Logger as memberlist
// does, including lines that arrive together, and only at warning level or
// above.
func TestLogBridgeCounts(t *testing.T) {
	var dropped atomic.Uint64
	b := &logBridge{logger: slog.New(slog.DiscardHandler), dropped: &dropped}
	l := log.New(b.writer(), "", 0)
	l.Printf("[ERR] memberlist: Decrypt packet failed: x from=1.2.3.4:5")
	l.Printf("[DEBUG] memberlist: failed to join 1.2.3.4:5: decrypt")
	l.Printf("[INFO] memberlist: Suspect x has failed, no acks received")
	if _, err := b.writer().Write([]byte("[WARN] memberlist: Got invalid checksum for UDP packet: 1, 2\n[ERR] memberlist: msg type (9) not supported from=x\n")); err != nil {
		t.Fatal(err)
	}
	if got := dropped.Load(); got != 3 {
		t.Errorf("dropped = %d, want 3", got)
	}
}

// At r = 1s the timing is memberlist's WAN configuration.
func TestTimingMatchesWANDefaultsAtOneSecond(t *testing.T) {
	wan := memberlist.DefaultWANConfig()
	for _, r := range []time.Duration{0, time.Second} {
		got := TimingFor(r)
		if got.ProbeTimeout != wan.ProbeTimeout || got.ProbeInterval != wan.ProbeInterval ||
			got.SuspicionMult != wan.SuspicionMult || got.GossipInterval != wan.GossipInterval ||
			got.PushPullInterval != wan.PushPullInterval || got.TCPTimeout != wan.TCPTimeout ||
			got.GossipToTheDeadTime != wan.GossipToTheDeadTime {
			t.Errorf("TimingFor(%v) = %+v, differs from DefaultWANConfig", r, got)
		}
	}
}

func TestTimingScales(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		r    time.Duration
		want Timing
	}{
		{200 * ms, Timing{
			ProbeTimeout: 600 * ms, ProbeInterval: time.Second, SuspicionMult: 6,
			GossipInterval: 100 * ms, PushPullInterval: 12 * time.Second, TCPTimeout: 6 * time.Second,
			GossipToTheDeadTime: 12 * time.Second, DeadNodeReclaimTime: time.Second,
			HeartbeatInterval: 500 * ms, SuspectAfter: 2 * time.Second, ReconnectInterval: 6 * time.Second,
		}},
		{ms, Timing{ // raised to MinRoundTrip (10ms); TCPTimeout floor
			ProbeTimeout: 30 * ms, ProbeInterval: 50 * ms, SuspicionMult: 6,
			GossipInterval: 5 * ms, PushPullInterval: 600 * ms, TCPTimeout: time.Second,
			GossipToTheDeadTime: 600 * ms, DeadNodeReclaimTime: 50 * ms,
			HeartbeatInterval: 25 * ms, SuspectAfter: 100 * ms, ReconnectInterval: 300 * ms,
		}},
	} {
		if got := TimingFor(tt.r); got != tt.want {
			t.Errorf("TimingFor(%v) =\n%+v, want\n%+v", tt.r, got, tt.want)
		}
	}
	// Suspect must come before memberlist can declare a member dead: a
	// failed probe (ProbeTimeout) plus suspicion (SuspicionMult probe
	// intervals at least).
	tm := TimingFor(50 * ms)
	if minDead := tm.ProbeTimeout + time.Duration(tm.SuspicionMult)*tm.ProbeInterval; tm.SuspectAfter >= minDead {
		t.Errorf("SuspectAfter %v is not shorter than the quickest declaration of death %v", tm.SuspectAfter, minDead)
	}
}
