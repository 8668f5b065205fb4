// Package wanbench is `causeway bench`: the WAN latency benchmark that shows
// what each of Causeway's guarantees costs across continents, beside etcd
// under the same emulated WAN.
//
// What it guarantees about its figures:
//
//   - Same network for both systems. Causeway's regions are real `causeway
//     serve` processes started through internal/supervisor with
//     --wan-latency (internal/link delays every byte a node sends to a
//     region by half the pair's round trip). etcd's members talk through
//     delay proxies (proxy.go) built on the same link layer with the same
//     delays. Clients talk to their own region's node undelayed.
//   - Same transport for both systems. An embedded cluster runs with TLS
//     unless Config.Insecure (nodes talk mutual TLS, clients present the
//     admin client certificate), and etcd then runs with client and peer
//     TLS on certificates from the same CA, its clients presenting the same
//     certificate (tls.go); its delay proxies terminate TLS to know the
//     calling member by its certificate. Results.TLS and EtcdTLS record
//     which transport a run used.
//   - No coordinated omission. Open-loop rows issue requests at a fixed
//     rate whatever the latency and time each from its scheduled send time;
//     the queue of scheduled requests is bounded (Config.OpenWorkers) and a
//     request that waits in it carries its original time. Closed-loop rows
//     (1 and 64 clients per region) say so in their label.
//   - Exact percentiles. Every sample is kept (up to maxSamples per row,
//     then a uniform reservoir) and percentiles are nearest-rank over them.
//   - No truncated tails. A row's end stops new operations, not those in
//     flight, so the slowest operations are not cut out of the percentiles.
//   - Fresh state. Keys, claim names, registers and locks carry a per-run
//     nonce, so a run against an existing cluster (--addr) never collides
//     with an earlier one.
//   - Floors are physics only: the quorum round trip from the leader (the
//     round trip to the voter that completes a majority) plus the round
//     trip to the leader from another region (QuorumFloor); a read after a
//     session moves waits at least the one-way delay from where it wrote.
//   - Visibility latency is measured with one monotonic clock; each sample
//     overstates the truth by at most the window between the last read that
//     missed and the one that found, which is reported (visibility.go).
//   - Targets are judged on the figures and reported met, missed or not
//     measured (targets.go), never hidden.
//
// Limits: everything runs on one machine, so the clients, every region and
// etcd share its cores; at 64 clients per region on 2 cores the rows
// measure CPU saturation as much as the protocol. The report records the
// load average before and after.
package wanbench
