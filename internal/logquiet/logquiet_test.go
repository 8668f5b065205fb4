package logquiet_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/logquiet"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }
func lines(b *bytes.Buffer) []string     { return strings.Split(strings.TrimSpace(b.String()), "\n") }
func setup(c *clock) (*slog.Logger, *bytes.Buffer, *logquiet.Handler) {
	var buf bytes.Buffer
	h := logquiet.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime}), logquiet.Config{Window: time.Minute, Now: c.now})
	return slog.New(h), &buf, h
}

func noTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// TestPartitionLeavesOneLinePerWindow: a retry logged every 500 ms for
// two minutes (a partition) leaves its first line, one line per window
// with the count, and one INFO line when it stops — and every retry is
// counted in some line.
func TestPartitionLeavesOneLinePerWindow(t *testing.T) {
	c := newClock()
	log, buf, h := setup(c)
	log = log.With("component", "linear")
	retries := 0
	for range 240 {
		log.Error("[ERROR] raft: failed to make requestVote RPC: target=\"{Voter eu-west/6e8661c0 127.0.0.1:27301}\" error=\"dial: link cut\" term=" + itoa(3+retries/5))
		retries++
		c.advance(500 * time.Millisecond)
	}
	c.advance(2 * time.Minute)
	h.Flush(context.Background())

	got := lines(buf)
	// t=0 written; t=60s written with the 120 retries since; the last
	// retry is at 119.5s, so the other 119 are reported when it stops.
	if len(got) != 3 {
		t.Fatalf("%d lines for a two-minute partition, want 3 (first, one per-minute summary, stopped):\n%s", len(got), buf)
	}
	if !strings.Contains(got[0], "level=ERROR") || strings.Contains(got[0], "repeated") {
		t.Errorf("first line %q, want the record as it was", got[0])
	}
	counted := 1
	for _, l := range got[1:2] {
		if !strings.Contains(l, "repeated=120") {
			t.Errorf("summary %q, want repeated=120 (a minute of retries every 500ms)", l)
		}
		counted += 120
	}
	last := got[len(got)-1]
	if !strings.Contains(last, "level=INFO") || !strings.Contains(last, "stopped recurring") || !strings.Contains(last, "component=linear") {
		t.Errorf("last line %q, want one INFO saying it stopped", last)
	}
	counted += count(t, last)
	if counted != retries {
		t.Errorf("lines account for %d retries, %d were logged", counted, retries)
	}
}

func count(t *testing.T, line string) int {
	t.Helper()
	i := strings.Index(line, "repeated=")
	if i < 0 {
		t.Fatalf("no count in %q", line)
	}
	n := 0
	for _, r := range line[i+len("repeated="):] {
		if r < '0' || r > '9' {
			break
		}
		n = n*10 + int(r-'0')
	}
	return n
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestDifferentEventsAreAllWritten: records that differ in words, level or
// attributes are distinct events, each written.
func TestDifferentEventsAreAllWritten(t *testing.T) {
	c := newClock()
	log, buf, _ := setup(c)
	log.Info("link changed", "peer", "eu-west", "cut_out", true)
	log.Info("link changed", "peer", "ap-southeast", "cut_out", true)
	log.Info("link changed", "peer", "eu-west", "cut_out", false)
	log.Warn("link changed", "peer", "eu-west", "cut_out", false)
	log.With("region", "us-east").Info("link changed", "peer", "eu-west", "cut_out", false)
	log.Info("gossip: member dead", "member", "eu-west/eu-west-55b714d7")
	if got := lines(buf); len(got) != 6 {
		t.Fatalf("%d lines, want 6 distinct events written:\n%s", len(got), buf)
	}
}

// TestQuietEventIsForgotten: an event that recurs only after a quiet
// window is written again in full, with nothing to report in between.
func TestQuietEventIsForgotten(t *testing.T) {
	c := newClock()
	log, buf, _ := setup(c)
	log.Warn("failed to contact", "peer", "eu-west")
	c.advance(2 * time.Minute)
	log.Warn("failed to contact", "peer", "eu-west")
	got := lines(buf)
	if len(got) != 2 || strings.Contains(buf.String(), "stopped") || strings.Contains(buf.String(), "repeated") {
		t.Fatalf("want the event written twice and no report, got:\n%s", buf)
	}
}

// TestEventsAreBounded: beyond MaxEvents the oldest is forgotten, and its
// unwritten repeats are reported then.
func TestEventsAreBounded(t *testing.T) {
	c := newClock()
	log, buf, _ := setup(c)
	log.Warn("first event")
	log.Warn("first event")
	for i := range logquiet.MaxEvents {
		log.Warn("other event", "n", strings.Repeat("x", i+1)) // distinct keys
	}
	if !strings.Contains(buf.String(), `msg="stopped recurring: first event" repeated=1`) {
		t.Fatalf("the evicted event's repeat was not reported:\n%s", lines(buf)[len(lines(buf))-1])
	}
}
