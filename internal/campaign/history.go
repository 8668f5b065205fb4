package campaign

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Event types. An operation is an invoke event followed by exactly one
// completion (ok, fail or info) with the same Op id; the other types stand
// alone.
const (
	// EventInvoke: a client is about to send a request.
	EventInvoke = "invoke"
	// EventOK: the request was acknowledged; its effects happened.
	EventOK = "ok"
	// EventFail: the request definitely had no effect (the server refused
	// it, or it never reached a server). Reads that fail for any reason are
	// recorded as fail: a read has no effect to be unsure about.
	EventFail = "fail"
	// EventInfo: the outcome of a write is unknown (a timeout, a connection
	// lost after the request was sent): it may or may not have happened.
	EventInfo = "info"
	// EventNemesis: a fault started or was healed (Fault, Phase).
	EventNemesis = "nemesis"
	// EventHandoff: a client gave its session (token) away, or took one
	// another client gave.
	EventHandoff = "handoff"
	// EventFinal: the state of one region after every fault healed, writes
	// stopped and replication converged (Reads), or the outcome of waiting
	// for convergence (F "converge").
	EventFinal = "final"
	// EventWatch: what a watcher of the change feed saw (Phase: open,
	// event, end, done; see WatchWorkload).
	EventWatch = "watch"
)

// Tiers, as recorded in Event.Tier.
const (
	TierCausal = "causal"
	TierLinear = "linear"
)

// Operations of the causal tier (Event.F).
const (
	FPut       = "put"
	FGet       = "get"
	FDelete    = "delete"
	FReadMany  = "read_many"
	FWriteMany = "write_many"
	// FConverge is the final event that reports whether every region
	// reached the same applied vector.
	FConverge = "converge"
)

// Phases of a nemesis event.
const (
	PhaseStart = "start"
	PhaseHeal  = "heal"
	// PhaseObserve carries what the nemesis saw while a fault was active
	// (for instance, a region that refused to start).
	PhaseObserve = "observe"
)

// Handoff directions.
const (
	HandoffGive = "give"
	HandoffTake = "take"
)

// Version is a version as the API reports it: the write's hybrid timestamp
// and its origin region's sequence number.
type Version struct {
	Origin  string `json:"origin"`
	Seq     uint64 `json:"seq"`
	WallMs  uint64 `json:"wall_ms"`
	Logical uint32 `json:"logical,omitempty"`
}

func (v *Version) String() string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("%s/%d@%d.%d", v.Origin, v.Seq, v.WallMs, v.Logical)
}

// KeyRead is what a read returned for one key.
type KeyRead struct {
	Key   string `json:"key"`
	Found bool   `json:"found"`
	Value string `json:"value,omitempty"`
	// Version is the version read: the value's, or the deletion's when
	// Found is false. Nil when the key holds no version at all (never
	// written, or its deletion was collected).
	Version     *Version `json:"version,omitempty"`
	HasSiblings bool     `json:"has_siblings,omitempty"`
}

// KeyWrite is one key's change in a write_many.
type KeyWrite struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
}

// Event is one line of a history. Fields not meaningful for an event's
// type are left empty. Completions repeat the identifying fields of their
// invocation (tier, client, session, index, region, f, key), so every line
// reads on its own.
type Event struct {
	Type string    `json:"type"`
	Op   int64     `json:"op,omitempty"`
	Time time.Time `json:"time"`

	Tier     string `json:"tier,omitempty"`
	Workload string `json:"workload,omitempty"`
	// Client is the concurrent actor (a goroutine of the campaign) that
	// issued the operation.
	Client string `json:"client,omitempty"`
	// Session is the causal session: one lineage of causal tokens. Its
	// operations are issued one after the other, possibly by different
	// clients (a client that receives a token continues the session) and
	// in different regions. The linear tier has no sessions: its
	// operations name their client here, which issues one at a time.
	Session string `json:"session,omitempty"`
	// Index is the operation's position in its session, from 1.
	Index  int    `json:"index,omitempty"`
	Region string `json:"region,omitempty"`
	F      string `json:"f,omitempty"`

	Key       string     `json:"key,omitempty"`
	Value     string     `json:"value,omitempty"`
	Keys      []string   `json:"keys,omitempty"`   // read_many request
	Writes    []KeyWrite `json:"writes,omitempty"` // write_many request
	RequestID string     `json:"request_id,omitempty"`
	// Token is the causal token sent (invoke) or returned (ok).
	Token string `json:"token,omitempty"`

	Version *Version  `json:"version,omitempty"` // what a write was given
	Reads   []KeyRead `json:"reads,omitempty"`   // what a read (or the final state) returned

	Code  string `json:"code,omitempty"` // Connect code of a failure
	Error string `json:"error,omitempty"`
	// Refused (fail) says the tier served the request and turned it down
	// for a reason the data gives: a compare that did not hold, a name
	// another owner holds, a stale fencing token. That answer is the
	// operation's result, so it counts as available.
	Refused  bool `json:"refused,omitempty"`
	Attempts int  `json:"attempts,omitempty"`
	// DuringFault (invoke) says a fault was active when the operation
	// started; availability during faults is computed from it.
	DuringFault bool `json:"during_fault,omitempty"`

	Fault  *Fault `json:"fault,omitempty"` // nemesis events
	Phase  string `json:"phase,omitempty"` // nemesis: start, heal, observe; handoff: give, take
	Detail string `json:"detail,omitempty"`
	// Extra carries what a workload of another tier records (a linear
	// workload's compare-and-set arguments and result, say); its checker
	// decodes it.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Recorder writes a history as JSON lines while keeping it in memory for
// the checkers. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	w       *bufio.Writer
	events  []Event
	invokes map[int64]int // op id -> index of its invoke event in events
	nextOp  int64
	err     error

	// DuringFault reports whether a fault is active; nil means never.
	DuringFault func() bool
	// Now is the clock events are stamped with; nil means time.Now.
	Now func() time.Time
}

// NewRecorder returns a Recorder writing to w (nil: memory only).
func NewRecorder(w io.Writer) *Recorder {
	r := &Recorder{invokes: map[int64]int{}}
	if w != nil {
		r.w = bufio.NewWriterSize(w, 64<<10)
	}
	return r
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Invoke records the start of an operation and returns its id.
func (r *Recorder) Invoke(e Event) int64 {
	e.Type = EventInvoke
	e.DuringFault = r.DuringFault != nil && r.DuringFault()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextOp++
	e.Op = r.nextOp
	e.Time = r.now()
	r.invokes[e.Op] = len(r.events)
	r.appendLocked(e)
	return e.Op
}

// Complete records the outcome of operation op: typ is EventOK, EventFail
// or EventInfo, and e holds what the outcome carries (version, reads,
// token, error). The identifying fields are copied from the invocation.
func (r *Recorder) Complete(op int64, typ string, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.invokes[op]
	if !ok {
		panic(fmt.Sprintf("campaign: completion of operation %d, which was never invoked", op))
	}
	delete(r.invokes, op)
	inv := &r.events[i]
	e.Type, e.Op, e.Time = typ, op, r.now()
	e.Tier, e.Workload, e.Client, e.Session, e.Index, e.Region, e.F = inv.Tier, inv.Workload, inv.Client, inv.Session, inv.Index, inv.Region, inv.F
	if e.Key == "" {
		e.Key = inv.Key
	}
	r.appendLocked(e)
}

// Record records an event that is not part of an operation (nemesis,
// handoff, final).
func (r *Recorder) Record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.appendLocked(e)
}

func (r *Recorder) appendLocked(e Event) {
	r.events = append(r.events, e)
	if r.w == nil || r.err != nil {
		return
	}
	line, err := json.Marshal(e)
	if err != nil {
		r.err = err
		return
	}
	line = append(line, '\n')
	if _, err := r.w.Write(line); err != nil {
		r.err = err
	}
}

// Flush writes buffered lines out and reports the first write error.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.err == nil {
		r.err = r.w.Flush()
	}
	return r.err
}

// History returns the events recorded so far. Recorded events never
// change, so the history shares them with the recorder.
func (r *Recorder) History() *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &History{Events: r.events[:len(r.events):len(r.events)]}
}

// ReadHistory parses a history written by a Recorder.
func ReadHistory(rd io.Reader) (*History, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	h := &History{}
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("history line %d: %w", line, err)
		}
		h.Events = append(h.Events, e)
	}
	return h, sc.Err()
}

// History is a recorded campaign: events in the order they were recorded.
// Its events must not be modified once Operations was called.
type History struct {
	Events []Event

	opsOnce sync.Once
	ops     []Operation
}

// Operation pairs an invocation with its completion; both point into the
// history's events.
type Operation struct {
	Invoke *Event
	// Completion is the ok, fail or info event. An operation that never
	// completed (the campaign was cut short) has an empty one (Type ""),
	// and counts as info.
	Completion *Event
	// InvokePos and CompletePos are the events' positions in the history
	// (CompletePos is len(Events) when the operation never completed).
	InvokePos, CompletePos int
}

// Outcome is EventOK, EventFail or EventInfo.
func (o *Operation) Outcome() string {
	if o.Completion.Type == "" {
		return EventInfo
	}
	return o.Completion.Type
}

// Operations returns the history's operations, in order of invocation
// (which is the order of their ids). The slice is computed once and shared:
// callers must not modify it.
func (h *History) Operations() []Operation {
	h.opsOnce.Do(func() {
		at := map[int64]int{}
		for i := range h.Events {
			e := &h.Events[i]
			switch e.Type {
			case EventInvoke:
				at[e.Op] = len(h.ops)
				h.ops = append(h.ops, Operation{Invoke: e, Completion: &Event{}, InvokePos: i, CompletePos: len(h.Events)})
			case EventOK, EventFail, EventInfo:
				if j, ok := at[e.Op]; ok {
					h.ops[j].Completion, h.ops[j].CompletePos = e, i
				}
			}
		}
	})
	return h.ops
}

// Of returns the events of one type, in order.
func (h *History) Of(typ string) []Event {
	var out []Event
	for _, e := range h.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
