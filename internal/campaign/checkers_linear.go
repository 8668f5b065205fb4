package campaign

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/causewaydb/causeway/internal/check/lincheck"
)

// Files the linear checkers add to the report of a history that fails.
const (
	// LinearizabilityHTML is porcupine's visualisation of the objects whose
	// history is not linearizable: the longest orders it found and the
	// operation none of them could take next.
	LinearizabilityHTML = "linearizability.html"
	// LinearHistoryFile is the linear tier's history in lincheck's own
	// format (lincheck.ReadHistory), to replay the check without the
	// campaign. Its operations are numbered from 0 in its own order.
	LinearHistoryFile = "linear-history.jsonl"
)

// LinearizableChecker runs lincheck.CheckLinearizable (porcupine) over the
// linear tier's claims and compare-and-set registers: every operation must
// take effect at one instant between its invocation and its completion,
// in an order that one copy of each object explains. An operation whose
// outcome is unknown may take effect at any time after its invocation, or
// never. When the check fails, porcupine's visualisation is written to the
// report directory (LinearizabilityHTML) and the anomalies name it.
type LinearizableChecker struct {
	// Timeout bounds the search (default 3 minutes); an object it could
	// not decide in time is reported as an anomaly of kind "undecided",
	// since the history was not shown to be linearizable.
	Timeout time.Duration
	// Visualize writes porcupine's visualisation also when the history is
	// linearizable (the demo's report shows what its clients did).
	Visualize bool
}

// Name implements Checker.
func (LinearizableChecker) Name() string { return "linearizable" }

// Tier implements Checker.
func (LinearizableChecker) Tier() string { return TierLinear }

// Promise implements Checker.
func (LinearizableChecker) Promise() string {
	return "claims and CAS registers linearizable (porcupine)"
}

// Check implements Checker.
func (c LinearizableChecker) Check(h *History) Findings {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	v := newLinearView(h, c.Name())
	var f Findings
	for _, b := range v.bad {
		if !fencingKind(b.kind) {
			f.Anomalies = append(f.Anomalies, b.anomaly)
		}
	}
	if v.checked == 0 {
		f.Notes = append(f.Notes, "no claims or registers of the linear tier in the history: nothing to check")
		return f
	}
	rep, err := lincheck.CheckLinearizable(v.ops, timeout)
	if err != nil {
		f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "malformed-history", Detail: v.rewrite(err.Error())})
		return f
	}
	counts := map[lincheck.Object]int{}
	failed := false
	for _, p := range rep.Partitions {
		counts[p.Object]++
		switch p.Result {
		case lincheck.NotLinearizable:
			failed = true
			f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "not-linearizable", Key: p.Key,
				Detail: fmt.Sprintf("no order of the %d operations on %s %q, each taking effect between its invocation and its completion, is a run of one copy of it; porcupine's visualisation: %s in the report directory",
					p.Ops, p.Object, p.Key, LinearizabilityHTML)})
		case lincheck.Unknown:
			f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "undecided", Key: p.Key,
				Detail: fmt.Sprintf("porcupine reached no verdict on the %d operations on %s %q within %v: the history is not shown to be linearizable",
					p.Ops, p.Object, p.Key, timeout)})
		}
	}
	if failed || c.Visualize {
		f.Files = append(f.Files, ReportFile{Name: LinearizabilityHTML, Write: rep.WriteVisualization})
	}
	if !rep.OK {
		ops := v.ops
		f.Files = append(f.Files, ReportFile{Name: LinearHistoryFile, Write: func(path string) error {
			file, err := os.Create(path)
			if err != nil {
				return err
			}
			if err := lincheck.WriteHistory(file, ops); err != nil {
				file.Close()
				return err
			}
			return file.Close()
		}})
	}
	verdict := "linearizable"
	if !rep.OK {
		verdict = "NOT linearizable"
	}
	f.Notes = append(f.Notes, fmt.Sprintf("%d operations on %d claimed names and %d registers (%d with an unknown outcome): %s",
		v.checked, counts[lincheck.ObjectClaim], counts[lincheck.ObjectRegister], v.indeterminate, verdict))
	return f
}

// FencingChecker runs lincheck.CheckFencing over the linear tier's locks:
// the fencing tokens of acknowledged acquisitions of a lock are distinct
// and grow in real-time order, and a fenced write is refused once an
// acquisition with a newer token had returned before it was sent.
type FencingChecker struct{}

// Name implements Checker.
func (FencingChecker) Name() string { return "fencing" }

// Tier implements Checker.
func (FencingChecker) Tier() string { return TierLinear }

// Promise implements Checker.
func (FencingChecker) Promise() string {
	return "fencing tokens strictly increase; stale-token writes refused"
}

// Check implements Checker.
func (c FencingChecker) Check(h *History) Findings {
	v := newLinearView(h, c.Name())
	var f Findings
	for _, b := range v.bad {
		if fencingKind(b.kind) {
			f.Anomalies = append(f.Anomalies, b.anomaly)
		}
	}
	var locks, writes, refused int
	for i := range v.ops {
		op := &v.ops[i]
		switch {
		case op.Kind == lincheck.KindLock && op.Outcome == lincheck.OutcomeOK:
			locks++
		case op.Kind == lincheck.KindFencedWrite && op.Outcome == lincheck.OutcomeOK:
			writes++
		case op.Kind == lincheck.KindFencedWrite && op.Code == lincheck.CodeFailedPrecondition:
			refused++
		}
	}
	if locks+writes+refused == 0 {
		f.Notes = append(f.Notes, "no lock acquired and no fenced write answered in the history: nothing to check")
		return f
	}
	for _, a := range lincheck.CheckFencing(v.ops) {
		an := Anomaly{Checker: c.Name(), Kind: string(a.Kind), Key: a.Lock, Detail: v.rewrite(a.Description)}
		if len(a.Ops) > 0 {
			// The last operation named is the one that broke the rule.
			i := a.Ops[len(a.Ops)-1]
			an.Op, an.Session = v.ids[i], v.clients[v.ops[i].Client]
		}
		f.Anomalies = append(f.Anomalies, an)
	}
	f.Notes = append(f.Notes, fmt.Sprintf("%d lock acquisitions, %d fenced writes accepted, %d refused for a stale token", locks, writes, refused))
	return f
}

// fencingKind reports whether FencingChecker (rather than
// LinearizableChecker) judges operations of kind k.
func fencingKind(k lincheck.Kind) bool {
	return k == lincheck.KindLock || k == lincheck.KindFencedWrite
}

// linearView is the linear tier's part of a history as lincheck takes it:
// one lincheck.Op per operation whose F is a lincheck kind, rebuilt from
// the events alone (see linearExtra).
//
// Outcomes: ok is ok; a failure with a code is lincheck's fail with that
// code, which decides whether it may have taken effect (a connection
// refused, which lincheck does not know, counts as unknown: that can hide
// an anomaly, never invent one); info, and an operation that never
// completed, are info. Times are the events': the invocation is recorded
// before the request is sent and the completion after the answer came,
// so each operation's real interval lies within them.
type linearView struct {
	ops     []lincheck.Op
	ids     []int64  // the history's op id of each of ops
	clients []string // client names, indexed by lincheck.Op.Client
	// bad are operations left out because they cannot be rebuilt.
	bad []badLinearOp
	// checked counts the operations CheckLinearizable partitions (claims
	// and registers), indeterminate those among them with an unknown
	// outcome.
	checked, indeterminate int
}

type badLinearOp struct {
	kind    lincheck.Kind
	anomaly Anomaly
}

var lincheckKinds = map[string]lincheck.Kind{}

func init() {
	for _, k := range []lincheck.Kind{lincheck.KindClaim, lincheck.KindRelease, lincheck.KindLookup, lincheck.KindCAS,
		lincheck.KindGet, lincheck.KindLock, lincheck.KindUnlock, lincheck.KindFencedWrite} {
		lincheckKinds[string(k)] = k
	}
}

func newLinearView(h *History, checker string) *linearView {
	v := &linearView{}
	clientIndex := map[string]int{}
	ops := h.Operations()
	for i := range ops {
		o := &ops[i]
		kind, ok := lincheckKinds[o.Invoke.F]
		if o.Invoke.Tier != TierLinear || !ok {
			continue
		}
		bad := func(kindOfAnomaly, detail string) {
			v.bad = append(v.bad, badLinearOp{kind: kind, anomaly: Anomaly{Checker: checker, Kind: kindOfAnomaly, Op: o.Invoke.Op,
				Session: o.Invoke.Session, Key: o.Invoke.Key, Detail: detail}})
		}
		var in, out linearExtra
		if err := decodeExtra(o.Invoke.Extra, &in); err != nil {
			bad("malformed-op", "invocation: "+err.Error())
			continue
		}
		if err := decodeExtra(o.Completion.Extra, &out); err != nil {
			bad("malformed-op", "completion: "+err.Error())
			continue
		}
		client, seen := clientIndex[o.Invoke.Client]
		if !seen {
			client = len(v.clients)
			clientIndex[o.Invoke.Client] = client
			v.clients = append(v.clients, o.Invoke.Client)
		}
		op := lincheck.Op{Client: client, Kind: kind, Key: o.Invoke.Key, Owner: in.Owner,
			CompareVersion: in.CompareVersion, CompareValue: in.CompareValue, Value: in.Value, Delete: in.Delete,
			Token: in.Token, Call: o.Invoke.Time}
		switch o.Outcome() {
		case EventOK:
			op.Outcome, op.Return = lincheck.OutcomeOK, o.Completion.Time
		case EventFail:
			if o.Completion.Code == "" {
				op.Outcome = lincheck.OutcomeInfo
			} else {
				op.Outcome, op.Code, op.Return = lincheck.OutcomeFail, o.Completion.Code, o.Completion.Time
			}
		default:
			op.Outcome = lincheck.OutcomeInfo
		}
		if out.Value != "" {
			op.Value = out.Value
		}
		if out.Version != nil {
			op.Version = *out.Version
		}
		if out.Token != 0 {
			op.Token = out.Token
		}
		if kind == lincheck.KindCAS && op.Code == lincheck.CodeAborted && out.Version == nil {
			// Left out: it had no effect, but what it says about the
			// register's version is unknown.
			bad("aborted-without-version", "compare-and-set answered aborted without the register's current version (CompareFailed detail)")
			continue
		}
		if kind != lincheck.KindLock && kind != lincheck.KindUnlock && kind != lincheck.KindFencedWrite {
			v.checked++
			if op.Indeterminate() {
				v.indeterminate++
			}
		}
		v.ops = append(v.ops, op)
		v.ids = append(v.ids, o.Invoke.Op)
	}
	return v
}

func decodeExtra(raw json.RawMessage, into *linearExtra) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, into)
}

// lincheckOpRef matches lincheck's reference to an operation of its
// history: "op INDEX (client N ...".
var lincheckOpRef = regexp.MustCompile(`\bop (\d+) \(client (\d+) `)

// rewrite turns lincheck's references to operations (indexes into v.ops,
// clients by number) into the history's op ids and client names.
func (v *linearView) rewrite(s string) string {
	return lincheckOpRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := lincheckOpRef.FindStringSubmatch(m)
		i, err1 := strconv.Atoi(sub[1])
		c, err2 := strconv.Atoi(sub[2])
		if err1 != nil || err2 != nil || i >= len(v.ids) || c >= len(v.clients) {
			return m
		}
		return fmt.Sprintf("op %d (client %s ", v.ids[i], v.clients[c])
	})
}
