package lincheck

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Kind is what a client asked the linearizable tier to do.
type Kind string

// The operations a history records.
const (
	KindClaim       Kind = "claim"        // claim Key (namespace/name) for Owner
	KindRelease     Kind = "release"      // Owner gives up its claim of Key
	KindLookup      Kind = "lookup"       // who holds Key (Value = owner)
	KindCAS         Kind = "cas"          // write (or delete) register Key, conditionally on CompareVersion
	KindGet         Kind = "get"          // linearizable read of register Key
	KindLock        Kind = "lock"         // acquire lock Key for Owner; Token = fencing token
	KindUnlock      Kind = "unlock"       // release lock Key
	KindFencedWrite Kind = "fenced-write" // a write guarded by lock Key's fencing token Token
)

// Outcome is what the client learned about an operation.
type Outcome string

// Outcomes.
const (
	// OutcomeOK: the operation took effect and returned its results.
	OutcomeOK Outcome = "ok"
	// OutcomeFail: the operation failed with Connect code Op.Code. Whether
	// that means it did not take effect depends on the code (see
	// Op.Indeterminate).
	OutcomeFail Outcome = "fail"
	// OutcomeInfo: the client never learned the outcome (timeout, lost
	// connection, crash). The operation may take effect at any time after
	// it was invoked, or never.
	OutcomeInfo Outcome = "info"
)

// Connect codes (their string form, as connect.Code.String returns them)
// that the checkers interpret.
const (
	CodeAborted            = "aborted"             // cas: CompareVersion did not match; Version = current version
	CodeAlreadyExists      = "already_exists"      // claim: Key is held by another owner
	CodeNotFound           = "not_found"           // lookup/get/release: nothing there
	CodeFailedPrecondition = "failed_precondition" // release by a non-owner; fenced write with a stale token
	CodeUnavailable        = "unavailable"         // no quorum, leader lost: may have been committed
	CodeDeadlineExceeded   = "deadline_exceeded"   // may have been committed
)

// stateCodes are the failures that report the state the operation met: the
// operation did not take effect, and the model must explain why.
var stateCodes = map[string]bool{
	CodeAborted:            true,
	CodeAlreadyExists:      true,
	CodeNotFound:           true,
	CodeFailedPrecondition: true,
}

// rejectedCodes are the failures of a request refused before it reached the
// replicated state machine: it did not take effect, and says nothing about
// the state.
var rejectedCodes = map[string]bool{
	"invalid_argument":   true,
	"permission_denied":  true,
	"unauthenticated":    true,
	"unimplemented":      true,
	"resource_exhausted": true,
}

// Op is one client operation against the linearizable tier as the client saw
// it. A history is a slice of Op, written as JSON lines (one Op per line) by
// WriteHistory and read back by ReadHistory.
type Op struct {
	// Client is the session that issued the operation. A session issues
	// one operation at a time.
	Client int  `json:"client"`
	Kind   Kind `json:"kind"`
	// Key names the object: "namespace/name" for claims, the register key
	// for cas and get, the lock name for lock, unlock and fenced-write.
	Key string `json:"key"`
	// Owner is the claimant (claim, release) or the lock holder (lock,
	// unlock).
	Owner string `json:"owner,omitempty"`

	// CompareVersion is the cas condition: nil writes unconditionally, 0
	// requires the register to be absent, n > 0 requires its current
	// version to be n.
	CompareVersion *uint64 `json:"compare_version,omitempty"`
	// CompareValue, if set instead, requires the register to exist and
	// hold this value.
	CompareValue *string `json:"compare_value,omitempty"`
	// Value is what a cas writes, what a get read, the owner a lookup
	// returned, or (optionally) the current owner an already_exists claim
	// reported.
	Value string `json:"value,omitempty"`
	// Delete makes a cas delete the register instead of writing Value.
	Delete bool `json:"delete,omitempty"`

	Outcome Outcome `json:"outcome"`
	// Code is the Connect code of a failure, e.g. "aborted".
	Code string `json:"code,omitempty"`
	// Version is, for cas, the new version on ok (0 for a delete that does
	// not report one) and the current version on aborted (0 = absent); for
	// get, the version read (0 = absent).
	Version uint64 `json:"version,omitempty"`
	// Token is the fencing token a lock acquired, or the one a fenced-write
	// carried.
	Token uint64 `json:"token,omitempty"`

	// Call and Return are the wall-clock times of invocation and
	// completion. Return is zero when Outcome is info.
	Call   time.Time `json:"call"`
	Return time.Time `json:"return,omitzero"`
}

// Indeterminate reports whether the client cannot know if o took effect: its
// outcome is info, or it failed with a code that does not rule out that the
// request was committed. Only the codes that report the state met (aborted,
// already_exists, not_found, failed_precondition) and those of a request
// refused before replication (invalid_argument, permission_denied,
// unauthenticated, unimplemented, resource_exhausted) are definite;
// unavailable, deadline_exceeded, canceled, internal, unknown and any other
// code are not: a leader may have committed the entry and lost the reply.
func (o *Op) Indeterminate() bool {
	switch o.Outcome {
	case OutcomeOK:
		return false
	case OutcomeFail:
		return !stateCodes[o.Code] && !rejectedCodes[o.Code]
	default:
		return true
	}
}

// rejected reports whether o failed before reaching the state machine, so it
// has no effect and the model accepts it in any state.
func (o *Op) rejected() bool { return o.Outcome == OutcomeFail && rejectedCodes[o.Code] }

// validate reports what makes o unusable as a history entry, or nil.
func (o *Op) validate() error {
	switch o.Kind {
	case KindClaim, KindRelease, KindLookup, KindCAS, KindGet, KindLock, KindUnlock, KindFencedWrite:
	default:
		return fmt.Errorf("unknown kind %q", o.Kind)
	}
	switch o.Outcome {
	case OutcomeOK, OutcomeInfo:
	case OutcomeFail:
		if o.Code == "" {
			return errors.New("outcome fail without a code")
		}
	default:
		return fmt.Errorf("unknown outcome %q", o.Outcome)
	}
	if o.Key == "" {
		return errors.New("empty key")
	}
	if (o.Kind == KindClaim || o.Kind == KindRelease) && o.Owner == "" {
		return fmt.Errorf("%s without an owner", o.Kind)
	}
	if o.Call.IsZero() {
		return errors.New("no call time")
	}
	if o.Outcome != OutcomeInfo {
		if o.Return.IsZero() {
			return fmt.Errorf("outcome %s without a return time", o.Outcome)
		}
		if o.Return.Before(o.Call) {
			return errors.New("returned before it was called")
		}
	}
	if o.Kind == KindCAS {
		if o.CompareVersion != nil && o.CompareValue != nil {
			return errors.New("cas compares both version and value")
		}
		if o.Outcome == OutcomeOK && !o.Delete && o.Version == 0 {
			return errors.New("cas ok without the version it wrote")
		}
	}
	return nil
}

// String describes o on one line, e.g.
// `client 2 cas "k" if-version 3 := "v" -> ok version 5`.
func (o *Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "client %d %s %q", o.Client, o.Kind, o.Key)
	switch o.Kind {
	case KindClaim, KindRelease, KindLock, KindUnlock:
		if o.Owner != "" {
			fmt.Fprintf(&b, " owner %q", o.Owner)
		}
	case KindCAS:
		if o.CompareVersion != nil {
			fmt.Fprintf(&b, " if-version %d", *o.CompareVersion)
		}
		if o.CompareValue != nil {
			fmt.Fprintf(&b, " if-value %q", *o.CompareValue)
		}
		if o.Delete {
			b.WriteString(" delete")
		} else {
			fmt.Fprintf(&b, " := %q", o.Value)
		}
	case KindFencedWrite:
		fmt.Fprintf(&b, " token %d", o.Token)
	}
	b.WriteString(" -> ")
	b.WriteString(string(o.Outcome))
	if o.Code != "" {
		b.WriteString(" " + o.Code)
	}
	if o.Outcome == OutcomeInfo || (o.Outcome == OutcomeFail && o.Code != CodeAborted && o.Code != CodeAlreadyExists) {
		return b.String()
	}
	switch o.Kind {
	case KindLookup, KindGet:
		if o.Outcome == OutcomeOK {
			fmt.Fprintf(&b, " %q", o.Value)
		}
		if o.Kind == KindGet {
			fmt.Fprintf(&b, " version %d", o.Version)
		}
	case KindClaim:
		if o.Value != "" {
			fmt.Fprintf(&b, " (held by %q)", o.Value)
		}
	case KindCAS:
		fmt.Fprintf(&b, " version %d", o.Version)
	case KindLock:
		fmt.Fprintf(&b, " token %d", o.Token)
	}
	return b.String()
}

// span formats o's call and return times.
func (o *Op) span() string {
	ret := "never"
	if !o.Return.IsZero() {
		ret = o.Return.Format(time.RFC3339Nano)
	}
	return "called " + o.Call.Format(time.RFC3339Nano) + ", returned " + ret
}

// describeOp names op i of a history for a report: its index, what it was
// and when it ran.
func describeOp(i int, o *Op) string {
	return "op " + strconv.Itoa(i) + " (" + o.String() + "; " + o.span() + ")"
}

// WriteHistory writes ops to w as JSON lines.
func WriteHistory(w io.Writer, ops []Op) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			return fmt.Errorf("lincheck: writing op %d: %w", i, err)
		}
	}
	return bw.Flush()
}

// ReadHistory reads a history written as JSON lines (blank lines are
// skipped).
func ReadHistory(r io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var op Op
		if err := json.Unmarshal([]byte(text), &op); err != nil {
			return nil, fmt.Errorf("lincheck: history line %d: %w", line, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("lincheck: reading history: %w", err)
	}
	return ops, nil
}
