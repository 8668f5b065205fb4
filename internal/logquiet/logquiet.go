package logquiet

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultWindow is how long repeats of one event are counted before a
	// line reports them.
	DefaultWindow = time.Minute
	// MaxEvents bounds the events tracked at once.
	MaxEvents = 512
)

// Handler is a slog.Handler that writes a recurring event once per
// window. It is safe for concurrent use; handlers derived by WithAttrs
// and WithGroup share its events.
type Handler struct {
	next   slog.Handler
	shared *state
	attrs  string // this handler's own attributes, part of each event's key
}

type state struct {
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	events map[string]*event
	order  []string // keys, oldest first seen first (for eviction)
}

type event struct {
	rec      slog.Record // the last record of the event, for reports
	next     slog.Handler
	written  time.Time // when a line of it was last written
	seen     time.Time // when it last occurred
	repeated int       // occurrences since the last line written
}

// Config sets a Handler's window and clock; zero values take defaults.
type Config struct {
	Window time.Duration    // default DefaultWindow
	Now    func() time.Time // default time.Now
}

// New wraps next.
func New(next slog.Handler, cfg Config) *Handler {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{next: next, shared: &state{window: cfg.Window, now: cfg.Now, events: map[string]*event{}}}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		fmt.Fprintf(&b, " %s=%s", a.Key, normalize(a.Value.String()))
	}
	return &Handler{next: h.next.WithAttrs(as), shared: h.shared, attrs: b.String()}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), shared: h.shared, attrs: h.attrs + " [" + name + "]"}
}

// Handle writes r, or counts it as a repeat of an event written recently.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	key := h.key(r)
	s := h.shared
	now := s.now()
	s.mu.Lock()
	ended := s.sweep(now)
	e := s.events[key]
	write, repeated := false, 0
	switch {
	case e == nil:
		ended = append(ended, s.add(key, &event{rec: r.Clone(), next: h.next, written: now, seen: now})...)
		write = true
	case now.Sub(e.written) >= s.window:
		e.repeated++
		write, repeated = true, e.repeated
		e.rec, e.written, e.seen, e.repeated = r.Clone(), now, now, 0
	default:
		e.repeated++
		e.rec, e.seen = r.Clone(), now
	}
	s.mu.Unlock()

	for _, x := range ended {
		x.report(ctx)
	}
	if !write {
		return nil
	}
	if repeated > 1 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", repeated), slog.Duration("within", s.window))
	}
	return h.next.Handle(ctx, r)
}

// Flush reports every event that has ended by now (see Handle).
func (h *Handler) Flush(ctx context.Context) {
	s := h.shared
	s.mu.Lock()
	ended := s.sweep(s.now())
	s.mu.Unlock()
	for _, x := range ended {
		x.report(ctx)
	}
}

// key is what makes two records the same event.
func (h *Handler) key(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(normalize(r.Message))
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, normalize(a.Value.String()))
		return true
	})
	return b.String()
}

// ended is an event whose repeats since its last line are to be reported.
type ended struct {
	rec      slog.Record
	next     slog.Handler
	repeated int
	since    time.Time
}

func (x ended) report(ctx context.Context) {
	r := slog.NewRecord(x.rec.Time, slog.LevelInfo, "stopped recurring: "+x.rec.Message, 0)
	x.rec.Attrs(func(a slog.Attr) bool { r.AddAttrs(a); return true })
	r.AddAttrs(slog.Int("repeated", x.repeated), slog.Time("last_written", x.since))
	_ = x.next.Handle(ctx, r)
}

// sweep forgets events that have not recurred for a window, returning
// those with unreported repeats. Called with s.mu held.
func (s *state) sweep(now time.Time) []ended {
	var out []ended
	kept := s.order[:0]
	for _, k := range s.order {
		e := s.events[k]
		if now.Sub(e.seen) < s.window {
			kept = append(kept, k)
			continue
		}
		delete(s.events, k)
		if e.repeated > 0 {
			out = append(out, ended{rec: e.rec, next: e.next, repeated: e.repeated, since: e.written})
		}
	}
	s.order = kept
	return out
}

// add tracks a new event, forgetting the oldest beyond MaxEvents. Called
// with s.mu held.
func (s *state) add(key string, e *event) []ended {
	var out []ended
	for len(s.order) >= MaxEvents {
		old := s.events[s.order[0]]
		delete(s.events, s.order[0])
		s.order = s.order[1:]
		if old.repeated > 0 {
			out = append(out, ended{rec: old.rec, next: old.next, repeated: old.repeated, since: old.written})
		}
	}
	s.events[key] = e
	s.order = append(s.order, key)
	return out
}

// variable matches what differs between two retries of one thing:
// durations and numbers (terms, indexes, ports, timeouts), hexadecimal ids.
var variable = regexp.MustCompile(`[0-9a-f]{6,}|\d+(\.\d+)?(ns|µs|us|ms|s|m|h)?`)

func normalize(s string) string { return variable.ReplaceAllString(s, "#") }
