package bench

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// BenchmarkPeer (`make bench-peer`) is the peer benchmark: one `causeway
// serve` process (causal tier only: --linear off, gossip off) and one
// single-member etcd process, driven in turn by this process as the one
// load generator, in alternating slices, so that the machine's moods fall
// on both alike. Each leg is one server, one protocol and one operation:
//
//	causeway connect-h1   Connect protocol, binary protobuf, HTTP/1.1 (a
//	                      connection per client)
//	causeway connect-h2   Connect protocol over one cleartext HTTP/2
//	                      connection
//	causeway grpc         gRPC over one cleartext HTTP/2 connection
//	etcd grpc             etcd's gRPC API over one cleartext HTTP/2
//	                      connection, as etcd's Go client sends it
//	noop (each protocol)  a process serving a KVService that does nothing
//	                      (answers a prebuilt Put- or Get-sized response)
//	                      with the HTTP server settings of causeway serve:
//	                      what the HTTP and Connect layers cost alone, the
//	                      floor under causeway's rows (PEER_NOOP=0 drops it)
//	causeway-grpcgo grpc  the same node and store (replica.Open) behind
//	                      grpc-go's own HTTP/2 transport, as etcd serves
//	                      gRPC, instead of net/http and connect-go
//	noop-grpcgo grpc      the no-op's answers from that transport: what
//	                      the gRPC stack alone would cost (with noop);
//	                      PEER_GRPCGO=0 drops both grpc-go rows
//
// Put writes a 100-byte value under a key no other Put used; Get reads one
// of 10,000 keys written before the slices start (etcd's Get twice: the
// default linearizable Range, and a serializable one). Causeway's clients
// are sessions: each sends back the causal token of its previous answer.
// Both servers fsync before they acknowledge a write.
//
// Each leg reports ops/s, p50 and p99 latency, and the CPU time (user +
// system, from /proc/PID/stat) the server process spent per operation;
// a second table gives each server's CPU per operation over the whole
// alternation, pauses between its slices included, so that background work
// it defers past a slice (compactions, garbage collection) is not missed;
// etcd's rows are skipped with a message when etcd is not installed.
// Environment knobs (defaults in brackets): PEER_CLIENTS [1,64],
// PEER_SLICE [3s], PEER_ROUNDS [3], PEER_OPS [put,get], PEER_PROTOCOLS
// [connect-h1,connect-h2,grpc], CAUSEWAY_BIN (the causeway binary to run;
// default: built from this module into a temporary directory),
// CAUSEWAY_BASE_BIN (a second causeway binary, say one built from the
// commit before a change, run beside the first as "causeway-base" in the
// same alternation: the before and after of a change in one run), and
// PEER_PPROF=DIR (then a 10s CPU profile of each causeway server under
// Puts at the highest client count, per protocol, is written to
// DIR/<server>-put-<protocol>.pprof, and the per-layer account of
// layers_test.go printed).
func BenchmarkPeer(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads server CPU time from /proc")
	}
	clientCounts, err := envInts("PEER_CLIENTS", []int{1, 64})
	if err != nil {
		b.Fatal(err)
	}
	slice, err := envDuration("PEER_SLICE", 3*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	rounds, err := envInts("PEER_ROUNDS", []int{3})
	if err != nil || len(rounds) != 1 || rounds[0] < 1 {
		b.Fatalf("PEER_ROUNDS: want one positive number (%v)", err)
	}
	ops := strings.Split(envOr("PEER_OPS", "put,get"), ",")
	maxClients := clientCounts[len(clientCounts)-1]

	wanted := strings.Split(envOr("PEER_PROTOCOLS", "connect-h1,connect-h2,grpc"), ",")
	servers := []struct{ name, bin string }{{"causeway", os.Getenv("CAUSEWAY_BIN")}}
	if base := os.Getenv("CAUSEWAY_BASE_BIN"); base != "" {
		servers = append(servers, struct{ name, bin string }{"causeway-base", base})
	}
	if os.Getenv("PEER_NOOP") != "0" {
		servers = append(servers, struct{ name, bin string }{"noop", noopServer})
	}
	if os.Getenv("PEER_GRPCGO") != "0" && slices.Contains(wanted, "grpc") {
		servers = append(servers, struct{ name, bin string }{causewayGRPCGoServer, causewayGRPCGoServer})
		if os.Getenv("PEER_NOOP") != "0" {
			servers = append(servers, struct{ name, bin string }{noopGRPCGoServer, noopGRPCGoServer})
		}
	}
	h1 := newHTTPClient(b, maxClients)
	h2 := newH2CClient(b)
	var cws []*causewayProcess
	for _, srv := range servers {
		cw, err := startCauseway(b, srv.name, srv.bin)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range []peerProtocol{
			{name: "connect-h1", kv: causewayv1connect.NewKVServiceClient(h1, cw.url)},
			{name: "connect-h2", kv: causewayv1connect.NewKVServiceClient(h2, cw.url)},
			{name: "grpc", kv: causewayv1connect.NewKVServiceClient(h2, cw.url, connect.WithGRPC())},
		} {
			if slices.Contains(wanted, p.name) && (!servesGRPCGo(srv.bin) || p.name == "grpc") {
				p.server = cw
				cw.protocols = append(cw.protocols, p)
			}
		}
		if len(cw.protocols) == 0 {
			b.Fatalf("PEER_PROTOCOLS=%q: want some of connect-h1, connect-h2, grpc", strings.Join(wanted, ","))
		}
		cws = append(cws, cw)
	}
	var etcd *etcdCluster
	if _, err := etcdBinary(); err != nil {
		b.Logf("etcd rows skipped: %s", etcdInstall)
	} else if etcd, err = startEtcd(b, 1); err != nil {
		b.Fatal(err)
	}

	var etcdKV *etcdGRPC
	if etcd != nil {
		etcdKV = newEtcdGRPC(h2, etcd.clients[0])
	}

	// The keys every Get reads, written once to every server.
	ctx := context.Background()
	for _, cw := range cws {
		if _, err := drive(ctx, numKeys, 16, putOp(cw.protocols[0].kv, nil)); err != nil {
			b.Fatalf("load %s: %v", cw.name, err)
		}
	}
	if etcdKV != nil {
		if _, err := drive(ctx, numKeys, 16, func(ctx context.Context, _, i int) error {
			return etcdKV.put(ctx, []byte(keyOf(i)), value)
		}); err != nil {
			b.Fatalf("load etcd: %v", err)
		}
	}

	var seq atomic.Uint64 // unique keys for Puts, shared by both servers
	uniqueKey := func() string { return "bench/put/" + strconv.FormatUint(seq.Add(1), 10) }
	var table []peerRow
	var wholeRuns []peerTotal
	for _, opName := range ops {
		for _, clients := range clientCounts {
			var legs []peerLeg
			for _, p := range allProtocols(cws) {
				tokens := make([]string, clients)
				var do op
				switch opName {
				case "put":
					do = func(ctx context.Context, c, _ int) error {
						res, err := p.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: uniqueKey(), Value: value, CausalToken: tokens[c]}))
						if err == nil {
							tokens[c] = res.Msg.GetCausalToken()
						}
						return err
					}
				case "get":
					do = func(ctx context.Context, c, i int) error {
						res, err := p.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: keyOf(i), CausalToken: tokens[c]}))
						if err == nil {
							if !res.Msg.GetFound() {
								return fmt.Errorf("get %s: no value", keyOf(i))
							}
							tokens[c] = res.Msg.GetCausalToken()
						}
						return err
					}
				default:
					b.Fatalf("PEER_OPS: unknown operation %q (want put, get)", opName)
				}
				legs = append(legs, peerLeg{server: p.server.name, protocol: p.name, op: opName, pid: p.server.pid, do: do})
			}
			if etcdKV != nil {
				pid := etcd.pids[0]
				switch opName {
				case "put":
					legs = append(legs, peerLeg{server: "etcd", protocol: "grpc", op: "put", pid: pid, do: func(ctx context.Context, _, _ int) error {
						return etcdKV.put(ctx, []byte(uniqueKey()), value)
					}})
				case "get":
					for _, serializable := range []bool{false, true} {
						name := "get (linearizable)"
						if serializable {
							name = "get (serializable)"
						}
						legs = append(legs, peerLeg{server: "etcd", protocol: "grpc", op: name, pid: pid, do: func(ctx context.Context, _, i int) error {
							return etcdKV.get(ctx, []byte(keyOf(i)), serializable)
						}})
					}
				}
			}
			rows, totals := alternatePeers(b, legs, clients, slice, rounds[0])
			table = append(table, rows...)
			wholeRuns = append(wholeRuns, totals...)
		}
	}
	if dir := os.Getenv("PEER_PPROF"); dir != "" {
		for _, cw := range cws {
			if cw.bin != noopServer && !servesGRPCGo(cw.bin) { // serve no profile
				profilePuts(b, dir, cw, maxClients, uniqueKey)
			}
		}
	}
	// Printed, not logged: the testing package keeps only the first lines
	// of a benchmark's log.
	fmt.Printf("\nBenchmarkPeer: %d rounds of %v slices per leg, server and load generator on one machine (%d cores)\n\n%s\n",
		rounds[0], slice, runtime.NumCPU(), peerTable(table))
	fmt.Printf("Server CPU per operation over each whole alternation: its warm-ups, slices and the pauses between them, so that work a server defers past its slices (compactions, garbage collection) counts too; a server with several protocols is one row\n\n%s\n",
		totalsTable(wholeRuns))
	reportPeerRatios(b, table, maxClients)
}

// peerProtocol is a client of the causeway server in one protocol.
type peerProtocol struct {
	name   string
	kv     causewayv1connect.KVServiceClient
	server *causewayProcess
}

// allProtocols lists the protocols of every causeway server.
func allProtocols(cws []*causewayProcess) []peerProtocol {
	var all []peerProtocol
	for _, cw := range cws {
		all = append(all, cw.protocols...)
	}
	return all
}

// peerLeg is one server, protocol and operation.
type peerLeg struct {
	server, protocol, op string
	pid                  int
	do                   op
}

// peerRow is a leg's result: medians over its slices.
type peerRow struct {
	peerLeg
	clients            int
	opsPerSec          float64
	p50, p99, max      time.Duration
	serverCPU          time.Duration // per operation
	loadCPU            time.Duration // this process, per operation
	lowOps, highOps    float64       // the slowest and fastest slice
	slices, operations int
}

// peerTotal is one server's CPU over a whole alternation: the background
// work that runs between its slices (a compaction a flush started, the
// garbage collector) is charged to the operations that caused it.
type peerTotal struct {
	server, op string
	clients    int
	operations int
	cpu        time.Duration // per operation
}

// alternatePeers runs rounds of one slice per leg, in the balanced orders
// of williams, after a warm-up slice per leg, and returns each leg's
// median slice and each server's CPU over the whole alternation.
func alternatePeers(b *testing.B, legs []peerLeg, clients int, slice time.Duration, rounds int) ([]peerRow, []peerTotal) {
	b.Helper()
	ctx := context.Background()
	type whole struct {
		server     string
		pid        int
		cpu0       time.Duration
		operations int
	}
	var totals []*whole
	byPid := map[int]*whole{}
	for _, l := range legs {
		if byPid[l.pid] == nil {
			cpu0, err := procCPU(l.pid)
			if err != nil {
				b.Fatal(err)
			}
			byPid[l.pid] = &whole{server: l.server, pid: l.pid, cpu0: cpu0}
			totals = append(totals, byPid[l.pid])
		}
	}
	for _, l := range legs {
		res, err := driveFor(ctx, slice/3, clients, l.do)
		if err != nil {
			b.Fatalf("warm up %s %s %s: %v", l.server, l.protocol, l.op, err)
		}
		byPid[l.pid].operations += res.ops
	}
	type sample struct {
		rate                    float64
		p50, p99, max, cpu, own time.Duration
		ops                     int
	}
	samples := make([][]sample, len(legs))
	orders := williams(len(legs))
	for round := range rounds {
		for _, i := range orders[round%len(orders)] {
			l := legs[i]
			cpu0, err := procCPU(l.pid)
			if err != nil {
				b.Fatal(err)
			}
			own0 := processCPU()
			res, err := driveFor(ctx, slice, clients, l.do)
			own := processCPU() - own0
			cpu1, cerr := procCPU(l.pid)
			if err != nil {
				b.Fatalf("%s %s %s, %d clients: %v", l.server, l.protocol, l.op, clients, err)
			}
			if cerr != nil {
				b.Fatal(cerr)
			}
			byPid[l.pid].operations += res.ops
			n := max(res.ops, 1)
			samples[i] = append(samples[i], sample{
				rate: float64(res.ops) / res.elapsed.Seconds(),
				p50:  percentile(res.latencies, 50),
				p99:  percentile(res.latencies, 99),
				max:  res.latencies[len(res.latencies)-1],
				cpu:  (cpu1 - cpu0) / time.Duration(n),
				own:  own / time.Duration(n),
				ops:  res.ops,
			})
		}
	}
	rows := make([]peerRow, len(legs))
	for i, l := range legs {
		s := samples[i]
		rates := make([]float64, len(s))
		for j := range s {
			rates[j] = s[j].rate
		}
		// The slice of median throughput gives the row its figures, so
		// that latency and CPU describe the same slice.
		m := s[medianIndex(rates)]
		ops := 0
		for _, x := range s {
			ops += x.ops
		}
		rows[i] = peerRow{peerLeg: l, clients: clients, opsPerSec: m.rate, p50: m.p50, p99: m.p99, max: m.max, serverCPU: m.cpu, loadCPU: m.own,
			lowOps: slices.Min(rates), highOps: slices.Max(rates), slices: len(s), operations: ops}
	}
	var out []peerTotal
	for _, w := range totals {
		cpu1, err := procCPU(w.pid)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, peerTotal{server: w.server, op: legs[0].op, clients: clients, operations: w.operations,
			cpu: (cpu1 - w.cpu0) / time.Duration(max(w.operations, 1))})
	}
	return rows, out
}

// medianIndex is the index of the median of xs (the lower one of an even
// count).
func medianIndex(xs []float64) int {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(xs[a], xs[b]) })
	return idx[(len(idx)-1)/2]
}

// peerTable renders rows as a markdown table.
func peerTable(rows []peerRow) string {
	var sb strings.Builder
	sb.WriteString("| op | clients | server | protocol | ops/s (median; slowest-fastest slice) | p50 | p99 | max | server CPU/op | load generator CPU/op |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %d | %s | %s | %.0f (%.0f-%.0f) | %v | %v | %v | %.1f µs | %.1f µs |\n",
			r.op, r.clients, r.server, r.protocol, r.opsPerSec, r.lowOps, r.highOps,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), micros(r.serverCPU), micros(r.loadCPU))
	}
	return sb.String()
}

// totalsTable renders each server's CPU over whole alternations.
func totalsTable(totals []peerTotal) string {
	var sb strings.Builder
	sb.WriteString("| op | clients | server | operations | server CPU/op |\n|---|---|---|---|---|\n")
	for _, t := range totals {
		fmt.Fprintf(&sb, "| %s | %d | %s | %d | %.1f µs |\n", t.op, t.clients, t.server, t.operations, micros(t.cpu))
	}
	return sb.String()
}

// reportPeerRatios reports Causeway's figures at clients as ratios to
// etcd's in the same run: throughput (higher is better for Causeway) and
// server CPU per operation (lower is better).
func reportPeerRatios(b *testing.B, rows []peerRow, clients int) {
	find := func(server, protocol, op string) *peerRow {
		for i := range rows {
			r := &rows[i]
			if r.server == server && r.protocol == protocol && r.op == op && r.clients == clients {
				return r
			}
		}
		return nil
	}
	for _, r := range rows {
		if r.server == "causeway" && r.clients == clients {
			b.ReportMetric(r.opsPerSec, r.op+"-"+r.protocol+"-ops/s")
			b.ReportMetric(micros(r.serverCPU), r.op+"-"+r.protocol+"-cpu-us/op")
		}
	}
	for _, cmp := range []struct{ op, etcdOp string }{{"put", "put"}, {"get", "get (linearizable)"}, {"get", "get (serializable)"}} {
		e := find("etcd", "grpc", cmp.etcdOp)
		if e == nil {
			continue
		}
		suffix := map[string]string{"put": "put", "get (linearizable)": "get-lin", "get (serializable)": "get-ser"}[cmp.etcdOp]
		for _, proto := range []string{"connect-h1", "grpc"} {
			c := find("causeway", proto, cmp.op)
			if c == nil {
				continue
			}
			b.ReportMetric(c.opsPerSec/e.opsPerSec, suffix+"-"+proto+"/etcd-ops")
			if cmp.op == "put" {
				b.ReportMetric(float64(c.serverCPU)/float64(e.serverCPU), suffix+"-"+proto+"/etcd-cpu")
			}
		}
	}
}

// causewayProcess is a running `causeway serve`.
type causewayProcess struct {
	name, url, bin string
	pid            int
	protocols      []peerProtocol
}

// noopServer, as the binary of startCauseway, starts the RPC floor of
// noop_main_test.go instead of causeway serve.
const noopServer = "noop"

// servesGRPCGo reports whether bin names a server of this test binary that
// speaks gRPC alone, from grpc-go's transport.
func servesGRPCGo(bin string) bool { return bin == noopGRPCGoServer || bin == causewayGRPCGoServer }

// startCauseway starts one region (causal tier alone, no gossip, pprof
// on) of binary bin with data under b's temporary directory, stopped in
// b's cleanup. With no bin, it builds one from this module.
func startCauseway(b *testing.B, name, bin string) (*causewayProcess, error) {
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "causeway")
		build := exec.Command("go", "build", "-o", bin, "github.com/causewaydb/causeway/cmd/causeway")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build causeway (or set CAUSEWAY_BIN): %v\n%s", err, out)
		}
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	dir := b.TempDir()
	url := make(chan string, 1)
	logPath := filepath.Join(dir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch bin {
	case noopServer:
		cmd = exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), noopServeEnv+"=1")
	case noopGRPCGoServer, causewayGRPCGoServer:
		cmd = exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), noopServeEnv+"="+bin)
	default:
		cmd = exec.Command(bin, "serve", "--region", "bench", "--data", filepath.Join(dir, "data"), "--listen", addr,
			"--gossip-listen", "off", "--linear", "off", "--pprof", "--log-level", "warn")
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "serving on "); ok {
				u, _, _ = strings.Cut(u, " ")
				select {
				case url <- u:
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	b.Cleanup(func() { stopProcess(b, cmd.Process, exited) })
	var base string
	select {
	case base = <-url:
	case <-exited:
		return nil, fmt.Errorf("causeway serve exited: %s", tail(logPath))
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("causeway serve not serving after 60s: %s", tail(logPath))
	}
	return &causewayProcess{name: name, url: base, bin: bin, pid: cmd.Process.Pid}, nil
}

// procCPU is the user + system CPU time process pid has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s, the USER_HZ
// of Linux on every architecture Go supports).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(raw))
}

func parseProcStatCPU(stat string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start after the last ')'.
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(stat[end+1:])
	// f[0] is field 3 (state): utime (14) and stime (15) are f[11], f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// etcdGRPC speaks etcd's KV API over gRPC with hand-encoded protobuf.
type etcdGRPC struct {
	putRPC, rangeRPC *connect.Client[rawMessage, rawMessage]
}

func newEtcdGRPC(client *http.Client, url string) *etcdGRPC {
	opts := []connect.ClientOption{connect.WithGRPC(), connect.WithCodec(rawCodec{})}
	return &etcdGRPC{
		putRPC:   connect.NewClient[rawMessage, rawMessage](client, url+"/etcdserverpb.KV/Put", opts...),
		rangeRPC: connect.NewClient[rawMessage, rawMessage](client, url+"/etcdserverpb.KV/Range", opts...),
	}
}

// Field numbers of etcd's PutRequest and RangeRequest
// (api/etcdserverpb/rpc.proto) and RangeResponse.
const (
	etcdPutKey            protowire.Number = 1
	etcdPutValue          protowire.Number = 2
	etcdRangeKey          protowire.Number = 1
	etcdRangeSerializable protowire.Number = 7
	etcdRangeResponseKVs  protowire.Number = 2
)

func (e *etcdGRPC) put(ctx context.Context, key, val []byte) error {
	var m []byte
	m = protowire.AppendTag(m, etcdPutKey, protowire.BytesType)
	m = protowire.AppendBytes(m, key)
	m = protowire.AppendTag(m, etcdPutValue, protowire.BytesType)
	m = protowire.AppendBytes(m, val)
	_, err := e.putRPC.CallUnary(ctx, connect.NewRequest(&rawMessage{b: m}))
	return err
}

func (e *etcdGRPC) get(ctx context.Context, key []byte, serializable bool) error {
	var m []byte
	m = protowire.AppendTag(m, etcdRangeKey, protowire.BytesType)
	m = protowire.AppendBytes(m, key)
	if serializable {
		m = protowire.AppendTag(m, etcdRangeSerializable, protowire.VarintType)
		m = protowire.AppendVarint(m, 1)
	}
	res, err := e.rangeRPC.CallUnary(ctx, connect.NewRequest(&rawMessage{b: m}))
	if err != nil {
		return err
	}
	if !hasField(res.Msg.b, etcdRangeResponseKVs) {
		return fmt.Errorf("etcd range %s: no value", key)
	}
	return nil
}

// hasField reports whether the encoded message b holds field n.
func hasField(b []byte, n protowire.Number) bool {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return false
		}
		if num == n {
			return true
		}
		b = b[l:]
	}
	return false
}

// profilePuts writes a CPU profile of the causeway server under Puts from
// clients over each protocol into dir (put-<protocol>.pprof) and prints
// the per-layer account of each (layers_test.go).
func profilePuts(b *testing.B, dir string, cw *causewayProcess, clients int, key func() string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var names []string
	var shares []map[string]float64
	var cpuPerOp []time.Duration
	for _, p := range cw.protocols {
		ctx, cancel := context.WithCancel(context.Background())
		cpu0, err := procCPU(cw.pid)
		if err != nil {
			b.Fatal(err)
		}
		type result struct {
			l   load
			err error
		}
		done := make(chan result, 1)
		go func() {
			l, err := driveFor(ctx, time.Hour, clients, func(ctx context.Context, _, _ int) error {
				_, err := p.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key(), Value: value}))
				return err
			})
			done <- result{l, err}
		}()
		// The profile starts with the load; what both cover is the same
		// steady state but for the first requests.
		res, err := http.Get(cw.url + "/debug/pprof/profile?seconds=10")
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(dir, cw.name+"-put-"+p.name+".pprof")
		out, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		_, err = out.ReadFrom(res.Body)
		res.Body.Close()
		out.Close()
		cancel()
		r := <-done
		if r.err != nil && !errors.Is(r.err, context.Canceled) && connect.CodeOf(r.err) != connect.CodeCanceled {
			b.Fatalf("load while profiling %s: %v", p.name, r.err)
		}
		if err != nil {
			b.Fatal(err)
		}
		cpu1, err := procCPU(cw.pid)
		if err != nil {
			b.Fatal(err)
		}
		sh, err := profileLayers(cw.bin, path)
		if err != nil {
			b.Fatal(err)
		}
		names = append(names, p.name)
		shares = append(shares, sh)
		cpuPerOp = append(cpuPerOp, (cpu1-cpu0)/time.Duration(max(r.l.ops, 1)))
	}
	fmt.Printf("\nWhere the %s server's CPU goes under %d-client Puts (profiles in %s; layers as bench/layers_test.go charges them):\n\n%s\n",
		cw.name, clients, dir, layerTable(names, shares, cpuPerOp))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInts(name string, def []int) ([]int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: want positive numbers separated by commas", name, v)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%s=%q: want increasing numbers", name, v)
		}
		out = append(out, n)
	}
	return out, nil
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 3s", name, v)
	}
	return d, nil
}

func TestParseProcStatCPU(t *testing.T) {
	// A real line's shape, with a command name holding a space and a ')'.
	line := "4242 (causeway (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 9 0 100 0 0"
	got, err := parseProcStatCPU(line)
	if err != nil || got != 1750*time.Millisecond {
		t.Errorf("parseProcStatCPU = %v, %v; want 1.75s (175 ticks)", got, err)
	}
	if _, err := parseProcStatCPU("4242 causeway S 1"); err == nil {
		t.Errorf("a line without a command name was accepted")
	}
	if _, err := parseProcStatCPU("4242 (c) S 1 2"); err == nil {
		t.Errorf("a short line was accepted")
	}
}

func TestHasField(t *testing.T) {
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 7)
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendBytes(m, []byte("kv"))
	if !hasField(m, 2) || !hasField(m, 1) || hasField(m, 3) {
		t.Errorf("hasField on %x: fields 1 and 2 present, 3 absent", m)
	}
	if hasField(m[:len(m)-1], 2) {
		t.Errorf("hasField found a field in a truncated message")
	}
}

func TestMedianIndex(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want int
	}{{[]float64{5}, 0}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 3}} {
		if got := medianIndex(tc.in); got != tc.want {
			t.Errorf("medianIndex(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
