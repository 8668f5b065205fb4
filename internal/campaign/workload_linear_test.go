package campaign

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// linearHistory records linear-tier operations through a Recorder with the
// workload's own recording code (invoke, complete), as its clients do,
// without a cluster: each step of the fake clock is a millisecond.
type linearHistory struct {
	t       *testing.T
	rec     *Recorder
	buf     bytes.Buffer
	w       *LinearWorkload
	clients map[string]*linearClient
}

func newLinearHistory(t *testing.T) *linearHistory {
	h := &linearHistory{t: t, w: &LinearWorkload{}, clients: map[string]*linearClient{}}
	h.w.defaults()
	h.rec = newTestRecorder(&h.buf)
	return h
}

func (h *linearHistory) client(id string) *linearClient {
	if c := h.clients[id]; c != nil {
		return c
	}
	c := h.w.newClient(&Env{Recorder: h.rec, RequestTimeout: time.Second}, id, "us-east", nil)
	h.clients[id] = c
	return c
}

// pending is an invoked operation awaiting its completion.
type pending struct {
	c  *linearClient
	op int64
	f  string
}

func (h *linearHistory) begin(client, f, key string, args linearExtra) pending {
	c := h.client(client)
	return pending{c, c.invoke(f, key, "", args), f}
}

// end completes p: with err nil it succeeded with the results out; a
// refusal is an answer; any other error left the outcome unknown.
func (p pending) end(err error, out linearExtra) {
	uncertain := err != nil && !linearRefusals[connect.CodeOf(err)]
	p.c.complete(p.op, p.f == FLookup || p.f == FLinearGet, err, attempts{n: 1, uncertain: uncertain}, out)
}

func (h *linearHistory) do(client, f, key string, args linearExtra, err error, out linearExtra) {
	h.begin(client, f, key, args).end(err, out)
}

func refusal(code connect.Code) error { return connect.NewError(code, errors.New("refused")) }

// aborted is the error of a compare-and-set whose comparison failed,
// carrying the register's current version as the tier sends it.
func aborted(current uint64) error {
	ce := connect.NewError(connect.CodeAborted, errors.New("version mismatch"))
	d, err := connect.NewErrorDetail(&v1.CompareFailed{Found: current != 0, CurrentVersion: current})
	if err != nil {
		panic(err)
	}
	ce.AddDetail(d)
	return ce
}

var unavailable = connect.NewError(connect.CodeUnavailable, errors.New("no leader reachable"))

func strp(s string) *string { return &s }

// TestLinearCheckers checks the plumbing from a recorded history to
// lincheck: histories recorded through the Recorder, as the linear
// workload records them, must be judged as lincheck judges the operations
// they stand for, also after a round trip through history.jsonl.
func TestLinearCheckers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(h *linearHistory)
		want  []string // checker/kind of every anomaly, sorted
	}{
		{
			name: "correct history with refusals and unknown outcomes",
			build: func(h *linearHistory) {
				h.do("lin1", FClaim, "names/n0", linearExtra{Owner: "lin1"}, nil, linearExtra{})
				h.do("lin2", FClaim, "names/n0", linearExtra{Owner: "lin2"}, refusal(connect.CodeAlreadyExists), linearExtra{})
				h.do("lin2", FLookup, "names/n0", linearExtra{}, nil, linearExtra{Value: "lin1"})
				h.do("lin2", FRelease, "names/n0", linearExtra{Owner: "lin2"}, refusal(connect.CodeFailedPrecondition), linearExtra{})
				h.do("lin1", FRelease, "names/n0", linearExtra{Owner: "lin1"}, nil, linearExtra{})
				h.do("lin2", FLookup, "names/n0", linearExtra{}, nil, linearExtra{})
				h.do("lin1", FCAS, "reg0", linearExtra{CompareVersion: u64(0), Value: "lin1.1"}, nil, linearExtra{Version: u64(7)})
				h.do("lin2", FCAS, "reg0", linearExtra{CompareVersion: u64(0), Value: "lin2.1"}, aborted(7), linearExtra{Version: u64(7)})
				// Unknown outcome: it may have been applied (and was, as
				// the get shows).
				h.do("lin2", FCAS, "reg0", linearExtra{CompareValue: strp("lin1.1"), Value: "lin2.2"}, unavailable, linearExtra{})
				h.do("lin1", FLinearGet, "reg0", linearExtra{}, nil, linearExtra{Value: "lin2.2", Version: u64(9)})
				h.do("lin1", FCAS, "reg0", linearExtra{CompareVersion: u64(9), Delete: true}, nil, linearExtra{Version: u64(11)})
				h.do("lin2", FLinearGet, "reg0", linearExtra{}, nil, linearExtra{Version: u64(0)})
				h.do("lin1", FLeaseGrant, "", linearExtra{}, nil, linearExtra{Lease: 3})
				h.do("lin1", FLock, "lock0", linearExtra{Owner: "lin1", Lease: 3}, nil, linearExtra{Token: 12})
				h.do("lin1", FFencedWrite, "lock0", linearExtra{Token: 12, Register: "fenced-lock0", Value: "lin1.2"}, nil, linearExtra{})
				h.do("lin1", FUnlock, "lock0", linearExtra{Owner: "lin1", Lease: 3, Token: 12}, nil, linearExtra{})
				h.do("lin2", FLock, "lock0", linearExtra{Owner: "lin2", Lease: 4}, nil, linearExtra{Token: 15})
				h.do("lin1", FFencedWrite, "lock0", linearExtra{Token: 12, Register: "fenced-lock0", Value: "lin1.3"},
					refusal(connect.CodeFailedPrecondition), linearExtra{})
				// An acquisition whose outcome is unknown constrains nothing.
				h.do("lin1", FLock, "lock0", linearExtra{Owner: "lin1", Lease: 5}, unavailable, linearExtra{})
			},
		},
		{
			name: "two clients both granted one name",
			build: func(h *linearHistory) {
				h.do("lin1", FClaim, "names/n0", linearExtra{Owner: "lin1"}, nil, linearExtra{})
				h.do("lin2", FClaim, "names/n0", linearExtra{Owner: "lin2"}, nil, linearExtra{})
			},
			want: []string{"linearizable/not-linearizable"},
		},
		{
			name: "a read that misses an acknowledged write",
			build: func(h *linearHistory) {
				h.do("lin1", FCAS, "reg0", linearExtra{CompareVersion: u64(0), Value: "lin1.1"}, nil, linearExtra{Version: u64(4)})
				h.do("lin2", FLinearGet, "reg0", linearExtra{}, nil, linearExtra{Version: u64(0)})
			},
			want: []string{"linearizable/not-linearizable"},
		},
		{
			name: "a compare that failed although it held",
			build: func(h *linearHistory) {
				h.do("lin1", FCAS, "reg0", linearExtra{CompareVersion: u64(0), Value: "lin1.1"}, nil, linearExtra{Version: u64(4)})
				h.do("lin2", FCAS, "reg0", linearExtra{CompareVersion: u64(4), Value: "lin2.1"}, aborted(4), linearExtra{Version: u64(4)})
			},
			want: []string{"linearizable/not-linearizable"},
		},
		{
			name: "an aborted compare-and-set that does not say the version",
			build: func(h *linearHistory) {
				h.do("lin1", FCAS, "reg0", linearExtra{CompareVersion: u64(0), Value: "lin1.1"}, refusal(connect.CodeAborted), linearExtra{})
			},
			want: []string{"linearizable/aborted-without-version"},
		},
		{
			name: "a fencing token that goes backwards",
			build: func(h *linearHistory) {
				h.do("lin1", FLock, "lock0", linearExtra{Owner: "lin1", Lease: 1}, nil, linearExtra{Token: 7})
				h.do("lin1", FUnlock, "lock0", linearExtra{Owner: "lin1", Lease: 1, Token: 7}, nil, linearExtra{})
				h.do("lin2", FLock, "lock0", linearExtra{Owner: "lin2", Lease: 2}, nil, linearExtra{Token: 5})
			},
			want: []string{"fencing/token-order"},
		},
		{
			name: "one token granted twice",
			build: func(h *linearHistory) {
				a := h.begin("lin1", FLock, "lock0", linearExtra{Owner: "lin1", Lease: 1})
				b := h.begin("lin2", FLock, "lock0", linearExtra{Owner: "lin2", Lease: 2})
				a.end(nil, linearExtra{Token: 7})
				b.end(nil, linearExtra{Token: 7})
			},
			want: []string{"fencing/duplicate-token"},
		},
		{
			name: "a write with a stale token accepted",
			build: func(h *linearHistory) {
				h.do("lin1", FLock, "lock0", linearExtra{Owner: "lin1", Lease: 1}, nil, linearExtra{Token: 7})
				h.do("lin2", FLock, "lock0", linearExtra{Owner: "lin2", Lease: 2}, nil, linearExtra{Token: 9})
				h.do("lin1", FFencedWrite, "lock0", linearExtra{Token: 7, Register: "fenced-lock0", Value: "lin1.1"}, nil, linearExtra{})
			},
			want: []string{"fencing/stale-write"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLinearHistory(t)
			tc.build(h)
			if err := h.rec.Flush(); err != nil {
				t.Fatal(err)
			}
			results := RunCheckers(h.rec.History(), LinearCheckers())
			if got := kinds(results); !slices.Equal(got, tc.want) {
				for _, r := range results {
					t.Logf("%s: %v %v", r.Checker, r.Findings.Anomalies, r.Findings.Notes)
				}
				t.Fatalf("anomalies %v, want %v", got, tc.want)
			}
			recorded, err := ReadHistory(&h.buf)
			if err != nil {
				t.Fatal(err)
			}
			if again := kinds(RunCheckers(recorded, LinearCheckers())); !slices.Equal(again, tc.want) {
				t.Errorf("after a round trip through the history file: anomalies %v, want %v", again, tc.want)
			}
			if len(tc.want) == 0 {
				for _, r := range results {
					if len(r.Findings.Files) > 0 || len(r.Findings.Notes) == 0 || strings.Contains(r.Findings.Notes[0], "nothing to check") {
						t.Errorf("%s on a correct history: files %v, notes %v; want no files and a note of what it checked", r.Checker, r.Findings.Files, r.Findings.Notes)
					}
				}
			}
		})
	}
}

// TestLinearizabilityFailureWritesVisualization checks that a history that
// is not linearizable leaves porcupine's visualisation and lincheck's
// history in the report directory, named by the anomaly.
func TestLinearizabilityFailureWritesVisualization(t *testing.T) {
	h := newLinearHistory(t)
	h.do("lin1", FClaim, "names/n1", linearExtra{Owner: "lin1"}, nil, linearExtra{})
	h.do("lin2", FClaim, "names/n1", linearExtra{Owner: "lin2"}, nil, linearExtra{})
	h.do("lin1", FClaim, "names/n2", linearExtra{Owner: "lin1"}, nil, linearExtra{}) // fine on its own
	checks := RunCheckers(h.rec.History(), []Checker{LinearizableChecker{}})
	f := checks[0].Findings
	if len(f.Anomalies) != 1 {
		t.Fatalf("anomalies %v, want one", f.Anomalies)
	}
	if a := f.Anomalies[0]; a.Key != "names/n1" || !strings.Contains(a.Detail, LinearizabilityHTML) {
		t.Errorf("anomaly %v: want it on names/n1, naming %s", a, LinearizabilityHTML)
	}
	dir := t.TempDir()
	if problems := WriteCheckerFiles(dir, checks); len(problems) > 0 {
		t.Fatal(problems)
	}
	html, err := os.ReadFile(filepath.Join(dir, LinearizabilityHTML))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(html, []byte("<html")) {
		t.Errorf("%s is not an HTML page: %.200s", LinearizabilityHTML, html)
	}
	hist, err := os.ReadFile(filepath.Join(dir, LinearHistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(hist, []byte("\n")); n != 3 {
		t.Errorf("%s holds %d operations, want 3", LinearHistoryFile, n)
	}
}

// TestFencingAnomalyNamesHistoryOps checks that a fencing anomaly names
// the history's operations and clients, not lincheck's numbering.
func TestFencingAnomalyNamesHistoryOps(t *testing.T) {
	h := newLinearHistory(t)
	h.do("lin1", FLeaseGrant, "", linearExtra{}, nil, linearExtra{Lease: 1})                                                  // op 1
	h.do("lin1", FLock, "lock0", linearExtra{Owner: "lin1", Lease: 1}, nil, linearExtra{Token: 7})                            // op 2
	h.do("lin2", FLock, "lock0", linearExtra{Owner: "lin2", Lease: 2}, nil, linearExtra{Token: 9})                            // op 3
	h.do("lin1", FFencedWrite, "lock0", linearExtra{Token: 7, Register: "fenced-lock0", Value: "lin1.1"}, nil, linearExtra{}) // op 4
	f := FencingChecker{}.Check(h.rec.History())
	if len(f.Anomalies) != 1 {
		t.Fatalf("anomalies %v, want one", f.Anomalies)
	}
	a := f.Anomalies[0]
	if a.Op != 4 || a.Session != "lin1" || a.Key != "lock0" {
		t.Errorf("anomaly %v: want it at op 4 of lin1 on lock0", a)
	}
	for _, want := range []string{"op 3 (client lin2 lock", "op 4 (client lin1 fenced-write"} {
		if !strings.Contains(a.Detail, want) {
			t.Errorf("detail %q does not name %q", a.Detail, want)
		}
	}
}

// TestLinearOutcomes checks how the workload records outcomes: a refusal
// is an answer (and counts as available), an unknown outcome of a write is
// info, a failed read is a failure, and a request no server received
// failed without effect.
func TestLinearOutcomes(t *testing.T) {
	h := newLinearHistory(t)
	active := false
	h.rec.DuringFault = func() bool { return active }
	h.do("lin1", FClaim, "names/n0", linearExtra{Owner: "lin1"}, refusal(connect.CodeAlreadyExists), linearExtra{})
	active = true
	h.do("lin1", FCAS, "reg0", linearExtra{CompareVersion: u64(0), Value: "lin1.1"}, unavailable, linearExtra{})
	h.do("lin1", FLinearGet, "reg0", linearExtra{}, unavailable, linearExtra{})
	c := h.client("lin1")
	op := c.invoke(FClaim, "names/n1", "", linearExtra{Owner: "lin1"})
	refused := connect.NewError(connect.CodeUnavailable, fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED))
	c.complete(op, false, refused, attempts{n: 2}, linearExtra{})

	var got []string
	for _, o := range h.rec.History().Operations() {
		got = append(got, o.Invoke.F+":"+o.Outcome()+":"+o.Completion.Code+":"+map[bool]string{true: "refused"}[o.Completion.Refused])
	}
	want := []string{"claim:fail:already_exists:refused", "cas:info:unavailable:", "get:fail:unavailable:", "claim:fail:connection_refused:"}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes %q, want %q", got, want)
	}
	s := Summarize(h.rec.History())
	if c := s.Otherwise[TierLinear]; c == nil || c.Availability() != "100.0%" {
		t.Errorf("outside faults: %+v, want the refused claim counted as available", c)
	}
	if c := s.DuringFaults[TierLinear]; c == nil || c.Availability() != "0.0%" || c.Total != 3 {
		t.Errorf("during faults: %+v, want 3 operations, none served", c)
	}
}

// TestCompareFailedDetail checks that the register version an aborted
// compare-and-set carries is read back from the error.
func TestCompareFailedDetail(t *testing.T) {
	if cf := compareFailed(aborted(42)); cf == nil || cf.GetCurrentVersion() != 42 {
		t.Errorf("compareFailed = %v, want current version 42", cf)
	}
	if cf := compareFailed(refusal(connect.CodeAborted)); cf != nil {
		t.Errorf("compareFailed of an error without details = %v, want nil", cf)
	}
}
