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
