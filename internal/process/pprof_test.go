package process_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/process"
	"github.com/causewaydb/causeway/replica"
)

// TestPprofOnlyWhenAsked: Go's profiling handlers are served only by a
// process configured with Pprof.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		p, err := process.Open(process.Config{
			Node:  replica.Config{Region: "us-east", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)},
			Pprof: on,
		})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- p.Serve(ln) }()
		res, err := http.Get("http://" + ln.Addr().String() + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.Shutdown(ctx)
		cancel()
		<-served
		served200 := res.StatusCode == http.StatusOK && strings.Contains(string(body), "process.test")
		if served200 != on {
			t.Errorf("Pprof %v: /debug/pprof/cmdline answered HTTP %d %.80q", on, res.StatusCode, body)
		}
	}
}
