package replica_test

import (
	"testing"

	"github.com/google/uuid"
)

// TestKeysMayHoldNUL: a key is any valid UTF-8 of 1 to MaxKeyBytes bytes,
// NUL included (U+0000 is valid UTF-8, and JSON carries it as \u0000).
// Storage escapes it, so a key with a NUL is its own key: it neither
// shadows nor is shadowed by the key it extends or the one it is a prefix
// of.
func TestKeysMayHoldNUL(t *testing.T) {
	r := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", uuid.New(), nil)
	keys := map[string]string{"a": "plain", "a\x00": "trailing nul", "a\x00b": "inner nul", "a\x01": "one", "\x00": "only nul"}
	token := ""
	for k, v := range keys {
		token = mustPut(t, r, k, v, token, "").CausalToken
	}
	for k, want := range keys {
		got := mustGet(t, r, k, token)
		if !got.Found || string(got.Value) != want || len(got.Siblings) > 1 {
			t.Errorf("get %q = found %v %q (%d siblings), want %q", k, got.Found, got.Value, len(got.Siblings), want)
		}
	}
}
