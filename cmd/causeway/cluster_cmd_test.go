//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/pki"
)

// freePortRange finds a base port for n regions of `causeway cluster` whose
// every port is free on 127.0.0.1: the API ports base..base+n-1, gossip at
// +100 (TCP and UDP) and Raft at +200 (best effort: another process may
// take one before the cluster binds it). Bases are drawn below the
// ephemeral range (32768 and up on Linux), where the connections of tests
// running beside this one take their ports.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	free := func(port int) bool {
		addr := net.JoinHostPort("127.0.0.1", itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	freeUDP := func(port int) bool {
		c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	for attempt := 0; attempt < 50; attempt++ {
		base := 20000 + rand.IntN(12000)
		ok := true
		for i := 0; i < n && ok; i++ {
			ok = free(base+i) && free(base+i+100) && freeUDP(base+i+100) && free(base+i+200)
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func itoa(i int) string { return strconv.Itoa(i) }

var (
	clusterAddrLine   = regexp.MustCompile(`^\s+(\S+)\s+https://(\S+)\s`)
	clusterExportLine = regexp.MustCompile(`^\s+export CAUSEWAY_CERTS_DIR=(\S+) CAUSEWAY_CLIENT=(\S+)$`)
)

// TestClusterCommand starts `causeway cluster` with two regions and a WAN
// delay, uses it over TLS with the client certificate it prints (plain HTTP
// is refused), kills one region (reported; the other keeps serving), and
// stops it with SIGINT: every region process must stop.
func TestClusterCommand(t *testing.T) {
	base := freePortRange(t, 2)
	cmd := exec.Command(os.Args[0], "cluster", "--n", "2", "--regions", "us-east,eu-west", "--data", t.TempDir(),
		"--base-port", itoa(base), "--wan-latency", "us-east/eu-west=20ms")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("cluster stderr:\n%s", stderr)
		}
	})
	addrs := map[string]string{}
	var certsDir, clientName string
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := clusterAddrLine.FindStringSubmatch(sc.Text()); m != nil {
				addrs[m[1]] = m[2]
			}
			if m := clusterExportLine.FindStringSubmatch(sc.Text()); m != nil {
				certsDir, clientName = m[1], m[2]
			}
			if sc.Text() == "Ctrl-C stops every region." {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("cluster did not report ready")
	}
	if len(addrs) != 2 || certsDir == "" {
		t.Fatalf("cluster printed addresses %v and certs directory %q, want two https regions and an export line", addrs, certsDir)
	}
	tlsCfg, err := pki.ClientTLS(certsDir, clientName)
	if err != nil {
		t.Fatalf("the printed certs directory and client: %v", err)
	}
	client := tlsHTTPClient(tlsCfg)
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The cluster is on TLS: plain HTTP is refused, and so is TLS without
	// a credential.
	if res, err := http.Get("http://" + addrs["us-east"] + "/readyz"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest { // Go's TLS server answers plain HTTP with 400
			t.Errorf("us-east answered plain HTTP with %s", res.Status)
		}
	}
	anonTLS, _ := pki.ClientTLS(certsDir, "")
	if err := call(ctx, tlsHTTPClient(anonTLS), "https://"+addrs["us-east"], "put"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("a put over TLS without a credential: %v, want unauthenticated", err)
	}
	east := causewayv1connect.NewKVServiceClient(client, "https://"+addrs["us-east"])
	west := causewayv1connect.NewKVServiceClient(client, "https://"+addrs["eu-west"])
	// Timed from before the Put: the write cannot exist before it is sent,
	// so it cannot be read across a 20ms link sooner than 20ms after that,
	// however long the Put's answer takes to come back.
	start := time.Now()
	put, err := east.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := west.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k", CausalToken: put.Msg.CausalToken}))
	if err != nil || string(got.Msg.Value) != "v" {
		t.Fatalf("read in eu-west: %v, %v", got, err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("the write crossed a 20ms link in %v", waited)
	}
	admin := causewayv1connect.NewAdminServiceClient(client, "https://"+addrs["eu-west"])
	st, err := admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Msg.FaultInjection || len(st.Msg.Links) != 1 || st.Msg.Links[0].GetDelay().AsDuration() != 20*time.Millisecond {
		t.Fatalf("eu-west status: fault injection %v, links %v", st.Msg.FaultInjection, st.Msg.Links)
	}

	// A region that exits is reported; the others keep serving.
	pid := childServing(t, cmd.Process.Pid, "eu-west")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "the cluster to report eu-west's exit", func() bool {
		return strings.Contains(stderr.String(), "causeway cluster: region eu-west exited (signal: killed); the other regions keep running")
	})
	if _, err := east.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k2", Value: []byte("v")})); err != nil {
		t.Fatalf("us-east after eu-west exited: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cluster exit after SIGINT: %v", err)
	}
	if strings.Contains(stderr.String(), "every region has exited") {
		t.Error("the cluster stopped because a region exited")
	}
	for region, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("region %s still listens on %s after the cluster stopped", region, addr)
		}
	}
}

// childServing returns the pid of the `causeway serve` child of parent that
// serves region, from /proc.
func childServing(t *testing.T, parent int, region string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "\x00--region\x00"+region+"\x00") {
			return pid
		}
	}
	t.Fatalf("no child of %d serves %s", parent, region)
	return 0
}
