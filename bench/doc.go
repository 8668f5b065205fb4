// Package bench holds Causeway's throughput and latency benchmarks: `go test
// -bench` functions, no library code.
//
// BenchmarkStack measures one region's write and read path end to end and,
// in the same run, the two floors that path is built on, each with 1 and 64
// concurrent clients:
//
//	BenchmarkStack/floor=rpc/clients=N     a KVService whose Put does nothing:
//	                                       Connect, protobuf and HTTP/1.1 over
//	                                       loopback, the cost of a request alone
//	BenchmarkStack/floor=rpc-reply/clients=N  the same, but Put answers a
//	                                       prebuilt response of a real Put's
//	                                       size (version and causal token):
//	                                       what a reply adds, still no work
//	BenchmarkStack/floor=pebble/clients=N  raw Pebble: N writers each committing
//	                                       single-key batches with pebble.Sync,
//	                                       the cost of a durable write alone
//	BenchmarkStack/floor=durable/clients=N the two floors composed: a KVService
//	                                       whose Put commits the request's key
//	                                       and value as floor=pebble does, its
//	                                       WAL paced as a node's, and answers
//	                                       as floor=rpc-reply; nothing of
//	                                       Causeway's in between
//	BenchmarkStack/op=put/clients=N        Put through a full process.Server
//	BenchmarkStack/op=get/clients=N        Get through a full process.Server, on
//	                                       keys written before the timer starts
//
// Every operation uses a key drawn from 10,000 keys and a 100-byte value.
// Full-stack clients behave like sessions: each sends back the causal token
// of its previous response. The network clients are generated Connect
// clients (Connect protocol, binary protobuf) sharing one *http.Client over
// HTTP/1.1, with an idle connection kept for every client.
//
// BenchmarkPutRatio (bench/ratio_test.go) measures the write path's target
// directly: the 64-client rows floor=rpc, floor=pebble, floor=durable and
// op=put run in alternating half-second slices against servers that stay
// up, and each round of one slice per row yields its own ratios (see
// Reading the result below). It reports the median ops/s of each row and
// the median over rounds of put/floor (with its lowest and highest round),
// durable/floor and put/durable. A slowdown of the machine hits the slices
// of a round alike, so its ratios move less between runs than those read
// off BenchmarkStack's rows, which run minutes apart: put/durable stayed
// within 0.98-1.005 over three runs, though a single round's put/floor
// still ranges over +-0.1 around the median on a shared machine.
//
// BenchmarkDurablePacing (bench/durable_floor_test.go) runs floor=durable
// at 64 clients with six pauses between WAL fsyncs, from none to 4ms,
// beside floor=rpc in the same alternation, and reports each as a fraction
// of floor=rpc: the best any fsync pacing does for a Put made of one RPC and
// one synced batch. BenchmarkFdatasync (bench/fdatasync_linux_test.go)
// measures one 4 KiB append and fdatasync(2), wall time and process CPU.
//
// BenchmarkLinear (bench/linear_test.go, `make bench-linear`) measures the
// linearizable tier: claim and CAS latency under the emulated WAN matrix of
// `causeway cluster`, from the leader's region and from each follower's, as
// a ratio to the physical floor (round trip to the nearest quorum, plus the
// forwarding round trip for a follower); and 64-client put-if-absent
// throughput beside a 3-member etcd cluster doing the same (Debian's
// etcd-server; its rows are skipped when etcd is not installed).
//
// BenchmarkPeer (bench/peer_test.go, `make bench-peer`) is the peer
// benchmark: a `causeway serve` process, a single-member etcd process and a
// process serving a KVService that does nothing, each driven in turn by
// this process over Connect/HTTP/1.1, Connect/HTTP/2 and gRPC, with the
// server's CPU per operation read from /proc; and, over gRPC, the no-op
// and the same node served from grpc-go's own transport, as etcd serves. With PEER_PPROF=DIR it also
// profiles the causeway server and charges every sample to a layer of the
// request path (bench/layers_test.go). docs/bench/peer.md has its figures,
// the per-layer account of a Put and what it would take to reach etcd.
//
// Each benchmark reports, besides ns/op:
//
//	ops/s   operations completed per second by all clients together
//	p50-us  median latency of one operation, in microseconds
//	p99-us  99th percentile latency of one operation, in microseconds
//	cpu-us/op  CPU time (user + system) the whole process spent per
//	           operation: clients and server share the process and the
//	           machine, so at 64 clients, where the machine's cores are
//	           the limit, this is what decides ops/s. Kernel work done
//	           outside the process (the filesystem journal) is not in it.
//	cores      that CPU time per second of wall time: how many of the
//	           machine's cores the process kept busy.
//	go-idle-%  share of the Go scheduler's processor time (GOMAXPROCS
//	           times wall time) in which no goroutine was ready to run.
//	           With go-idle-% near 0 and cores below GOMAXPROCS, the
//	           processors were held by threads waiting in the kernel (a
//	           blocking syscall such as fdatasync, which keeps its
//	           processor until the runtime hands it off) or waiting for a
//	           core the machine gave to something else. The runtime
//	           updates these figures at each garbage collection, so a row
//	           during which none ran (floor=pebble at 1 client) omits it.
//
// # Running
//
//	make bench
//
// runs `go test -run='^$' -bench=Stack -benchtime=3s ./bench/`, which prints all
// the rows above side by side (BENCHTIME=10s make bench runs longer), then
// `go test -run='^$' -bench=PutRatio -benchtime=12x ./bench/`, 12 rounds of
// the interleaved ratios (RATIO_ROUNDS=24 for more; -v prints every round),
// then BenchmarkDurablePacing and BenchmarkFdatasync. Add
// -cpuprofile to see where a row spends its time, for example:
//
//	go test -run='^$' -bench='Stack/op=put/clients=64' -benchtime=3s -cpuprofile=cpu.out ./bench/
//	go tool pprof -top bench.test cpu.out
//
// `go test ./bench/` without -bench runs only the unit tests of the harness.
//
// # Reading the result
//
// The target is about the write path at 64 clients:
//
//	ops/s(op=put/clients=64) >= 0.7 * min(ops/s(floor=rpc/clients=64), ops/s(floor=pebble/clients=64))
//
// A Put is one RPC plus one durable Pebble batch, so it cannot beat the slower
// of the two floors. Pebble reaches its floor by group commit: concurrent
// committers share one fsync. A write path that fsyncs once per request, or
// holds a lock across the fsync so that commits cannot queue behind one
// another, serializes the fsyncs and lands far below the Pebble floor at 64
// clients while looking fine at 1. At 1 client the floors and the full stack
// are latency-bound, and p50-us of op=put is roughly p50-us of floor=rpc
// plus floor=pebble.
//
// At 64 clients on a small machine the RPC floor is the lower one, and the
// target asks Put to keep 70% of it. floor=durable shows how much of it a
// Put can keep at all through this RPC stack and this disk, with no work
// but the RPC and the synced batch; put/durable in BenchmarkPutRatio is
// then what Causeway's own work (timestamps, sibling resolution, the
// replication log, tokens) leaves of that. On the 2-core virtual machines
// Causeway is built on, put/durable is about 1 (0.98 to 1.005 in three
// runs) and durable/floor about 0.5 (0.45 to 0.53), and no pause of
// BenchmarkDurablePacing brought floor=durable above 0.59 of floor=rpc in
// three sweeps of 8 to 14 rounds: there, the 0.7 target is out of reach of
// any Put that is acknowledged after its fsync. Two costs compose, and
// neither floor pays the other's:
//
//   - An fsync costs CPU the RPCs need. BenchmarkFdatasync measures about
//     half of an fdatasync's 110-220us as process CPU on these virtual
//     disks. With no pause, 64 clients share an fsync 4 or 5 at a time,
//     and some 3,000 fsyncs a second take a sixth to a third of a core
//     (durable/rpc@0s 0.35-0.45).
//   - Waiting for a group commit idles the cores. A pause of about 1ms
//     between fsyncs gathers 20-25 writes per fsync, but the clients a sync
//     releases reach the CPU together while those still waiting cannot send
//     their next request. A handler that did no work and answered at the
//     next tick of a shared 1.4ms clock (an experiment, not among these
//     benchmarks) reached 0.7 of floor=rpc on 1.5 cores, against 0.95 for
//     a 0.4ms tick. Freeing the Go processor during the fsync (Linux native
//     AIO, tried with pauses of 0, 0.25ms, 0.3ms and 1ms) raised ops/s by
//     5% at most, within the noise; GOMAXPROCS=3 did no better than the
//     default pause.
//
// op=put's cpu-us/op minus floor=rpc-reply's is what the node and its
// durability cost per write (resolving the key's siblings, the WAL commit,
// its share of an fsync, the causal token); floor=rpc-reply minus floor=rpc
// is the cost of any reply, which the target's floor does not pay. The
// cores column shows the idling: op=put and floor=durable keep about 1.4
// to 1.65 of 2 cores busy, against 1.9 for the RPC floors.
//
// The rows of BenchmarkStack run one after another, so anything else busy
// on the machine skews one row against another: compare rows of one run on
// an idle machine, run with -count=5 and compare medians
// (golang.org/x/perf/cmd/benchstat), or read the ratio off BenchmarkPutRatio.
package bench
