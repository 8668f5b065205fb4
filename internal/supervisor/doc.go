// Package supervisor runs a Causeway cluster on one machine: one
// `causeway serve` child process per region, on 127.0.0.1. It is the one
// harness that `causeway cluster`, `causeway verify` (internal/campaign) and
// the end-to-end tests use to start, watch, kill, pause, restart, wipe and
// stop regions.
//
// What it guarantees:
//
//   - A region's addresses (API, gossip, Raft) are chosen once, when the
//     region is added, and passed to every start, so peers, gossip seeds and
//     clients find a restarted region where they left it. A start whose
//     readiness line names another region or address is an error.
//   - One readiness protocol. A start returns once the child prints the line
//     `causeway: region R serving on http://ADDR (data in DIR)` (parsed only
//     by ParseServingLine); AwaitServing then waits, when the caller needs
//     it, until the region's causal tier serves clients (AdminService/Status
//     reports causal_state "serving"; a region that joins serves only once it
//     holds a snapshot of every other region).
//   - A start that exits before it serves (a port still held for a moment by
//     the process just killed) is retried, up to Config.StartAttempts, within
//     Config.StartTimeout.
//   - A region that exits without being told to is reported through
//     Config.OnExit and marked down; the supervisor does not stop the other
//     regions. What to do about it is the caller's decision.
//   - Every child's output is captured (Config.Output) and is drained until
//     the child exits, so a child never blocks on a full pipe; every child is
//     reaped exactly once. Close kills every process still running, so a
//     caller that defers Close leaves no process behind.
//   - Faults mean what they say: Kill is SIGKILL and reports whether the
//     signal is what ended the process; Pause and Resume are SIGSTOP and
//     SIGCONT; Stop is SIGTERM, then SIGKILL after a grace period; Wipe loses
//     a region's disk without losing a write (it drains the region, waits
//     until every other region holds its writes, kills it and deletes its
//     data directory).
//   - Secure by configuration: with Config.CertsDir every region runs with
//     TLS (serve --certs-dir of its own node certificate, which names its
//     region), its readiness line must say https, and the supervisor's
//     calls present the admin client certificate. The certificates
//     (PrepareCerts: a cluster CA, a node certificate per region, the
//     admin client certificate, the gossip key) are created where missing
//     and kept otherwise, so a cluster restarted on its directory keeps its
//     CA. A region's own directory holds no CA key.
//
// ParseWAN is the one reader of a WAN latency matrix
// (`--wan-latency us-east/eu-west=40ms,...`), shared by `causeway serve`,
// `causeway cluster`, `causeway verify` and the campaign, so that every one
// of them accepts and rejects the same values with the same messages.
package supervisor
