package main

import "runtime/debug"

// defaultGCPercent is the garbage collector's target for `causeway serve`
// when GOGC is not set: the heap may grow to four times what is live
// before a collection, instead of Go's default of twice. A node's live Go
// heap is small (Pebble's block cache lives outside it) while every
// request allocates, so at Go's default the collector ran several times a
// second under load: its background workers took 6-7% of the server's CPU
// under 64-client Puts in BenchmarkPeer's profiles, 2-3% at GOGC=400 (see
// bench/doc.go). GOGC (and GOMEMLIMIT, a soft limit on the whole heap) in
// the environment win over it.
const defaultGCPercent = 300

// tuneGC sets defaultGCPercent unless the environment sets GOGC.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}
