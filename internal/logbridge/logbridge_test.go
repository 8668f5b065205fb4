package logbridge

import (
	"context"
	"log"
	"log/slog"
	"sync"
	"testing"
)

// recorder keeps every record logged through it.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

type line struct {
	level slog.Level
	msg   string
}

func (r *recorder) lines() []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]line, len(r.records))
	for i, rec := range r.records {
		out[i] = line{rec.Level, rec.Message}
	}
	return out
}

func expect(t *testing.T, got, want []line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("logged %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %v %q, want %v %q", i, got[i].level, got[i].msg, want[i].level, want[i].msg)
		}
	}
}

func TestLevel(t *testing.T) {
	for name, want := range map[string]slog.Level{
		"TRACE": slog.LevelDebug, "DEBUG": slog.LevelDebug, "debug": slog.LevelDebug,
		"INFO": slog.LevelInfo, "": slog.LevelInfo, "NOTICE": slog.LevelInfo,
		"WARN": slog.LevelWarn, "WARNING": slog.LevelWarn,
		"ERR": slog.LevelError, "ERROR": slog.LevelError, " ERROR ": slog.LevelError,
	} {
		if got := Level(name); got != want {
			t.Errorf("Level(%q) = %v, want %v", name, got, want)
		}
	}
}

// Lines as memberlist v0.7.0 and hclog write them.
func TestParseLine(t *testing.T) {
	for _, tt := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5", slog.LevelDebug, "memberlist: Stream connection from=1.2.3.4:5"},
		{"[INFO] memberlist: Marking x as failed", slog.LevelInfo, "memberlist: Marking x as failed"},
		{"[WARN] memberlist: Refuting", slog.LevelWarn, "memberlist: Refuting"},
		{"[ERR] memberlist: Decrypt packet failed", slog.LevelError, "memberlist: Decrypt packet failed"},
		{"[ERROR] memberlist: Failed to encrypt", slog.LevelError, "memberlist: Failed to encrypt"},
		{"[INFO]  raft: entering follower state: follower=\"Node at x\"\n", slog.LevelInfo, "raft: entering follower state: follower=\"Node at x\""},
		{"no level at all", slog.LevelInfo, "no level at all"},
		{"[unterminated tag", slog.LevelInfo, "[unterminated tag"},
	} {
		level, msg := ParseLine(tt.line)
		if level != tt.level || msg != tt.msg {
			t.Errorf("ParseLine(%q) = %v %q, want %v %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}
}

// The writer splits writes into lines, drops empty ones, and lets the hook
// take the lines it handles.
func TestWriterAndHook(t *testing.T) {
	rec := &recorder{}
	var hooked []line
	w := Writer(slog.New(rec), func(level slog.Level, msg string) bool {
		hooked = append(hooked, line{level, msg})
		return msg == "memberlist: take me"
	})
	l := log.New(w, "", 0)
	l.Printf("[ERR] memberlist: Decrypt packet failed")
	l.Printf("[WARN] memberlist: take me")
	if _, err := w.Write([]byte("[DEBUG] a\n\n[INFO] b\r\n")); err != nil {
		t.Fatal(err)
	}
	expect(t, rec.lines(), []line{
		{slog.LevelError, "memberlist: Decrypt packet failed"},
		{slog.LevelDebug, "a"},
		{slog.LevelInfo, "b"},
	})
	if len(hooked) != 4 {
		t.Errorf("the hook saw %v, want every non-empty line", hooked)
	}
}

// hclog's lines arrive at their level, with the logger's name; below Info
// nothing is logged.
func TestHclog(t *testing.T) {
	rec := &recorder{}
	h := Hclog(slog.New(rec), "raft")
	h.Debug("heartbeat", "peer", "x")
	h.Info("entering follower state", "term", 3)
	h.Warn("heartbeat timeout reached")
	h.Error("failed to contact", "server-id", "eu/1")
	got := rec.lines()
	want := []line{
		{slog.LevelInfo, "raft: entering follower state: term=3"},
		{slog.LevelWarn, "raft: heartbeat timeout reached"},
		{slog.LevelError, "raft: failed to contact: server-id=eu/1"},
	}
	expect(t, got, want)
}

// Pebble's routine lines go to Debug, errors to Error, formatted as Pebble
// asked; Fatalf logs and exits.
func TestPebble(t *testing.T) {
	rec := &recorder{}
	exited := -1
	l := pebbleLogger{l: slog.New(rec), exit: func(code int) { exited = code }}
	l.Infof("flushed %d tables", 3)
	l.Errorf("background error: %s", "disk full")
	l.Fatalf("MANIFEST %s", "corrupt")
	expect(t, rec.lines(), []line{
		{slog.LevelDebug, "flushed 3 tables"},
		{slog.LevelError, "background error: disk full"},
		{slog.LevelError, "MANIFEST corrupt"},
	})
	if exited != 1 {
		t.Errorf("Fatalf exited with %d, want 1", exited)
	}
	if _, ok := Pebble(slog.New(rec)).(pebbleLogger); !ok {
		t.Error("Pebble does not return the bridge")
	}
}
