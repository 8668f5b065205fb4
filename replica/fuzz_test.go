package replica

import (
	"bytes"
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/causewaydb/causeway/api"
)

// FuzzPutValidation feeds arbitrary requests to a node's write path: none
// may panic or fail as an internal error, a refused one writes nothing, and
// an accepted one reads back as written.
func FuzzPutValidation(f *testing.F) {
	f.Add("greeting", []byte("hello"), "", "")
	f.Add("", []byte("v"), "", "")
	f.Add("k\x00ey", []byte{}, "", "not-a-uuid")
	f.Add("k", []byte("v"), "AQ", "")
	f.Add("\xff\xfe", []byte("v"), "", "8f14e45f-ceea-467e-9a3b-0c1a2b3c4d5e")
	f.Add("k", []byte("v"), "garbage!", "")
	n, err := Open(Config{Region: "us-east", DataDir: "fuzz", FS: vfs.NewMem(), Logger: discardLogger(),
		CausalWaitTimeout: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	f.Fuzz(func(t *testing.T, key string, value []byte, token, requestID string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		before, _ := n.durableVector()
		res, err := n.Put(ctx, key, value, token, requestID)
		if err != nil {
			switch api.Code(err) {
			case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeUnavailable:
			default:
				t.Fatalf("Put(%q, %d bytes, %q, %q): %v (code %v)", key, len(value), token, requestID, err, api.Code(err))
			}
			if after, _ := n.durableVector(); !after.Equal(before) {
				t.Fatalf("a refused write changed the vector %v -> %v", before, after)
			}
			return
		}
		got, _, err := n.Get(ctx, key, res.Token, false)
		if err != nil || !got.Found || !bytes.Equal(got.Version.Value, value) {
			t.Fatalf("accepted write of %q did not read back: %+v, %v", key, got, err)
		}
	})
}
