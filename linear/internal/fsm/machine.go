package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/internal/logbridge"
)

// cacheBytes sizes the block cache. Pebble charges its memtables to the
// block cache: the mutable memtable and one being flushed, 4 MiB each by
// default, are reserved out of it. The earlier 8 MiB therefore left no
// room for blocks at all once the first memtable filled (the cache held
// nothing and hit 1% of the time), and every point read decompressed its
// blocks again; Apply cost twice what it does with 32 MiB. Beyond the
// memtables, what must stay resident is what each Apply's point reads
// touch: the filter and index blocks of every sstable that could hold the
// key (filters take about 1.25 bytes per key, index blocks about 1% of the
// data) and the data blocks of recently read claims and registers, which
// may be 64 KiB each. 32 MiB holds those for a state of well over a GiB
// (the outcome table is about 20 MiB at its cap, MaxOutcomes), and is
// still small beside the causal tier's store on the same node.
const cacheBytes = 32 << 20

// filterBitsPerKey sizes the bloom filter written into every sstable of
// the machine's store: 10 bits per key make a false positive about 1%. A
// put-if-absent claim and a new request id's outcome lookup are point
// reads of keys that do not exist, and without a filter each one seeks
// into a data block of every sstable whose range covers the key.
const filterBitsPerKey = 10

// Outcome table defaults. Every replica must use the same values, since
// they decide what Apply returns; see outcomes.go.
const (
	// OutcomeRetentionMs is how long, in machine time, a request id's
	// outcome is kept. A client retrying later than this may apply twice.
	OutcomeRetentionMs = 10 * 60 * 1000
	// MaxOutcomes caps the outcome table; the oldest outcome is evicted
	// first when it is full.
	MaxOutcomes = 100_000
)

// Per-Apply bounds. Work left over is done by the next Apply, which the
// leader's tick loop provides (NextExpiryMs).
const (
	maxExpiriesPerApply  = 1000 // leases expired at the start of one Apply
	maxEvictionsPerApply = 1000 // outcomes evicted by one Apply
	// MaxLocksPerLease bounds the locks one lease may hold, so that
	// expiring or revoking a lease is bounded work.
	MaxLocksPerLease = 64
)

// Machine is the linearizable tier's state machine. It implements
// raft.FSM and raft.BatchingFSM.
//
// Apply, ApplyBatch, Snapshot and Restore must be called from one
// goroutine at a time, as raft does. LastApplied, LatestToken, NextExpiryMs,
// Read and FSMSnapshot.Persist are safe to call concurrently with them.
type Machine struct {
	db     *pebble.DB
	logger *slog.Logger

	// lastApplied mirrors the persisted last-applied index for readers on
	// other goroutines.
	lastApplied atomic.Uint64

	// applied is the persisted metadata as of the last commit. Only the
	// applying goroutine reads or writes it.
	applied appliedState

	// Outcome table settings: OutcomeRetentionMs and MaxOutcomes in
	// production. They are fields only so that tests can shrink them; a
	// replica using other values would diverge.
	outcomeRetentionMs int64
	maxOutcomes        uint64
	// Per-Apply bounds: maxExpiriesPerApply and maxEvictionsPerApply in
	// production, fields for the same reason.
	expiriesPerApply  int
	evictionsPerApply int
	// outcomeReadAhead is readAheadOutcomes in production, a field so that
	// tests can make the records read ahead run out often. It changes how
	// often the age index is read, never an answer, so replicas may differ
	// in it.
	outcomeReadAhead int

	mu     sync.Mutex
	snaps  map[*snapshot]struct{} // snapshots not yet released
	closed bool
}

// appliedState is the metadata committed with every Apply batch, and what
// the applying goroutine keeps in memory about the committed state.
type appliedState struct {
	index    uint64 // last log index applied
	clockMs  int64  // the machine's clock: max NowMs of every valid command applied
	outcomes uint64 // records in the outcome table

	// sweeps is not persisted: load rebuilds it from the database.
	sweeps sweepBounds
}

var (
	_ raft.FSM         = (*Machine)(nil)
	_ raft.BatchingFSM = (*Machine)(nil)
)

// Open opens (creating if needed) the state machine's Pebble database in
// dir. fs nil means the operating system's filesystem; logger nil means
// slog.Default().
func Open(dir string, fs vfs.FS, logger *slog.Logger) (*Machine, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if fs == nil {
		fs = vfs.Default
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create linear state directory %s: %w", dir, err)
	}
	opts := &pebble.Options{
		FS:                 fs,
		CacheSize:          cacheBytes,
		Logger:             logbridge.Pebble(logger.With("component", "pebble")),
		FormatMajorVersion: pebbleFormat,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(filterBitsPerKey)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open linear state in %s: %w", dir, err)
	}
	m := &Machine{
		db:                 db,
		logger:             logger,
		outcomeRetentionMs: OutcomeRetentionMs,
		maxOutcomes:        MaxOutcomes,
		expiriesPerApply:   maxExpiriesPerApply,
		evictionsPerApply:  maxEvictionsPerApply,
		outcomeReadAhead:   readAheadOutcomes,
		snaps:              make(map[*snapshot]struct{}),
	}
	if err := m.checkFormat(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open linear state in %s: %w", dir, err)
	}
	if err := m.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open linear state in %s: %w", dir, err)
	}
	logger.Info("linear state machine opened", "dir", dir,
		"last_applied", m.applied.index, "clock_ms", m.applied.clockMs, "outcomes", m.applied.outcomes)
	return m, nil
}

// checkFormat stamps a new database with the storage format and refuses
// one written in another.
func (m *Machine) checkFormat() error {
	v, found, err := getU64(m.db, keyFormat)
	if err != nil {
		return err
	}
	if found {
		if v != storageFormat {
			return fmt.Errorf("storage format %d is not %d, the one this node understands; run the version of Causeway that wrote it", v, storageFormat)
		}
		return nil
	}
	it, err := m.db.NewIter(nil)
	if err != nil {
		return err
	}
	empty := !it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if !empty {
		return errors.New("the database has data but no format marker: it was not written by this state machine")
	}
	return m.db.Set(keyFormat, u64Bytes(storageFormat), pebble.Sync)
}

// load reads the committed metadata into memory, at Open and after Restore.
func (m *Machine) load() error {
	var st appliedState
	var err error
	if st.index, _, err = getU64(m.db, keyApplied); err != nil {
		return err
	}
	clock, _, err := getU64(m.db, keyClock)
	if err != nil {
		return err
	}
	st.clockMs = int64(clock)
	if st.outcomes, _, err = getU64(m.db, keyOutcomeCount); err != nil {
		return err
	}
	if st.sweeps, err = loadSweepBounds(m.db, m.outcomeReadAhead); err != nil {
		return err
	}
	m.applied = st
	m.lastApplied.Store(st.index)
	return nil
}

// Close releases snapshots that raft did not release and closes the
// database. Call it after raft has shut down: an Apply or Persist running
// concurrently with Close is a bug. Nothing needs flushing: state not yet
// on disk is rebuilt by replaying the raft log.
func (m *Machine) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var open []*snapshot
	for s := range m.snaps {
		open = append(open, s)
	}
	m.mu.Unlock()
	for _, s := range open {
		s.Release()
	}
	return m.db.Close()
}

// LastApplied returns the index of the last log entry applied and committed
// to Pebble (entries that are not commands do not count).
func (m *Machine) LastApplied() uint64 { return m.lastApplied.Load() }

// LatestToken returns the newest fencing token ever issued for lock in the
// applied state, 0 if none. It survives the lock's release and its lease's
// expiry. A storage error is logged and reported as math.MaxUint64, so that
// a fence checked against it fails closed (the write is refused as stale)
// rather than letting a stale holder through; ReadLatestToken reports the
// error instead.
func (m *Machine) LatestToken(lock string) uint64 {
	token, err := m.ReadLatestToken(lock)
	if err != nil {
		m.logger.Error("read latest fencing token", "lock", lock, "err", err)
		return math.MaxUint64
	}
	return token
}

// ReadLatestToken is LatestToken with the storage error returned.
func (m *Machine) ReadLatestToken(lock string) (uint64, error) {
	token, _, err := getU64(m.db, tokenKey(lock))
	if err != nil {
		return 0, fmt.Errorf("read latest fencing token for lock %q: %w", lock, err)
	}
	return token, nil
}

// NextExpiryMs returns the earliest expiry (unix ms) of any lease in the
// applied state, and false if there is none. It may already be in the past
// when more leases expired at once than one Apply expires; the leader then
// keeps proposing Tick until it is not. A storage error is logged and
// reported as no expiry.
func (m *Machine) NextExpiryMs() (int64, bool) {
	it, err := m.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixExpiry},
		UpperBound: []byte{prefixExpiry + 1},
	})
	if err != nil {
		m.logger.Error("read next lease expiry", "err", err)
		return 0, false
	}
	defer it.Close()
	if !it.First() {
		if err := it.Error(); err != nil {
			m.logger.Error("read next lease expiry", "err", err)
		}
		return 0, false
	}
	expires, _, ok := parseExpiryKey(it.Key())
	return expires, ok
}

// clockMs returns the machine's clock: the largest NowMs of any valid
// command applied. Only the applying goroutine may call it.
func (m *Machine) clockMs() int64 { return m.applied.clockMs }

// Read answers a Lookup or Get from the applied state without a log entry:
// the raft node serves a linearizable read with it after confirming its
// leadership and that the state has applied up to the read index, or a
// stale read when the caller asked for one. Result.Index is the last
// applied index of the state read. An invalid command, or one that is not
// a Lookup or Get, gets CodeInvalidArgument; an error means the state
// could not be read.
func (m *Machine) Read(c *Command) (*Result, error) {
	if err := c.Validate(); err != nil {
		return &Result{Code: CodeInvalidArgument, Message: err.Error()}, nil
	}
	if c.Op != OpLookup && c.Op != OpGet {
		return &Result{Code: CodeInvalidArgument, Message: fmt.Sprintf("%s changes state and must go through the log; Read serves lookup and get", c.Op)}, nil
	}
	snap := m.db.NewSnapshot()
	defer snap.Close()
	index, _, err := getU64(snap, keyApplied)
	if err != nil {
		return nil, fmt.Errorf("linear read: %w", err)
	}
	var res *Result
	if c.Op == OpLookup {
		res, err = lookup(snap, c)
	} else {
		res, err = get(snap, c)
	}
	if err != nil {
		return nil, fmt.Errorf("linear read: %w", err)
	}
	res.Index = index
	return res, nil
}

// Apply applies one committed log entry. For a raft.LogCommand entry with
// an index above LastApplied it returns a *Result, never nil, also for an
// undecodable or invalid command (CodeInvalidArgument). It returns nil and
// changes nothing for other entry types and for an entry at or below
// LastApplied, which raft replays after a restart because the state here
// is committed without fsync and may be ahead of raft's snapshot.
//
// A storage failure panics: a replica that skipped or half-applied an
// entry would silently diverge from the others, while a restarted one
// replays the log from its last commit.
func (m *Machine) Apply(l *raft.Log) interface{} {
	return m.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order, as Apply does each one,
// and commits them in one Pebble batch. The response at position i is
// Apply's response for logs[i].
func (m *Machine) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	st := m.applied
	var b *pebble.Batch
	for i, l := range logs {
		if l.Type != raft.LogCommand || l.Index <= st.index {
			continue
		}
		if b == nil {
			b = m.db.NewIndexedBatch()
		}
		t := &tx{m: m, b: b, st: &st, index: l.Index}
		res, err := t.apply(l.Data)
		if err != nil {
			_ = b.Close()
			panic(fmt.Errorf("linear state machine: applying log index %d: %w; stopping so this replica does not diverge, a restart replays the log", l.Index, err))
		}
		out[i] = res
	}
	if b == nil {
		return out
	}
	if err := m.commit(b, st); err != nil {
		panic(fmt.Errorf("linear state machine: committing through log index %d: %w; stopping so this replica does not diverge, a restart replays the log", st.index, err))
	}
	return out
}

// commit writes the metadata into b, commits it without fsync and
// publishes st. The raft log is the durable record: after a crash, the
// entries lost here are replayed.
func (m *Machine) commit(b *pebble.Batch, st appliedState) error {
	defer b.Close()
	err := errors.Join(
		b.Set(keyApplied, u64Bytes(st.index), nil),
		b.Set(keyClock, u64Bytes(uint64(st.clockMs)), nil),
		b.Set(keyOutcomeCount, u64Bytes(st.outcomes), nil),
	)
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		return err
	}
	m.applied = st
	m.lastApplied.Store(st.index)
	return nil
}

// tx applies one log entry into a batch shared by the entries of one
// ApplyBatch. Reads go through the batch, so they see the entry's own
// writes and those of earlier entries in it. Reading keys the batch has
// not written from the database instead would save little: Pebble answers
// a Get on an indexed batch with one lookup in the batch's skiplist and
// then the same memtables and sstables a Get on the database reads, and
// knowing which keys the batch wrote would take a lookup of its own.
type tx struct {
	m     *Machine
	b     *pebble.Batch
	st    *appliedState
	index uint64 // the log index being applied
}

// apply decodes, validates and executes one command. It returns an error
// only for a storage failure or corrupt state.
func (t *tx) apply(data []byte) (*Result, error) {
	t.st.index = t.index
	cmd, invalid := DecodeCommand(data)
	if invalid == nil {
		invalid = cmd.Validate()
	}
	if invalid == nil {
		t.st.clockMs = max(t.st.clockMs, cmd.NowMs)
	}
	if err := t.expireLeases(); err != nil {
		return nil, err
	}
	var res *Result
	if invalid != nil {
		res = &Result{Code: CodeInvalidArgument, Message: invalid.Error(), Index: t.index}
	} else {
		var err error
		if res, err = t.execute(cmd); err != nil {
			return nil, err
		}
	}
	if err := t.evictOutcomes(); err != nil {
		return nil, err
	}
	return res, nil
}

// execute runs a valid command, through the outcome table for mutations.
func (t *tx) execute(c *Command) (*Result, error) {
	if !c.Op.IsMutation() {
		res, err := t.dispatch(c)
		if err != nil {
			return nil, err
		}
		res.Index = t.index
		return res, nil
	}
	fingerprint := c.fingerprint()
	prev, err := t.findOutcome(c.RequestID)
	if err != nil {
		return nil, err
	}
	if prev != nil && t.outcomeLive(prev.appliedMs) {
		if prev.fingerprint != fingerprint {
			return &Result{
				Code:  CodeInvalidArgument,
				Index: t.index,
				Message: fmt.Sprintf("request id reused for a different request: %s was applied at log index %d "+
					"with other parameters; use a new request id for a new request", c.RequestID, prev.index),
			}, nil
		}
		res := prev.result
		res.Duplicate = true
		return res, nil
	}
	res, err := t.dispatch(c)
	if err != nil {
		return nil, err
	}
	res.Index = t.index
	if err := t.recordOutcome(c.RequestID, fingerprint, res, prev); err != nil {
		return nil, err
	}
	return res, nil
}

func (t *tx) dispatch(c *Command) (*Result, error) {
	switch c.Op {
	case OpClaim:
		return t.claim(c)
	case OpRelease:
		return t.release(c)
	case OpLookup:
		return lookup(t.b, c)
	case OpCAS:
		return t.cas(c)
	case OpGet:
		return get(t.b, c)
	case OpGrant:
		return t.grant(c)
	case OpKeepAlive:
		return t.keepAlive(c)
	case OpRevoke:
		return t.revoke(c)
	case OpLock:
		return t.lock(c)
	case OpUnlock:
		return t.unlock(c)
	case OpTick:
		return &Result{Code: CodeOK}, nil
	}
	// Validate admits only the operations above.
	panic(fmt.Sprintf("unreachable: validated command has operation %s", c.Op))
}

func (t *tx) now() int64 { return t.st.clockMs }

func (t *tx) set(key, value []byte) error { return t.b.Set(key, value, nil) }
func (t *tx) del(key []byte) error        { return t.b.Delete(key, nil) }

// getRaw returns a copy of key's value.
func getRaw(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte{}, v...)
	return out, true, closer.Close()
}

func getU64(r pebble.Reader, key []byte) (uint64, bool, error) {
	v, found, err := getRaw(r, key)
	if err != nil || !found {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("corrupt record %q: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// kv is one record read by scan.
type kv struct{ key, value []byte }

// scan returns copies of at most limit records in [lower, upper), in key
// order, stopping before the first record for which keep (if not nil)
// returns false. Callers mutate the batch only after scanning, never while
// an iterator is open on it.
func scan(r pebble.Reader, lower, upper []byte, limit int, keep func(key, value []byte) bool) ([]kv, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var out []kv
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		if keep != nil && !keep(it.Key(), v) {
			break
		}
		out = append(out, kv{key: append([]byte(nil), it.Key()...), value: append([]byte(nil), v...)})
	}
	return out, errors.Join(it.Error(), it.Close())
}

// pebbleFormat is the Pebble format major version this store is created
// with, pinned rather than pebble.FormatNewest so that a Pebble upgrade does
// not rewrite the on-disk format under a node that may be rolled back (the
// replica store pins the same one).
const pebbleFormat = pebble.FormatValueSeparation
