// Package logquiet keeps an expected, ongoing fault from flooding a node's
// log. Raft and memberlist retry every few hundred milliseconds while a
// peer is unreachable, and log every retry; a two-minute partition used to
// leave hundreds of lines, many at ERROR.
//
// Handler wraps a slog.Handler. Records that say the same thing (the same
// level and message once numbers, durations, addresses and ids are set
// aside, and the same attributes) form one recurring event:
//
//   - the first record of an event is written as it is;
//   - repeats within Window of the last written one are counted, not
//     written;
//   - the first repeat after Window is written with `repeated=N` (the
//     records counted since the last one written), so a lasting fault
//     leaves one line per Window;
//   - when an event has not recurred for Window, one INFO line says it
//     stopped and how many repeats went unwritten.
//
// Nothing is lost silently: every suppressed record is counted in a line
// that is written. The events tracked are bounded (MaxEvents); beyond it
// the oldest is forgotten (its count reported as stopped). The handler
// starts no goroutine: an event's end is noticed by the next record
// handled, or by Flush.
package logquiet
