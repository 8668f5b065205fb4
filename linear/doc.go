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
//   - A voter never forgets its log or its vote, and one that did never
//     votes again. A voter's Raft server id is its region, a slash and a
//     random suffix created with its Raft state and kept beside its term
//     and vote (identity.go), so a node that lost that state comes back
//     under a new id, as a new member. It also answers votes only as a
//     voter of its own configuration (guard.go): Raft addresses servers
//     by address, and the new member listens where the lost one did, so
//     without this rule a vote request meant for the lost id would be
//     granted by a node that remembers nothing (issue 21: a stale follower
//     elected, acknowledged writes lost). A node whose identity (in the
//     replica's store) says it was a voter, but whose Raft state is
//     empty, refuses to start and names the safe way back: empty the whole
//     data directory and start with --join.
//
// The price is availability, chosen per request: a node that cannot reach a
// quorum of voters fails fast with `unavailable` and says how many voters
// it reaches, while the causal tier on the same node keeps serving.
//
// Topology. One voter per region by default; a node started as a forwarder
// runs no Raft and sends every request to a voter. The first voter (started
// without --join) bootstraps the group once. Gossip announces each voter's
// server id and Raft address; the leader (membership.go) adds an id it
// does not know as a non-voter, promotes it once its log has reached the
// leader's commit index (asked through LinearService.Progress), and then
// removes the other, dead ids of its region; a dead id whose address the
// new member took over is removed first (Raft wants distinct addresses, and
// moving a server to another address races inside hashicorp/raft). It
// never removes an id that a live member announces. A region removed through
// AdminService/RemoveRegion is removed from the group. Raft's transport
// goes through the link-emulation layer, so emulated WAN delays and cuts
// apply to it as to replication and gossip, and its timeouts scale with
// the largest round trip between regions.
//
// Any node answers: a follower forwards the request over the Connect API
// to the leader's region (at most two hops), and returns its answer.
package linear
