// Package pebblelog routes Pebble's log lines into slog, for every Pebble
// store of a Causeway node (the region's store, the Raft log, the linear
// state machine).
//
// Pebble's Infof lines are routine (flushes, compactions) and go to Debug;
// Errorf goes to Error. Fatalf means an unrecoverable storage failure: it is
// logged and the process exits, as Pebble expects of its logger.
package pebblelog
