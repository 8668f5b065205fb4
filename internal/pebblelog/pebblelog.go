// Package pebblelog routes Pebble's log lines into slog, for every Pebble
// store of a Causeway node (the region's store, the Raft log, the linear
// state machine).
//
// Pebble's Infof lines are routine (flushes, compactions) and go to Debug;
// Errorf goes to Error. Fatalf means an unrecoverable storage failure: it is
// logged and the process exits, as Pebble expects of its logger.
package pebblelog

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// New returns a pebble.Logger writing to l.
func New(l *slog.Logger) pebble.Logger { return logger{l} }

type logger struct{ l *slog.Logger }

func (p logger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p logger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p logger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
