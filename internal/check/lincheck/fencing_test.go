package lincheck_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/causewaydb/causeway/internal/check/lincheck"
)

func TestFencingHolds(t *testing.T) {
	tests := []struct {
		name string
		h    *history
	}{
		{"tokens grow in real-time order; writes carry the newest token", new(history).
			add(1, 0, 10, lock("l", "a", 1)).
			add(1, 20, 30, fencedWrite("l", 1)).
			add(2, 40, 50, lock("l", "b", 4)).
			add(2, 60, 70, fencedWrite("l", 4)).
			add(1, 80, 90, fail(lincheck.CodeFailedPrecondition, fencedWrite("l", 1)))},
		{"concurrent acquisitions may get tokens in either order", new(history).
			add(1, 0, 50, lock("l", "a", 7)).
			add(2, 10, 40, lock("l", "b", 6))},
		{"intervals that touch are concurrent", new(history).
			add(1, 0, 10, lock("l", "a", 7)).
			add(2, 10, 20, lock("l", "b", 6))},
		{"a write invoked before the newer token was returned may be accepted", new(history).
			add(1, 0, 10, lock("l", "a", 1)).
			add(1, 20, 60, fencedWrite("l", 1)).
			add(2, 30, 40, lock("l", "b", 2))},
		{"indeterminate acquisitions do not constrain", new(history).
			add(1, 0, 10, lock("l", "a", 5)).
			add(2, 20, 0, info(lock("l", "b", 0))).
			add(3, 30, 40, fail(lincheck.CodeUnavailable, lock("l", "c", 0))).
			add(1, 50, 60, fencedWrite("l", 5))},
		{"locks are independent", new(history).
			add(1, 0, 10, lock("l1", "a", 9)).
			add(2, 20, 30, lock("l2", "b", 1)).
			add(2, 40, 50, fencedWrite("l2", 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lincheck.CheckFencing(tt.h.ops); len(got) != 0 {
				t.Fatalf("anomalies in a correct history: %v", got)
			}
		})
	}
}

func TestFencingAnomaliesAreReported(t *testing.T) {
	tests := []struct {
		name     string
		h        *history
		kind     lincheck.AnomalyKind
		ops      []int
		mentions []string
	}{
		{"token granted twice", new(history).
			add(1, 0, 50, lock("l", "a", 3)).
			add(2, 10, 40, lock("l", "b", 3)),
			lincheck.AnomalyDuplicateToken, []int{0, 1},
			[]string{"token 3 was granted 2 times", `op 0 (client 1 lock "l" owner "a"`, `op 1 (client 2 lock "l" owner "b"`}},
		{"token goes backwards", new(history).
			add(1, 0, 10, lock("l", "a", 5)).
			add(1, 20, 30, fencedWrite("l", 5)).
			add(2, 40, 50, lock("l", "b", 4)),
			lincheck.AnomalyTokenOrder, []int{0, 2},
			[]string{"returned token 5 before op 2", "smaller token 4"}},
		{"stale fenced write accepted", new(history).
			add(1, 0, 10, lock("l", "a", 1)).
			add(2, 20, 30, lock("l", "b", 2)).
			add(1, 40, 50, fencedWrite("l", 1)),
			lincheck.AnomalyStaleWrite, []int{1, 2},
			[]string{`op 1 (client 2 lock "l" owner "b" -> ok token 2`, `op 2 (client 1 fenced-write "l" token 1 -> ok`, "stale token 1 was accepted"}},
		{"stale write after a later, concurrent acquisition returned", new(history).
			add(1, 0, 10, lock("l", "a", 1)).
			add(2, 5, 100, lock("l", "b", 3)).
			add(3, 20, 30, lock("l", "c", 2)).
			add(1, 40, 50, fencedWrite("l", 1)),
			lincheck.AnomalyStaleWrite, []int{2, 3},
			[]string{"returned token 2 before op 3"}},
		{"malformed op", new(history).
			add(1, 20, 10, lock("l", "a", 1)),
			lincheck.AnomalyMalformed, []int{0},
			[]string{"returned before it was called"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lincheck.CheckFencing(tt.h.ops)
			if len(got) != 1 {
				t.Fatalf("got %d anomalies, want 1: %v", len(got), got)
			}
			a := got[0]
			if a.Kind != tt.kind || a.Lock != "l" || !slices.Equal(a.Ops, tt.ops) {
				t.Errorf("anomaly %s on lock %q, ops %v; want %s on \"l\", ops %v", a.Kind, a.Lock, a.Ops, tt.kind, tt.ops)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(a.Description, m) {
					t.Errorf("description lacks %q:\n%s", m, a.Description)
				}
			}
		})
	}
}

func TestFencingReportsEveryLockInOrder(t *testing.T) {
	h := new(history).
		add(1, 0, 10, lock("b", "x", 2)).
		add(1, 20, 30, lock("b", "x", 1)).
		add(2, 0, 10, lock("a", "y", 4)).
		add(2, 20, 30, lock("a", "y", 4))
	var got []string
	for _, a := range lincheck.CheckFencing(h.ops) {
		got = append(got, a.Lock+" "+string(a.Kind))
	}
	want := []string{"a duplicate-token", "b token-order"}
	if !slices.Equal(got, want) {
		t.Fatalf("anomalies %q, want %q", got, want)
	}
}
