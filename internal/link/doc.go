// Package link is Causeway's link-emulation layer: every connection between
// nodes passes through it, so WAN latency and partitions can be produced on
// one machine whose kernel has no netem.
//
// Each node has one Emulator holding, per peer region, a Link: a one-way
// delay and jitter applied to the bytes this node sends to that region, and
// a cut of either direction. A cut is a black hole, as a partition is: bytes
// sent into it are discarded (and counted), bytes arriving from a cut peer
// are discarded on receipt, and new connections to a cut peer time out. A
// connection that lost bytes to a cut is closed when the link heals, so a
// stream never resumes with a gap in it.
//
// Connections between nodes announce the dialing node's region in a short
// preamble (magic, length, region) that the listener consumes, so one port
// serves both nodes and ordinary clients: a connection without the preamble
// (curl, an application) passes through untouched.
//
// Delay keeps order: every write gets a release time of now + delay ±
// jitter, never earlier than the previous write's, and a per-connection
// writer delivers it then. The bytes waiting on one connection are bounded
// (MaxQueuedBytes); a writer beyond it blocks, as a full socket would.
// Closing a connection is closing a socket: what was written before Close
// still reaches the peer after its delay, then the stream ends (a reply
// written just before Close is not lost on a slow link).
package link
