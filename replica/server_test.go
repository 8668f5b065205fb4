package replica_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/causewaydb/causeway/internal/link"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/common/expfmt"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/replica"
)

// startServer runs a node and its server on 127.0.0.1 and stops both when
// the test ends.
func startServer(t *testing.T, mutate ...func(*replica.Config)) (baseURL string, node *replica.Node) {
	t.Helper()
	cfg := replica.Config{
		Region:            "us-east",
		DataDir:           t.TempDir(),
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
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
		t.Fatal(err)
	}
	srv := replica.NewServer(node)
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

func TestProtocols(t *testing.T) {
	base, _ := startServer(t)
	clients := []struct {
		name string
		kv   causewayv1connect.KVServiceClient
	}{
		{"connect+proto/http1", causewayv1connect.NewKVServiceClient(http.DefaultClient, base)},
		{"connect+json/http1", causewayv1connect.NewKVServiceClient(http.DefaultClient, base, connect.WithProtoJSON())},
		{"grpc/h2c", causewayv1connect.NewKVServiceClient(h2cClient(), base, connect.WithGRPC())},
		{"grpc-web/http1", causewayv1connect.NewKVServiceClient(http.DefaultClient, base, connect.WithGRPCWeb())},
	}
	ctx := context.Background()
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			key := "greeting-" + c.name
			put, err := c.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte("hello")}))
			if err != nil {
				t.Fatal(err)
			}
			if put.Msg.GetVersion().GetOriginRegion() != "us-east" || put.Msg.GetCausalToken() == "" {
				t.Fatalf("put response %v lacks version or token", put.Msg)
			}
			get, err := c.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: put.Msg.CausalToken}))
			if err != nil {
				t.Fatal(err)
			}
			if !get.Msg.Found || string(get.Msg.Value) != "hello" || get.Msg.Version.GetOriginSeq() != put.Msg.Version.GetOriginSeq() {
				t.Fatalf("get = %v, want hello at %v", get.Msg, put.Msg.Version)
			}
			del, err := c.kv.Delete(ctx, connect.NewRequest(&v1.DeleteRequest{Key: key, CausalToken: get.Msg.CausalToken}))
			if err != nil {
				t.Fatal(err)
			}
			get, err = c.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: del.Msg.CausalToken}))
			if err != nil || get.Msg.Found {
				t.Fatalf("get after delete = %v, %v; want not found", get.Msg, err)
			}
			// Errors cross every protocol with their code.
			_, err = c.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: ""}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("empty key: %v, want invalid_argument", err)
			}
		})
	}
}

// postJSON sends what `curl -H 'Content-Type: application/json' -d body` sends.
func postJSON(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response to %s is not JSON: %q", url, raw)
	}
	return res.StatusCode, out
}

func TestCurlJSON(t *testing.T) {
	base, _ := startServer(t)
	status, put := postJSON(t, base+"/causeway.v1.KVService/Put", `{"key":"greeting","value":"aGVsbG8="}`)
	if status != http.StatusOK {
		t.Fatalf("put: HTTP %d %v", status, put)
	}
	status, get := postJSON(t, base+"/causeway.v1.KVService/Get", `{"key":"greeting"}`)
	if status != http.StatusOK || get["value"] != "aGVsbG8=" || get["found"] != true || get["causalToken"] == "" {
		t.Fatalf("get: HTTP %d %v", status, get)
	}
	version, _ := get["version"].(map[string]any)
	if version["originRegion"] != "us-east" || version["originSeq"] != "1" {
		t.Fatalf("get version = %v", version)
	}
	status, st := postJSON(t, base+"/causeway.v1.AdminService/Status", `{}`)
	if status != http.StatusOK || st["region"] != "us-east" || st["vector"].(map[string]any)["us-east"] != "1" {
		t.Fatalf("status: HTTP %d %v", status, st)
	}
}

// TestBadInputOverHTTP checks each documented error as a curl user sees it,
// and that none of them writes anything.
func TestBadInputOverHTTP(t *testing.T) {
	base, node := startServer(t)
	put := base + "/causeway.v1.KVService/Put"
	value := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'v'}, n)) }
	cases := []struct {
		name, url, body string
		status          int
		code            string
		message         string
	}{
		{"empty key", put, `{"key":"","value":"dg=="}`, 400, "invalid_argument", "key is empty"},
		{"oversize key", put, `{"key":"` + strings.Repeat("k", replica.MaxKeyBytes+1) + `","value":"dg=="}`, 400, "invalid_argument", "limit is 1024 bytes"},
		{"oversize value", put, `{"key":"k","value":"` + value(replica.MaxValueBytes+1) + `"}`, 400, "invalid_argument", "limit is 1048576 bytes"},
		{"oversize request", put, `{"key":"k","value":"` + value(replica.MaxRequestBytes) + `"}`, 429, "resource_exhausted", "larger than configured max"},
		{"malformed JSON", put, `{"key":`, 400, "invalid_argument", "unmarshal"},
		{"wrong field type", put, `{"key":42}`, 400, "invalid_argument", "unmarshal"},
		{"value not base64", put, `{"key":"k","value":"***"}`, 400, "invalid_argument", "unmarshal"},
		{"garbage token", put, `{"key":"k","value":"dg==","causalToken":"garbage!"}`, 400, "invalid_argument", "causal token"},
		{"foreign token", put, `{"key":"k","value":"dg==","causalToken":"AfnHfbbayUFdhaNIjqTyKNHxx_i2oDQABWxvY2FsAQVsb2NhbAHxLpeX"}`, 400, "invalid_argument", "cluster"},
		{"bad request id", put, `{"key":"k","value":"dg==","requestId":"42"}`, 400, "invalid_argument", "not a UUID"},
		{"misspelt field", put, `{"key":"k","valeu":"aGk="}`, 400, "invalid_argument", `unknown field "valeu"`},
		{"unknown enum name", base + "/causeway.v1.AdminService/SetLink", `{"region":"eu-west","cut":"BOTH"}`, 400, "invalid_argument", `"BOTH"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := postJSON(t, c.url, c.body)
			if status != c.status || body["code"] != c.code {
				t.Fatalf("HTTP %d %v, want HTTP %d code %s", status, body, c.status, c.code)
			}
			if msg, _ := body["message"].(string); !strings.Contains(msg, c.message) {
				t.Fatalf("message %q does not say %q", msg, c.message)
			}
		})
	}
	if v := node.Status().Vector; len(v) != 0 {
		t.Fatalf("bad input wrote something: vector %v", v)
	}
}

// TestRequestMetrics: each request is counted by procedure and code in the
// node's registry (what the process serves on /metrics), beside the
// store's figures.
func TestRequestMetrics(t *testing.T) {
	base, node := startServer(t)
	ctx := context.Background()
	kv := causewayv1connect.NewKVServiceClient(http.DefaultClient, base)
	if _, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")})); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty key: %v", err)
	}
	raw := metricsText(t, node)
	for _, want := range []string{
		`causeway_request_duration_seconds_count{code="ok",procedure="/causeway.v1.KVService/Put",region="us-east"} 1`,
		`causeway_request_duration_seconds_count{code="invalid_argument",procedure="/causeway.v1.KVService/Get",region="us-east"} 1`,
		`causeway_local_writes_durable{region="us-east"} 1`,
		`causeway_store_size_bytes{region="us-east"}`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// metricsText is node's registry in the Prometheus text format, as
// /metrics serves it.
func metricsText(t *testing.T, node *replica.Node) string {
	t.Helper()
	families, err := node.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&out, f); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}

func TestCausalWaitOverTheWire(t *testing.T) {
	base, node := startServer(t)
	kv := causewayv1connect.NewKVServiceClient(http.DefaultClient, base)
	ctx := context.Background()
	put, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")}))
	if err != nil {
		t.Fatal(err)
	}
	// A token naming a write this region has not seen yet (as one from a
	// region whose writes have not arrived would) gets unavailable, naming
	// what is missing, within the request deadline.
	future := futureToken(t, put.Msg.CausalToken, node)
	ctx, cancel := context.WithTimeout(ctx, time.Second) // the server answers 250ms before it
	defer cancel()
	_, err = kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k", CausalToken: future}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "eu-west writes 1..4") {
		t.Fatalf("err = %v, want unavailable naming eu-west writes 1..4", err)
	}
}

// TestClientStormIsBounded: past MaxInflightRequests, requests are refused
// at once with resource_exhausted; those admitted still complete.
func TestClientStormIsBounded(t *testing.T) {
	base, node := startServer(t, func(c *replica.Config) {
		c.MaxInflightRequests = 2
		c.CausalWaitTimeout = time.Minute
	})
	kv := causewayv1connect.NewKVServiceClient(http.DefaultClient, base)
	ctx := context.Background()
	put, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")}))
	if err != nil {
		t.Fatal(err)
	}
	// Two requests wait for this region's next write, which only the test
	// makes, so they hold their slots until it does.
	tok, err := clocks.DecodeToken(put.Msg.CausalToken, node.ClusterID())
	if err != nil {
		t.Fatal(err)
	}
	tok.Vector["us-east"] = 2
	waiting := tok.Encode()
	done := make(chan error, 2)
	for range 2 {
		go func() {
			for {
				_, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k", CausalToken: waiting}))
				// The probe below may hold a slot for a moment: retry, as a
				// client refused for overload would.
				if connect.CodeOf(err) != connect.CodeResourceExhausted {
					done <- err
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	// Until both hold their slots, a third may still be admitted; once they
	// do, it is refused.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k"}))
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third request with two in flight and a limit of 2: %v, want resource_exhausted", err)
		}
		time.Sleep(5 * time.Millisecond) // polling until the two hold their slots
	}
	// The write they wait for, made on the node directly (the API is full).
	if _, err := node.Put(ctx, "k", []byte("v2"), "", ""); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("admitted request: %v, want it to complete", err)
		}
	}
	if _, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: "k"})); err != nil {
		t.Fatalf("after the storm: %v", err)
	}
}

// TestCompressedRequestStopsAtTheLimit sends a small gzip body that
// inflates to 64 MiB: it is refused as too large without being inflated to
// the end (before the bound, the answer reported the full inflated size,
// which took inflating all of it).
func TestCompressedRequestStopsAtTheLimit(t *testing.T) {
	base, node := startServer(t)
	var body bytes.Buffer
	gz := gzip.NewWriter(&body)
	_, _ = gz.Write([]byte(`{"key":"k","value":"`))
	chunk := bytes.Repeat([]byte{'A'}, 1<<20)
	for range 64 {
		_, _ = gz.Write(chunk)
	}
	_, _ = gz.Write([]byte(`"}`))
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if body.Len() > replica.MaxRequestBytes {
		t.Fatalf("compressed body of %d bytes is over the limit itself", body.Len())
	}
	req, err := http.NewRequest(http.MethodPost, base+"/causeway.v1.KVService/Put", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	msg, _ := out["message"].(string)
	if out["code"] != "resource_exhausted" || !strings.Contains(msg, "inflates to more than") {
		t.Fatalf("HTTP %d %v; want resource_exhausted stopping at the limit, not after inflating it all", res.StatusCode, out)
	}
	if v := node.Status().Vector; len(v) != 0 {
		t.Fatalf("the refused request wrote something: vector %v", v)
	}
}

// TestLinkMetrics: the emulated links (what status lists) are in the
// node's metrics (/metrics) too, so a dashboard sees a cut as it happens.
func TestLinkMetrics(t *testing.T) {
	_, node := startServer(t, func(c *replica.Config) {
		c.FaultInjection = true
		// A peer that never answers (nothing listens on the discard port):
		// the link to it exists all the same.
		c.Peers = map[string]string{"eu-west": "127.0.0.1:9"}
	})
	// The peer is known once replication starts, as the server serves.
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := node.SetLink("eu-west", link.Link{Delay: 40 * time.Millisecond, CutOut: true})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		<-tick.C
	}
	raw := []byte(metricsText(t, node))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^causeway_link_cut\{direction="out",peer="eu-west"[^}]*\} 1$`),
		regexp.MustCompile(`(?m)^causeway_link_cut\{direction="in",peer="eu-west"[^}]*\} 0$`),
		regexp.MustCompile(`(?m)^causeway_link_delay_seconds\{peer="eu-west"[^}]*\} 0.04$`),
		regexp.MustCompile(`(?m)^causeway_link_sent_bytes_total\{peer="eu-west"[^}]*\} 0$`),
	} {
		if !want.Match(raw) {
			t.Errorf("metrics have no line matching %s", want)
		}
	}
}
