// Package process is the composition root of one Causeway process (one
// `causeway serve`): it builds membership (package gossip), the
// linearizable tier (package linear) and the region's node (package
// replica) from one Config, wires them to each other, and serves the HTTP
// server in front of them.
//
// # Arrows
//
//	cmd/causeway ─> process ─┬─> replica ─> causal, clocks, api, internal/{link,groupcommit,pebblelog}
//	                         ├─> gossip  ─> clocks
//	                         └─> linear  ─> api, internal/link, ...
//
// No package imports one above it: replica defines the interfaces it needs
// of its neighbours (replica.Membership, replica.LinearTier) and never sees
// gossip or linear; this package adapts them (Wire). gossip and linear do
// not know each other either: gossip advertises the voter's Raft address,
// and the tier finds its peers in gossip's members, both through Wiring.
//
// # What it guarantees
//
//   - One order of start and stop, the one a node has always had: the node
//     opens its store, then the linearizable tier (which records its server
//     id in the node's store, so losing the tier's directory alone is caught
//     at start); gossip starts when the server first serves, once the
//     node's API address is known, so no member ever learns an address that
//     does not answer. Shutdown stops replication and gossip (leaving the
//     cluster, bounded by a second), drains the requests in flight, then
//     closes the tier and the store.
//   - One HTTP server for the whole process: the node's services
//     (NewServer, http.go; replica offers only its Connect handlers,
//     readiness and metrics) with the tier's LinearService mounted beside them
//     (Wiring.Services), listed in gRPC health checking and reflection.
//   - One /metrics for the whole process: gossip's and the tier's figures
//     are registered in the node's registry with the same region label and
//     the same names as before the split (causeway_gossip_dropped_packets_total,
//     causeway_linear_*).
//   - Every connection of gossip and of the tier goes through the node's link
//     emulator (internal/link), as the replication streams do.
package process
