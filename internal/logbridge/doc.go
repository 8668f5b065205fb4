// Package logbridge routes the logs of the libraries a Causeway node embeds
// into the node's slog.Logger, with one level mapping for all of them:
//
//   - Pebble (every Pebble store: the region's store, the Raft log, the
//     linearizable state machine): Pebble returns a pebble.Logger.
//   - hashicorp/raft, which logs through hclog: Hclog returns an
//     hclog.Logger.
//   - hashicorp/memberlist, which logs through a *log.Logger: Writer
//     returns the io.Writer under it, with a hook through which package
//     gossip counts the inbound gossip memberlist drops (its log lines are
//     the only sign of those).
//
// # Levels
//
// Every library tags its lines with a level name; Level maps the name to
// slog, the same way for all: TRACE and DEBUG to Debug, INFO to Info, WARN
// and WARNING to Warn, ERR and ERROR to Error; an unknown or missing tag is
// Info, so nothing is lost. One policy sits on top: Pebble's Infof lines
// are routine (flushes, compactions, WAL rotation) and go to Debug. Pebble's
// Fatalf means an unrecoverable storage failure: it is logged at Error and
// the process exits, as Pebble expects of its logger.
//
// A line is logged with its level tag removed and its text otherwise as the
// library wrote it; the attributes of the logger passed in (component,
// node) are kept.
package logbridge
