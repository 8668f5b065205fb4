package process_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/replica"
)

// startServer runs a node behind the process's HTTP server on 127.0.0.1
// and stops both when the test ends.
func startServer(t *testing.T, mutate ...func(*replica.Config)) (baseURL string, node *replica.Node) {
	t.Helper()
	cfg := replica.Config{
		Region:            "us-east",
		DataDir:           t.TempDir(),
		Logger:            slog.New(slog.DiscardHandler),
		CausalWaitTimeout: 100 * time.Millisecond,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	node, err := replica.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	srv := process.NewServer(node)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		// h2c clients keep connections up to a second after GOAWAY; tests
		// do not wait for that.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		node.Close()
	})
	return "http://" + ln.Addr().String(), node
}

// h2cClient speaks HTTP/2 without TLS, as gRPC clients do.
func h2cClient() *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: protocols}}
}

// TestUnknownMethodInEveryProtocol: a method no service defines is
// `unimplemented` for Connect, gRPC and gRPC-Web clients alike, and a curl
// user is told what the node serves.
func TestUnknownMethodInEveryProtocol(t *testing.T) {
	base, _ := startServer(t)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		client *http.Client
		opts   []connect.ClientOption
	}{
		{"connect+proto/http1", http.DefaultClient, nil},
		{"connect+json/http1", http.DefaultClient, []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc/h2c", h2cClient(), []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web/http1", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/causeway.v1.KVService/Nope", "/causeway.v1.Nope/Get"} {
				unknown := connect.NewClient[v1.GetRequest, v1.GetResponse](c.client, base+path, c.opts...)
				_, err := unknown.CallUnary(ctx, connect.NewRequest(&v1.GetRequest{Key: "k"}))
				if connect.CodeOf(err) != connect.CodeUnimplemented || !strings.Contains(err.Error(), "unknown method "+path) {
					t.Fatalf("%s: %v, want unimplemented naming the method", path, err)
				}
			}
		})
	}
	for _, c := range []struct{ name, path, message string }{
		{"unknown method", "/causeway.v1.KVService/Nope", "causeway.v1.KVService/{Put,Get,Delete,ReadMany,WriteMany,Scan,Watch}"},
		{"unknown service", "/causeway.v1.Nope/Get", "unknown method"},
		{"replication stream listed nowhere", "/causeway.v1.Nope/Get", "causeway.v1.AdminService/{"},
	} {
		t.Run("curl/"+c.name, func(t *testing.T) {
			res, err := http.Post(base+c.path, "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusNotFound || body["code"] != "unimplemented" || !strings.Contains(body["message"], c.message) {
				t.Fatalf("HTTP %d %v, want 404 unimplemented saying %q", res.StatusCode, body, c.message)
			}
			if strings.Contains(body["message"], "ReplicationService") {
				t.Errorf("the answer lists the replication stream between regions, which is not for clients: %s", body["message"])
			}
		})
	}
}

func TestHealthReflectionMetrics(t *testing.T) {
	base, _ := startServer(t)
	ctx := context.Background()

	health := grpchealth.NewClient(h2cClient(), base, connect.WithGRPC())
	for _, svc := range []string{"", causewayv1connect.KVServiceName, causewayv1connect.AdminServiceName, causewayv1connect.ReplicationServiceName} {
		res, err := health.Check(ctx, &grpchealth.CheckRequest{Service: svc})
		if err != nil || res.Status != grpchealth.StatusServing {
			t.Fatalf("health of %q = %v, %v; want serving", svc, res, err)
		}
	}
	if _, err := health.Check(ctx, &grpchealth.CheckRequest{Service: "causeway.v1.Nope"}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("health of an unknown service: %v, want not_found", err)
	}

	refl := grpcreflect.NewClient(h2cClient(), base, connect.WithGRPC())
	stream := refl.NewStream(ctx)
	names, err := stream.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	stream.Close()
	for _, want := range []string{causewayv1connect.KVServiceName, causewayv1connect.AdminServiceName} {
		found := false
		for _, n := range names {
			found = found || string(n) == want
		}
		if !found {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}

	kv := causewayv1connect.NewKVServiceClient(http.DefaultClient, base)
	if _, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")})); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty key: %v", err)
	}
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`causeway_request_duration_seconds_count{code="ok",procedure="/causeway.v1.KVService/Put",region="us-east"} 1`,
		`causeway_request_duration_seconds_count{code="invalid_argument",procedure="/causeway.v1.KVService/Get",region="us-east"} 1`,
		`causeway_local_writes_durable{region="us-east"} 1`,
		`causeway_store_size_bytes{region="us-east"}`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestHealthzReadyz: plain-HTTP probes for load balancers that cannot
// speak gRPC health; readiness, and gRPC health of the KV service, follow
// the causal tier's state.
func TestHealthzReadyz(t *testing.T) {
	base, node := startServer(t, func(c *replica.Config) { c.FaultInjection = true })
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	health := grpchealth.NewClient(h2cClient(), base, connect.WithGRPC())
	healthOf := func(svc string) grpchealth.Status {
		t.Helper()
		res, err := health.Check(context.Background(), &grpchealth.CheckRequest{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz of a serving node: %d %q", code, body)
	}
	if err := node.SetDrain(true); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: drained: ") {
		t.Errorf("/readyz of a drained node: %d %q; want 503 saying why", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz of a drained node: %d; it is alive", code)
	}
	for svc, want := range map[string]grpchealth.Status{
		"":                                       grpchealth.StatusNotServing,
		causewayv1connect.KVServiceName:          grpchealth.StatusNotServing,
		causewayv1connect.AdminServiceName:       grpchealth.StatusServing, // an operator can still ask it
		causewayv1connect.ReplicationServiceName: grpchealth.StatusServing,
	} {
		if got := healthOf(svc); got != want {
			t.Errorf("gRPC health of %q on a drained node: %v, want %v", svc, got, want)
		}
	}
	if err := node.SetDrain(false); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz once undrained: %d %q", code, body)
	}
	if got := healthOf(causewayv1connect.KVServiceName); got != grpchealth.StatusServing {
		t.Errorf("gRPC health of the KV service once undrained: %v", got)
	}
}

// TestRootListsTheAPI: GET / lists every method a client may call, from
// the services' descriptors (it used to list the first three by hand).
func TestRootListsTheAPI(t *testing.T) {
	base, node := startServer(t)
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, want := range []string{
		"Causeway node " + node.NodeID() + " (region us-east)",
		"/causeway.v1.KVService/{Put,Get,Delete,ReadMany,WriteMany,Scan,Watch}",
		"/causeway.v1.AdminService/{Status,SetLink,RemoveRegion,SetDrain,Backup}",
		"GET /metrics", "GET /readyz",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("GET / does not list %s:\n%s", want, raw)
		}
	}
	if strings.Contains(string(raw), "ReplicationService") {
		t.Errorf("GET / lists the replication stream between regions, which is not for clients:\n%s", raw)
	}
}
