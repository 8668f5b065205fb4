package lincheck

import (
	"fmt"
	"slices"
	"strings"
)

// AnomalyKind names the fencing rule an anomaly breaks.
type AnomalyKind string

// Anomaly kinds.
const (
	// AnomalyMalformed: a lock or fenced-write op is missing something the
	// check needs (see Op); it is left out of the check.
	AnomalyMalformed AnomalyKind = "malformed-op"
	// AnomalyDuplicateToken: two successful acquisitions of one lock
	// returned the same fencing token.
	AnomalyDuplicateToken AnomalyKind = "duplicate-token"
	// AnomalyTokenOrder: an acquisition returned before another was
	// invoked, yet the later one got the smaller token.
	AnomalyTokenOrder AnomalyKind = "token-order"
	// AnomalyStaleWrite: a fenced write succeeded with a token older than
	// one an acquisition had already returned when the write was invoked.
	AnomalyStaleWrite AnomalyKind = "stale-write"
)

// Anomaly is one broken fencing rule.
type Anomaly struct {
	Kind AnomalyKind
	Lock string // lock name (Op.Key)
	// Ops are the indexes in the history of the operations involved, in
	// the order the Description names them.
	Ops         []int
	Description string
}

// String formats a on one line.
func (a Anomaly) String() string {
	return fmt.Sprintf("%s, lock %q: %s", a.Kind, a.Lock, a.Description)
}

// CheckFencing checks the fencing tokens of a history's locks. For each lock
// (ops of kind lock and fenced-write with the same Key):
//
//   - successful acquisitions (lock, ok) all got distinct tokens;
//   - if acquisition A returned before acquisition B was invoked, A's token
//     is smaller than B's: tokens grow in real-time order;
//   - a fenced write that succeeded carrying token t was not invoked after
//     an acquisition with a token greater than t had returned: once a newer
//     holder exists, the old holder's writes must be refused.
//
// Only acknowledged operations constrain: an acquisition whose outcome is
// unknown may have obtained a token the history does not know, so it is
// ignored, and so are failed writes (a refused write is always safe).
// "Before" is strict: operations whose intervals touch are concurrent.
// Unlock operations are not checked: a lease may expire without one.
//
// Anomalies are ordered by lock name, then duplicates by token, then the
// others by the call time of the operation that broke the rule.
func CheckFencing(ops []Op) []Anomaly {
	var anomalies []Anomaly
	byLock := map[string][]int{}
	for i := range ops {
		op := &ops[i]
		if op.Kind != KindLock && op.Kind != KindFencedWrite {
			continue
		}
		if err := op.validate(); err != nil {
			anomalies = append(anomalies, Anomaly{
				Kind: AnomalyMalformed, Lock: op.Key, Ops: []int{i},
				Description: describeOp(i, op) + ": " + err.Error(),
			})
			continue
		}
		if op.Outcome == OutcomeOK {
			byLock[op.Key] = append(byLock[op.Key], i)
		}
	}
	locks := make([]string, 0, len(byLock))
	for name := range byLock {
		locks = append(locks, name)
	}
	slices.Sort(locks)
	for _, name := range locks {
		anomalies = append(anomalies, checkLock(ops, name, byLock[name])...)
	}
	return anomalies
}

// checkLock checks the acknowledged operations idx (lock and fenced-write)
// of one lock.
func checkLock(ops []Op, name string, idx []int) []Anomaly {
	var anomalies []Anomaly
	var acquisitions []int
	byToken := map[uint64][]int{}
	for _, i := range idx {
		if ops[i].Kind == KindLock {
			acquisitions = append(acquisitions, i)
			byToken[ops[i].Token] = append(byToken[ops[i].Token], i)
		}
	}
	tokens := make([]uint64, 0, len(byToken))
	for t, holders := range byToken {
		if len(holders) > 1 {
			tokens = append(tokens, t)
		}
	}
	slices.Sort(tokens)
	for _, t := range tokens {
		holders := byToken[t]
		names := make([]string, len(holders))
		for j, i := range holders {
			names[j] = describeOp(i, &ops[i])
		}
		anomalies = append(anomalies, Anomaly{
			Kind: AnomalyDuplicateToken, Lock: name, Ops: holders,
			Description: fmt.Sprintf("token %d was granted %d times: %s", t, len(holders), strings.Join(names, "; ")),
		})
	}

	// Sweep the operations by call time, keeping the acquisition with the
	// greatest token among those that had returned by then.
	slices.SortStableFunc(acquisitions, func(a, b int) int { return ops[a].Return.Compare(ops[b].Return) })
	queries := slices.Clone(idx)
	slices.SortStableFunc(queries, func(a, b int) int { return ops[a].Call.Compare(ops[b].Call) })
	newest, returned := -1, 0
	for _, q := range queries {
		op := &ops[q]
		for returned < len(acquisitions) && ops[acquisitions[returned]].Return.Before(op.Call) {
			a := acquisitions[returned]
			if newest < 0 || ops[a].Token > ops[newest].Token {
				newest = a
			}
			returned++
		}
		if newest < 0 || ops[newest].Token <= op.Token {
			continue
		}
		prior := describeOp(newest, &ops[newest])
		switch op.Kind {
		case KindLock:
			anomalies = append(anomalies, Anomaly{
				Kind: AnomalyTokenOrder, Lock: name, Ops: []int{newest, q},
				Description: fmt.Sprintf("%s returned token %d before %s was invoked, which got the smaller token %d",
					prior, ops[newest].Token, describeOp(q, op), op.Token),
			})
		case KindFencedWrite:
			anomalies = append(anomalies, Anomaly{
				Kind: AnomalyStaleWrite, Lock: name, Ops: []int{newest, q},
				Description: fmt.Sprintf("%s returned token %d before %s was invoked, yet that write with the stale token %d was accepted",
					prior, ops[newest].Token, describeOp(q, op), op.Token),
			})
		}
	}
	return anomalies
}
