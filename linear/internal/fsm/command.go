package fsm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Op names what a Command does.
type Op uint8

// The operations. The zero Op is not an operation, so a Command whose Op was
// never set fails Validate instead of silently claiming something.
const (
	OpClaim     Op = iota + 1 // take namespace/name for Owner
	OpRelease                 // give namespace/name back, if Owner holds it
	OpLookup                  // read who holds namespace/name
	OpCAS                     // compare-and-set (or delete) the register Key
	OpGet                     // read the register Key
	OpGrant                   // create a lease of TTLms
	OpKeepAlive               // extend LeaseID by its TTL
	OpRevoke                  // end LeaseID, releasing its locks
	OpLock                    // acquire Lock under LeaseID, returning a fencing token
	OpUnlock                  // release Lock held under LeaseID
	OpTick                    // advance the machine's clock only
	opEnd                     // one past the last operation
)

var opNames = [...]string{
	OpClaim:     "claim",
	OpRelease:   "release",
	OpLookup:    "lookup",
	OpCAS:       "cas",
	OpGet:       "get",
	OpGrant:     "grant",
	OpKeepAlive: "keepalive",
	OpRevoke:    "revoke",
	OpLock:      "lock",
	OpUnlock:    "unlock",
	OpTick:      "tick",
}

func (o Op) String() string {
	if o > 0 && o < opEnd {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// IsMutation reports whether the operation changes state and therefore
// needs a RequestID and is recorded in the outcome table. Lookup and Get
// read; Tick only moves the clock, which is harmless to repeat.
func (o Op) IsMutation() bool {
	switch o {
	case OpClaim, OpRelease, OpCAS, OpGrant, OpKeepAlive, OpRevoke, OpLock, OpUnlock:
		return true
	}
	return false
}

// CompareKind selects the condition of a compare-and-set.
type CompareKind uint8

const (
	// CompareNone writes unconditionally.
	CompareNone CompareKind = iota
	// CompareVersion matches when the register's version equals
	// ExpectVersion; ExpectVersion 0 means the key must be absent.
	CompareVersion
	// CompareValue matches when the register exists and its value equals
	// ExpectValue byte for byte. An absent key never matches, not even an
	// empty ExpectValue: "absent" and "empty" are different states.
	CompareValue
	compareEnd
)

func (k CompareKind) String() string {
	switch k {
	case CompareNone:
		return "none"
	case CompareVersion:
		return "version"
	case CompareValue:
		return "value"
	}
	return fmt.Sprintf("compare(%d)", uint8(k))
}

// Command is one request to the state machine, carried as the data of a
// raft.LogCommand entry. Which fields matter depends on Op; Validate
// rejects fields an operation does not use, so that two retries of one
// request always encode (and hash) identically.
type Command struct {
	Op Op
	// RequestID is a UUID in its 36-character text form. It is required on
	// every mutation and must be empty on Lookup, Get and Tick.
	RequestID string
	// NowMs is the proposing leader's wall clock in unix milliseconds,
	// stamped when the command is proposed. The machine never reads a
	// clock of its own; see doc.go.
	NowMs int64

	// Claims: Namespace/Name held by Owner. Owner also names the holder of
	// a lock (Lock).
	Namespace, Name, Owner string

	// Registers: CAS writes Value to Key, or deletes Key when Delete.
	Key    string
	Value  []byte
	Delete bool
	// Compare is the CAS condition; ExpectVersion and ExpectValue are its
	// operands (see CompareKind).
	Compare       CompareKind
	ExpectVersion uint64
	ExpectValue   []byte
	// FenceLock and FenceToken optionally fence a CAS: it applies only if
	// FenceToken is the newest token ever issued for FenceLock.
	FenceLock  string
	FenceToken uint64

	// Leases: LeaseID names a lease (KeepAlive, Revoke, Lock, Unlock);
	// TTLms is the lifetime a Grant asks for.
	LeaseID uint64
	TTLms   int64

	// Lock is the lock name for Lock and Unlock.
	Lock string
}

// Limits enforced by Validate. They bound the size of one log entry and of
// every record the machine stores.
const (
	MaxNameBytes  = 512      // namespace, name, owner, key, lock and fence lock names
	MaxValueBytes = 64 << 10 // register values and CAS expected values

	MinLeaseTTLms = 500                 // shorter leases expire before a keep-alive can cross a WAN
	MaxLeaseTTLms = 24 * 60 * 60 * 1000 // a day; longer means a crashed holder blocks a lock for too long

	// MaxNowMs bounds NowMs (year 9999) so that NowMs+TTLms never overflows.
	MaxNowMs = 253402300799999
)

// ErrInvalidCommand is wrapped by every error of DecodeCommand and Validate.
var ErrInvalidCommand = errors.New("invalid command")

// commandFormatV1 is the first byte of an encoded Command.
const commandFormatV1 = 1

// Encode returns the command's deterministic binary encoding: the format
// version byte, then every field in declaration order (integers as varints,
// strings and byte slices length-prefixed). Equal commands encode to equal
// bytes, which the outcome table relies on to recognise a retry.
func (c *Command) Encode() []byte {
	var e encoder
	e.buf = make([]byte, 0, 64+len(c.RequestID)+len(c.Namespace)+len(c.Name)+len(c.Owner)+
		len(c.Key)+len(c.Value)+len(c.ExpectValue)+len(c.FenceLock)+len(c.Lock))
	e.u8(commandFormatV1)
	e.u8(uint8(c.Op))
	e.str(c.RequestID)
	e.varint(c.NowMs)
	e.str(c.Namespace)
	e.str(c.Name)
	e.str(c.Owner)
	e.str(c.Key)
	e.bytes(c.Value)
	e.bool(c.Delete)
	e.u8(uint8(c.Compare))
	e.uvarint(c.ExpectVersion)
	e.bytes(c.ExpectValue)
	e.str(c.FenceLock)
	e.uvarint(c.FenceToken)
	e.uvarint(c.LeaseID)
	e.varint(c.TTLms)
	e.str(c.Lock)
	return e.buf
}

// DecodeCommand parses Encode's output. It rejects an unknown format
// version, truncated or trailing bytes and non-canonical encodings, so a
// decoded command re-encodes to exactly the bytes it came from. It does not
// check limits or required fields: that is Validate.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty log entry", ErrInvalidCommand)
	}
	if b[0] != commandFormatV1 {
		return nil, fmt.Errorf("%w: unknown command format version %d (this node understands %d); upgrade this node",
			ErrInvalidCommand, b[0], commandFormatV1)
	}
	d := decoder{buf: b[1:]}
	c := &Command{}
	c.Op = Op(d.u8())
	c.RequestID = d.str()
	c.NowMs = d.varint()
	c.Namespace = d.str()
	c.Name = d.str()
	c.Owner = d.str()
	c.Key = d.str()
	c.Value = d.bytes()
	c.Delete = d.bool()
	c.Compare = CompareKind(d.u8())
	c.ExpectVersion = d.uvarint()
	c.ExpectValue = d.bytes()
	c.FenceLock = d.str()
	c.FenceToken = d.uvarint()
	c.LeaseID = d.uvarint()
	c.TTLms = d.varint()
	c.Lock = d.str()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	return c, nil
}

// fingerprint identifies a request for the outcome table: the hash of its
// encoding without NowMs, because a retry is stamped with a later clock but
// is still the same request.
func (c *Command) fingerprint() [sha256.Size]byte {
	clock := *c
	clock.NowMs = 0
	return sha256.Sum256(clock.Encode())
}

// Validate checks limits and required fields and that no field the
// operation ignores is set. It reports every problem it finds, in one error
// wrapping ErrInvalidCommand.
func (c *Command) Validate() error {
	v := validation{c: c}
	if c.Op == 0 || c.Op >= opEnd {
		return fmt.Errorf("%w: unknown operation %d", ErrInvalidCommand, uint8(c.Op))
	}
	if c.NowMs < 0 || c.NowMs > MaxNowMs {
		v.problem("NowMs %d is outside 0..%d; the proposer must stamp its unix clock in milliseconds", c.NowMs, int64(MaxNowMs))
	}
	if c.Op.IsMutation() {
		if c.RequestID == "" {
			v.problem("RequestID is required for %s: generate a UUID per request and reuse it only when retrying", c.Op)
		} else if len(c.RequestID) != 36 || uuid.Validate(c.RequestID) != nil {
			v.problem("RequestID %q is not a UUID in its 36-character form", truncate(c.RequestID))
		}
	} else if c.RequestID != "" {
		v.problem("RequestID must be empty for %s, which is not recorded in the outcome table", c.Op)
	}

	// used collects the fields this operation reads; every other field must
	// be zero.
	var used fieldSet
	switch c.Op {
	case OpClaim, OpRelease:
		v.name("Namespace", c.Namespace)
		v.name("Name", c.Name)
		v.name("Owner", c.Owner)
		used = fNamespace | fName | fOwner
	case OpLookup:
		v.name("Namespace", c.Namespace)
		v.name("Name", c.Name)
		used = fNamespace | fName
	case OpCAS:
		v.name("Key", c.Key)
		used = fKey | fValue | fDelete | fCompare | fFenceLock | fFenceToken
		if len(c.Value) > MaxValueBytes {
			v.problem("Value is %d bytes; at most %d are allowed", len(c.Value), MaxValueBytes)
		}
		if c.Delete && len(c.Value) > 0 {
			v.problem("Value must be empty when Delete is set")
		}
		switch c.Compare {
		case CompareNone:
		case CompareVersion:
			used |= fExpectVersion
		case CompareValue:
			used |= fExpectValue
			if len(c.ExpectValue) > MaxValueBytes {
				v.problem("ExpectValue is %d bytes; at most %d are allowed", len(c.ExpectValue), MaxValueBytes)
			}
		default:
			v.problem("Compare %d is not a known comparison (none, version, value)", uint8(c.Compare))
		}
		switch {
		case c.FenceLock != "":
			v.name("FenceLock", c.FenceLock)
			if c.FenceToken == 0 {
				v.problem("FenceToken is required with FenceLock: pass the token returned when the lock was acquired")
			}
		case c.FenceToken != 0:
			v.problem("FenceToken %d is set without FenceLock: name the lock the token was issued for", c.FenceToken)
		}
	case OpGet:
		v.name("Key", c.Key)
		used = fKey
	case OpGrant:
		if c.TTLms < MinLeaseTTLms || c.TTLms > MaxLeaseTTLms {
			v.problem("TTLms %d is outside %d..%d", c.TTLms, int64(MinLeaseTTLms), int64(MaxLeaseTTLms))
		}
		used = fTTL
	case OpKeepAlive, OpRevoke:
		v.leaseID()
		used = fLeaseID
	case OpLock:
		v.name("Lock", c.Lock)
		v.name("Owner", c.Owner)
		v.leaseID()
		used = fLock | fOwner | fLeaseID
	case OpUnlock:
		v.name("Lock", c.Lock)
		v.leaseID()
		used = fLock | fLeaseID
	case OpTick:
	}
	v.unused(used)
	return v.err()
}

type fieldSet uint16

const (
	fNamespace fieldSet = 1 << iota
	fName
	fOwner
	fKey
	fValue
	fDelete
	fCompare
	fExpectVersion
	fExpectValue
	fFenceLock
	fFenceToken
	fLeaseID
	fTTL
	fLock
)

type validation struct {
	c        *Command
	problems []string
}

func (v *validation) problem(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *validation) name(field, s string) {
	switch {
	case s == "":
		v.problem("%s is required for %s", field, v.c.Op)
	case len(s) > MaxNameBytes:
		v.problem("%s is %d bytes; at most %d are allowed", field, len(s), MaxNameBytes)
	}
}

func (v *validation) leaseID() {
	if v.c.LeaseID == 0 {
		v.problem("LeaseID is required for %s: pass the id returned by grant", v.c.Op)
	}
}

// unused reports each field that is set although the operation ignores it.
func (v *validation) unused(used fieldSet) {
	c := v.c
	check := func(f fieldSet, name string, set bool) {
		if set && used&f == 0 {
			v.problem("%s is not used by %s and must be left empty", name, c.Op)
		}
	}
	check(fNamespace, "Namespace", c.Namespace != "")
	check(fName, "Name", c.Name != "")
	check(fOwner, "Owner", c.Owner != "")
	check(fKey, "Key", c.Key != "")
	check(fValue, "Value", len(c.Value) > 0)
	check(fDelete, "Delete", c.Delete)
	check(fCompare, "Compare", c.Compare != CompareNone)
	check(fExpectVersion, "ExpectVersion", c.ExpectVersion != 0)
	check(fExpectValue, "ExpectValue", len(c.ExpectValue) > 0)
	check(fFenceLock, "FenceLock", c.FenceLock != "")
	check(fFenceToken, "FenceToken", c.FenceToken != 0)
	check(fLeaseID, "LeaseID", c.LeaseID != 0)
	check(fTTL, "TTLms", c.TTLms != 0)
	check(fLock, "Lock", c.Lock != "")
}

func (v *validation) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %s", ErrInvalidCommand, v.c.Op, strings.Join(v.problems, "; "))
}

// truncate shortens s for an error message, so a 1 MiB garbage field does
// not become a 1 MiB message stored in the outcome table or the log.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Code classifies a Result. The names follow the Connect codes the API
// maps them to.
type Code uint8

const (
	CodeOK                 Code = iota // the request applied (or read) as asked
	CodeAlreadyExists                  // a claim is held by someone else
	CodeNotFound                       // no such claim, key, lease, or lock holder
	CodeAborted                        // a CAS comparison failed or a lock is held by another lease: read and retry
	CodeFailedPrecondition             // wrong owner or lease, or a stale fencing token
	CodeInvalidArgument                // the command is malformed, or a request id was reused
	codeEnd
)

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeAlreadyExists:
		return "already_exists"
	case CodeNotFound:
		return "not_found"
	case CodeAborted:
		return "aborted"
	case CodeFailedPrecondition:
		return "failed_precondition"
	case CodeInvalidArgument:
		return "invalid_argument"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Result is what Apply returns for a LogCommand entry (as a *Result) and
// what the outcome table stores for a mutation.
type Result struct {
	Code Code
	// Message is for a person: what happened and what to do. It is empty
	// when Code is CodeOK.
	Message string
	// Index is the log index at which the request applied; for a
	// duplicate, the index of the original.
	Index uint64
	// Duplicate is true when the result comes from the outcome table
	// because the request id was retried.
	Duplicate bool

	// Owner is a claim's holder or a lock's owner. Version is a claim's
	// version or a register's version (0 for an absent register). Value is
	// a register's value (nil when empty or absent).
	Owner   string
	Version uint64
	Value   []byte

	// LeaseID and ExpiresMs describe a lease: the one granted, kept alive,
	// or the lease holding a lock.
	LeaseID   uint64
	ExpiresMs int64
	// Token is the fencing token of a lock acquisition; on Aborted, the
	// current holder's; on a stale fence, the newest token issued.
	Token uint64
}

// resultFormatV1 is the first byte of a Result stored in the outcome table.
const resultFormatV1 = 1

// encodeResult stores a Result in the outcome table. Duplicate is not
// stored: it describes the answer to a retry, not the outcome.
func encodeResult(r *Result) []byte {
	var e encoder
	e.u8(resultFormatV1)
	e.u8(uint8(r.Code))
	e.str(r.Message)
	e.uvarint(r.Index)
	e.str(r.Owner)
	e.uvarint(r.Version)
	e.bytes(r.Value)
	e.uvarint(r.LeaseID)
	e.varint(r.ExpiresMs)
	e.uvarint(r.Token)
	return e.buf
}

func decodeResult(b []byte) (*Result, error) {
	if len(b) == 0 || b[0] != resultFormatV1 {
		return nil, errors.New("stored result has an unknown format")
	}
	d := decoder{buf: b[1:]}
	r := &Result{}
	r.Code = Code(d.u8())
	r.Message = d.str()
	r.Index = d.uvarint()
	r.Owner = d.str()
	r.Version = d.uvarint()
	r.Value = d.bytes()
	r.LeaseID = d.uvarint()
	r.ExpiresMs = d.varint()
	r.Token = d.uvarint()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("stored result: %w", err)
	}
	if r.Code >= codeEnd {
		return nil, fmt.Errorf("stored result has unknown code %d", uint8(r.Code))
	}
	return r, nil
}
