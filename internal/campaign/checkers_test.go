package campaign

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// builder records a hand-made history through a Recorder, as workloads do.
type builder struct {
	rec *Recorder
	buf bytes.Buffer
}

func newBuilder() *builder {
	b := &builder{}
	b.rec = newTestRecorder(&b.buf)
	return b
}

// newTestRecorder records into w with a clock that starts at 2026-01-01
// and advances 1ms at every reading, so histories built by tests are
// reproducible and every event has its own time.
func newTestRecorder(w io.Writer) *Recorder {
	rec := NewRecorder(w)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec.Now = func() time.Time {
		now = now.Add(time.Millisecond)
		return now
	}
	return rec
}

func ver(origin string, seq, wallMs uint64) *Version {
	return &Version{Origin: origin, Seq: seq, WallMs: wallMs}
}

func val(key, value string, v *Version) KeyRead {
	return KeyRead{Key: key, Found: true, Value: value, Version: v}
}
func tomb(key string, v *Version) KeyRead { return KeyRead{Key: key, Version: v} }
func none(key string) KeyRead             { return KeyRead{Key: key} }

func (b *builder) op(f, session string, index int, region string, in Event, outcome string, out Event) {
	in.Tier, in.F, in.Session, in.Index, in.Region, in.Client = TierCausal, f, session, index, region, "c-"+session
	op := b.rec.Invoke(in)
	b.rec.Complete(op, outcome, out)
}

func (b *builder) put(session string, index int, region, key, value string, v *Version) {
	b.op(FPut, session, index, region, Event{Key: key, Value: value}, EventOK, Event{Version: v})
}

func (b *builder) del(session string, index int, region, key string, v *Version) {
	b.op(FDelete, session, index, region, Event{Key: key}, EventOK, Event{Version: v})
}

func (b *builder) writeMany(session string, index int, region, outcome string, v *Version, kv ...string) {
	var writes []KeyWrite
	for i := 0; i < len(kv); i += 2 {
		writes = append(writes, KeyWrite{Key: kv[i], Value: kv[i+1]})
	}
	b.op(FWriteMany, session, index, region, Event{Writes: writes}, outcome, Event{Version: v})
}

func (b *builder) get(session string, index int, region string, r KeyRead) {
	b.op(FGet, session, index, region, Event{Key: r.Key}, EventOK, Event{Reads: []KeyRead{r}})
}

func (b *builder) readMany(session string, index int, region string, reads ...KeyRead) {
	var keys []string
	for _, r := range reads {
		keys = append(keys, r.Key)
	}
	b.op(FReadMany, session, index, region, Event{Keys: keys}, EventOK, Event{Reads: reads})
}

func (b *builder) final(region string, reads ...KeyRead) {
	b.rec.Record(Event{Type: EventFinal, Tier: TierCausal, F: FReadMany, Region: region, Reads: reads})
}

// kinds lists checker/kind of every anomaly, sorted.
func kinds(results []CheckResult) []string {
	var out []string
	for _, r := range results {
		for _, a := range r.Findings.Anomalies {
			out = append(out, a.Checker+"/"+a.Kind)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestCheckers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *builder)
		want  []string // checker/kind, sorted, without repetition
	}{
		{
			name: "clean",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.get("s2", 1, "eu", val("k", "a", ver("us", 1, 100)))
				b.put("s2", 2, "eu", "k", "b", ver("eu", 1, 101))
				b.final("us", val("k", "b", ver("eu", 1, 101)))
				b.final("eu", val("k", "b", ver("eu", 1, 101)))
			},
		},
		{
			name: "read your writes across regions",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.get("s1", 2, "eu", none("k"))
			},
			want: []string{"causal/read-your-writes"},
		},
		{
			name: "stale read after a causally preceding write (the photo and the comment)",
			build: func(b *builder) {
				b.put("alice", 1, "us", "photo", "p1", ver("us", 1, 100))
				b.get("bob", 1, "eu", val("photo", "p1", ver("us", 1, 100)))
				b.put("bob", 2, "eu", "comment", "c1", ver("eu", 1, 101))
				b.readMany("carol", 1, "ap", none("photo"), val("comment", "c1", ver("eu", 1, 101)))
			},
			want: []string{"causal/causal-snapshot"},
		},
		{
			name: "write_many read whole",
			build: func(b *builder) {
				b.writeMany("s1", 1, "us", EventOK, ver("us", 1, 100), "x", "x1", "y", "y1", "z", "z1")
				b.readMany("s2", 1, "eu", val("x", "x1", ver("us", 1, 100)), val("y", "y1", ver("us", 1, 100)), val("z", "z1", ver("us", 1, 100)))
				b.get("s2", 2, "eu", val("z", "z1", ver("us", 1, 100)))
				b.put("s2", 3, "eu", "y", "y2", ver("eu", 1, 101))
				b.final("us", val("x", "x1", ver("us", 1, 100)), val("y", "y2", ver("eu", 1, 101)), val("z", "z1", ver("us", 1, 100)))
				b.final("eu", val("x", "x1", ver("us", 1, 100)), val("y", "y2", ver("eu", 1, 101)), val("z", "z1", ver("us", 1, 100)))
			},
		},
		{
			name: "write_many with lost acknowledgement, seen later",
			build: func(b *builder) {
				b.writeMany("s1", 1, "us", EventInfo, nil, "x", "x1", "y", "y1")
				b.readMany("s2", 1, "eu", val("x", "x1", ver("us", 1, 100)), val("y", "y1", ver("us", 1, 100)))
				b.final("us", val("x", "x1", ver("us", 1, 100)), val("y", "y1", ver("us", 1, 100)))
			},
		},
		{
			name: "torn snapshot: first key of a write_many without the second",
			build: func(b *builder) {
				b.put("s0", 1, "eu", "y", "y0", ver("eu", 1, 90))
				b.writeMany("s1", 1, "us", EventOK, ver("us", 1, 100), "x", "x1", "y", "y1")
				b.readMany("s2", 1, "ap", val("x", "x1", ver("us", 1, 100)), val("y", "y0", ver("eu", 1, 90)))
			},
			want: []string{"atomic-write/torn-snapshot"},
		},
		{
			name: "torn snapshot: second key of a write_many without the first",
			build: func(b *builder) {
				b.writeMany("s1", 1, "us", EventOK, ver("us", 1, 100), "x", "x1", "y", "y1")
				b.readMany("s2", 1, "ap", none("x"), val("y", "y1", ver("us", 1, 100)))
			},
			want: []string{"atomic-write/torn-snapshot", "causal/causal-snapshot"},
		},
		{
			name: "torn write seen by a session over two reads",
			build: func(b *builder) {
				b.writeMany("s1", 1, "us", EventOK, ver("us", 1, 100), "x", "x1", "y", "y1")
				b.get("s2", 1, "ap", val("x", "x1", ver("us", 1, 100)))
				b.get("s2", 2, "ap", none("y"))
			},
			want: []string{"atomic-write/torn-write"},
		},
		{
			name: "write applied twice",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.get("s2", 1, "us", val("k", "a", ver("us", 2, 105)))
			},
			want: []string{"causal/unwritten-version", "exactly-once/applied-twice"},
		},
		{
			name: "divergence",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.put("s2", 1, "eu", "k", "b", ver("eu", 1, 101))
				b.final("us", val("k", "a", ver("us", 1, 100)))
				b.final("eu", val("k", "b", ver("eu", 1, 101)))
			},
			want: []string{"causal/divergence", "causal/lost-write", "convergence/divergence"},
		},
		{
			name: "lost write",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.final("us", none("k"))
				b.final("eu", none("k"))
			},
			want: []string{"causal/lost-write"},
		},
		{
			name: "collected deletion reads as never written",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.del("s1", 2, "us", "k", ver("us", 2, 101))
				b.get("s1", 3, "eu", none("k"))
				b.final("us", tomb("k", ver("us", 2, 101)))
				b.final("eu", none("k"))
			},
		},
		{
			name: "collected deletion in every region",
			build: func(b *builder) {
				b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
				b.del("s1", 2, "us", "k", ver("us", 2, 101))
				b.final("us", none("k"))
				b.final("eu", none("k"))
			},
		},
		{
			name: "no convergence and an unreadable region",
			build: func(b *builder) {
				b.rec.Record(Event{Type: EventFinal, Tier: TierCausal, F: FConverge, Error: "after 1m0s: eu: vector map[us:3]"})
				b.rec.Record(Event{Type: EventFinal, Tier: TierCausal, F: FReadMany, Region: "eu", Error: "unavailable"})
			},
			want: []string{"convergence/final-read-failed", "convergence/no-convergence"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder()
			tc.build(b)
			got := kinds(RunCheckers(b.rec.History(), DefaultCheckers()))
			if !slices.Equal(got, tc.want) {
				for _, r := range RunCheckers(b.rec.History(), DefaultCheckers()) {
					for _, a := range r.Findings.Anomalies {
						t.Log(a)
					}
				}
				t.Fatalf("anomalies %v, want %v", got, tc.want)
			}
			// The history written as JSON lines says the same.
			if err := b.rec.Flush(); err != nil {
				t.Fatal(err)
			}
			h, err := ReadHistory(&b.buf)
			if err != nil {
				t.Fatal(err)
			}
			if again := kinds(RunCheckers(h, DefaultCheckers())); !slices.Equal(again, got) {
				t.Fatalf("after a JSON round trip: anomalies %v, want %v", again, got)
			}
		})
	}
}

// TestCausalAnomalyNamesHistoryOps checks that internal/check's positions
// in its translated history are reported as the history's op ids.
func TestCausalAnomalyNamesHistoryOps(t *testing.T) {
	b := newBuilder()
	b.writeMany("s1", 1, "us", EventOK, ver("us", 1, 100), "x", "x1", "y", "y1") // op 1
	b.readMany("s2", 1, "ap", none("x"), val("y", "y1", ver("us", 1, 100)))      // op 2
	var got []Anomaly
	for _, r := range RunCheckers(b.rec.History(), []Checker{CausalChecker{}}) {
		got = append(got, r.Findings.Anomalies...)
	}
	if len(got) != 1 {
		t.Fatalf("anomalies %v, want one", got)
	}
	if a := got[0]; a.Op != 2 || !strings.Contains(a.Detail, "at op 1 (key x of the write_many)") {
		t.Errorf("anomaly %v: want it at op 2, naming op 1 and key x", a)
	}
}

func TestRecorderCompletionCarriesInvocation(t *testing.T) {
	b := newBuilder()
	b.put("s1", 4, "us", "k", "a", ver("us", 1, 100))
	ops := b.rec.History().Operations()
	if len(ops) != 1 {
		t.Fatalf("%d operations, want 1", len(ops))
	}
	c := ops[0].Completion
	if c.Type != EventOK || c.Session != "s1" || c.Index != 4 || c.Region != "us" || c.F != FPut || c.Key != "k" || c.Op != ops[0].Invoke.Op {
		t.Errorf("completion %+v does not repeat its invocation %+v", c, ops[0].Invoke)
	}
}

func TestPlan(t *testing.T) {
	regions := []string{"a", "b", "c"}
	cfg := PlanConfig{Seed: 42, Regions: regions, Kinds: AllFaults, Start: time.Second, End: 60 * time.Second, MaxSkew: 5 * time.Second}
	plan := Plan(cfg)
	if again := Plan(cfg); fmt.Sprint(again) != fmt.Sprint(plan) {
		t.Fatalf("the same seed gave two plans:\n%v\n%v", plan, again)
	}
	cfg.Seed = 43
	if other := Plan(cfg); fmt.Sprint(other) == fmt.Sprint(plan) {
		t.Errorf("seeds 42 and 43 gave the same plan")
	}
	if len(plan) < len(AllFaults) {
		t.Fatalf("%d faults in a 59s window, want at least %d: %v", len(plan), len(AllFaults), plan)
	}
	first := map[FaultKind]bool{}
	for _, f := range plan[:len(AllFaults)] {
		first[f.Kind] = true
	}
	if len(first) != len(AllFaults) {
		t.Errorf("the first %d faults are not one of each kind: %v", len(AllFaults), plan[:len(AllFaults)])
	}
	end := time.Duration(0)
	for _, f := range plan {
		at, hold := time.Duration(f.At), time.Duration(f.Hold)
		switch {
		case at < end:
			t.Errorf("fault %v starts before the previous one healed (%v)", f, end)
		case at < cfg.Start || at+hold > cfg.End:
			t.Errorf("fault %v outside the window [%v, %v]", f, cfg.Start, cfg.End)
		case !slices.Contains(regions, f.Region) || (f.Peer != "" && (f.Peer == f.Region || !slices.Contains(regions, f.Peer))):
			t.Errorf("fault %v names unknown or identical regions", f)
		case f.Kind == FaultSkew && (f.Skew == 0 || time.Duration(f.Skew).Abs() > cfg.MaxSkew):
			t.Errorf("fault %v: skew out of ±%v", f, cfg.MaxSkew)
		case (f.Kind == FaultCut || f.Kind == FaultDelay) && f.Peer == "":
			t.Errorf("fault %v has no peer", f)
		}
		end = at + hold
	}
	for _, f := range Plan(PlanConfig{Seed: 1, Regions: []string{"solo"}, Kinds: AllFaults, End: time.Minute}) {
		if f.Kind == FaultPartition || f.Kind == FaultCut || f.Kind == FaultDelay {
			t.Errorf("link fault %v planned for a single region", f)
		}
	}
}

func TestParseFaults(t *testing.T) {
	for in, want := range map[string]string{
		"all":            fmt.Sprint(slices.Sorted(slices.Values(AllFaults))),
		"kill, pause":    "[kill pause]",
		"none":           "[]",
		"skew,skew,kill": "[kill skew]",
	} {
		got, err := ParseFaults(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseFaults(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseFaults("meteor"); err == nil {
		t.Error("ParseFaults accepted an unknown fault")
	}
}

func TestSummaryCountsPerTier(t *testing.T) {
	b := newBuilder()
	active := false
	b.rec.DuringFault = func() bool { return active }
	b.put("s1", 1, "us", "k", "a", ver("us", 1, 100))
	active = true
	kill := &Fault{ID: 1, Kind: FaultKill, Region: "eu"}
	b.rec.Record(Event{Type: EventNemesis, Phase: PhaseStart, Fault: kill})
	b.op(FGet, "s1", 2, "eu", Event{Key: "k"}, EventFail, Event{Code: "unavailable"})
	b.rec.Record(Event{Type: EventNemesis, Phase: PhaseHeal, Fault: kill})
	active = false
	b.get("s1", 3, "us", val("k", "a", ver("us", 1, 100)))
	s := Summarize(b.rec.History())
	if c := s.ByFault[TierCausal][FaultKill]; c == nil || c[0] != (OpCounts{Total: 1, Fail: 1}) || c[1] != (OpCounts{}) {
		t.Errorf("during the kill of eu: %+v, want one failed operation in eu and none elsewhere", c)
	}
	if s.Faults[FaultKill] != 1 {
		t.Errorf("faults %v, want one kill", s.Faults)
	}
	if c := s.DuringFaults[TierCausal]; c == nil || c.Total != 1 || c.OK != 0 {
		t.Errorf("during faults: %+v, want 1 operation, none ok", c)
	}
	if c := s.Otherwise[TierCausal]; c == nil || c.Total != 2 || c.OK != 2 {
		t.Errorf("otherwise: %+v, want 2 operations, ok", c)
	}
	if got := slices.Sorted(maps.Keys(s.Ops)); !slices.Equal(got, []string{"causal/get", "causal/put"}) {
		t.Errorf("operations counted as %v", got)
	}
}
