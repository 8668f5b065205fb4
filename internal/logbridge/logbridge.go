package logbridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"
)

// Level maps a library's level name ("DEBUG", "ERR", ...) to slog; see the
// package comment. Case does not matter.
func Level(name string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN", "WARNING":
		return slog.LevelWarn
	case "ERR", "ERROR":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// ParseLine splits a line in the "[LEVEL] message" form that memberlist and
// hclog write into its slog level (Level) and the message, spaces trimmed.
// A line without a level tag is Info, whole.
func ParseLine(line string) (slog.Level, string) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "[") {
		return slog.LevelInfo, line
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return slog.LevelInfo, line
	}
	return Level(line[1:end]), strings.TrimSpace(line[end+1:])
}

// Hook sees each line before it is logged; returning true means the hook
// has dealt with it and it is not logged.
type Hook func(level slog.Level, msg string) (handled bool)

// Writer is the io.Writer under a library's *log.Logger or hclog output:
// each line it is given (a write may hold several) is parsed by ParseLine
// and logged on l at its level, unless hook (which may be nil) handles it.
// Empty lines are dropped. It is safe for concurrent use if hook is.
func Writer(l *slog.Logger, hook Hook) io.Writer { return writer{l: l, hook: hook} }

type writer struct {
	l    *slog.Logger
	hook Hook
}

func (w writer) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		level, msg := ParseLine(string(line))
		if msg == "" {
			continue
		}
		if w.hook != nil && w.hook(level, msg) {
			continue
		}
		w.l.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// Hclog returns an hclog.Logger named name (hashicorp/raft's) that logs on
// l; lines below Info are not produced at all, so Raft's per-heartbeat
// debug output costs nothing.
func Hclog(l *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        name,
		Level:       hclog.Info,
		Output:      Writer(l, nil),
		DisableTime: true,
	})
}

// Pebble returns a pebble.Logger that logs on l: Infof at Debug, Errorf at
// Error, Fatalf at Error and then exits the process.
func Pebble(l *slog.Logger) pebble.Logger { return pebbleLogger{l: l, exit: os.Exit} }

type pebbleLogger struct {
	l    *slog.Logger
	exit func(code int)
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Log(context.Background(), Level("DEBUG"), fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Log(context.Background(), Level("ERROR"), fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Log(context.Background(), Level("ERROR"), fmt.Sprintf(format, args...))
	p.exit(1)
}
