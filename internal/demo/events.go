package demo

import (
	"slices"
	"sync"
	"time"
)

// Event is one line of the demo's timeline.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is fault, heal, process, client, refusal, replicated, gossip,
	// linear, causal, converged, say or cluster.
	Kind   string `json:"kind"`
	Region string `json:"region,omitempty"`
	Text   string `json:"text"`
}

// eventLog keeps the last max events.
type eventLog struct {
	mu     sync.Mutex
	max    int
	seq    uint64
	events []Event
}

func newEventLog(max int) *eventLog { return &eventLog{max: max} }

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	if len(l.events) >= l.max {
		l.events = slices.Delete(l.events, 0, len(l.events)-l.max+1)
	}
	l.events = append(l.events, e)
}

// last returns up to n of the newest events, oldest first.
func (l *eventLog) last(n int) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events[max(0, len(l.events)-n):])
}
