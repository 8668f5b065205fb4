package replica_test

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/google/uuid"
)

// TestDurableCommitMetrics: every acknowledged write waited for a durable
// commit, and /metrics shows how long each took and how many fsyncs of the
// write-ahead log there were.
func TestDurableCommitMetrics(t *testing.T) {
	a := startRegion(t, "us-east", t.TempDir(), "127.0.0.1:0", uuid.New(), nil)
	const writes = 5
	for i := range writes {
		mustPut(t, a, "k", string(rune('a'+i)), "", "")
	}
	raw := metricsText(t, a.node)
	value := func(series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(raw)
		if m == nil {
			t.Fatalf("/metrics lacks %s:\n%s", series, raw)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if n := value(`causeway_fsync_duration_seconds_count{region="us-east"}`); n < writes {
		t.Errorf("%v durable commits observed after %d acknowledged writes; want at least %d", n, writes, writes)
	}
	if s := value(`causeway_fsync_duration_seconds_sum{region="us-east"}`); s <= 0 {
		t.Errorf("durable commits took %v s in total; an fsync takes time", s)
	}
	if n := value(`causeway_wal_fsyncs_total{region="us-east"}`); n < 1 {
		t.Errorf("%v WAL fsyncs after %d acknowledged writes", n, writes)
	}
}
