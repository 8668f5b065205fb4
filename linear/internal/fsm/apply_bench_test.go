package fsm

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// BenchmarkApply measures the state machine's cost per log entry for the
// workload of bench/'s linear throughput row: put-if-absent claims of
// distinct names ("n1", "n2", ... as bench/ names them), each with its own
// random request id (as the API stamps one when a client sends none), so
// every entry misses on its claim and its outcome and stores both. One op
// is one entry. The machine runs on a real directory, as a node's does,
// and the clock moves 1 ms every 4 entries (about the tier's rate under 64
// clients), so no outcome reaches its retention and no lease exists; past
// MaxOutcomes entries every one evicts the oldest outcome for the cap.
//
//	one:      one entry per Apply, as raft hands them over when lightly loaded
//	batch=64: ApplyBatch of 64 entries, as raft's BatchApplyCh delivers under load
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
	}{
		{"one", 1},
		{"batch=64", 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m, err := Open(b.TempDir(), vfs.Default, quietLogger())
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			ids := rand.NewChaCha8([32]byte{})
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				c := Command{
					Op:        OpClaim,
					RequestID: uuid.Must(uuid.NewRandomFromReader(ids)).String(),
					NowMs:     startMs + int64(i/4),
					Namespace: "bench",
					Name:      "n" + strconv.Itoa(i+1),
					Owner:     "bench",
				}
				logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: c.Encode()}
			}
			b.ReportAllocs()
			b.ResetTimer()
			check := func(out interface{}) {
				if res := out.(*Result); res.Code != CodeOK {
					b.Fatalf("claim failed: %+v", res)
				}
			}
			if bc.batch == 1 {
				for _, l := range logs {
					check(m.Apply(l))
				}
				return
			}
			for rest := logs; len(rest) > 0; {
				n := min(bc.batch, len(rest))
				for _, out := range m.ApplyBatch(rest[:n]) {
					check(out)
				}
				rest = rest[n:]
			}
		})
	}
}
