package lincheck_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/check/lincheck"
)

func TestLinearizableHistoriesPass(t *testing.T) {
	tests := []struct {
		name string
		h    *history
	}{
		{"claims in sequence", new(history).
			add(1, 0, 10, claim("users/ann", "a")).
			add(2, 20, 30, fail(lincheck.CodeAlreadyExists, claim("users/ann", "b"))).
			add(1, 40, 50, claim("users/ann", "a")). // idempotent for its owner
			add(2, 60, 70, lookup("users/ann", "a")).
			add(2, 80, 90, fail(lincheck.CodeFailedPrecondition, release("users/ann", "b"))).
			add(1, 100, 110, release("users/ann", "a")).
			add(2, 120, 130, fail(lincheck.CodeNotFound, lookup("users/ann", ""))).
			add(2, 140, 150, fail(lincheck.CodeNotFound, release("users/ann", "b"))).
			add(2, 160, 170, claim("users/ann", "b"))},
		{"concurrent claims: the loser's failure names the winner", new(history).
			add(1, 0, 50, claim("users/ann", "a")).
			add(2, 10, 40, func() lincheck.Op {
				op := fail(lincheck.CodeAlreadyExists, claim("users/ann", "b"))
				op.Value = "a"
				return op
			}()).
			add(3, 5, 45, lookup("users/ann", "a")). // a's claim took effect before b's
			add(3, 60, 70, lookup("users/ann", "a"))},
		{"concurrent claims: the later caller wins", new(history).
			add(1, 0, 50, fail(lincheck.CodeAlreadyExists, claim("users/ann", "a"))).
			add(2, 10, 40, claim("users/ann", "b")).
			add(3, 45, 60, lookup("users/ann", "b"))},
		{"concurrent reads see the old or the new value", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 60, cas("k", 1, "y", 2)).
			add(2, 25, 30, get("k", "y", 2)).  // the cas took effect before 25..30
			add(3, 21, 59, get("k", "x", 1))}, // and after 21
		{"concurrent cas on one version: one wins, the other is told the new version", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 50, cas("k", 1, "a", 2)).
			add(2, 22, 48, aborted("k", 1, "b", 2)).
			add(3, 60, 70, get("k", "a", 2))},
		{"versions need not be consecutive", new(history).
			add(1, 0, 10, put("k", "x", 17)).
			add(2, 20, 30, cas("k", 17, "y", 40)).
			add(1, 40, 50, get("k", "y", 40))},
		{"delete, then write if absent", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 30, del("k", 2)).
			add(2, 40, 50, get("k", "", 0)).
			add(2, 60, 70, fail(lincheck.CodeNotFound, get("k", "", 0))).
			add(2, 80, 90, aborted("k", 1, "y", 0)).
			add(1, 100, 110, cas("k", 0, "z", 3)).
			add(2, 120, 130, get("k", "z", 3))},
		{"cas on a value", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 30, casValue("k", "x", "y", 2)).
			add(2, 40, 50, func() lincheck.Op {
				op := casValue("k", "x", "z", 0)
				op.Outcome, op.Code, op.Version = lincheck.OutcomeFail, lincheck.CodeAborted, 2
				return op
			}()).
			add(2, 60, 70, get("k", "y", 2))},
		{"deletes that report no version", new(history).
			add(1, 0, 10, put("k", "x", 3)).
			add(1, 20, 30, del("k", 0)).
			add(1, 40, 50, del("k", 0)). // absent already
			add(2, 60, 70, get("k", "", 0)).
			add(2, 80, 90, cas("k", 0, "y", 6)).
			add(2, 100, 110, get("k", "y", 6))},
		{"info write that took effect, version pinned by a later read", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 0, info(put("k", "y", 0))).
			add(3, 100, 110, get("k", "y", 7)).
			add(3, 120, 130, cas("k", 7, "z", 9)).
			add(1, 140, 150, get("k", "z", 9))},
		{"info write that took effect long after the client gave up", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 0, info(put("k", "y", 0))).
			add(3, 100, 110, get("k", "x", 1)).
			add(3, 200, 210, get("k", "y", 5))},
		{"info write that never took effect", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 0, info(cas("k", 1, "y", 0))).
			add(3, 100, 110, get("k", "x", 1)).
			add(3, 120, 130, cas("k", 1, "z", 2)).
			add(3, 140, 150, get("k", "z", 2))},
		{"unavailable and deadline_exceeded writes may have been committed", new(history).
			add(1, 0, 10, fail(lincheck.CodeUnavailable, put("k", "x", 0))).
			add(1, 20, 30, fail(lincheck.CodeDeadlineExceeded, cas("k", 0, "y", 0))).
			add(2, 40, 50, get("k", "x", 3))},
		{"an indeterminate write's version is above the versions before it", new(history).
			add(1, 0, 10, put("k", "x", 4)).
			add(2, 20, 0, info(put("k", "y", 0))).
			add(3, 30, 40, aborted("k", 4, "z", 6)). // y is version 6
			add(3, 50, 60, cas("k", 6, "z", 8))},
		{"info claim that took effect", new(history).
			add(1, 0, 0, info(claim("users/ann", "a"))).
			add(2, 10, 20, func() lincheck.Op {
				op := fail(lincheck.CodeAlreadyExists, claim("users/ann", "b"))
				op.Value = "a"
				return op
			}())},
		{"info release that never took effect", new(history).
			add(1, 0, 10, claim("users/ann", "a")).
			add(1, 20, 0, info(release("users/ann", "a"))).
			add(2, 30, 40, lookup("users/ann", "a"))},
		{"requests refused before replication have no effect", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 30, fail("invalid_argument", put("k", "", 0))).
			add(2, 40, 50, get("k", "x", 1))},
		{"locks are left to CheckFencing", new(history).
			add(1, 0, 10, lock("l", "a", 5)).
			add(2, 20, 30, lock("l", "b", 3))},
		{"empty", new(history)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := lincheck.CheckLinearizable(tt.h.ops, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK {
				t.Fatalf("reported a linearizable history as not:\n%s", rep.String())
			}
		})
	}
}

func TestViolationsAreReported(t *testing.T) {
	tests := []struct {
		name string
		h    *history
		want string // the partition reported, as PartitionResult.String
	}{
		{"stale read after a newer write completed", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 30, put("k", "y", 2)).
			add(2, 40, 50, get("k", "x", 1)),
			`register "k" (3 ops): not-linearizable`},
		{"two owners both granted one name", new(history).
			add(1, 0, 50, claim("users/ann", "a")).
			add(2, 10, 40, claim("users/ann", "b")),
			`claim "users/ann" (2 ops): not-linearizable`},
		{"lost cas: two writes conditioned on one version both succeed", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 50, cas("k", 1, "a", 2)).
			add(2, 22, 48, cas("k", 1, "b", 3)),
			`register "k" (3 ops): not-linearizable`},
		{"lost write: an acknowledged cas is gone", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(1, 20, 30, cas("k", 1, "a", 2)).
			add(2, 40, 50, cas("k", 1, "b", 3)),
			`register "k" (3 ops): not-linearizable`},
		{"version does not grow", new(history).
			add(1, 0, 10, put("k", "x", 5)).
			add(2, 20, 30, put("k", "y", 5)),
			`register "k" (2 ops): not-linearizable`},
		{"aborted although its version was current", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 30, aborted("k", 1, "y", 3)).
			add(2, 40, 50, get("k", "x", 1)),
			`register "k" (3 ops): not-linearizable`},
		{"already_exists for a free name", new(history).
			add(1, 0, 10, fail(lincheck.CodeAlreadyExists, claim("users/ann", "a"))),
			`claim "users/ann" (1 ops): not-linearizable`},
		{"read of a value never written", new(history).
			add(1, 0, 0, info(put("k", "x", 0))).
			add(2, 10, 20, get("k", "y", 1)),
			`register "k" (2 ops): not-linearizable`},
		{"an info write cannot take effect before it was called", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 30, get("k", "y", 2)).
			add(3, 40, 0, info(put("k", "y", 0))),
			`register "k" (3 ops): not-linearizable`},
		{"an info write's version exceeds the version it overwrote", new(history).
			add(1, 0, 10, put("k", "x", 4)).
			add(2, 20, 0, info(put("k", "y", 0))).
			add(3, 30, 40, get("k", "y", 4)),
			`register "k" (3 ops): not-linearizable`},
		{"claim released by its owner is still held", new(history).
			add(1, 0, 10, claim("users/ann", "a")).
			add(1, 20, 30, release("users/ann", "a")).
			add(2, 40, 50, lookup("users/ann", "a")),
			`claim "users/ann" (3 ops): not-linearizable`},
		{"cas on a value that was not there", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 30, casValue("k", "y", "z", 2)),
			`register "k" (2 ops): not-linearizable`},
		{"write after an unreported delete reuses the overwritten version", new(history).
			add(1, 0, 10, put("k", "x", 3)).
			add(1, 20, 30, del("k", 0)).
			add(2, 40, 50, put("k", "y", 4)),
			`register "k" (3 ops): not-linearizable`},
		{"not_found for a register that exists", new(history).
			add(1, 0, 10, put("k", "x", 1)).
			add(2, 20, 30, fail(lincheck.CodeNotFound, get("k", "", 0))),
			`register "k" (2 ops): not-linearizable`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An unrelated, linearizable object must not be reported.
			tt.h.add(9, 0, 5, put("other", "o", 1)).add(9, 6, 7, get("other", "o", 1))
			rep, err := lincheck.CheckLinearizable(tt.h.ops, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK {
				t.Fatal("violation not reported")
			}
			var got []string
			for _, v := range rep.Violations() {
				got = append(got, v.String())
			}
			if !slices.Equal(got, []string{tt.want}) {
				t.Fatalf("violations = %q, want [%q]", got, tt.want)
			}
		})
	}
}

func TestVisualizationOfAFailure(t *testing.T) {
	h := new(history).
		add(1, 0, 10, put("k", "x", 1)).
		add(1, 20, 30, put("k", "y", 2)).
		add(2, 40, 50, get("k", "x", 1)).
		add(3, 0, 10, claim("users/ann", "a"))
	rep, err := lincheck.CheckLinearizable(h.ops, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("violation not reported")
	}
	path := filepath.Join(t.TempDir(), "history.html")
	if err := rep.WriteVisualization(path); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The stale read is shown; the linearizable claim is not.
	for _, want := range []string{"<html", `client 2 get \"k\" -\u003e ok \"x\" version 1`} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("visualization lacks %q", want)
		}
	}
	if bytes.Contains(html, []byte("users/ann")) {
		t.Error("visualization shows a partition that is linearizable")
	}
}

func TestMalformedHistoryIsAnError(t *testing.T) {
	tests := []struct {
		name string
		op   lincheck.Op
		want string
	}{
		{"unknown kind", lincheck.Op{Kind: "increment", Key: "k", Outcome: lincheck.OutcomeOK, Call: at(0), Return: at(1)}, "unknown kind"},
		{"fail without code", lincheck.Op{Kind: lincheck.KindGet, Key: "k", Outcome: lincheck.OutcomeFail, Call: at(0), Return: at(1)}, "without a code"},
		{"ok without return", lincheck.Op{Kind: lincheck.KindGet, Key: "k", Outcome: lincheck.OutcomeOK, Call: at(0)}, "without a return time"},
		{"returns before call", lincheck.Op{Kind: lincheck.KindGet, Key: "k", Outcome: lincheck.OutcomeOK, Call: at(2), Return: at(1)}, "returned before"},
		{"claim without owner", lincheck.Op{Kind: lincheck.KindClaim, Key: "k", Outcome: lincheck.OutcomeOK, Call: at(0), Return: at(1)}, "without an owner"},
		{"cas ok without version", lincheck.Op{Kind: lincheck.KindCAS, Key: "k", Value: "v", Outcome: lincheck.OutcomeOK, Call: at(0), Return: at(1)}, "without the version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := new(history).add(1, 0, 1, put("k", "x", 1))
			h.ops = append(h.ops, tt.op)
			_, err := lincheck.CheckLinearizable(h.ops, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "op 1") {
				t.Fatalf("err = %v, want one naming op 1 and %q", err, tt.want)
			}
		})
	}
}

func TestHistoryRoundTripsThroughJSONLines(t *testing.T) {
	h := new(history).
		add(1, 0, 10, cas("k", 0, "x", 1)).
		add(2, 5, 0, info(put("k", "y", 0))).
		add(3, 20, 30, aborted("k", 0, "z", 1)).
		add(4, 40, 50, lock("l", "a", 3))
	var buf bytes.Buffer
	if err := lincheck.WriteHistory(&buf, h.ops); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != len(h.ops) {
		t.Fatalf("%d lines for %d ops:\n%s", lines, len(h.ops), buf.String())
	}
	got, err := lincheck.ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h.ops) {
		t.Fatalf("read back\n%v\nwant\n%v", got, h.ops)
	}
}

// TestRandomLinearizableHistoriesPass generates histories that are
// linearizable by construction (each operation takes effect at a random
// instant inside its interval, against a reference implementation) with
// concurrent clients, indeterminate outcomes that did and did not take
// effect, and checks that none is reported.
func TestRandomLinearizableHistoriesPass(t *testing.T) {
	for seed := range uint64(300) {
		ops := randomLinearizableHistory(rand.New(rand.NewPCG(seed, 7)))
		rep, err := lincheck.CheckLinearizable(ops, time.Minute)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !rep.OK {
			var buf bytes.Buffer
			_ = lincheck.WriteHistory(&buf, ops)
			t.Fatalf("seed %d: linearizable history reported:\n%s\nhistory:\n%s", seed, rep.String(), buf.String())
		}
	}
}

func randomLinearizableHistory(rng *rand.Rand) []lincheck.Op {
	type pending struct {
		op         lincheck.Op
		at         int  // tick at which it takes effect
		unknown    bool // the client does not learn the outcome
		takeEffect bool // for an unknown outcome: whether it happens
	}
	var all []*pending
	for client := range 4 {
		tick := rng.IntN(5)
		for range 6 + rng.IntN(4) {
			call := tick
			eff := call + rng.IntN(20)
			ret := eff + rng.IntN(20)
			tick = ret + 1 + rng.IntN(5)
			key := []string{"k1", "k2"}[rng.IntN(2)]
			var op lincheck.Op
			switch rng.IntN(6) {
			case 0, 1:
				op = lincheck.Op{Kind: lincheck.KindCAS, Key: key, Delete: rng.IntN(5) == 0}
			case 2:
				op = lincheck.Op{Kind: lincheck.KindGet, Key: key}
			case 3:
				op = lincheck.Op{Kind: lincheck.KindClaim, Key: "ns/" + key, Owner: []string{"a", "b"}[rng.IntN(2)]}
			case 4:
				op = lincheck.Op{Kind: lincheck.KindRelease, Key: "ns/" + key, Owner: []string{"a", "b"}[rng.IntN(2)]}
			default:
				op = lincheck.Op{Kind: lincheck.KindLookup, Key: "ns/" + key}
			}
			op.Client, op.Call, op.Return = client, at(call), at(ret)
			p := &pending{op: op, at: eff, unknown: rng.IntN(6) == 0, takeEffect: rng.IntN(2) == 0}
			if p.unknown && !p.takeEffect {
				p.at = 1 << 30 // never
			}
			all = append(all, p)
		}
	}
	slices.SortStableFunc(all, func(a, b *pending) int { return a.at - b.at })

	type reg struct {
		exists  bool
		value   string
		version uint64
	}
	regs := map[string]*reg{"k1": {}, "k2": {}}
	owners := map[string]string{}
	var nextVersion uint64 = 1
	values := 0
	for _, p := range all {
		op := &p.op
		happens := !p.unknown || p.takeEffect
		switch op.Kind {
		case lincheck.KindCAS:
			r := regs[op.Key]
			values++
			if !op.Delete {
				op.Value = fmt.Sprintf("v%d", values)
			}
			switch rng.IntN(5) {
			case 0: // unconditional
			case 1:
				op.CompareVersion = ver(0)
			case 2:
				op.CompareVersion = ver(r.version)
			case 3:
				op.CompareVersion = ver(r.version + uint64(rng.IntN(3)) - 1)
			default:
				expect := r.value
				if rng.IntN(3) == 0 {
					expect = fmt.Sprintf("v%d", values-1)
				}
				op.CompareValue = &expect
			}
			current := r.version
			if !r.exists {
				current = 0
			}
			holds := true
			switch {
			case op.CompareVersion != nil:
				holds = *op.CompareVersion == current
			case op.CompareValue != nil:
				holds = r.exists && r.value == *op.CompareValue
			}
			if !holds {
				op.Outcome, op.Code, op.Version = lincheck.OutcomeFail, lincheck.CodeAborted, current
				break
			}
			op.Outcome = lincheck.OutcomeOK
			if happens {
				nextVersion += uint64(1 + rng.IntN(3)) // versions are shared with other keys
				op.Version = nextVersion
				*r = reg{exists: !op.Delete, value: op.Value, version: nextVersion}
				if op.Delete {
					r.value = ""
					if rng.IntN(2) == 0 {
						op.Version = 0 // as Causeway's deletes answer
					}
				}
			}
		case lincheck.KindGet:
			r := regs[op.Key]
			op.Outcome = lincheck.OutcomeOK
			if r.exists {
				op.Value, op.Version = r.value, r.version
			}
		case lincheck.KindClaim:
			if o := owners[op.Key]; o != "" && o != op.Owner {
				op.Outcome, op.Code, op.Value = lincheck.OutcomeFail, lincheck.CodeAlreadyExists, o
				break
			}
			op.Outcome = lincheck.OutcomeOK
			if happens {
				owners[op.Key] = op.Owner
			}
		case lincheck.KindRelease:
			switch o := owners[op.Key]; {
			case o == "":
				op.Outcome, op.Code = lincheck.OutcomeFail, lincheck.CodeNotFound
			case o != op.Owner:
				op.Outcome, op.Code = lincheck.OutcomeFail, lincheck.CodeFailedPrecondition
			default:
				op.Outcome = lincheck.OutcomeOK
				if happens {
					delete(owners, op.Key)
				}
			}
		case lincheck.KindLookup:
			if o := owners[op.Key]; o == "" {
				op.Outcome, op.Code = lincheck.OutcomeFail, lincheck.CodeNotFound
			} else {
				op.Outcome, op.Value = lincheck.OutcomeOK, o
			}
		}
		if p.unknown {
			// Half of them time out, the others fail as unavailable.
			if rng.IntN(2) == 0 {
				op.Outcome, op.Code, op.Version, op.Return = lincheck.OutcomeInfo, "", 0, time.Time{}
			} else {
				op.Outcome, op.Code, op.Version = lincheck.OutcomeFail, lincheck.CodeUnavailable, 0
			}
		}
	}
	ops := make([]lincheck.Op, len(all))
	for i, p := range all {
		ops[i] = p.op
	}
	return ops
}
