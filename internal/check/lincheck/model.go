package lincheck

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// Object is the kind of object a partition of the history is about.
type Object string

// Objects checked by CheckLinearizable.
const (
	ObjectClaim    Object = "claim"    // claim, release, lookup of one name
	ObjectRegister Object = "register" // cas and get of one register
)

// objectOf returns the object kind ops of kind k act on, or "" for kinds
// CheckLinearizable does not check (locks: see CheckFencing).
func objectOf(k Kind) Object {
	switch k {
	case KindClaim, KindRelease, KindLookup:
		return ObjectClaim
	case KindCAS, KindGet:
		return ObjectRegister
	}
	return ""
}

// Result is the verdict on one partition.
type Result string

// Results.
const (
	Linearizable    Result = "linearizable"
	NotLinearizable Result = "not-linearizable"
	// Unknown: the check ran out of time before reaching a verdict.
	Unknown Result = "unknown"
)

// PartitionResult is the verdict on the operations on one object.
type PartitionResult struct {
	Object Object
	Key    string
	Ops    int // operations on the object
	Result Result
}

// String formats p on one line, e.g. `register "k" (12 ops): not-linearizable`.
func (p PartitionResult) String() string {
	return fmt.Sprintf("%s %q (%d ops): %s", p.Object, p.Key, p.Ops, p.Result)
}

// Report is the outcome of CheckLinearizable.
type Report struct {
	// OK is true when every partition was found linearizable. It is false
	// when one is not, and also when the check timed out on one.
	OK bool
	// Partitions holds one result per object, ordered by object kind then
	// key.
	Partitions []PartitionResult

	// parts holds each partition's operations, in the order of Partitions.
	parts   [][]porcupine.Operation
	timeout time.Duration
}

// Violations returns the partitions found not linearizable.
func (r *Report) Violations() []PartitionResult {
	var out []PartitionResult
	for _, p := range r.Partitions {
		if p.Result == NotLinearizable {
			out = append(out, p)
		}
	}
	return out
}

// String summarises r: "linearizable (N objects)" or one line per partition
// that is not found linearizable.
func (r *Report) String() string {
	if r.OK {
		return fmt.Sprintf("linearizable (%d objects)", len(r.Partitions))
	}
	var lines []string
	for _, p := range r.Partitions {
		if p.Result != Linearizable {
			lines = append(lines, p.String())
		}
	}
	return strings.Join(lines, "\n")
}

// WriteVisualization writes porcupine's HTML visualization of the history to
// path: the partitions found not linearizable, each with its longest partial
// linearizations and the operations that could not be placed; or, when none
// was, every partition with its linearization. The partitions shown are
// checked again to produce it, within the timeout CheckLinearizable had.
func (r *Report) WriteVisualization(path string) error {
	var show []int
	for i, p := range r.Partitions {
		if p.Result == NotLinearizable {
			show = append(show, i)
		}
	}
	if len(show) == 0 {
		for i := range r.Partitions {
			show = append(show, i)
		}
	}
	if len(show) == 0 {
		return errors.New("lincheck: empty history: nothing to visualize")
	}
	var ops []porcupine.Operation
	for _, i := range show {
		ops = append(ops, r.parts[i]...)
	}
	m := model()
	m.Partition = func(history []porcupine.Operation) [][]porcupine.Operation {
		byPart := map[int][]porcupine.Operation{}
		for _, op := range history {
			in := op.Input.(input)
			byPart[in.part] = append(byPart[in.part], op)
		}
		out := make([][]porcupine.Operation, 0, len(byPart))
		for _, i := range show {
			out = append(out, byPart[i])
		}
		return out
	}
	_, info := porcupine.CheckOperationsVerbose(m, ops, r.timeout)
	if err := porcupine.VisualizePath(m, info, path); err != nil {
		return fmt.Errorf("lincheck: writing visualization: %w", err)
	}
	return nil
}

// input is what the model is asked to step with: one operation of the
// history. The step's output is the operation's effect.
type input struct {
	index int // in the history
	part  int // index of its partition in Report.Partitions
	op    *Op
}

// effect is what an operation's outcome says about its effect on the state.
type effect uint8

const (
	// effectOK: it took effect, with the results recorded in the Op.
	effectOK effect = iota
	// effectRefused: it did not take effect, for a reason (Op.Code) that
	// the state must explain.
	effectRefused
	// effectRejected: it was refused before reaching the state machine:
	// no effect, whatever the state.
	effectRejected
	// effectUnknown: it may have taken effect (at any time after its call)
	// or not.
	effectUnknown
)

func effectOf(o *Op) effect {
	switch {
	case o.Indeterminate():
		return effectUnknown
	case o.rejected():
		return effectRejected
	case o.Outcome == OutcomeOK:
		return effectOK
	default:
		return effectRefused
	}
}

// CheckLinearizable checks that the claims and registers of a history
// behave as one copy of each object would, every operation taking effect at
// one instant between its call and its return (see the package
// documentation for the sequential specification and the handling of
// indeterminate outcomes). Lock operations are not part of this check; see
// CheckFencing.
//
// Each object is checked separately; together the checks may take at most
// timeout (0: no limit), after which the remaining partitions are Unknown.
// The error reports a malformed history (the first malformed op), not a
// violation: violations are in the Report.
func CheckLinearizable(ops []Op, timeout time.Duration) (Report, error) {
	hist := slices.Clone(ops) // the Report keeps pointers into it
	type partKey struct {
		object Object
		key    string
	}
	byKey := map[partKey][]int{}
	for i := range hist {
		op := &hist[i]
		if err := op.validate(); err != nil {
			return Report{}, fmt.Errorf("lincheck: op %d (%s): %w", i, op.String(), err)
		}
		if obj := objectOf(op.Kind); obj != "" {
			k := partKey{obj, op.Key}
			byKey[k] = append(byKey[k], i)
		}
	}
	keys := make([]partKey, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partKey) int {
		return cmp.Or(cmp.Compare(a.object, b.object), cmp.Compare(a.key, b.key))
	})

	rep := Report{
		Partitions: make([]PartitionResult, len(keys)),
		parts:      make([][]porcupine.Operation, len(keys)),
		timeout:    timeout,
	}
	for p, k := range keys {
		idx := byKey[k]
		rep.Partitions[p] = PartitionResult{Object: k.object, Key: k.key, Ops: len(idx)}
		part := make([]porcupine.Operation, len(idx))
		for j, i := range idx {
			part[j] = operation(&hist[i], i, p)
		}
		rep.parts[p] = part
	}

	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	m := model()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(keys)) {
		wg.Go(func() {
			for {
				p := int(next.Add(1) - 1)
				if p >= len(keys) {
					return
				}
				rep.Partitions[p].Result = checkPartition(m, rep.parts[p], deadline)
			}
		})
	}
	wg.Wait()

	rep.OK = true
	for _, p := range rep.Partitions {
		rep.OK = rep.OK && p.Result == Linearizable
	}
	return rep, nil
}

func checkPartition(m porcupine.Model, ops []porcupine.Operation, deadline time.Time) Result {
	var remaining time.Duration // 0: no limit, for porcupine too
	if !deadline.IsZero() {
		remaining = time.Until(deadline)
		if remaining <= 0 {
			return Unknown
		}
	}
	switch porcupine.CheckOperationsTimeout(m, ops, remaining) {
	case porcupine.Ok:
		return Linearizable
	case porcupine.Illegal:
		return NotLinearizable
	default:
		return Unknown
	}
}

// operation converts op i of the history, in partition p. An operation whose
// effect is unknown never returns, as far as the checker knows: it may be
// linearized at any point after its call, including after every other
// operation, where its effect is invisible, which is how "it did not take
// effect" is accounted for.
func operation(op *Op, i, p int) porcupine.Operation {
	eff := effectOf(op)
	ret := int64(math.MaxInt64)
	if eff != effectUnknown {
		ret = op.Return.UnixNano()
	}
	return porcupine.Operation{
		ClientId: op.Client,
		Input:    input{index: i, part: p, op: op},
		Call:     op.Call.UnixNano(),
		Output:   eff,
		Return:   ret,
		Metadata: i,
	}
}

// model is the sequential specification of claims and registers. A
// partition holds operations on one object, so one model serves both: the
// initial state is nil, and the first step gives it the object's type.
// States are comparable values, so porcupine's default equality applies.
func model() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return nil },
		Step: func(state, in, out any) (bool, any) {
			op := in.(input).op
			eff := out.(effect)
			if objectOf(op.Kind) == ObjectClaim {
				s, _ := state.(claimState)
				return s.step(op, eff)
			}
			s, _ := state.(register)
			return s.step(op, eff)
		},
		DescribeOperation: func(in, out any) string {
			op := in.(input).op
			s := op.String()
			if op.Indeterminate() {
				s += " (may or may not have taken effect)"
			}
			return s
		},
		DescribeOperationMetadata: func(meta any) string {
			return fmt.Sprintf("op %d of the history", meta)
		},
		DescribeState: func(state any) string {
			switch s := state.(type) {
			case claimState:
				return s.String()
			case register:
				return s.String()
			}
			return "initial"
		},
	}
}

// claimState is one name's claim: its owner, "" when free.
type claimState struct{ owner string }

func (s claimState) String() string {
	if s.owner == "" {
		return "free"
	}
	return fmt.Sprintf("held by %q", s.owner)
}

// step applies op with effect eff to s, reporting whether the specification
// allows it.
func (s claimState) step(op *Op, eff effect) (bool, claimState) {
	if eff == effectRejected {
		return true, s
	}
	switch op.Kind {
	case KindClaim:
		// Claiming is idempotent for the owner.
		free := s.owner == "" || s.owner == op.Owner
		switch eff {
		case effectOK:
			return free, claimState{op.Owner}
		case effectUnknown:
			if free {
				return true, claimState{op.Owner}
			}
			return true, s
		default:
			reported := op.Value == "" || op.Value == s.owner
			return op.Code == CodeAlreadyExists && !free && reported, s
		}
	case KindRelease:
		switch eff {
		case effectOK:
			return s.owner == op.Owner, claimState{}
		case effectUnknown:
			if s.owner == op.Owner {
				return true, claimState{}
			}
			return true, s
		default:
			switch op.Code {
			case CodeNotFound:
				return s.owner == "", s
			case CodeFailedPrecondition:
				return s.owner != "" && s.owner != op.Owner, s
			}
			return false, s
		}
	case KindLookup:
		switch eff {
		case effectOK:
			return s.owner == op.Value, s
		case effectUnknown:
			return true, s
		default:
			return op.Code == CodeNotFound && s.owner == "", s
		}
	}
	return false, s
}

// register is one versioned register. Versions of a register's writes
// (deletes included) strictly increase; 0 stands for "absent".
type register struct {
	exists bool
	value  string
	// version is that of the latest write, a delete's too (0: never
	// written). When approx is set, the latest write's version was never
	// reported (its client got no answer) and is only known to be at least
	// version; the first operation that reports it pins it.
	version uint64
	approx  bool
}

func (r register) String() string {
	v := fmt.Sprintf("v%d", r.version)
	if r.approx {
		v = fmt.Sprintf("v>=%d", r.version)
	}
	if !r.exists {
		return "absent (last write " + v + ")"
	}
	return fmt.Sprintf("%q @%s", r.value, v)
}

// hasVersion reports whether the register's current version (0 when absent)
// can be v, and returns the register with its version pinned to v.
func (r register) hasVersion(v uint64) (bool, register) {
	switch {
	case v == 0:
		return !r.exists, r
	case !r.exists:
		return false, r
	case !r.approx:
		return r.version == v, r
	case v >= r.version:
		r.version, r.approx = v, false
		return true, r
	}
	return false, r
}

// condition reports whether op's cas condition can hold in r, and returns r
// with its version pinned if the condition named it.
func (r register) condition(op *Op) (bool, register) {
	switch {
	case op.CompareVersion != nil:
		return r.hasVersion(*op.CompareVersion)
	case op.CompareValue != nil:
		return r.exists && r.value == *op.CompareValue, r
	}
	return true, r
}

// step applies op with effect eff to r, reporting whether the specification
// allows it.
func (r register) step(op *Op, eff effect) (bool, register) {
	if eff == effectRejected {
		return true, r
	}
	switch op.Kind {
	case KindCAS:
		written := register{exists: !op.Delete, version: op.Version}
		if !op.Delete {
			written.value = op.Value
		}
		switch eff {
		case effectOK:
			var holds bool
			if holds, r = r.condition(op); !holds {
				return false, r
			}
			if op.Delete && op.Version == 0 {
				// The delete's version was not reported; it exceeds the
				// latest write's.
				written.version, written.approx = r.version+1, true
				return true, written
			}
			// When r.approx, the latest write's version x is at least
			// r.version, and op.Version > x is possible iff op.Version >
			// r.version.
			return op.Version > r.version, written
		case effectUnknown:
			// If the condition cannot hold, the write had no effect. If it
			// can, the branch in which it did not hold is the same as
			// placing this operation after all others.
			var holds bool
			if holds, r = r.condition(op); !holds {
				return true, r
			}
			written.version, written.approx = r.version+1, true
			return true, written
		default:
			switch op.Code {
			case CodeAborted:
				// Version is the current version, which must make the
				// condition false.
				var current bool
				if current, r = r.hasVersion(op.Version); !current {
					return false, r
				}
				switch {
				case op.CompareVersion != nil:
					return *op.CompareVersion != op.Version, r
				case op.CompareValue != nil:
					return !r.exists || r.value != *op.CompareValue, r
				}
				return false, r
			case CodeNotFound:
				conditional := op.CompareValue != nil || (op.CompareVersion != nil && *op.CompareVersion > 0)
				return !r.exists && (op.Delete || conditional), r
			}
			return false, r
		}
	case KindGet:
		switch eff {
		case effectOK:
			if op.Version != 0 && (!r.exists || r.value != op.Value) {
				return false, r
			}
			return r.hasVersion(op.Version)
		case effectUnknown:
			return true, r
		default:
			return op.Code == CodeNotFound && !r.exists, r
		}
	}
	return false, r
}
