package pebblelog

import (
	"context"
	"log/slog"
	"testing"
)

// recorder keeps every record logged through it.
type recorder struct{ records []slog.Record }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.records = append(r.records, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// Routine lines go to Debug, errors to Error, formatted as Pebble asked.
// (Fatalf exits the process, so it is not called here.)
func TestLevels(t *testing.T) {
	rec := &recorder{}
	l := New(slog.New(rec))
	l.Infof("flushed %d tables", 3)
	l.Errorf("background error: %s", "disk full")
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "flushed 3 tables"},
		{slog.LevelError, "background error: disk full"},
	}
	if len(rec.records) != len(want) {
		t.Fatalf("%d records, want %d", len(rec.records), len(want))
	}
	for i, w := range want {
		if got := rec.records[i]; got.Level != w.level || got.Message != w.msg {
			t.Errorf("record %d = %v %q, want %v %q", i, got.Level, got.Message, w.level, w.msg)
		}
	}
}
