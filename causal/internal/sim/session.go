package sim

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/check"
)

// session is a client session: it carries its causal token from request to
// request and from region to region.
type session struct {
	name   string
	region int // the region it talks to
	token  clocks.Token
	index  int // next op's position in the session
	// photoNext: the session wrote "acl" and writes "photo" next (the
	// photo-album pattern: whoever sees the photo must see the new acl).
	photoNext bool
}

// The photo-album keys; the others are k0, k1, ...
const (
	keyACL   = "acl"
	keyPhoto = "photo"
)

// clientTick issues one operation of a random session.
func (w *world) clientTick() {
	if w.healing {
		return
	}
	w.opsIssued++
	w.doOp(w.sessions[w.rng.IntN(len(w.sessions))])
	w.after(w.rng.Int64N(2*w.cfg.OpGapMs+1), w.clientTick)
}

func (w *world) randomKey() string {
	if i := w.rng.IntN(w.cfg.Keys + 2); i < w.cfg.Keys {
		return fmt.Sprintf("k%d", i)
	} else if i == w.cfg.Keys {
		return keyACL
	}
	return keyPhoto
}

// doOp picks the session's next operation and runs it.
func (w *world) doOp(s *session) {
	move := w.chance(w.cfg.MoveProb)
	if s.photoNext {
		// Half the time the photo is written in another region than the
		// acl: then only the dependency vector orders them elsewhere.
		move = move || w.chance(0.5)
	}
	if move {
		s.region = w.rng.IntN(len(w.regions))
	}
	op := check.Op{Session: s.name, Index: s.index, Region: w.regions[s.region].name}
	s.index++
	album := false // this op writes the acl, the next one the photo
	switch dice := w.rng.IntN(100); {
	case s.photoNext:
		op.Kind, op.Key = check.OpPut, keyPhoto
	case dice < 25:
		op.Kind, op.Key = check.OpPut, w.randomKey()
	case dice < 32:
		op.Kind, op.Key = check.OpDelete, w.randomKey()
	case dice < 40:
		op.Kind, op.Key = check.OpPut, keyACL
		album = true
	case dice < 65:
		op.Kind, op.Reads = check.OpGet, map[string]check.VersionRef{w.randomKey(): {}}
	case dice < 80:
		op.Kind, op.Reads = check.OpReadMany, map[string]check.VersionRef{keyACL: {}, keyPhoto: {}}
	default:
		op.Kind, op.Reads = check.OpReadMany, map[string]check.VersionRef{}
		for len(op.Reads) < 2+w.rng.IntN(2) {
			op.Reads[w.randomKey()] = check.VersionRef{}
		}
	}
	if op.Kind == check.OpPut {
		w.values++
		op.Value = fmt.Sprintf("v%d", w.values)
	}
	r := w.regions[s.region]
	switch {
	case !r.serving(), !r.durable.applied.Dominates(s.token.Vector):
		// Unavailable: the real region waits for the session's causal past
		// until the deadline, then says which region's writes are missing;
		// a joining region, or one that lost writes, serves nobody.
		w.stats.OpsFailed++
	case op.Kind == check.OpPut || op.Kind == check.OpDelete:
		w.write(r, s, &op)
	default:
		w.read(r, s, &op)
	}
	s.photoNext = album && op.OK
	w.history = append(w.history, op)
}

// write runs a put or delete at r. Sometimes the client never learns the
// outcome: the region crashes before or after persisting the write, or the
// acknowledgement is lost.
func (w *world) write(r *region, s *session, op *check.Op) {
	cop := causal.Op{Key: op.Key, Kind: causal.KindTombstone}
	if op.Kind == check.OpPut {
		cop = causal.Op{Key: op.Key, Kind: causal.KindValue, Value: []byte(op.Value)}
	}
	w.requests++
	var requestID [16]byte
	binary.BigEndian.PutUint64(requestID[8:], w.requests)
	wr, err := r.replica.Local(s.token, []causal.Op{cop}, requestID)
	if err != nil {
		if !errors.Is(err, clocks.ErrClockOffset) {
			w.fail(KindProtocolError, op.Key, "%s: Local: %v", r.name, err)
		}
		// The session has seen a timestamp too far ahead of this region's
		// clock; the client is told so and may retry later or elsewhere.
		w.stats.OpsFailed++
		w.stats.ClockRefusals++
		return
	}
	if w.chance(w.cfg.IndeterminateProb) {
		op.Indeterminate = true
		w.stats.OpsIndeterminate++
		switch w.rng.IntN(3) {
		case 0: // crash before the batch is durable: the write never happened
			r.crash()
		case 1: // crash after it is durable, before the reply
			r.persistLocal(wr)
			r.crash()
		default: // reply lost on the way
			r.persistLocal(wr)
		}
		return
	}
	r.persistLocal(wr)
	op.OK = true
	op.Written = versionRef(causal.VersionOf(wr, cop))
	w.stats.OpsOK++
	s.token = clocks.Token{Vector: s.token.Vector.Merge(wr.Vector), Seen: later(s.token.Seen, wr.Timestamp)}
}

// read runs a get or read_many at r: all keys from one state of the region,
// which is a snapshot since writes are applied atomically between events.
// Like the real read path, the token covers every sibling, not just the
// winner, so a later write supersedes them all.
func (w *world) read(r *region, s *session, op *check.Op) {
	tok := s.token
	for _, key := range sortedKeys(op.Reads) {
		siblings := r.durable.data[key]
		if len(siblings) == 0 {
			if t, ok := r.durable.collected[key]; ok {
				// Read as deleted: the collected tombstone names that
				// answer (it is in the session's past already, or the
				// token would not have been served here).
				op.Reads[key] = versionRef(t)
			}
			continue // never existed here: the zero VersionRef
		}
		op.Reads[key] = versionRef(siblings[0])
		for _, v := range siblings {
			tok = clocks.Token{Vector: tok.Vector.Merge(v.Vector), Seen: later(tok.Seen, v.Timestamp)}
		}
	}
	op.OK = true
	w.stats.OpsOK++
	s.token = tok
}

func later(a, b clocks.Timestamp) clocks.Timestamp {
	if a.Less(b) {
		return b
	}
	return a
}
