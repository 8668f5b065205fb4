// Package linear is Causeway's linearizable tier: unique claims,
// compare-and-set registers, leases and locks with fencing tokens, kept by a
// Raft group (hashicorp/raft) whose voters are regions.
//
// What it guarantees:
//
//   - Linearizability. Every operation, reads included, goes through the
//     Raft log and takes effect when its entry is applied, at one point
//     between request and response. Reads are not served from a leader's
//     local state, so a deposed leader can never answer with stale data.
//   - Fencing tokens strictly increase per lock, across leader changes: a
//     token is the log index of the acquisition (see internal/fsm).
//   - Exactly once. Mutations carry a request id; the state machine keeps
//     each id's outcome (10 minutes, bounded), so a retried request returns
//     the original outcome instead of applying twice, and a caller whose
//     request timed out can learn what happened by retrying.
//   - Durability. The Raft log and its term and vote are in a Pebble store
//     synced on every append (internal/logstore); a voter acknowledges only
//     what it has synced, and an entry is applied only when a quorum has.
//   - No double apply after a restart: the state machine keeps its last
//     applied index in the same Pebble batch as the state it describes.
//
// The price is availability, chosen per request: a node that cannot reach a
// quorum of voters fails fast with `unavailable` and says how many voters
// it reaches, while the causal tier on the same node keeps serving.
//
// Topology. One voter per region by default; a node started as a forwarder
// runs no Raft and sends every request to a voter. The first voter (started
// without --join) bootstraps the group once; voters that appear later in
// gossip are added by the leader, and a region removed through
// AdminService/RemoveRegion is removed from the group. Raft's transport
// goes through the link-emulation layer, so emulated WAN delays and cuts
// apply to it as to replication and gossip, and its timeouts scale with
// the largest round trip between regions.
//
// Any node answers: a follower forwards the request over the Connect API
// to the leader's region (at most two hops), and returns its answer.
package linear
