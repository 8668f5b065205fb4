// Package groupcommit paces a write-ahead log's fsyncs under load, as
// PostgreSQL's commit_delay and commit_siblings do. Every acknowledged write
// waits for an fsync, and writes that arrive while one is under way share
// the next (group commit). When many writers are active, waiting a little
// after an fsync before starting the next lets more writes join it: fewer
// fsyncs, each costing the machine a fixed amount of CPU and a device flush,
// for the same writes. With few writers active there is nothing to gather
// and the next fsync starts at once, so a lone client's latency is
// untouched.
//
// A Pacer is consulted by Pebble (Options.WALMinSyncInterval) after every
// WAL fsync. It delays acknowledgements only, never durability: a write is
// still acknowledged only after the fsync that covers it. The region's
// store (package replica) and the benchmarks' composed floor (package bench,
// floor=durable) pace their WALs with it, so the two are paced alike.
package groupcommit
