// Package campaign runs Jepsen-style fault campaigns against a local
// Causeway cluster and judges the recorded history: it is the engine of
// `causeway verify`.
//
// # What a campaign does
//
// Run starts one `causeway serve` process per region on 127.0.0.1
// (Cluster, over internal/supervisor: own data directory and fixed
// addresses, fault injection on, joined by gossip, TLS on every channel
// unless ClusterConfig.Insecure, the clients presenting the admin client
// certificate),
// runs the workloads' clients for Config.Duration while a Nemesis injects
// faults from a seeded Plan, heals every fault, lets clients run on for a
// recovery period, stops them, waits until every region applied the same
// writes, reads every key in every region, stops every process, and runs
// the checkers over the history. Everything a checker sees is in the
// history (history.jsonl in the report directory), so `causeway verify
// --check FILE` judges a recorded campaign again.
//
// # History
//
// Each operation is an invoke event and one completion: ok (acknowledged),
// fail (definitely no effect: the server refused it, or the connection was
// refused) or info (a write whose outcome is unknown: a timeout, a dropped
// connection). Events carry the client, the causal session, the region,
// the tokens sent and received, the versions written or read, and the
// wall time. Nemesis, handoff and final events complete the record.
//
// A session is a lineage of causal tokens, not a client: a client that
// hands its token to another client (the cross-channel case) hands over
// the session, and the receiver continues it. Session order is then a true
// order of operations (one holder at a time), which is what internal/check
// assumes. A client that gives its token away and keeps working from what
// it knew starts a new session: its past is larger than the checker
// assumes, which can hide an anomaly, never invent one.
//
// # Workload
//
// CausalWorkload's clients read and write a small key set (so writes in
// different regions conflict), take snapshot reads (ReadMany) and make
// atomic multi-key writes (WriteMany), move their sessions between regions
// and hand them to one another. Its chains are the cross-channel case: a
// writer puts a photo and hands its token to a commenter in the next
// region, while an observer in a third region takes snapshots of photo and
// comment, so a region that shows an effect before its cause is caught
// whenever it does, not only when no newer write hides it.
//
// WatchWorkload follows the change feed: watchers (one per region by
// default) start before the clients, from now, and record every event
// (EventWatch). A stream a fault ends is resumed from the token of the last
// message received, in the same region or another (a wiped region that no
// longer holds the token's past refuses it: the watcher moves); watchers
// also move of their own accord now and then. In the final phase each runs
// until its token covers the converged applied vector.
//
// LinearWorkload drives the linear tier, when the regions run it
// (ClusterConfig.ServeArgs, LinearVoters): clients claim and release a few
// names, compare-and-set a few registers (on the version or the value
// last seen, deletes included) and read them, and take locks under leases
// whose fencing tokens guard writes, some sent late, with a token that may
// have gone stale. Its clients stay in their region during faults, so the
// minority side of a partition is seen refusing with `unavailable`; a
// request whose outcome is unknown is retried with the same request id
// for a while, and stays one operation. Before the clients start, Prepare
// waits until every region is a voter and a leader is elected.
//
// # Faults
//
// Link faults go through AdminService/SetLink: a region isolated from all
// others, one direction of one link cut, WAN delay and jitter on a link.
// Process faults use signals: SIGKILL and a restart on the same data
// directory, SIGSTOP and SIGCONT, a restart with `--clock-skew` (the
// node's physical clock offset, beyond the max offset, up to ±MaxSkew)
// followed by a restart without it, and a wipe: the region is drained
// until its writes live elsewhere, its data directory deleted, and it
// comes back with --join as the README's recovery says. Faults come one at a time, each kind before any repeats, and
// all heal before the recovery period; Nemesis.HealAll is the barrier
// before the final phase.
//
// # Checkers
//
// CausalChecker translates the history into internal/check's model and
// runs its Check: session guarantees, causal visibility (a read that
// returns a version older than a causally preceding write), only written
// versions read, timestamps that respect causality, no acknowledged write
// lost, every key converged to its newest write. AtomicityChecker checks
// that write_many is visible all or nothing, ExactlyOnceChecker that no
// write was applied twice, ConvergenceChecker that replication converged
// and every region holds the same data (compared by digest). See
// causalView for how atomic writes and collected deletions are mapped onto
// internal/check without weakening it.
//
// WatchChecker judges each watcher's events, across its resumes, with
// internal/check's CheckWatch, the checker of the simulator's watchers:
// a linear extension of happens-before (taken from the tokens the writes
// returned), no write repeated, none lost (all of them once the watcher
// covered the converged state), atomic writes whole, values as written.
//
// LinearizableChecker and FencingChecker rebuild the linear tier's history
// in internal/check/lincheck's terms from the events alone: Event.F is the
// lincheck kind, Event.Key the object, Event.Extra the arguments
// (invocation) and results (completion), the outcome and times are the
// events'. LinearizableChecker runs porcupine over claims and registers
// and, when a history is not linearizable, writes porcupine's
// visualisation (linearizability.html) and the lincheck history
// (linear-history.jsonl) into the report directory; FencingChecker checks
// that fencing tokens grow in real-time order and that a write with a
// stale token is refused.
//
// # Availability
//
// The summary counts each tier's operations, split by whether a fault was
// active when they started, and by fault kind, at the faulted region and
// elsewhere. An operation counts as available when the store served it:
// it succeeded, or was refused for a reason the data gives (Event.Refused:
// a compare that did not hold, a name claimed by another, a stale token).
//
// # Other tiers
//
// Workload and Checker are the plug-in points: a workload records its
// operations with its tier in Event.Tier (arguments and results in the
// typed fields or in Event.Extra), and a checker of that tier reads them
// back; LinearWorkload and the linear checkers are built that way.
// Preparer and Finalizer let a workload wait for the cluster before its
// clients start and read a final state after they stop. A checker may add
// files to the report (Findings.Files).
//
// # Limits
//
// A seed fixes the fault plan and every client's choices; real processes
// and real time decide the interleaving, so a seed replays the plan, not
// the exact history. Faults do not overlap. The campaign trusts Causeway's
// documented promise that a refused request wrote nothing; everything
// else that fails a write leaves its outcome unknown.
package campaign
