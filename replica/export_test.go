package replica_test

import (
	"testing"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/replica"
)

// futureToken extends a token with writes of a region this node has not seen.
func futureToken(t *testing.T, token string, node *replica.Node) string {
	t.Helper()
	tok, err := clocks.DecodeToken(token, node.ClusterID())
	if err != nil {
		t.Fatal(err)
	}
	tok.Vector = tok.Vector.Merge(clocks.Vector{"eu-west": 4})
	return tok.Encode()
}
