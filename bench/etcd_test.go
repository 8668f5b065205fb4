package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
)

// etcd, the yardstick of the linearizable tier's throughput: a 3-member
// cluster of real etcd processes on 127.0.0.1, spoken to without adding
// etcd's client to go.mod, either through the JSON gateway etcd 3.4 serves
// on its client port or through its gRPC API with hand-encoded protobuf.
// etcd fsyncs its write-ahead log before acknowledging, as Causeway's Raft
// log does, so both pay for durability.

// etcdInstall is how to get etcd, for the message of a skipped row.
const etcdInstall = "install Debian's etcd-server (apt-get install -y etcd-server, which gives /usr/bin/etcd) or put an etcd binary on PATH; `make bench-linear` installs it when it can"

// etcdBinary finds the etcd server binary.
func etcdBinary() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", errors.New("etcd not found")
}

// etcdCluster is a running etcd cluster.
type etcdCluster struct {
	clients []string // client URLs, by member
	pids    []int    // process ids, by member
	leader  string   // client URL of the member that leads
}

// etcdReadyTimeout bounds the wait for the members to elect a leader.
const etcdReadyTimeout = 60 * time.Second

// etcdStopTimeout is how long a member gets to exit after SIGTERM before
// it is killed.
const etcdStopTimeout = 10 * time.Second

// startEtcd starts members etcd processes forming one cluster, with data
// and logs under b's temporary directory, waits until they have a leader
// and stops them all in b's cleanup. It skips b when etcd is not installed.
func startEtcd(b *testing.B, members int) (*etcdCluster, error) {
	bin, err := etcdBinary()
	if err != nil {
		b.Skipf("etcd not found: %s", etcdInstall)
	}
	ports, err := freePorts(2 * members)
	if err != nil {
		return nil, err
	}
	dir := b.TempDir()
	names := make([]string, members)
	peers := make([]string, members)
	cl := &etcdCluster{clients: make([]string, members)}
	for i := range members {
		names[i] = fmt.Sprintf("m%d", i)
		cl.clients[i] = fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peers[i] = fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
	}
	initial := make([]string, members)
	for i := range members {
		initial[i] = names[i] + "=" + peers[i]
	}
	logs := make([]string, members)
	exited := make([]chan struct{}, members)
	for i := range members {
		logs[i] = filepath.Join(dir, names[i]+".log")
		logFile, err := os.Create(logs[i])
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin,
			"--name", names[i],
			"--data-dir", filepath.Join(dir, names[i]),
			"--listen-client-urls", cl.clients[i],
			"--advertise-client-urls", cl.clients[i],
			"--listen-peer-urls", peers[i],
			"--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "causeway-bench",
			"--logger", "zap",
			"--log-level", "error",
		)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return nil, fmt.Errorf("start etcd %s: %w", names[i], err)
		}
		cl.pids = append(cl.pids, cmd.Process.Pid)
		exited[i] = make(chan struct{})
		go func() {
			cmd.Wait()
			logFile.Close()
			close(exited[i])
		}()
		b.Cleanup(func() { stopProcess(b, cmd.Process, exited[i]) })
	}

	httpClient := &http.Client{Timeout: 5 * time.Second}
	defer httpClient.CloseIdleConnections()
	deadline := time.Now().Add(etcdReadyTimeout)
	for {
		leader, why := cl.findLeader(httpClient)
		if why == "" {
			cl.leader = leader
			return cl, nil
		}
		for i := range members {
			select {
			case <-exited[i]:
				return nil, fmt.Errorf("etcd %s exited: %s", names[i], tail(logs[i]))
			default:
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("etcd cluster not ready after %v: %s", etcdReadyTimeout, why)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// findLeader asks every member for its status and returns the client URL
// of the leader they all name, or why there is none yet.
func (cl *etcdCluster) findLeader(client *http.Client) (leaderURL, why string) {
	var leaderID string
	for _, url := range cl.clients {
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if err := postJSON(context.Background(), client, url+"/v3/maintenance/status", struct{}{}, &st); err != nil {
			return "", fmt.Sprintf("%s: %v", url, err)
		}
		switch {
		case st.Leader == "" || st.Leader == "0":
			return "", url + ": no leader yet"
		case leaderID != "" && st.Leader != leaderID:
			return "", "members name different leaders"
		}
		leaderID = st.Leader
		if st.Header.MemberID == st.Leader {
			leaderURL = url
		}
	}
	if leaderURL == "" {
		return "", "no member says it is the leader " + leaderID
	}
	return leaderURL, ""
}

// etcdValue is the value every put-if-absent writes: the owner, as a
// Causeway claim records it.
var etcdValue = []byte("bench")

// etcdKey is the key of put-if-absent number n.
func etcdKey(n uint64) []byte { return []byte("bench/claims/n" + strconv.FormatUint(n, 10)) }

// putIfAbsentJSON is put-if-absent through etcd's JSON gateway, on the
// leader: POST /v3/kv/txn with the transaction
// {compare: create_revision(key) == 0, success: put(key, value)}, keys and
// values base64-encoded. It fails unless the transaction succeeded.
func (cl *etcdCluster) putIfAbsentJSON(client *http.Client, seq *atomic.Uint64) op {
	url := cl.leader + "/v3/kv/txn"
	type kv struct {
		Key   []byte `json:"key"`             // base64, as encoding/json writes []byte
		Value []byte `json:"value,omitempty"` // base64
	}
	type compare struct {
		Key            []byte `json:"key"`
		Target         string `json:"target"`
		Result         string `json:"result"`
		CreateRevision string `json:"create_revision"` // int64 in proto3 JSON is a string
	}
	type requestOp struct {
		RequestPut kv `json:"request_put"`
	}
	type txn struct {
		Compare []compare   `json:"compare"`
		Success []requestOp `json:"success"`
	}
	return func(ctx context.Context, _, _ int) error {
		key := etcdKey(seq.Add(1))
		var res struct {
			Succeeded bool `json:"succeeded"`
		}
		err := postJSON(ctx, client, url, txn{
			Compare: []compare{{Key: key, Target: "CREATE", Result: "EQUAL", CreateRevision: "0"}},
			Success: []requestOp{{RequestPut: kv{Key: key, Value: etcdValue}}},
		}, &res)
		if err != nil {
			return err
		}
		if !res.Succeeded {
			return fmt.Errorf("put-if-absent of %s: the key already existed", key)
		}
		return nil
	}
}

// postJSON posts req as JSON to url and decodes the answer into res.
func postJSON(ctx context.Context, client *http.Client, url string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(out))
	}
	return json.Unmarshal(out, res)
}

// etcdTxnProcedure is the gRPC method of an etcd transaction.
const etcdTxnProcedure = "/etcdserverpb.KV/Txn"

// Field numbers of etcd's etcdserverpb messages (api/etcdserverpb/rpc.proto),
// for the few fields a put-if-absent uses.
const (
	txnRequestCompare     protowire.Number = 1 // TxnRequest.compare, repeated Compare
	txnRequestSuccess     protowire.Number = 2 // TxnRequest.success, repeated RequestOp
	compareTarget         protowire.Number = 2 // Compare.target, CompareTarget
	compareKey            protowire.Number = 3 // Compare.key, bytes
	compareCreateRevision protowire.Number = 5 // Compare.create_revision, int64 in oneof target_union
	requestOpRequestPut   protowire.Number = 2 // RequestOp.request_put, PutRequest in oneof request
	putRequestKey         protowire.Number = 1 // PutRequest.key
	putRequestValue       protowire.Number = 2 // PutRequest.value
	txnResponseSucceeded  protowire.Number = 2 // TxnResponse.succeeded, bool
	// CompareTarget.CREATE. Compare.result is left out: EQUAL is 0,
	// proto3's default, which is not encoded.
	compareTargetCreate uint64 = 1
)

// encodePutIfAbsent encodes the TxnRequest
// {compare: [{target: CREATE, result: EQUAL, key, create_revision: 0}],
// success: [{request_put: {key, value}}]}.
func encodePutIfAbsent(key, value []byte) []byte {
	var cmp []byte
	cmp = protowire.AppendTag(cmp, compareTarget, protowire.VarintType)
	cmp = protowire.AppendVarint(cmp, compareTargetCreate)
	cmp = protowire.AppendTag(cmp, compareKey, protowire.BytesType)
	cmp = protowire.AppendBytes(cmp, key)
	// A oneof member is encoded even when zero: its presence selects the
	// comparison's operand.
	cmp = protowire.AppendTag(cmp, compareCreateRevision, protowire.VarintType)
	cmp = protowire.AppendVarint(cmp, 0)

	var put []byte
	put = protowire.AppendTag(put, putRequestKey, protowire.BytesType)
	put = protowire.AppendBytes(put, key)
	put = protowire.AppendTag(put, putRequestValue, protowire.BytesType)
	put = protowire.AppendBytes(put, value)
	var reqOp []byte
	reqOp = protowire.AppendTag(reqOp, requestOpRequestPut, protowire.BytesType)
	reqOp = protowire.AppendBytes(reqOp, put)

	var txn []byte
	txn = protowire.AppendTag(txn, txnRequestCompare, protowire.BytesType)
	txn = protowire.AppendBytes(txn, cmp)
	txn = protowire.AppendTag(txn, txnRequestSuccess, protowire.BytesType)
	txn = protowire.AppendBytes(txn, reqOp)
	return txn
}

// txnSucceeded reads TxnResponse.succeeded.
func txnSucceeded(b []byte) (bool, error) {
	succeeded := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		b = b[n:]
		if num == txnResponseSucceeded && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false, protowire.ParseError(n)
			}
			succeeded = v != 0
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return succeeded, nil
}

// rawMessage is a protobuf message already encoded: with rawCodec, connect
// sends and receives it as it is.
type rawMessage struct{ b []byte }

// rawCodec stands in for connect's protobuf codec (it takes the name
// "proto") for messages of types this module has no generated code for.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(m any) ([]byte, error) {
	r, ok := m.(*rawMessage)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", m)
	}
	return r.b, nil
}

func (rawCodec) Unmarshal(b []byte, m any) error {
	r, ok := m.(*rawMessage)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", m)
	}
	r.b = append(r.b[:0], b...)
	return nil
}

// putIfAbsentGRPC is the same transaction as putIfAbsentJSON through
// etcd's gRPC API on the leader (cleartext HTTP/2), as etcd's own Go
// client sends it.
func (cl *etcdCluster) putIfAbsentGRPC(client *http.Client, seq *atomic.Uint64) op {
	txn := connect.NewClient[rawMessage, rawMessage](client, cl.leader+etcdTxnProcedure,
		connect.WithGRPC(), connect.WithCodec(rawCodec{}))
	return func(ctx context.Context, _, _ int) error {
		key := etcdKey(seq.Add(1))
		res, err := txn.CallUnary(ctx, connect.NewRequest(&rawMessage{b: encodePutIfAbsent(key, etcdValue)}))
		if err != nil {
			return err
		}
		ok, err := txnSucceeded(res.Msg.b)
		if err != nil {
			return fmt.Errorf("decode TxnResponse: %w", err)
		}
		if !ok {
			return fmt.Errorf("put-if-absent of %s: the key already existed", key)
		}
		return nil
	}
}

// freePorts returns n distinct loopback ports free at the time of the
// call.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// stopProcess ends p with SIGTERM, then SIGKILL if it has not exited (the
// exited channel closes) within etcdStopTimeout.
func stopProcess(b *testing.B, p *os.Process, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.Errorf("stop etcd (pid %d): %v", p.Pid, err)
	}
	select {
	case <-exited:
	case <-time.After(etcdStopTimeout):
		p.Kill()
		<-exited
	}
}

// tail returns the last lines of the log at path, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(bytes.TrimSpace(b))
}

func TestEncodePutIfAbsent(t *testing.T) {
	got := encodePutIfAbsent([]byte("k"), []byte("v"))
	// compare: target=CREATE (0x10 0x01), key "k" (0x1a 0x01 'k'),
	// create_revision=0 (0x28 0x00); success: request_put {key "k", value "v"}.
	want := []byte{
		0x0a, 0x07, 0x10, 0x01, 0x1a, 0x01, 'k', 0x28, 0x00,
		0x12, 0x08, 0x12, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v',
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodePutIfAbsent = % x, want % x", got, want)
	}
}

func TestTxnSucceeded(t *testing.T) {
	header := []byte{0x0a, 0x04, 0x08, 0x01, 0x10, 0x02} // header {cluster_id: 1, member_id: 2}
	for _, tt := range []struct {
		name string
		msg  []byte
		want bool
	}{
		{"empty: proto3 omits false", nil, false},
		{"header only", header, false},
		{"succeeded after header", append(append([]byte{}, header...), 0x10, 0x01), true},
		{"succeeded then responses", []byte{0x10, 0x01, 0x1a, 0x02, 0x12, 0x00}, true},
	} {
		got, err := txnSucceeded(tt.msg)
		if err != nil || got != tt.want {
			t.Errorf("%s: txnSucceeded = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := txnSucceeded([]byte{0x10}); err == nil {
		t.Error("truncated message: no error")
	}
}
