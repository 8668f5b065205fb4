package groupcommit

import (
	"sync/atomic"
	"time"
)

// Pacer decides the pause after each WAL fsync from the number of writes in
// progress. It is safe for concurrent use.
type Pacer struct {
	delay   time.Duration // pause between fsyncs while busy; <= 0 disables
	writers int64         // active writes at which the pause applies
	active  atomic.Int64  // writes between Enter and their leave
}

// New returns a Pacer that pauses delay after each fsync while at least
// writers writes are in progress; a delay of zero or less never pauses.
func New(delay time.Duration, writers int) *Pacer {
	return &Pacer{delay: delay, writers: int64(writers)}
}

// MinSyncInterval is the pause Pebble takes after an fsync before the next
// (Pebble's Options.WALMinSyncInterval).
func (p *Pacer) MinSyncInterval() time.Duration {
	if p.delay <= 0 || p.active.Load() < p.writers {
		return 0
	}
	return p.delay
}

// Enter counts a write as in progress until the returned func is called;
// a write enters before it commits and leaves once its fsync is done.
func (p *Pacer) Enter() (leave func()) {
	p.active.Add(1)
	return func() { p.active.Add(-1) }
}
