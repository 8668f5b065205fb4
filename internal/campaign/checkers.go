package campaign

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/causewaydb/causeway/internal/check"
)

// Anomaly is one broken promise a checker found in a history.
type Anomaly struct {
	Checker string `json:"checker"`
	Kind    string `json:"kind"`
	// Op is the operation's id in the history (0: none, e.g. the final
	// state).
	Op      int64  `json:"op,omitempty"`
	Session string `json:"session,omitempty"`
	Key     string `json:"key,omitempty"`
	Detail  string `json:"detail"`
}

func (a Anomaly) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", a.Checker, a.Kind)
	if a.Op != 0 {
		fmt.Fprintf(&b, " op %d", a.Op)
	}
	if a.Session != "" {
		fmt.Fprintf(&b, " session %s", a.Session)
	}
	if a.Key != "" {
		fmt.Fprintf(&b, " key %q", a.Key)
	}
	return b.String() + ": " + a.Detail
}

// Findings is what one checker reports: anomalies, and notes about what it
// could and could not check.
type Findings struct {
	Anomalies []Anomaly
	Notes     []string
	// Files go into the report directory with the report (porcupine's
	// visualisation of a history that is not linearizable, say); the
	// anomalies name them.
	Files []ReportFile
}

// ReportFile is a file a checker adds to the report.
type ReportFile struct {
	// Name is the file's name in the report directory.
	Name string
	// Write writes the file at path.
	Write func(path string) error
}

// Checker judges a history. It sees only the history: what clients sent
// and were told, the nemesis events and the final reads. A checker of
// another tier (the linearizability checker in internal/check/lincheck,
// for the linear tier) filters the events by Tier, decodes what its
// workload recorded, and reports Anomalies; add it to Config.Checkers.
type Checker interface {
	// Name identifies the checker in the summary and the report.
	Name() string
	// Tier is the tier whose promises it checks.
	Tier() string
	// Promise says in a few words what it checks, for the summary.
	Promise() string
	Check(h *History) Findings
}

// DefaultCheckers are the checkers of every tier. A checker finds nothing
// to check in a history without operations of its tier, and says so in a
// note.
func DefaultCheckers() []Checker {
	return append(CausalCheckers(), LinearCheckers()...)
}

// CausalCheckers are the checkers of the causal tier.
func CausalCheckers() []Checker {
	return []Checker{CausalChecker{}, AtomicityChecker{}, ExactlyOnceChecker{}, ConvergenceChecker{}}
}

// LinearCheckers are the checkers of the linear tier.
func LinearCheckers() []Checker {
	return []Checker{LinearizableChecker{}, FencingChecker{}}
}

// CausalChecker runs internal/check over the causal tier's history: session
// guarantees, causal visibility, only written versions read, timestamps
// that respect causality, no acknowledged write lost, convergence of every
// key to the newest write.
type CausalChecker struct{}

// Name implements Checker.
func (CausalChecker) Name() string { return "causal" }

// Tier implements Checker.
func (CausalChecker) Tier() string { return TierCausal }

// Promise implements Checker.
func (CausalChecker) Promise() string {
	return "session guarantees, causal visibility, no lost write"
}

// Check implements Checker.
func (c CausalChecker) Check(h *History) Findings {
	v := newCausalView(h)
	var f Findings
	f.Notes = v.notes
	for _, viol := range check.Check(v.ops, v.final) {
		a := Anomaly{Checker: c.Name(), Kind: viol.Kind, Session: viol.Session, Key: viol.Key, Detail: v.rewriteOps(viol.Detail)}
		if viol.Op >= 0 {
			a.Op = v.ids[viol.Op].op
		}
		f.Anomalies = append(f.Anomalies, a)
	}
	return f
}

// causalView translates a history into internal/check's model.
//
// Sessions and order: check.Op.Session is the causal session (token
// lineage) and Index its position there, so happens-before is session order
// plus reads-from, as internal/check computes it.
//
// write_many: internal/check knows one key per write. An atomic write of n
// keys becomes n puts, consecutive in its session, each with the write's
// timestamp and sequence number; the i-th (from 0) gets origin "REGION+00i"
// for i > 0. That name sorts right after REGION and before any other
// region name (region names use lowercase letters, digits and '-', all
// after '+'), so the n puts are ordered among themselves and exactly as
// the write among every other version, and each has an identity of its
// own. Their order models part of the atomicity (a read that sees a later
// key of the write must see the earlier ones); AtomicityChecker checks the
// rest.
//
// Collected deletions: a deletion every region holds is garbage-collected,
// after which the key reads as never written. A read that finds a key
// without any version after a deletion of it was invoked is therefore
// uninformative, and is left out (which can hide an anomaly, never invent
// one); a region whose final state lacks a key that another region holds
// a deletion for is taken to hold that deletion.
type causalView struct {
	ops   []check.Op
	ids   []opRef // per entry of ops
	final check.Final
	notes []string
	*causalIndex
}

// causalIndex finds the atomic write behind a version, and the deletions
// of a key.
type causalIndex struct {
	wmByVersion map[versionKey]*Operation
	wmByValue   map[string]wmRef
	deletes     map[string][]int // key -> positions of delete invocations
}

func indexCausal(ops []Operation) *causalIndex {
	x := &causalIndex{wmByVersion: map[versionKey]*Operation{}, wmByValue: map[string]wmRef{}, deletes: map[string][]int{}}
	for i := range ops {
		o := &ops[i]
		switch o.Invoke.F {
		case FWriteMany:
			for j, w := range o.Invoke.Writes {
				x.wmByValue[w.Value] = wmRef{o, j}
			}
			if o.Outcome() == EventOK && o.Completion.Version != nil {
				x.wmByVersion[versionKey{o.Completion.Version.Origin, o.Completion.Version.Seq}] = o
			}
		case FDelete:
			x.deletes[o.Invoke.Key] = append(x.deletes[o.Invoke.Key], o.InvokePos)
		}
	}
	return x
}

type opRef struct {
	op  int64
	key string // write_many: which key
}

type versionKey struct {
	origin string
	seq    uint64
}

type wmRef struct {
	op    *Operation
	index int
}

// subOrigin names the i-th key of an atomic write (see causalView).
func subOrigin(origin string, i int) string {
	if i == 0 {
		return origin
	}
	return fmt.Sprintf("%s+%03d", origin, i)
}

func causalOperations(h *History) []Operation {
	var out []Operation
	for _, o := range h.Operations() {
		if o.Invoke.Tier == TierCausal {
			out = append(out, o)
		}
	}
	return out
}

func newCausalView(h *History) *causalView {
	ops := causalOperations(h)
	v := &causalView{causalIndex: indexCausal(ops)}
	dropped := 0
	for i := range ops {
		o := &ops[i]
		outcome := o.Outcome()
		base := check.Op{Session: o.Invoke.Session, Index: o.Invoke.Index * 256, Region: o.Invoke.Region,
			OK: outcome == EventOK, Indeterminate: outcome == EventInfo}
		switch o.Invoke.F {
		case FPut, FDelete:
			op := base
			op.Key, op.Value, op.Kind = o.Invoke.Key, o.Invoke.Value, check.OpPut
			if o.Invoke.F == FDelete {
				op.Kind, op.Value = check.OpDelete, ""
			}
			if op.OK {
				op.Written = refOf(o.Completion.Version, o.Invoke.F == FDelete, op.Value)
			}
			v.add(op, opRef{op: o.Invoke.Op})
		case FWriteMany:
			for j, w := range o.Invoke.Writes {
				op := base
				op.Index += j
				op.Region = subOrigin(base.Region, j)
				op.Kind, op.Key, op.Value = check.OpPut, w.Key, w.Value
				if op.OK {
					op.Written = refOf(o.Completion.Version, false, w.Value)
					op.Written.Origin = subOrigin(op.Written.Origin, j)
				}
				v.add(op, opRef{op: o.Invoke.Op, key: w.Key})
			}
		case FGet, FReadMany:
			if outcome != EventOK {
				continue
			}
			op := base
			op.Kind = check.OpGet
			if o.Invoke.F == FReadMany {
				op.Kind = check.OpReadMany
			}
			op.Reads = map[string]check.VersionRef{}
			for _, r := range o.Completion.Reads {
				if r.Version == nil && v.deletedBefore(r.Key, o.CompletePos) {
					dropped++
					continue
				}
				op.Reads[r.Key] = v.ref(r)
			}
			if len(op.Reads) > 0 {
				v.add(op, opRef{op: o.Invoke.Op})
			}
		}
	}
	if dropped > 0 {
		v.notes = append(v.notes, fmt.Sprintf("%d key reads found no version after a deletion of the key (collected deletions) and were not checked", dropped))
	}
	v.final = v.finalState(h, ops)
	return v
}

func (v *causalView) add(op check.Op, ref opRef) {
	v.ops = append(v.ops, op)
	v.ids = append(v.ids, ref)
}

func (v *causalIndex) deletedBefore(key string, pos int) bool {
	d := v.deletes[key]
	return len(d) > 0 && d[0] < pos
}

func refOf(ver *Version, tombstone bool, value string) check.VersionRef {
	if ver == nil {
		return check.VersionRef{}
	}
	ref := check.VersionRef{Origin: ver.Origin, Seq: ver.Seq, WallMs: ver.WallMs, Logical: ver.Logical, Tombstone: tombstone}
	if !tombstone {
		ref.Value = value
	}
	return ref
}

// ref is the version a read returned, named as the write that produced it
// is named (see subOrigin).
func (v *causalView) ref(r KeyRead) check.VersionRef {
	ref := refOf(r.Version, !r.Found, r.Value)
	if r.Version != nil {
		if i := v.wmIndex(r); i > 0 {
			ref.Origin = subOrigin(ref.Origin, i)
		}
	}
	return ref
}

// wmIndex is the position of r.Key in the atomic write that produced the
// version r returned, or -1 when no atomic write did.
func (v *causalIndex) wmIndex(r KeyRead) int {
	if o := v.wmByVersion[versionKey{r.Version.Origin, r.Version.Seq}]; o != nil {
		return slices.IndexFunc(o.Invoke.Writes, func(w KeyWrite) bool { return w.Key == r.Key })
	}
	if !r.Found {
		return -1
	}
	if w, ok := v.wmByValue[r.Value]; ok && w.op.Invoke.Region == r.Version.Origin && w.op.Invoke.Writes[w.index].Key == r.Key {
		return w.index
	}
	return -1
}

// finalState builds the final state from the final reads; nil when there
// are none.
func (v *causalView) finalState(h *History, ops []Operation) check.Final {
	final := check.Final{}
	for _, e := range h.Of(EventFinal) {
		if e.Tier != TierCausal || e.F != FReadMany || e.Error != "" {
			continue
		}
		state := map[string]check.VersionRef{}
		for _, r := range e.Reads {
			state[r.Key] = v.ref(r)
		}
		final[e.Region] = state
	}
	if len(final) == 0 {
		return nil
	}
	// Keys some region holds no version of, though it was deleted.
	keys := map[string]bool{}
	for _, state := range final {
		for k := range state {
			keys[k] = true
		}
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		if len(v.deletes[key]) == 0 {
			continue
		}
		var absent []string
		var tomb check.VersionRef
		for region, state := range final {
			switch ref := state[key]; {
			case !ref.Exists():
				absent = append(absent, region)
			case ref.Tombstone && ref.Compare(tomb) > 0:
				tomb = ref
			}
		}
		if len(absent) == 0 {
			continue
		}
		if !tomb.Exists() {
			tomb = v.newestKnown(key, ops)
			if tomb.Exists() && !tomb.Tombstone {
				if !v.indeterminateDelete(key, ops) {
					continue // a write is missing everywhere: let the checker report it
				}
				v.notes = append(v.notes, fmt.Sprintf("key %q holds no version in any region; a deletion of unknown outcome may have been collected, so its final state was not checked", key))
			}
		}
		for _, region := range absent {
			final[region][key] = tomb
		}
	}
	return final
}

// newestKnown is the version of key with the greatest timestamp among
// acknowledged writes and versions reads returned.
func (v *causalView) newestKnown(key string, ops []Operation) check.VersionRef {
	var best check.VersionRef
	consider := func(ref check.VersionRef) {
		if ref.Exists() && ref.Compare(best) > 0 {
			best = ref
		}
	}
	for _, op := range v.ops {
		switch {
		case op.OK && op.Key == key && (op.Kind == check.OpPut || op.Kind == check.OpDelete):
			ref := op.Written
			ref.Tombstone = op.Kind == check.OpDelete
			consider(ref)
		case op.OK && op.Reads != nil:
			if ref, ok := op.Reads[key]; ok {
				consider(ref)
			}
		}
	}
	return best
}

func (v *causalView) indeterminateDelete(key string, ops []Operation) bool {
	for _, o := range ops {
		if o.Invoke.F == FDelete && o.Invoke.Key == key && o.Outcome() == EventInfo {
			return true
		}
	}
	return false
}

var opNumber = regexp.MustCompile(`\bop (\d+)\b`)

// rewriteOps replaces internal/check's op numbers (positions in the
// translated history) in a message by the history's op ids.
func (v *causalView) rewriteOps(s string) string {
	return opNumber.ReplaceAllStringFunc(s, func(m string) string {
		i, err := strconv.Atoi(m[len("op "):])
		if err != nil || i < 0 || i >= len(v.ids) {
			return m
		}
		if v.ids[i].key != "" {
			return fmt.Sprintf("op %d (key %s of the write_many)", v.ids[i].op, v.ids[i].key)
		}
		return fmt.Sprintf("op %d", v.ids[i].op)
	})
}

// AtomicityChecker checks that atomic multi-key writes (write_many) are
// visible all or nothing: a snapshot read (read_many) that returns one key
// of such a write returns, for every other key of it, that write or
// something newer; and a session that has seen one key of it (by reading
// it, or by writing it) never reads an older version of another key.
type AtomicityChecker struct{}

// Name implements Checker.
func (AtomicityChecker) Name() string { return "atomic-write" }

// Tier implements Checker.
func (AtomicityChecker) Tier() string { return TierCausal }

// Promise implements Checker.
func (AtomicityChecker) Promise() string { return "write_many visible all-or-nothing" }

// Check implements Checker.
func (c AtomicityChecker) Check(h *History) Findings {
	ops := causalOperations(h)
	v := indexCausal(ops)
	writeOf := func(r KeyRead) (*Operation, *Version) {
		if r.Version == nil || v.wmIndex(r) < 0 {
			return nil, nil
		}
		if o := v.wmByVersion[versionKey{r.Version.Origin, r.Version.Seq}]; o != nil {
			return o, r.Version
		}
		return v.wmByValue[r.Value].op, r.Version
	}
	var f Findings
	// olderThan: the version read for key is older than the atomic write w
	// (with version wv) that wrote it too.
	olderThan := func(r KeyRead, pos int, wv *Version) bool {
		if r.Version == nil {
			return !v.deletedBefore(r.Key, pos)
		}
		return compareVersions(r.Version, wv) < 0
	}
	// seen: per session and key, the newest atomic write that wrote the key
	// and that the session has seen (read one of its keys, or wrote it).
	// Reading an older version of the key after it is torn, and checking
	// the newest one is enough: an older one is older still.
	type seenWrite struct {
		op      int64
		version *Version
	}
	bySession := map[string][]*Operation{}
	for i := range ops {
		bySession[ops[i].Invoke.Session] = append(bySession[ops[i].Invoke.Session], &ops[i])
	}
	for _, s := range slices.Sorted(maps.Keys(bySession)) {
		list := bySession[s]
		slices.SortStableFunc(list, func(a, b *Operation) int { return cmp.Compare(a.Invoke.Index, b.Invoke.Index) })
		seen := map[string]seenWrite{}
		see := func(w *Operation, wv *Version) {
			for _, kw := range w.Invoke.Writes {
				if prev, ok := seen[kw.Key]; !ok || compareVersions(wv, prev.version) > 0 {
					seen[kw.Key] = seenWrite{w.Invoke.Op, wv}
				}
			}
		}
		for _, o := range list {
			if o.Outcome() != EventOK {
				continue
			}
			if o.Invoke.F == FWriteMany && o.Completion.Version != nil {
				see(o, o.Completion.Version)
				continue
			}
			if o.Invoke.F != FGet && o.Invoke.F != FReadMany {
				continue
			}
			reads := o.Completion.Reads
			// Snapshot: every key of an atomic write returned by this read.
			for _, r := range reads {
				w, wv := writeOf(r)
				if w == nil {
					continue
				}
				for _, other := range reads {
					if other.Key == r.Key || !slices.ContainsFunc(w.Invoke.Writes, func(kw KeyWrite) bool { return kw.Key == other.Key }) {
						continue
					}
					if olderThan(other, o.CompletePos, wv) {
						f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "torn-snapshot", Op: o.Invoke.Op, Session: s, Key: other.Key,
							Detail: fmt.Sprintf("%s at %s returned %q from write_many op %d (version %s) but %s for %q, which that write also wrote",
								o.Invoke.F, o.Invoke.Region, r.Key, w.Invoke.Op, wv, describeRead(other), other.Key)})
					}
				}
			}
			// Session: atomic writes seen before this read.
			for _, r := range reads {
				if sw, ok := seen[r.Key]; ok && olderThan(r, o.CompletePos, sw.version) {
					f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "torn-write", Op: o.Invoke.Op, Session: s, Key: r.Key,
						Detail: fmt.Sprintf("%s at %s returned %s for %q, but the session had already seen write_many op %d (version %s), which wrote %q",
							o.Invoke.F, o.Invoke.Region, describeRead(r), r.Key, sw.op, sw.version, r.Key)})
				}
			}
			for _, r := range reads {
				if w, wv := writeOf(r); w != nil {
					see(w, wv)
				}
			}
		}
	}
	slices.SortStableFunc(f.Anomalies, func(a, b Anomaly) int {
		return cmp.Or(cmp.Compare(a.Op, b.Op), strings.Compare(a.Key, b.Key), strings.Compare(a.Detail, b.Detail))
	})
	return f
}

func describeRead(r KeyRead) string {
	switch {
	case r.Version == nil:
		return "nothing"
	case !r.Found:
		return "a deletion " + r.Version.String()
	}
	return fmt.Sprintf("%q %s", r.Value, r.Version)
}

// compareVersions orders versions by timestamp, as last-writer-wins does:
// (wall, logical, origin).
func compareVersions(a, b *Version) int {
	if c := cmp.Compare(a.WallMs, b.WallMs); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Logical, b.Logical); c != 0 {
		return c
	}
	return strings.Compare(a.Origin, b.Origin)
}

// ExactlyOnceChecker checks that no write was applied twice: every value is
// written by one request (retries carry the same request id), so every
// version that holds a value, in any read, acknowledgement or final state,
// must be the same version.
type ExactlyOnceChecker struct{}

// Name implements Checker.
func (ExactlyOnceChecker) Name() string { return "exactly-once" }

// Tier implements Checker.
func (ExactlyOnceChecker) Tier() string { return TierCausal }

// Promise implements Checker.
func (ExactlyOnceChecker) Promise() string { return "no write applied twice" }

// Check implements Checker.
func (c ExactlyOnceChecker) Check(h *History) Findings {
	type sighting struct {
		version versionKey
		where   string
	}
	byValue := map[string][]sighting{}
	see := func(value string, ver *Version, where string) {
		if ver == nil || value == "" {
			return
		}
		k := versionKey{ver.Origin, ver.Seq}
		for _, s := range byValue[value] {
			if s.version == k {
				return
			}
		}
		byValue[value] = append(byValue[value], sighting{k, where})
	}
	for _, o := range causalOperations(h) {
		if o.Outcome() != EventOK {
			continue
		}
		where := fmt.Sprintf("op %d (%s in %s)", o.Invoke.Op, o.Invoke.F, o.Invoke.Region)
		switch o.Invoke.F {
		case FPut:
			see(o.Invoke.Value, o.Completion.Version, where)
		case FWriteMany:
			for _, w := range o.Invoke.Writes {
				see(w.Value, o.Completion.Version, where)
			}
		case FGet, FReadMany:
			for _, r := range o.Completion.Reads {
				if r.Found {
					see(r.Value, r.Version, where)
				}
			}
		}
	}
	for _, e := range h.Of(EventFinal) {
		for _, r := range e.Reads {
			if r.Found {
				see(r.Value, r.Version, "the final state of "+e.Region)
			}
		}
	}
	var f Findings
	for _, value := range slices.Sorted(maps.Keys(byValue)) {
		s := byValue[value]
		if len(s) < 2 {
			continue
		}
		var parts []string
		for _, x := range s {
			parts = append(parts, fmt.Sprintf("%s/%d at %s", x.version.origin, x.version.seq, x.where))
		}
		f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "applied-twice",
			Detail: fmt.Sprintf("value %q, written by one request, appears as %d different versions: %s", value, len(s), strings.Join(parts, "; "))})
	}
	return f
}

// ConvergenceChecker checks the end of the campaign: replication
// converged (every region applied the same writes), every region could be
// read, and every region holds the same data. Data is compared by a digest
// of what a client can see: each key's value and version, a deleted key
// and an absent one alike (a deletion every region holds may already be
// collected in one region and not yet in another).
type ConvergenceChecker struct{}

// Name implements Checker.
func (ConvergenceChecker) Name() string { return "convergence" }

// Tier implements Checker.
func (ConvergenceChecker) Tier() string { return TierCausal }

// Promise implements Checker.
func (ConvergenceChecker) Promise() string { return "identical data in every region after the heal" }

// Check implements Checker.
func (c ConvergenceChecker) Check(h *History) Findings {
	var f Findings
	digests := map[string]string{}
	states := map[string]map[string]string{}
	var regions []string
	for _, e := range h.Of(EventFinal) {
		if e.Tier != TierCausal {
			continue
		}
		switch {
		case e.F == FConverge && e.Error != "":
			f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "no-convergence", Detail: e.Error})
		case e.F == FConverge:
			f.Notes = append(f.Notes, e.Detail)
		case e.F == FReadMany && e.Error != "":
			f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "final-read-failed",
				Detail: fmt.Sprintf("region %s could not be read after every fault healed: %s", e.Region, e.Error)})
		case e.F == FReadMany:
			state := map[string]string{}
			sum := sha256.New()
			reads := slices.Clone(e.Reads)
			slices.SortFunc(reads, func(a, b KeyRead) int { return strings.Compare(a.Key, b.Key) })
			for _, r := range reads {
				line := "absent"
				if r.Found {
					line = fmt.Sprintf("%q %s", r.Value, r.Version)
				}
				state[r.Key] = line
				fmt.Fprintf(sum, "%q %s\n", r.Key, line)
			}
			regions = append(regions, e.Region)
			states[e.Region] = state
			digests[e.Region] = hex.EncodeToString(sum.Sum(nil))[:16]
		}
	}
	if len(regions) == 0 {
		f.Notes = append(f.Notes, "no final state was read")
		return f
	}
	distinct := map[string]bool{}
	for _, d := range digests {
		distinct[d] = true
	}
	if len(distinct) == 1 {
		f.Notes = append(f.Notes, fmt.Sprintf("digest %s in all %d regions read (%d keys)", digests[regions[0]], len(regions), len(states[regions[0]])))
		return f
	}
	var per []string
	for _, r := range regions {
		per = append(per, r+"="+digests[r])
	}
	var diffs []string
	first := states[regions[0]]
	for _, key := range slices.Sorted(maps.Keys(first)) {
		for _, r := range regions[1:] {
			if states[r][key] != first[key] {
				diffs = append(diffs, fmt.Sprintf("%q: %s holds %s, %s holds %s", key, regions[0], first[key], r, states[r][key]))
			}
		}
	}
	f.Anomalies = append(f.Anomalies, Anomaly{Checker: c.Name(), Kind: "divergence",
		Detail: fmt.Sprintf("regions hold different data after the heal (digests %s): %s", strings.Join(per, ", "), strings.Join(diffs, "; "))})
	return f
}
