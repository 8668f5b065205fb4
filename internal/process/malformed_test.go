package process_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMalformedBodiesAreInvalidArgument: bytes that are not a well-formed
// message envelope, sent to a unary method, a server stream and a bidi
// stream over gRPC, gRPC-Web and the Connect streaming protocol, are
// answered `invalid_argument` saying the request is malformed — never
// `unimplemented`, `internal` or `unknown`.
func TestMalformedBodiesAreInvalidArgument(t *testing.T) {
	base, node := startServer(t)
	client := h2cClient()
	bodies := map[string][]byte{
		"empty":               {},
		"incomplete envelope": []byte("abc"),
		"truncated message":   {0, 0, 0, 0, 9, 1, 2},
	}
	methods := []string{
		"/causeway.v1.KVService/Put",                // unary
		"/causeway.v1.ReplicationService/Snapshot",  // server stream
		"/causeway.v1.ReplicationService/Replicate", // bidi stream
	}
	for _, ct := range []string{"application/grpc", "application/grpc-web+proto", "application/connect+proto"} {
		for _, method := range methods {
			if ct == "application/connect+proto" && strings.HasSuffix(method, "/Put") {
				continue // unary Connect has no envelope: application/proto bodies are checked elsewhere
			}
			for name, body := range bodies {
				req, _ := http.NewRequest(http.MethodPost, base+method, bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				if strings.HasPrefix(ct, "application/grpc") {
					req.Header.Set("Te", "trailers")
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var code, msg string
				switch {
				case strings.HasPrefix(ct, "application/grpc-web"):
					// Trailers-only: the status is in the headers.
					code, msg = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
					if code == "" { // or in the body's trailer frame
						code, msg = grpcWebTrailer(raw, "grpc-status"), grpcWebTrailer(raw, "grpc-message")
					}
				case strings.HasPrefix(ct, "application/grpc"):
					code, msg = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
					if code == "" {
						code, msg = res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
					}
				default:
					if bytes.Contains(raw, []byte(`"code":"invalid_argument"`)) {
						code = "3"
					}
					msg = string(raw)
				}
				if code != "3" || !strings.Contains(msg, "malformed request") {
					t.Errorf("%s %s, %s body: status %q %q (HTTP %d %q); want invalid_argument, malformed request",
						ct, method, name, code, msg, res.StatusCode, raw)
				}
			}
		}
	}
	if v := node.Status().Vector; len(v) != 0 {
		t.Fatalf("malformed requests wrote something: %v", v)
	}
}

// grpcWebTrailer reads a trailer from a gRPC-Web body's trailer frame.
func grpcWebTrailer(body []byte, name string) string {
	for len(body) >= 5 {
		n := int(body[1])<<24 | int(body[2])<<16 | int(body[3])<<8 | int(body[4])
		if len(body) < 5+n {
			return ""
		}
		frame := body[5 : 5+n]
		if body[0]&0x80 != 0 {
			for _, line := range strings.Split(string(frame), "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
					return strings.TrimSpace(v)
				}
			}
		}
		body = body[5+n:]
	}
	return ""
}
