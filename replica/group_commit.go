package replica

import (
	"sync/atomic"
	"time"
)

// groupCommit paces the WAL's fsyncs under load, as PostgreSQL's
// commit_delay and commit_siblings do. Every acknowledged write waits for an
// fsync, and writes that arrive while one is under way share the next (group
// commit). When many writers are active, waiting a little after an fsync
// before starting the next lets more writes join it: fewer fsyncs, each
// costing the machine a fixed amount of CPU and a device flush, for the same
// writes. With few writers active there is nothing to gather and the next
// fsync starts at once, so a lone client's latency is untouched.
//
// The pacing is Pebble's Options.WALMinSyncInterval, which Pebble consults
// after every WAL fsync.
type groupCommit struct {
	delay   time.Duration // pause between fsyncs while busy; <= 0 disables
	writers int64         // active local writes at which the pause applies
	active  atomic.Int64  // local writes between entry and their fsync
}

// minSyncInterval is the pause Pebble takes after an fsync before the next.
func (g *groupCommit) minSyncInterval() time.Duration {
	if g.delay <= 0 || g.active.Load() < g.writers {
		return 0
	}
	return g.delay
}

// enter counts a local write as active until the returned func is called.
func (g *groupCommit) enter() func() {
	g.active.Add(1)
	return func() { g.active.Add(-1) }
}
