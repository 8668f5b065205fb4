package supervisor

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// servingLine is the readiness line `causeway serve` prints on stdout once
// it listens: `causeway: region R serving on http://ADDR (data in DIR)`
// (https:// with TLS on).
var servingLine = regexp.MustCompile(`^causeway: region (\S+) serving on (https?)://(\S+) \(data in (.+)\)$`)

// Serving is what a readiness line says.
type Serving struct {
	Region  string
	Addr    string // host:port of the API
	DataDir string
	TLS     bool // the API is served over TLS
}

// URL is the base URL of the API.
func (s Serving) URL() string {
	if s.TLS {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// ParseServingLine parses the readiness line of `causeway serve`; ok is
// false for any other line.
func ParseServingLine(line string) (s Serving, ok bool) {
	m := servingLine.FindStringSubmatch(line)
	if m == nil {
		return Serving{}, false
	}
	return Serving{Region: m[1], TLS: m[2] == "https", Addr: m[3], DataDir: m[4]}, true
}

// AwaitCausalServing polls AdminService/Status at url until the node's causal
// tier serves clients (causal_state "serving"), for at most limit. The error
// says what the node reported last.
func AwaitCausalServing(ctx context.Context, client *http.Client, url string, limit time.Duration) error {
	admin := causewayv1connect.NewAdminServiceClient(client, url)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := admin.Status(rctx, connect.NewRequest(&v1.StatusRequest{}))
		rcancel()
		if err == nil && res.Msg.GetCausalState() == "serving" {
			return nil
		}
		why := fmt.Sprint(err)
		if err == nil {
			why = res.Msg.GetCausalState() + ": " + res.Msg.GetCausalStateReason()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("does not serve after %v (%s)", limit, why)
		case <-tick.C:
		}
	}
}
