package check

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Check returns every violation of causal consistency, session guarantees,
// durability and convergence in history, and, when final is not nil, in the
// final state reached after healing and quiescence. The history need not be
// in any particular order; operations of one session are ordered by Index.
// Violations come out in a deterministic order for a given input.
func Check(history []Op, final Final) []Violation {
	c := &checker{
		history: history,
		byID:    map[versionID]*write{},
		byOp:    map[int]*write{},
		byKey:   map[string][]keyWrites{},
	}
	c.collectSessions()
	c.registerAcknowledged()
	c.bindObservedVersions(final)
	c.checkOriginOrder()
	c.walkCausalOrder()
	if final != nil {
		c.checkFinal(final)
	}
	return c.out
}

// versionID identifies a write: its origin region and sequence number there.
type versionID struct {
	origin string
	seq    uint64
}

// write is a put or delete known to have happened: acknowledged, or not
// acknowledged but returned by some read or by the final state.
type write struct {
	op      int // index in the history; -1 when no single op can be named
	key     string
	ref     VersionRef // as written (Value from the op, Tombstone from its kind)
	acked   bool
	phantom bool // no op in the history can have produced it
	// The write's place in its chain and its causal past, as a frontier over
	// chains (see chain). past is nil until the walk reaches the write, and
	// stays nil for writes no op can be named for.
	chain   int
	pos     int32
	past    []int32
	pastMax *write // the write with the greatest timestamp in past
}

// chain is a sequence of writes each of which has all earlier ones in its
// causal past: the acknowledged writes of one session, or a single write
// whose acknowledgement was lost (the session did not learn of it, so its
// later writes do not depend on it). A causal past is a union of chain
// prefixes, so it is stored as a frontier: per chain, how many of its writes
// it holds.
type chain struct {
	writes []*write
}

// keyWrites lists the writes of one chain to one key.
type keyWrites struct {
	chain     int
	positions []int32 // in the chain, increasing
}

type session struct {
	name    string
	ops     []int // history indexes in session order: acknowledged ops, then bound indeterminate writes join
	chain   int
	next    int     // ops[next] is the next op of the session to walk
	past    []int32 // frontier of the session's causal past; never modified in place
	pastMax *write
	reads   []readRecord // reads walked so far, in session order
}

type readRecord struct {
	op   int
	keys []string // sorted
	got  []*write // per key; nil for "never existed"
}

type checker struct {
	history   []Op
	out       []Violation
	byID      map[versionID]*write
	byOp      map[int]*write
	known     []*write // acknowledged and observed writes, in registration order
	chains    []*chain
	byKey     map[string][]keyWrites // key -> chains that wrote it, in order of their first write to it
	sessions  []*session
	sessionOf map[string]*session
	// indeterminate lists writes whose outcome is unknown, by region and
	// key, in history order.
	indeterminate map[regionKey][]int
}

type regionKey struct{ region, key string }

func (c *checker) report(kind string, op int, key, format string, args ...any) {
	v := Violation{Kind: kind, Op: op, Key: key, Detail: fmt.Sprintf(format, args...)}
	if op >= 0 {
		v.Session = c.history[op].Session
	}
	c.out = append(c.out, v)
}

// collectSessions validates each op and orders the usable ones by session.
func (c *checker) collectSessions() {
	c.sessionOf = map[string]*session{}
	c.indeterminate = map[regionKey][]int{}
	for i := range c.history {
		op := &c.history[i]
		indeterminate := !op.OK && op.Indeterminate && op.isWrite()
		if !op.OK && !indeterminate {
			continue
		}
		if problem := malformed(op); problem != "" {
			c.report(KindMalformed, i, op.Key, "%s", problem)
			continue
		}
		s := c.sessionOf[op.Session]
		if s == nil {
			s = &session{name: op.Session, chain: len(c.chains)}
			c.sessionOf[op.Session] = s
			c.sessions = append(c.sessions, s)
			c.chains = append(c.chains, &chain{})
		}
		if indeterminate {
			rk := regionKey{op.Region, op.Key}
			c.indeterminate[rk] = append(c.indeterminate[rk], i)
			continue // joins the session only if some read shows it happened
		}
		s.ops = append(s.ops, i)
	}
	for _, s := range c.sessions {
		slices.SortStableFunc(s.ops, func(a, b int) int { return c.history[a].Index - c.history[b].Index })
		for j := 1; j < len(s.ops); j++ {
			if c.history[s.ops[j]].Index == c.history[s.ops[j-1]].Index {
				c.report(KindMalformed, s.ops[j], "", "session %s has two operations at index %d (ops %d and %d); their order is taken from the history",
					s.name, c.history[s.ops[j]].Index, s.ops[j-1], s.ops[j])
			}
		}
	}
}

func malformed(op *Op) string {
	switch {
	case op.Session == "":
		return "operation without a session"
	case op.isWrite() && op.Key == "":
		return fmt.Sprintf("%s without a key", op.Kind)
	case op.isWrite() && op.OK && !op.Written.Exists():
		return fmt.Sprintf("acknowledged %s without the version written", op.Kind)
	case op.isWrite() && op.OK && op.Written.Tombstone != (op.Kind == OpDelete):
		return fmt.Sprintf("acknowledged %s reports version %v", op.Kind, op.Written)
	case op.Kind == OpGet && len(op.Reads) != 1:
		return fmt.Sprintf("get with %d keys read, want 1", len(op.Reads))
	case op.Kind == OpReadMany && len(op.Reads) == 0:
		return "read_many without keys"
	case !op.isWrite() && !op.isRead():
		return fmt.Sprintf("unknown operation kind %q", op.Kind)
	}
	return ""
}

// writtenRef is the version an op wrote, with the identity and timestamp of
// ref and the kind and value of the op.
func writtenRef(op *Op, ref VersionRef) VersionRef {
	ref.Tombstone = op.Kind == OpDelete
	ref.Value = ""
	if op.Kind == OpPut {
		ref.Value = op.Value
	}
	return ref
}

// addWrite puts w at the end of chain ch.
func (c *checker) addWrite(w *write, ch int) {
	w.chain = ch
	cw := c.chains[ch]
	w.pos = int32(len(cw.writes))
	cw.writes = append(cw.writes, w)
	kw := c.byKey[w.key]
	if len(kw) == 0 || kw[len(kw)-1].chain != ch {
		// Chains are filled one after the other, except that writes with
		// lost acknowledgements get their own chains later: a chain that
		// wrote key before appears last in the list or not at all.
		kw = append(kw, keyWrites{chain: ch})
	}
	kw[len(kw)-1].positions = append(kw[len(kw)-1].positions, w.pos)
	c.byKey[w.key] = kw
	c.known = append(c.known, w)
	if w.op >= 0 {
		c.byOp[w.op] = w
	}
}

func (c *checker) newChain() int {
	c.chains = append(c.chains, &chain{})
	return len(c.chains) - 1
}

// registerAcknowledged records every acknowledged write, in session order.
func (c *checker) registerAcknowledged() {
	for _, s := range c.sessions {
		for _, i := range s.ops {
			op := &c.history[i]
			if !op.isWrite() {
				continue
			}
			w := &write{op: i, key: op.Key, ref: writtenRef(op, op.Written), acked: true}
			c.addWrite(w, s.chain)
			if prev := c.byID[w.ref.id()]; prev != nil {
				c.report(KindDuplicateVersion, i, op.Key, "%s was acknowledged as %s, a version already acknowledged for %s: a region reused a sequence number, so it lost a write it had acknowledged",
					op.Kind, w.ref, c.describe(prev))
				continue
			}
			c.byID[w.ref.id()] = w
		}
	}
}

type observation struct {
	op     int    // -1 for the final state
	region string // for the final state
	key    string
	ref    VersionRef
}

func (o observation) where() string {
	if o.op >= 0 {
		return fmt.Sprintf("op %d", o.op)
	}
	return "the final state of " + o.region
}

// bindObservedVersions checks every version returned by a read or found in
// the final state against the write that produced it. A version no
// acknowledged write produced must come from a write whose outcome was
// unknown; that write then joins the history as having happened.
func (c *checker) bindObservedVersions(final Final) {
	var obs []observation
	for _, s := range c.sessions {
		for _, i := range s.ops {
			op := &c.history[i]
			if !op.isRead() {
				continue
			}
			for _, k := range sortedKeys(op.Reads) {
				obs = append(obs, observation{op: i, key: k, ref: op.Reads[k]})
			}
		}
	}
	for _, r := range sortedKeys(final) {
		for _, k := range sortedKeys(final[r]) {
			obs = append(obs, observation{op: -1, region: r, key: k, ref: final[r][k]})
		}
	}
	unknown := map[versionID][]observation{}
	var order []versionID
	for _, o := range obs {
		if !o.ref.Exists() {
			continue
		}
		if w := c.byID[o.ref.id()]; w != nil {
			c.compareObserved(o, w)
			continue
		}
		id := o.ref.id()
		if unknown[id] == nil {
			order = append(order, id)
		}
		unknown[id] = append(unknown[id], o)
	}
	for _, id := range order {
		seen := unknown[id]
		first := seen[0]
		w := &write{op: -1, key: first.key, ref: first.ref}
		switch candidates := c.candidates(first); len(candidates) {
		case 0:
			w.phantom = true
			c.report(KindUnwrittenVersion, first.op, first.key, "%s returned %s for %q, which no put or delete in the history wrote (seen %d time(s))",
				first.where(), first.ref, first.key, len(seen))
		case 1:
			op := &c.history[candidates[0]]
			w.op = candidates[0]
			w.ref = writtenRef(op, first.ref)
			s := c.sessionOf[op.Session]
			s.ops = append(s.ops, candidates[0])
			slices.SortStableFunc(s.ops, func(a, b int) int { return c.history[a].Index - c.history[b].Index })
		default:
			// Several writes with lost acknowledgements could have produced
			// it (deletes carry no value to tell them apart). It happened,
			// but its causal past is unknown, so it is taken as empty: that
			// can hide a violation, never invent one.
		}
		c.addWrite(w, c.newChain())
		c.byID[id] = w
		for _, o := range seen[1:] {
			c.compareObserved(o, w)
		}
	}
}

// candidates lists the writes with unknown outcome that could have produced
// the version o saw and are not yet known to have produced another.
func (c *checker) candidates(o observation) []int {
	var out []int
	for _, i := range c.indeterminate[regionKey{o.ref.Origin, o.key}] {
		op := &c.history[i]
		if c.byOp[i] != nil || (op.Kind == OpDelete) != o.ref.Tombstone || (op.Kind == OpPut && op.Value != o.ref.Value) {
			continue
		}
		out = append(out, i)
	}
	return out
}

func (c *checker) compareObserved(o observation, w *write) {
	switch {
	case o.key != w.key:
		c.report(KindVersionMismatch, o.op, o.key, "%s returned %s for %q, but that version is %s, a write of key %q",
			o.where(), o.ref, o.key, c.describe(w), w.key)
	case o.ref != w.ref:
		c.report(KindVersionMismatch, o.op, o.key, "%s returned %s for %q, but that version is %s",
			o.where(), o.ref, o.key, c.describe(w))
	}
}

// checkOriginOrder checks that each region's writes have increasing
// timestamps in sequence order: a region's hybrid clock never goes back,
// not even across a restart.
func (c *checker) checkOriginOrder() {
	byOrigin := map[string][]*write{}
	for _, w := range c.known {
		if !w.phantom && c.byID[w.ref.id()] == w {
			byOrigin[w.ref.Origin] = append(byOrigin[w.ref.Origin], w)
		}
	}
	for _, origin := range sortedKeys(byOrigin) {
		ws := byOrigin[origin]
		slices.SortFunc(ws, func(a, b *write) int { return compareUint(a.ref.Seq, b.ref.Seq) })
		for j := 1; j < len(ws); j++ {
			if ws[j].ref.Compare(ws[j-1].ref) <= 0 {
				c.report(KindTimestampOrder, ws[j].op, ws[j].key, "region %s issued %s after %s with a timestamp not after it: its clock went backwards",
					origin, c.describe(ws[j]), c.describe(ws[j-1]))
			}
		}
	}
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// walkCausalOrder visits ops in an order consistent with session order and
// reads-from (a write before every read that returned it), computing causal
// pasts as it goes and checking every read against them.
func (c *checker) walkCausalOrder() {
	n := len(c.chains)
	for _, s := range c.sessions {
		s.past = make([]int32, n)
	}
	indegree := map[int]int{}
	readers := map[int][]int{} // write op -> read ops that returned it
	total := 0
	for _, s := range c.sessions {
		total += len(s.ops)
		for j, i := range s.ops {
			if j > 0 {
				indegree[i]++
			}
			for _, w := range c.readFrom(i) {
				if w.op >= 0 && w.op != i {
					indegree[i]++
					readers[w.op] = append(readers[w.op], i)
				}
			}
		}
	}
	done := make(map[int]bool, total)
	var queue []int
	for _, s := range c.sessions {
		if len(s.ops) > 0 && indegree[s.ops[0]] == 0 {
			queue = append(queue, s.ops[0])
		}
	}
	release := func(i int) {
		if indegree[i]--; indegree[i] == 0 && !done[i] {
			queue = append(queue, i)
		}
	}
	for walked := 0; walked < total; {
		if len(queue) == 0 {
			queue = append(queue, c.breakCycle(done))
		}
		i := queue[0]
		queue = queue[1:]
		if done[i] {
			continue
		}
		walked++
		s := c.sessionOf[c.history[i].Session]
		c.visit(s, i)
		done[i] = true
		s.next++
		if s.next < len(s.ops) {
			release(s.ops[s.next])
		}
		for _, r := range readers[i] {
			release(r)
		}
	}
}

// readFrom lists the writes whose versions op i returned, without
// repetition.
func (c *checker) readFrom(i int) []*write {
	op := &c.history[i]
	if !op.OK || !op.isRead() {
		return nil
	}
	var out []*write
	for _, k := range sortedKeys(op.Reads) {
		if ref := op.Reads[k]; ref.Exists() {
			if w := c.byID[ref.id()]; w != nil && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// breakCycle is called when every remaining op waits for another: some read
// returned a write that causally follows it. It reports the cycle at the
// earliest waiting session head and returns that op, to be visited with
// what is known so far.
func (c *checker) breakCycle(done map[int]bool) int {
	head := -1
	for _, s := range c.sessions {
		if s.next < len(s.ops) && (head < 0 || s.ops[s.next] < head) {
			head = s.ops[s.next]
		}
	}
	for _, w := range c.readFrom(head) {
		if w.op >= 0 && !done[w.op] {
			c.report(KindCausalityCycle, head, w.key, "%s returned %s, which causally follows this read: session order and reads-from form a cycle",
				c.history[head].Kind, c.describe(w))
		}
	}
	return head
}

func (c *checker) visit(s *session, i int) {
	op := &c.history[i]
	if op.isWrite() {
		w := c.byOp[i]
		w.past, w.pastMax = s.past, s.pastMax
		// A session that already depends on its own write read it before
		// writing it: a cycle, reported when it was broken.
		if afterCycle := s.past[w.chain] > w.pos; !afterCycle && s.pastMax != nil && w.ref.Compare(s.pastMax.ref) <= 0 {
			c.report(KindTimestampOrder, i, op.Key, "%s has a timestamp not after %s in its causal past: last-writer-wins would let the earlier write win",
				c.describe(w), c.describe(s.pastMax))
		}
		if w.acked {
			next := slices.Clone(s.past)
			next[w.chain] = w.pos + 1
			s.past, s.pastMax = next, maxWrite(s.pastMax, w)
		}
		return
	}
	rec := readRecord{op: i, keys: sortedKeys(op.Reads)}
	snapshot := slices.Clone(s.past)
	snapshotMax := s.pastMax
	for _, k := range rec.keys {
		var w *write
		if ref := op.Reads[k]; ref.Exists() {
			w = c.byID[ref.id()]
			snapshot, snapshotMax = c.include(snapshot, snapshotMax, w)
		}
		rec.got = append(rec.got, w)
	}
	for j, k := range rec.keys {
		if v := rec.got[j]; v == nil || v.key == k {
			c.checkRead(s, &rec, k, v, snapshot)
		}
	}
	s.past, s.pastMax = snapshot, snapshotMax
	s.reads = append(s.reads, rec)
}

// include adds w and its causal past to the frontier f (modified in place).
func (c *checker) include(f []int32, fMax *write, w *write) ([]int32, *write) {
	for ch, n := range w.past {
		f[ch] = max(f[ch], n)
	}
	f[w.chain] = max(f[w.chain], w.pos+1)
	return f, maxWrite(maxWrite(fMax, w.pastMax), w)
}

func maxWrite(a, b *write) *write {
	switch {
	case a == nil:
		return b
	case b == nil || b.ref.Compare(a.ref) <= 0:
		return a
	}
	return b
}

// inPast reports whether x is in the causal past of w (x != w).
func inPast(x, w *write) bool {
	if x.chain == w.chain {
		return x.pos < w.pos
	}
	return w.past != nil && w.past[x.chain] > x.pos
}

// How a read's version v falls short of a write u in the read's causal past.
const (
	fine         = iota
	notNewest    // u is not in v's past and has the greater timestamp: u must win
	overwritten  // v is in u's past: u overwrote v
	missingWrite // nothing returned although u exists
)

// checkRead checks the version v that a read returned for key against every
// write to key in snapshot, the causal past of the read: the session's past
// and the pasts of all versions the read returned. For each chain only its
// last write to key in the snapshot needs checking: the earlier ones are in
// its causal past and have smaller timestamps (checked on the walk).
func (c *checker) checkRead(s *session, rec *readRecord, key string, v *write, snapshot []int32) {
	var witness *write
	worst := fine
	for _, kw := range c.byKey[key] {
		n := snapshot[kw.chain]
		j := sort.Search(len(kw.positions), func(j int) bool { return kw.positions[j] >= n }) - 1
		if j < 0 {
			continue
		}
		u := c.chains[kw.chain].writes[kw.positions[j]]
		how := fine
		switch {
		case v == nil:
			how = missingWrite
		case u == v:
		case inPast(v, u):
			how = overwritten
		case !inPast(u, v) && v.ref.Compare(u.ref) < 0:
			how = notNewest
		}
		if how == fine {
			continue
		}
		// Name the session's own write first, then the clearest failure.
		switch own, witnessOwn := u.chain == s.chain, witness != nil && witness.chain == s.chain; {
		case witness == nil, own && !witnessOwn, own == witnessOwn && how > worst:
			witness, worst = u, how
		}
	}
	if witness == nil {
		return
	}
	kind, relation := c.classify(s, rec, key, witness)
	op := &c.history[rec.op]
	got := "nothing"
	if v != nil {
		got = v.ref.String()
	}
	var why string
	switch worst {
	case missingWrite:
		why = "it must be visible"
	case overwritten:
		why = "it overwrote the version returned (its writer had seen it)"
	case notNewest:
		why = "it is not in the causal past of the version returned and has the greater timestamp, so it must win"
	}
	c.report(kind, rec.op, key, "%s at %s returned %s for %q, but %s; %s: %s",
		op.Kind, op.Region, got, key, c.describe(witness), relation, why)
}

// classify names the guarantee a read broke by missing u, from how u got
// into the read's causal past.
func (c *checker) classify(s *session, rec *readRecord, key string, u *write) (kind, relation string) {
	if u.chain == s.chain {
		return KindReadYourWrites, "the session wrote it before this read"
	}
	if s.past[u.chain] > u.pos { // s.past is still the past before this read
		for _, r := range s.reads {
			for j, w := range r.got {
				switch {
				case w == nil:
				case w == u:
					return KindMonotonicReads, fmt.Sprintf("the session had already read it at op %d", r.op)
				case inPast(u, w) && w.chain == u.chain:
					return KindMonotonicWrites, fmt.Sprintf("the session had read %q at op %d from %s, written after it by the same session", r.keys[j], r.op, c.describe(w))
				case inPast(u, w):
					return KindWritesFollowReads, fmt.Sprintf("the session had read %q at op %d from %s, whose causal past includes it", r.keys[j], r.op, c.describe(w))
				}
			}
		}
	}
	for j, w := range rec.got {
		if w != nil && rec.keys[j] != key && (w == u || inPast(u, w)) {
			return KindCausalSnapshot, fmt.Sprintf("the same snapshot returned %s for %q, whose causal past includes it", c.describe(w), rec.keys[j])
		}
	}
	return KindWritesFollowReads, "it is in the causal past of what the session had read"
}

// describe names a write for messages.
func (c *checker) describe(w *write) string {
	if w.op < 0 {
		return fmt.Sprintf("%s (acknowledgement lost)", w.ref)
	}
	op := &c.history[w.op]
	what := "written"
	if !w.acked {
		what = "written (acknowledgement lost)"
	}
	return fmt.Sprintf("%s %s by session %s at op %d in %s", w.ref, what, op.Session, w.op, op.Region)
}

// checkFinal checks convergence (every region holds the same versions) and
// durability (each key holds the newest write known to have happened).
func (c *checker) checkFinal(final Final) {
	regions := sortedKeys(final)
	newest := map[string]*write{}
	for _, w := range c.known {
		if !w.phantom && c.byID[w.ref.id()] == w {
			newest[w.key] = maxWrite(newest[w.key], w)
		}
	}
	keySet := map[string]bool{}
	for k := range newest {
		keySet[k] = true
	}
	for _, r := range regions {
		for k := range final[r] {
			keySet[k] = true
		}
	}
	for _, key := range sortedKeys(keySet) {
		var states []string
		distinct := map[VersionRef]bool{}
		for _, r := range regions {
			got := final[r][key]
			states = append(states, fmt.Sprintf("%s holds %s", r, got))
			if distinct[got] {
				continue // checked for an earlier region
			}
			distinct[got] = true
			want := newest[key]
			switch {
			case want == nil:
				// Nothing known was written; a version found is unwritten
				// (reported when it was bound).
			case !got.Exists():
				c.report(KindLostWrite, -1, key, "region %s holds nothing for %q, but %s happened", r, key, c.describe(want))
			case c.byID[got.id()] != want && got.Compare(want.ref) < 0:
				c.report(KindLostWrite, -1, key, "region %s holds %s for %q, but %s has a greater timestamp: it was lost or lost to an older write",
					r, got, key, c.describe(want))
			}
		}
		if len(distinct) > 1 {
			c.report(KindDivergence, -1, key, "regions did not converge on %q: %s", key, strings.Join(states, "; "))
		}
	}
}

func sortedKeys[M ~map[K]V, K ~string, V any](m M) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
