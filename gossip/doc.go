// Package gossip is how Causeway's nodes find and watch each other: cluster
// membership, failure detection, node metadata, and dissemination of each
// region's applied vector, on top of hashicorp/memberlist (SWIM with
// suspicion, anti-entropy push/pull, and piggybacked broadcasts).
//
// # What it guarantees
//
// Membership. A node started with New and joined (Join) with the address of
// any live member learns every member and is learnt by all of them, with its
// Meta (region, node id, API, replication and Raft addresses). A node's
// memberlist name is "region/node-id", so a restart under the same pair is
// the same member. Meta travels in memberlist's node metadata, which is at
// most 512 bytes; New rejects a Meta whose encoding is larger
// (ErrMetaTooLarge) instead of letting memberlist drop it later. Nodes whose
// metadata does not decode as Causeway's are never taken in as peers.
//
// Failure detection. Members returns every member with a State and the time
// it entered it:
//
//   - Dead and Left come from memberlist: a member that stops answering
//     direct and indirect probes is suspected cluster-wide and, unless it
//     refutes within the suspicion timeout, declared Dead; one that called
//     Leave is Left. (memberlist reports both through one callback, so a
//     leaving node flags its last heartbeat, which goes out with
//     memberlist's own announcement.)
//   - Suspect is this node's own view: memberlist does not report its
//     internal suspect state, so each node publishes a heartbeat every
//     Timing.HeartbeatInterval, and a member without a new heartbeat for
//     Timing.SuspectAfter is Suspect until one arrives (or memberlist
//     declares it dead). SuspectAfter is shorter than memberlist's shortest
//     path to Dead, so a crashed member is seen Suspect first.
//
// Members are remembered after memberlist forgets them (it reaps dead nodes
// after GossipToTheDeadTime); only the end of the process forgets them. Every
// Timing.ReconnectInterval each node tries to rejoin its dead members, so when
// a partition heals, or a crashed node comes back at its address, both sides
// see each other alive again without anyone calling Join.
//
// WAN timing. Probe, suspicion and gossip timing derive from the longest
// expected round trip, Config.MaxRoundTrip, by TimingFor: every duration is
// proportional to it and at one second equals memberlist's DefaultWANConfig
// (ProbeTimeout 3r, ProbeInterval 5r, GossipInterval r/2, PushPullInterval
// 60r, suspicion at least 6 probe intervals).
//
// Applied vectors and the stable vector. Each node's applied vector
// (Config.Applied) rides in its heartbeats, which are gossiped as broadcasts
// and relayed by every member that finds them new, and in the full state
// exchanged at every join and push/pull. Heartbeats are ordered by a
// generation chosen at start-up and a counter, so an older heartbeat never
// replaces a newer one, and applied vectors, which only grow, are never seen
// to shrink. StableVector is the element-wise minimum over the regions with a
// causal replica of what each has applied. A region holds the minimum back
// whatever its members' state, dead included, because a partitioned region
// and a crashed one look the same and log garbage collection must not outrun
// either; only an operator's Remove lets go of it. A removal spreads to every
// member (it is gossiped and part of the full state) and cannot be undone.
// See StableVector for the exact rule.
//
// Clock readings. Every ack to a direct probe carries the acking node's
// physical clock (Config.Clock), and every answered direct probe is reported
// to Config.OnClockReading with its round trip, so a node can bound its
// clock's offset from each member's (clock.go; Causeway's replica fences
// itself with them when its clock is far off).
//
// Encryption. With Config.SecretKey (16, 24 or 32 bytes; ParseSecretKey reads
// base64) all gossip, packets and streams, is encrypted and authenticated
// with AES-GCM by memberlist, and unencrypted input is refused: a node
// without the key, or with another key, cannot join, is never listed, and
// cannot read or inject gossip. Without a key, gossip is plaintext and anyone
// who reaches the port can join.
//
// Bad input. Input that fails to decrypt or decode (garbage, a foreign key,
// another protocol) is dropped and counted in DroppedPackets; it never
// crashes the node or changes its state. Causeway's own messages are decoded
// by strict, bounded decoders. How memberlist's rejections are counted is
// explained in logbridge.go.
//
// Transport. Every byte of gossip goes through Config.Transport when it is
// set. NewTransport builds one from a dialer, a net.Listener and a
// net.PacketConn, so Causeway's link emulation can wrap them to add WAN delay
// or cut links; without it memberlist's own UDP/TCP transport is used.
//
// # Limits
//
// Suspect is local and heartbeat-based, so it lags a member's real state by up
// to SuspectAfter and can differ between observers. A vector that does not
// fit in a gossip packet (about 1 KiB: dozens of regions with long names)
// spreads by push/pull only, every PushPullInterval. If a node's clock steps
// back by more than its downtime across a restart, members ignore its new
// heartbeats (it shows Suspect, its vector stays at the older value) until it
// restarts again: heartbeats are never accepted out of order. OnChange calls
// are serialized and coalesced per member; they reflect the state at call
// time, not every intermediate state.
package gossip
