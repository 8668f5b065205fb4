package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// inmemStore is the in-memory double of Store: the storage contract
// (storage.go) written again over a map of encoded records, without Pebble.
// It shares only the record and key encodings with Store (they are the
// storage format, which views and snapshots expose), not its code, so the
// conformance suite (store_conformance_test.go) compares two
// implementations of one contract.
type inmemStore struct {
	mu     sync.Mutex
	kv     map[string][]byte
	closed bool
}

// newInmemStore starts as OpenStore leaves a new store: stamped with this
// build's format (version.go).
func newInmemStore() *inmemStore {
	return &inmemStore{kv: map[string][]byte{string(metaFormat): binary.BigEndian.AppendUint64(nil, StoreFormatVersion)}}
}

var (
	_ storage      = (*inmemStore)(nil)
	_ storageBatch = (*inmemBatch)(nil)
	_ storageView  = (*inmemView)(nil)
)

// errInmemClosed is what a closed inmemStore answers.
var errInmemClosed = errors.New("inmem store: closed")

// keysIn lists the keys in [lower, upper) in order; upper nil means no
// bound. Called with mu held, or on a view's private map.
func keysIn(kv map[string][]byte, lower, upper []byte) []string {
	var out []string
	for k := range kv {
		if k >= string(lower) && (upper == nil || k < string(upper)) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func siblingsIn(kv map[string][]byte, key string, values bool) ([]causal.Version, error) {
	lower, upper := keyPrefixBounds(key)
	var out []causal.Version
	for _, k := range keysIn(kv, lower, upper) {
		v, err := decodeVersion(kv[k])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		if values {
			v.Value = bytes.Clone(v.Value)
		} else {
			v.Value = nil
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *inmemStore) Siblings(key string, values bool) ([]causal.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errInmemClosed
	}
	return siblingsIn(s.kv, key, values)
}

func (s *inmemStore) outcome(id uuid.UUID) (requestOutcome, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.kv[string(requestKey(id))]
	if !ok {
		return requestOutcome{}, false, nil
	}
	o, err := decodeOutcome(raw)
	return o, err == nil, err
}

func (s *inmemStore) meta(key []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.kv[string(key)]
	return bytes.Clone(raw), ok, nil
}

func (s *inmemStore) setMeta(kv ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i+1 < len(kv); i += 2 {
		s.kv[string(kv[i])] = bytes.Clone(kv[i+1])
	}
	return nil
}

func (s *inmemStore) expireRequests(cutoffMs uint64, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range keysIn(s.kv, []byte{spaceRequestExp}, requestExpiryKey(cutoffMs, uuid.UUID{})) {
		if n == limit {
			break
		}
		id, _ := uuid.FromBytes([]byte(k[len(k)-16:]))
		delete(s.kv, string(requestKey(id)))
		delete(s.kv, k)
		n++
	}
	return n, nil
}

func (s *inmemStore) logRange(from, to uint64, maxBytes int) ([][]byte, error) {
	if from > to {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	size := 0
	next := from
	for _, k := range keysIn(s.kv, logKey(from), logKey(to+1)) {
		if size >= maxBytes {
			break
		}
		if seq := binary.BigEndian.Uint64([]byte(k[1:])); seq != next {
			return nil, fmt.Errorf("%w: replication log jumps from %d to %d", ErrCorruptRecord, next-1, seq)
		}
		out = append(out, bytes.Clone(s.kv[k]))
		size += len(s.kv[k])
		next++
	}
	return out, nil
}

func (s *inmemStore) firstLogSeq() (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := keysIn(s.kv, []byte{spaceLog}, []byte{spaceLog + 1})
	if len(keys) == 0 {
		return 0, false, nil
	}
	return binary.BigEndian.Uint64([]byte(keys[0][1:])), true, nil
}

func (s *inmemStore) truncateLog(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keysIn(s.kv, logKey(0), logKey(seq+1)) {
		delete(s.kv, k)
	}
	return nil
}

func (s *inmemStore) peers() (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.kv {
		if region, ok := strings.CutPrefix(k, string(metaPeerPrefix)); ok {
			out[region] = string(v)
		}
	}
	return out, nil
}

func (s *inmemStore) rememberPeer(region, addr string) error {
	return s.setMeta(append(bytes.Clone(metaPeerPrefix), region...), []byte(addr))
}

func (s *inmemStore) forgetPeer(region string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kv, string(metaPeerPrefix)+region)
	return nil
}

func (s *inmemStore) fenceSeen(lock string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.kv[string(fenceKey(lock))]
	if !ok {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: fence record for %q is %d bytes", ErrCorruptRecord, lock, len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

func (s *inmemStore) tombstoneCandidates(stable clocks.Vector, limit int) ([]tombstoneCandidate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tombstoneCandidate
	for _, k := range keysIn(s.kv, []byte{spaceTombstone}, []byte{spaceTombstone + 1}) {
		if len(out) == limit {
			break
		}
		origin, seq, dataKey, ok := parseTombstoneKey([]byte(k))
		if !ok || seq > stable.Get(origin) {
			continue
		}
		out = append(out, tombstoneCandidate{[]byte(k), bytes.Clone(dataKey)})
	}
	return out, nil
}

func (s *inmemStore) deleteUnsynced(keys [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.kv, string(k))
	}
	return nil
}

func (s *inmemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// inmemBatch collects sets and deletes and applies them at once.
type inmemBatch struct {
	s    *inmemStore
	ops  []inmemOp
	done bool
}

type inmemOp struct {
	key   string
	value []byte // nil deletes
	del   bool
}

func (s *inmemStore) batch() storageBatch { return &inmemBatch{s: s} }

func (b *inmemBatch) set(key, value []byte) {
	b.ops = append(b.ops, inmemOp{key: string(key), value: bytes.Clone(value)})
}
func (b *inmemBatch) del(key []byte) { b.ops = append(b.ops, inmemOp{key: string(key), del: true}) }

func (b *inmemBatch) putVersion(key string, v *causal.Version) {
	b.set(appendDataKey(nil, key, v.Timestamp), encodeVersion(nil, v))
}
func (b *inmemBatch) deleteVersion(key string, ts clocks.Timestamp) {
	b.del(appendDataKey(nil, key, ts))
}
func (b *inmemBatch) indexTombstone(key string, v *causal.Version) {
	b.set(tombstoneKey(v.Timestamp.Region, v.Seq, appendDataKey(nil, key, v.Timestamp)), []byte{})
}
func (b *inmemBatch) putLog(lw *causal.Write) { b.set(logKey(lw.Seq), encodeWrite(nil, lw)) }
func (b *inmemBatch) putOutcome(id uuid.UUID, o *requestOutcome) {
	b.set(requestKey(id), encodeOutcome(o))
	b.set(requestExpiryKey(o.Timestamp.WallMs, id), []byte{})
}
func (b *inmemBatch) putOutcomeRecord(key, value []byte) { b.set(key, value) }
func (b *inmemBatch) putState(st *nodeState)             { b.set(metaState, encodeState(nil, st)) }
func (b *inmemBatch) putFence(lock string, token uint64) {
	b.set(fenceKey(lock), binary.BigEndian.AppendUint64(nil, token))
}
func (b *inmemBatch) deleteMeta(key []byte) { b.del(key) }

func (b *inmemBatch) commit() error {
	if b.done {
		panic("replica: inmem store batch released twice")
	}
	b.done = true
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if b.s.closed {
		return errInmemClosed
	}
	for _, op := range b.ops {
		if op.del {
			delete(b.s.kv, op.key)
		} else {
			b.s.kv[op.key] = op.value
		}
	}
	return nil
}

func (b *inmemBatch) abandon() {
	if b.done {
		panic("replica: inmem store batch released twice")
	}
	b.done = true
}

// inmemView is a copy of the records as they were.
type inmemView struct{ kv map[string][]byte }

func (s *inmemStore) snapshot() storageView {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv := make(map[string][]byte, len(s.kv))
	for k, v := range s.kv {
		kv[k] = v // values are never changed in place
	}
	return &inmemView{kv: kv}
}

func (v *inmemView) Siblings(key string, values bool) ([]causal.Version, error) {
	return siblingsIn(v.kv, key, values)
}

func (v *inmemView) scan(space byte, fn func(key, value []byte) error) (bool, error) {
	for _, k := range keysIn(v.kv, []byte{space}, []byte{space + 1}) {
		if err := fn([]byte(k), v.kv[k]); err != nil {
			return true, err
		}
	}
	return false, nil
}

func (v *inmemView) Close() error { return nil }
