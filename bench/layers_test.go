package bench

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The per-layer account of a server's CPU profile: every sample is charged
// to one layer of the request path, so that the layers add up to the whole.
// A sample goes to the first layer its stack names, reading from the
// innermost frame outwards: an allocation or a system call is charged to
// the code that asked for it (a write(2) under net/http's framer is HTTP,
// one under Pebble's WAL is Pebble), and Go runtime frames are passed over.
// Two rules read the whole stack first: an fsync is charged to the fsync
// wherever it is called from, and the garbage collector's background
// workers to the collector.

// layer names, in the order the account prints them.
const (
	layerHTTP     = "HTTP server and network I/O"
	layerConnect  = "Connect and protobuf"
	layerMiddle   = "interceptors, auth, metrics, logging"
	layerNode     = "the node (causal tier, tokens)"
	layerPebble   = "Pebble (without the fsync)"
	layerFsync    = "the fsync"
	layerGC       = "Go runtime: background GC"
	layerSchedule = "Go runtime: scheduler, other"
)

var layerOrder = []string{layerHTTP, layerConnect, layerMiddle, layerNode, layerPebble, layerFsync, layerGC, layerSchedule}

// frameLayers maps a function name prefix to its layer, for frames read
// from the innermost outwards. More specific prefixes come first.
var frameLayers = []struct{ prefix, layer string }{
	{"github.com/cockroachdb/pebble", layerPebble},
	{"github.com/prometheus/", layerMiddle},
	{"github.com/causewaydb/causeway/internal/process.", layerMiddle},
	{"github.com/causewaydb/causeway/internal/logquiet.", layerMiddle},
	{"github.com/causewaydb/causeway/internal/logbridge.", layerMiddle},
	{"github.com/causewaydb/causeway/replica.(*Server).metrics", layerMiddle},
	{"github.com/causewaydb/causeway/replica.malformed", layerMiddle},
	{"github.com/causewaydb/causeway/internal/link.", layerHTTP}, // every accepted connection passes the link emulator
	{"log/slog.", layerMiddle},
	{"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect.", layerConnect},
	{"github.com/causewaydb/causeway/", layerNode},
	{"connectrpc.com/", layerConnect},
	{"google.golang.org/protobuf/", layerConnect},
	{"net/http.", layerHTTP},
	{"net.", layerHTTP},
	{"internal/poll.", layerHTTP},
	{"bufio.", layerHTTP},
	{"crypto/tls.", layerHTTP},
	{"golang.org/x/net/http2", layerHTTP},
}

// layerOf is the layer a sample with stack (innermost frame first) is
// charged to.
func layerOf(stack []string) string {
	for _, f := range stack {
		if strings.Contains(f, "Fdatasync") || strings.Contains(f, "(*FD).Fsync") || strings.HasPrefix(f, "syscall.Fsync") {
			return layerFsync
		}
	}
	for _, f := range stack {
		if strings.HasPrefix(f, "runtime.gcBgMarkWorker") || strings.HasPrefix(f, "runtime.bgsweep") || strings.HasPrefix(f, "runtime.bgscavenge") {
			return layerGC
		}
	}
	for _, f := range stack {
		for _, fl := range frameLayers {
			if strings.HasPrefix(f, fl.prefix) {
				return fl.layer
			}
		}
	}
	return layerSchedule
}

// parseTraces reads the output of `go tool pprof -traces` into one
// (value, stack) pair per sample stack.
func parseTraces(out string) ([]time.Duration, [][]string, error) {
	var values []time.Duration
	var stacks [][]string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			in = true
			stacks = append(stacks, nil)
			values = append(values, 0)
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		i := len(stacks) - 1
		fields := strings.Fields(line)
		if len(stacks[i]) == 0 && strings.HasSuffix(fields[0], ":") {
			continue // a profiler label of the sample ("pebble:  wal-sync")
		}
		if len(stacks[i]) == 0 {
			// The first line of a sample: its value, then its innermost frame.
			if len(fields) < 2 {
				return nil, nil, fmt.Errorf("pprof traces: sample line %q has no frame", line)
			}
			d, err := time.ParseDuration(fields[0])
			if err != nil {
				return nil, nil, fmt.Errorf("pprof traces: sample value %q: %w", fields[0], err)
			}
			values[i] = d
			stacks[i] = append(stacks[i], fields[1])
			continue
		}
		stacks[i] = append(stacks[i], fields[0])
	}
	// The last separator opens no sample.
	for len(stacks) > 0 && len(stacks[len(stacks)-1]) == 0 {
		stacks, values = stacks[:len(stacks)-1], values[:len(values)-1]
	}
	return values, stacks, sc.Err()
}

// layerShares charges every sample of a profile's traces to its layer and
// returns each layer's share of the total.
func layerShares(traces string) (map[string]float64, error) {
	values, stacks, err := parseTraces(traces)
	if err != nil {
		return nil, err
	}
	var total time.Duration
	by := map[string]time.Duration{}
	for i, s := range stacks {
		by[layerOf(s)] += values[i]
		total += values[i]
	}
	if total == 0 {
		return nil, fmt.Errorf("pprof traces: no samples")
	}
	shares := map[string]float64{}
	for l, d := range by {
		shares[l] = float64(d) / float64(total)
	}
	return shares, nil
}

// profileLayers runs `go tool pprof -traces` on a profile of binary bin.
func profileLayers(bin, profile string) (map[string]float64, error) {
	out, err := exec.Command("go", "tool", "pprof", "-traces", bin, profile).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces %s: %w", profile, err)
	}
	return layerShares(string(out))
}

// layerTable renders, per protocol, each layer's share and its CPU per
// operation (the share times the server CPU per operation measured).
func layerTable(protocols []string, shares []map[string]float64, cpuPerOp []time.Duration) string {
	var sb strings.Builder
	sb.WriteString("| layer |")
	for _, p := range protocols {
		fmt.Fprintf(&sb, " %s |", p)
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(protocols)) + "\n")
	for _, l := range layerOrder {
		fmt.Fprintf(&sb, "| %s |", l)
		for i := range protocols {
			fmt.Fprintf(&sb, " %.0f%% = %.1f µs |", 100*shares[i][l], shares[i][l]*micros(cpuPerOp[i]))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("| all (server CPU per Put) |")
	for i := range protocols {
		fmt.Fprintf(&sb, " %.1f µs |", micros(cpuPerOp[i]))
	}
	sb.WriteString("\n")
	return sb.String()
}

func TestLayerOf(t *testing.T) {
	for _, tc := range []struct {
		stack []string
		want  string
	}{
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "internal/poll.(*FD).Write", "net.(*conn).Write", "bufio.(*Writer).Flush", "net/http.(*http2Framer).WriteData", "connectrpc.com/connect.(*grpcHandlerConn).Send"}, layerHTTP},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.Fdatasync", "github.com/cockroachdb/pebble/v2/vfs.(*linuxFile).Sync"}, layerFsync},
		{[]string{"runtime.mallocgc", "runtime.newobject", "google.golang.org/protobuf/internal/impl.(*MessageInfo).unmarshal", "connectrpc.com/connect.(*protoBinaryCodec).Unmarshal"}, layerConnect},
		{[]string{"runtime.mapassign_faststr", "github.com/prometheus/client_golang/prometheus.(*CounterVec).WithLabelValues", "github.com/causewaydb/causeway/internal/process.(*Server).observe"}, layerMiddle},
		{[]string{"runtime.memmove", "github.com/causewaydb/causeway/replica.(*Node).Put", "github.com/causewaydb/causeway/replica.(*Server).Put", "connectrpc.com/connect.NewUnaryHandler.func2"}, layerNode},
		{[]string{"github.com/cockroachdb/pebble/v2/internal/arenaskl.(*Skiplist).Add", "github.com/cockroachdb/pebble/v2.(*DB).commitWrite", "github.com/causewaydb/causeway/replica.(*Node).Put"}, layerPebble},
		{[]string{"sync.(*Once).Do", "github.com/causewaydb/causeway/internal/link.(*acceptedConn).Read", "bufio.(*Reader).Read", "net/http.(*conn).serve"}, layerHTTP},
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker.func2", "runtime.gcBgMarkWorker"}, layerGC},
		{[]string{"runtime.futex", "runtime.futexsleep", "runtime.notesleep", "runtime.stopm", "runtime.findRunnable", "runtime.schedule"}, layerSchedule},
	} {
		if got := layerOf(tc.stack); got != tc.want {
			t.Errorf("layerOf(%v) = %q, want %q", tc.stack, got, tc.want)
		}
	}
}

func TestLayerShares(t *testing.T) {
	traces := `File: causeway
Type: cpu
-----------+-------------------------------------------------------
      30ms   runtime.sellock
             runtime.selectgo
             net/http.(*http2serverConn).readFrames
-----------+-------------------------------------------------------
      10ms   internal/reflectlite.rtype.Comparable (inline)
             errors.Is
             connectrpc.com/connect.(*grpcUnmarshaler).Unmarshal
-----------+-------------------------------------------------------
    pebble:  wal-sync
      60ms   runtime.futex
             runtime.schedule
-----------+-------------------------------------------------------
`
	shares, err := layerShares(traces)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{layerHTTP: 0.3, layerConnect: 0.1, layerSchedule: 0.6}
	for l, w := range want {
		if got := shares[l]; got < w-1e-9 || got > w+1e-9 {
			t.Errorf("share of %s = %v, want %v (all: %v)", l, got, w, shares)
		}
	}
	if len(shares) != len(want) {
		t.Errorf("shares %v, want exactly the layers of %v", shares, want)
	}
	if _, err := layerShares("File: x\n"); err == nil {
		t.Errorf("traces without a sample gave no error")
	}
}
