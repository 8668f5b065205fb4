package gossip

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causewaydb/causeway/internal/logbridge"
)

// How dropped gossip is counted
//
// memberlist decrypts and decodes inbound packets and streams itself and, when
// one is bad, logs a line and drops it; it exposes no counter or hook for
// that. Two alternatives were considered and rejected:
//
//   - Pre-screening packets in a wrapping Transport. That means repeating
//     memberlist's wire format outside memberlist (label header, AES-GCM
//     framing and key rotation, CRC, compression, msgpack), which would drift
//     silently from the library, and it still cannot see decode failures
//     inside streams without re-implementing the stream protocol.
//   - go-metrics counters: memberlist emits none for rejected input.
//
// So memberlist's log is routed into slog through internal/logbridge (one
// level mapping for every library's log), and logBridge, its hook, counts
// each warning or error that reports rejected inbound input. rejectMarkers lists the phrases of those messages
// (memberlist v0.7.0: every decrypt, label, checksum, decompress and decode
// failure, on the packet path and the stream path). The tests send garbage
// UDP packets and TCP streams, keyed and unkeyed, and require the counter to
// move, so an upgrade that rewords these messages fails the tests instead of
// silently freezing the counter.
//
// Known gap: a stream that announces more encrypted bytes than it carries
// and then ends is closed by memberlist as if the peer had hung up (io.EOF),
// without a log line, so it is not counted. It is still dropped.

// rejectMarkers are lower-case phrases of memberlist's messages for inbound
// gossip it dropped because it could not authenticate, decrypt or decode it.
var rejectMarkers = []string{
	"decrypt",                     // Decrypt packet failed; stream: no installed keys could decrypt
	"failed to decode",            // ping, indirect ping, ack, nack, suspect, alive, dead, compound
	"failed to receive",           // stream: unreadable, or plaintext where encryption is required
	"failed to read remote state", // push/pull body does not decode
	"failed push/pull merge",      // push/pull from an incompatible protocol version
	"failed to decompress",
	"not supported",    // unknown message type (packet)
	"invalid msgtype",  // unknown message type (stream)
	"invalid checksum", // CRC mismatch
	"missing message type",
	"too short", // empty packet
	"label",     // bad or foreign label header (packet or stream)
	"truncated", // compound message or label cut short
	"remote node state size",
	"ignoring alive message",    // node metadata that does not decode (Causeway's AliveDelegate)
	"ignoring an alive message", // protocol versions out of range
}

// outboundMarkers are phrases of memberlist's messages about this node's own
// sends failing; their error text can contain a reject marker ("truncated",
// "label") but they are not inbound input.
var outboundMarkers = []string{
	"failed to send",
	"failed to forward",
	"failed to push local state",
	"push/pull with",
	"failed fallback tcp ping",
	"failed to join",
	"failed to encode",
	"encryption of message failed",
	"failed to encrypt",
	"failed to compress",
}

// isRejection reports whether a memberlist warning or error message reports
// dropped inbound input.
func isRejection(msg string) bool {
	msg = strings.ToLower(msg)
	for _, m := range outboundMarkers {
		if strings.Contains(msg, m) {
			return false
		}
	}
	for _, m := range rejectMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// rejectLogEvery limits how often a rejection is logged at warning level;
// the rest go to debug. A flood of garbage then costs a counter increment,
// not a flood of log lines.
const rejectLogEvery = 10 * time.Second

// logBridge counts the inbound gossip memberlist drops; its writer is the
// io.Writer under memberlist's *log.Logger.
type logBridge struct {
	logger  *slog.Logger
	dropped *atomic.Uint64

	mu          sync.Mutex
	lastWarning time.Time
	suppressed  uint64
}

// writer routes memberlist's lines into slog (internal/logbridge), counting
// those that report rejected inbound input instead of logging each.
func (b *logBridge) writer() io.Writer {
	return logbridge.Writer(b.logger.With("component", "memberlist"), b.hook)
}

// hook takes the warnings and errors that report rejected inbound input.
func (b *logBridge) hook(level slog.Level, msg string) bool {
	if level >= slog.LevelWarn && isRejection(msg) {
		b.reject(msg)
		return true
	}
	return false
}

// reject counts one dropped piece of inbound gossip and logs why, at warning
// level at most once per rejectLogEvery and at debug level otherwise.
func (b *logBridge) reject(reason string) {
	total := b.dropped.Add(1)
	now := time.Now()
	b.mu.Lock()
	if !b.lastWarning.IsZero() && now.Sub(b.lastWarning) < rejectLogEvery {
		b.suppressed++
		b.mu.Unlock()
		b.logger.Debug("gossip: dropped inbound gossip", "reason", reason)
		return
	}
	suppressed := b.suppressed
	b.suppressed = 0
	b.lastWarning = now
	b.mu.Unlock()
	b.logger.Warn("gossip: dropped inbound gossip that failed to decrypt or decode (wrong or missing key, another version, or not gossip)",
		"reason", reason, "similar_since_last_warning", suppressed, "dropped_total", total)
}
