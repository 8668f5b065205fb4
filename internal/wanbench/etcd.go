package wanbench

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/causewaydb/causeway/internal/link"
)

// The peer: a real etcd cluster, one member per region, its members'
// traffic through delay proxies (proxy.go) with the matrix's delays, and
// its clients in each region talking to their own region's member through
// etcd's Go client (go.etcd.io/etcd/client/v3), as a deployment would;
// with TLS when the cluster under test runs it (etcdConfig.CADir, tls.go).

// errEtcdNotFound is returned when no etcd binary is installed.
var errEtcdNotFound = errors.New("etcd not found: install Debian's etcd-server (apt-get install -y etcd-server) or put an etcd binary on PATH, or pass --etcd PATH")

// etcdOps are the peer's operations, by name.
var etcdOps = []string{"put", "get", "put-if-absent"}

type etcdConfig struct {
	Binary string // "" looks for etcd
	Matrix Matrix
	Dir    string
	// CADir, when set, runs the members with client and peer TLS on
	// certificates from the CA there (a directory
	// supervisor.PrepareCerts prepared; see etcdTLS).
	CADir string
}

type etcdMember struct {
	region  string
	client  string // client URL
	cmd     *exec.Cmd
	exited  chan struct{}
	proxy   *delayProxy
	cli     *clientv3.Client
	logPath string
}

type etcdCluster struct {
	members      map[string]*etcdMember
	leaderRegion string
	version      string
	tls          bool // client and peer TLS
}

// etcdReadyTimeout bounds the wait for the members to elect a leader
// under the WAN.
const etcdReadyTimeout = 90 * time.Second

func findEtcd(bin string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%w (--etcd %s: %v)", errEtcdNotFound, bin, err)
		}
		return bin, nil
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", errEtcdNotFound
}

// etcdMemberID is the id etcd gives a member of a new cluster: the first 8
// bytes, big-endian, of the SHA-1 of its sorted peer URLs and the cluster
// token (etcd's membership.NewMember). The proxies need it before the
// cluster runs, to tell callers apart from their first connection;
// startEtcd checks it against the member list etcd reports.
func etcdMemberID(peerURL, token string) string {
	sum := sha1.Sum([]byte(peerURL + token))
	return strconv.FormatUint(binary.BigEndian.Uint64(sum[:8]), 16)
}

// startEtcd starts the cluster and waits until it has a leader.
func startEtcd(ctx context.Context, cfg etcdConfig) (*etcdCluster, error) {
	bin, err := findEtcd(cfg.Binary)
	if err != nil {
		return nil, err
	}
	out, _ := exec.Command(bin, "--version").Output()
	version, _, _ := strings.Cut(strings.TrimPrefix(string(out), "etcd Version: "), "\n")
	m := cfg.Matrix
	token := "causeway-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// Raft timing as etcd's tuning guide asks: a heartbeat about the
	// largest round trip, an election timeout ten heartbeats.
	var maxRTT time.Duration
	for _, d := range m.RTT {
		maxRTT = max(maxRTT, d)
	}
	heartbeat := max(100*time.Millisecond, maxRTT)
	cl := &etcdCluster{members: map[string]*etcdMember{}, version: strings.TrimSpace(version)}
	scheme := "http://"
	var certs *etcdTLS
	if cfg.CADir != "" {
		if certs, err = newEtcdTLS(cfg.CADir, filepath.Join(cfg.Dir, "certs"), m.Regions); err != nil {
			return nil, err
		}
		scheme, cl.tls = "https://", true
	}
	regionByID := map[string]string{}
	var mu sync.Mutex
	regionOf := func(id string) string {
		mu.Lock()
		defer mu.Unlock()
		return regionByID[id]
	}
	ports, err := freeTCPPorts(2 * len(m.Regions))
	if err != nil {
		return nil, err
	}
	var initial []string
	peerURL := map[string]string{}
	listenPeer := map[string]string{}
	for i, r := range m.Regions {
		listenPeer[r] = "127.0.0.1:" + strconv.Itoa(ports[2*i+1])
		emu := link.New(r)
		for _, o := range m.Regions {
			if o != r {
				if err := emu.Set(o, link.Link{Delay: m.OneWay(r, o)}); err != nil {
					return nil, err
				}
			}
		}
		var ptls *proxyTLS
		if certs != nil {
			ptls = certs.proxyTLS(r)
		}
		p, err := newDelayProxy(listenPeer[r], emu, regionOf, ptls)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.members[r] = &etcdMember{region: r, proxy: p, client: scheme + "127.0.0.1:" + strconv.Itoa(ports[2*i])}
		peerURL[r] = scheme + p.Addr()
		mu.Lock()
		regionByID[etcdMemberID(peerURL[r], token)] = r
		mu.Unlock()
		initial = append(initial, r+"="+peerURL[r])
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		cl.Close()
		return nil, err
	}
	for _, r := range m.Regions {
		mem := cl.members[r]
		mem.logPath = filepath.Join(cfg.Dir, r+".log")
		logFile, err := os.Create(mem.logPath)
		if err != nil {
			cl.Close()
			return nil, err
		}
		args := []string{
			"--name", r,
			"--data-dir", filepath.Join(cfg.Dir, r),
			"--listen-client-urls", mem.client,
			"--advertise-client-urls", mem.client,
			"--listen-peer-urls", scheme + listenPeer[r],
			"--initial-advertise-peer-urls", peerURL[r],
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", strconv.FormatInt(heartbeat.Milliseconds(), 10),
			"--election-timeout", strconv.FormatInt(10*heartbeat.Milliseconds(), 10),
			"--logger", "zap",
			"--log-level", "warn",
		}
		if certs != nil {
			args = append(args, certs.flags(r)...)
		}
		mem.cmd = exec.Command(bin, args...)
		mem.cmd.Stdout, mem.cmd.Stderr = logFile, logFile
		if err := mem.cmd.Start(); err != nil {
			logFile.Close()
			cl.Close()
			return nil, fmt.Errorf("start etcd member %s: %w", r, err)
		}
		mem.exited = make(chan struct{})
		go func() {
			mem.cmd.Wait()
			logFile.Close()
			close(mem.exited)
		}()
		ccfg := clientv3.Config{
			Endpoints:   []string{mem.client},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		}
		if certs != nil {
			ccfg.TLS = certs.clientConfig()
		}
		mem.cli, err = clientv3.New(ccfg)
		if err != nil {
			cl.Close()
			return nil, err
		}
	}
	if err := cl.awaitLeader(ctx, token); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// awaitLeader waits until every member names the same leader, and checks
// that the member ids are the ones the proxies expect.
func (cl *etcdCluster) awaitLeader(ctx context.Context, token string) error {
	ctx, cancel := context.WithTimeout(ctx, etcdReadyTimeout)
	defer cancel()
	last := "no status yet"
	for {
		leader, why := cl.commonLeader(ctx)
		if why == "" {
			cl.leaderRegion = leader
			break
		}
		last = why
		for r, mem := range cl.members {
			select {
			case <-mem.exited:
				return fmt.Errorf("etcd member %s exited (log: %s)", r, mem.logPath)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd has no leader after %v: %s", etcdReadyTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	led := cl.members[cl.leaderRegion]
	list, err := led.cli.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, mem := range list.Members {
		if len(mem.PeerURLs) != 1 {
			return fmt.Errorf("etcd member %s has peer URLs %v, want one", mem.Name, mem.PeerURLs)
		}
		if want := etcdMemberID(mem.PeerURLs[0], token); strconv.FormatUint(mem.ID, 16) != want {
			return fmt.Errorf("etcd gave member %s the id %x, the proxies expect %s: they cannot tell its traffic apart, so it would cross no WAN", mem.Name, mem.ID, want)
		}
	}
	return nil
}

func (cl *etcdCluster) commonLeader(ctx context.Context) (string, string) {
	ids := map[uint64]string{}
	var leader uint64
	for _, r := range sortedCopy(mapsKeys(cl.members)) {
		mem := cl.members[r]
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := mem.cli.Status(sctx, mem.client)
		cancel()
		if err != nil {
			return "", fmt.Sprintf("%s: %v", r, err)
		}
		ids[st.Header.MemberId] = r
		if st.Leader == 0 {
			return "", r + ": no leader yet"
		}
		if leader != 0 && st.Leader != leader {
			return "", "members name different leaders"
		}
		leader = st.Leader
	}
	region, ok := ids[leader]
	if !ok {
		return "", "the leader is not among the members"
	}
	return region, ""
}

// op returns the NewOp of etcd operation name from region, through that
// region's member.
func (cl *etcdCluster) op(name, region string, b *bench) NewOp {
	cli := cl.members[region].cli
	return func(client int) Op {
		keys := newKeyGen(b.run, region, client)
		val := string(value)
		switch name {
		case "put":
			return func(ctx context.Context) (time.Duration, error) {
				_, err := cli.Put(ctx, keys.next(), val)
				return 0, err
			}
		case "get":
			// Linearizable (etcd's default): a ReadIndex round to the leader.
			return func(ctx context.Context) (time.Duration, error) {
				_, err := cli.Get(ctx, keys.next())
				return 0, err
			}
		case "put-if-absent":
			return func(ctx context.Context) (time.Duration, error) {
				k := "bench/" + b.run + "/claims/n" + strconv.FormatUint(b.seq.Add(1), 10)
				res, err := cli.Txn(ctx).
					If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
					Then(clientv3.OpPut(k, region)).
					Commit()
				if err != nil {
					return 0, err
				}
				if !res.Succeeded {
					return 0, fmt.Errorf("put-if-absent %s: the key exists", k)
				}
				return 0, nil
			}
		}
		panic("wanbench: unknown etcd op " + name)
	}
}

// Close stops every member (SIGTERM, then SIGKILL after 10s) and proxy.
func (cl *etcdCluster) Close() {
	for _, mem := range cl.members {
		if mem.cli != nil {
			mem.cli.Close()
		}
		if mem.cmd != nil && mem.cmd.Process != nil && mem.exited != nil {
			mem.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-mem.exited:
			case <-time.After(10 * time.Second):
				mem.cmd.Process.Kill()
				<-mem.exited
			}
		}
		if mem.proxy != nil {
			mem.proxy.Close()
		}
	}
}
