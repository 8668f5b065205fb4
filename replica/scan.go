package replica

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// Scan limits. They are part of the API contract (kv.proto, README).
const (
	// DefaultScanLimit and MaxScanLimit bound the keys of one page.
	DefaultScanLimit = 1000
	MaxScanLimit     = 10000
	// MaxScanPageBytes bounds the values of one page; a page stops early
	// (with a cursor) rather than exceed the response limit.
	MaxScanPageBytes = 4 << 20
	// ScanRetention is how long a paginated scan's snapshot is kept after
	// its last page. A Pebble snapshot pins the data it sees (compactions
	// keep the versions it needs), so it is short, like an HTTP keep-alive.
	ScanRetention = 60 * time.Second
	// MaxOpenScans bounds the snapshots retained for paginated scans.
	MaxOpenScans = 256
)

// KeyRange selects keys: a prefix, or [Start, End) with an empty End
// meaning no end. The zero KeyRange selects every key.
type KeyRange struct {
	Prefix, Start, End string
}

// validate checks a range from a request.
func (r KeyRange) validate() error {
	if r.Prefix != "" && (r.Start != "" || r.End != "") {
		return api.Errorf(api.ErrInvalidArgument, "give a prefix or a start/end range, not both")
	}
	for _, f := range []struct{ name, v string }{{"prefix", r.Prefix}, {"start", r.Start}, {"end", r.End}} {
		if len(f.v) > MaxKeyBytes {
			return api.Errorf(api.ErrInvalidArgument, "%s is %d bytes; the limit is %d bytes", f.name, len(f.v), MaxKeyBytes)
		}
		if !utf8.ValidString(f.v) {
			return api.Errorf(api.ErrInvalidArgument, "%s is not valid UTF-8", f.name)
		}
	}
	if r.End != "" && r.Start >= r.End {
		return api.Errorf(api.ErrInvalidArgument, "start %q is not before end %q; the range [start, end) would be empty", r.Start, r.End)
	}
	return nil
}

// Contains reports whether key is in the range.
func (r KeyRange) Contains(key string) bool {
	if r.Prefix != "" {
		return strings.HasPrefix(key, r.Prefix)
	}
	return key >= r.Start && (r.End == "" || key < r.End)
}

// bounds are the data-keyspace bounds [lower, upper) holding every version
// of every key in the range. The escaping (keys.go) keeps key order, and
// no escaped key byte is 0xFF except after 0x00, so the escaped prefix
// followed by 0xFF is above every key that extends the prefix.
func (r KeyRange) bounds() (lower, upper []byte) {
	if r.Prefix != "" {
		lower = appendEscaped(nil, r.Prefix)
		return lower, append(bytes.Clone(lower), 0xFF)
	}
	lower = appendEscaped(nil, r.Start)
	if r.End == "" {
		return lower, []byte{spaceData + 1}
	}
	return lower, appendEscaped(nil, r.End)
}

// appendEscaped appends the data keyspace byte and key escaped as in
// appendKeyPrefix, without the terminator.
func appendEscaped(dst []byte, key string) []byte {
	p := appendKeyPrefix(dst, key)
	return p[:len(p)-2]
}

// ScanOptions are a scan's optional parts.
type ScanOptions struct {
	Limit    int  // keys per page; 0 means DefaultScanLimit
	KeysOnly bool // leave values out
	Siblings bool // list concurrent versions
	Cursor   string
}

// ScanResult is one page of a scan.
type ScanResult struct {
	Keys       []ReadResult // live keys, in key order
	Token      string
	NextCursor string // empty when the scan is complete
}

// Scan reads the live keys of r from one causally consistent snapshot of
// this region that contains the token's causal past. A region applies
// writes in causal order, so every snapshot of it is causally consistent.
// The new token covers the whole snapshot (the region's applied vector at
// it): a scan observes the absence of keys too, and a Watch from the
// token delivers exactly the changes the scan did not see.
func (n *Node) Scan(ctx context.Context, r KeyRange, token string, o ScanOptions) (ScanResult, error) {
	if err := r.validate(); err != nil {
		return ScanResult{}, err
	}
	switch {
	case o.Limit < 0 || o.Limit > MaxScanLimit:
		return ScanResult{}, api.Errorf(api.ErrInvalidArgument, "limit %d is out of range; a page holds 1 to %d keys (0: %d)", o.Limit, MaxScanLimit, DefaultScanLimit)
	case o.Limit == 0:
		o.Limit = DefaultScanLimit
	}
	tok, err := n.decodeToken(token)
	if err != nil {
		return ScanResult{}, err
	}
	fingerprint := scanFingerprint(r, o)
	var snap *scanSnapshot
	var after string // the last key of the previous page
	if o.Cursor != "" {
		c, err := decodeScanCursor(o.Cursor)
		if err != nil {
			return ScanResult{}, err
		}
		if c.fingerprint != fingerprint {
			return ScanResult{}, api.Errorf(api.ErrInvalidArgument, "the cursor belongs to a scan of another range or with other options; send the same prefix, start, end, keys_only and siblings as on the first page")
		}
		if c.node != n.nodeID {
			return ScanResult{}, api.Errorf(api.ErrFailedPrecondition, "the cursor's snapshot is held by node %s, not %s: continue the scan on the same node, or start it again", c.node, n.nodeID)
		}
		if snap = n.scans.take(c.id, n.cfg.Now()); snap == nil {
			return ScanResult{}, api.Errorf(api.ErrFailedPrecondition, "the scan's snapshot was released (a snapshot is kept %s after each page, and not across a restart): start the scan again without a cursor", ScanRetention)
		}
		after = c.after
	} else {
		if err := n.awaitCausalPast(ctx, tok.Vector); err != nil {
			return ScanResult{}, err
		}
		snap = n.openScanSnapshot()
		// Pebble shows a batch before its fsync; answer only with
		// durable data.
		if err := n.awaitCausalPast(ctx, snap.vector); err != nil {
			snap.view.Close()
			return ScanResult{}, err
		}
	}

	keys, more, err := snap.view.scanRange(r, after, o)
	if err != nil {
		snap.view.Close()
		return ScanResult{}, err
	}
	out := ScanResult{Keys: keys}
	if more {
		id := n.scans.put(snap, n.cfg.Now())
		out.NextCursor = encodeScanCursor(scanCursor{node: n.nodeID, id: id, after: keys[len(keys)-1].Key, fingerprint: fingerprint})
	} else {
		snap.view.Close()
	}
	tok.Vector = tok.Vector.Merge(snap.vector)
	if tok.Seen.Less(snap.seen) {
		tok.Seen = snap.seen
	}
	tok.Cluster = n.cluster
	out.Token = tok.Encode()
	return out, nil
}

// scanSnapshot is a consistent view of the store with the applied vector
// it embodies and the region's clock at it.
type scanSnapshot struct {
	view   *storeView
	vector clocks.Vector
	seen   clocks.Timestamp
}

// openScanSnapshot opens a view under mu, where batches are enqueued, so
// the view holds exactly the writes of the vector taken with it.
func (n *Node) openScanSnapshot() *scanSnapshot {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &scanSnapshot{view: n.store.view(), vector: n.causal.Applied(), seen: n.clock.Last()}
}

// scanRange reads up to o.Limit live keys of r after key after (exclusive;
// "" starts at the beginning). more reports that keys remain.
func (v *storeView) scanRange(r KeyRange, after string, o ScanOptions) (out []ReadResult, more bool, err error) {
	lower, upper := r.bounds()
	if after != "" {
		_, afterUpper := keyPrefixBounds(after)
		if bytes.Compare(afterUpper, lower) > 0 {
			lower = afterUpper
		}
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	size := 0
	var cur []byte // the current key's prefix (escaped key + terminator)
	var versions []causal.Version
	flush := func() error {
		if len(versions) == 0 {
			return nil
		}
		defer func() { versions = versions[:0] }()
		if versions[0].Kind != causal.KindValue {
			return nil // deleted: absent from a scan
		}
		key, ok := decodeDataKey(cur)
		if !ok {
			return fmt.Errorf("%w: data key %x", ErrCorruptRecord, cur)
		}
		res := ReadResult{Key: key, Found: true, Version: versions[0], HasSiblings: len(versions) > 1}
		if o.KeysOnly {
			res.Version.Value = nil
		}
		if o.Siblings && res.HasSiblings {
			res.Siblings = append([]causal.Version(nil), versions...)
			if o.KeysOnly {
				for i := range res.Siblings {
					res.Siblings[i].Value = nil
				}
			}
		}
		for i := range res.Siblings {
			size += len(res.Siblings[i].Value)
		}
		size += len(res.Version.Value) + len(key)
		out = append(out, res)
		return nil
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		plen := dataKeyPrefixLen(k)
		if plen < 0 {
			return nil, false, fmt.Errorf("%w: data key %x", ErrCorruptRecord, k)
		}
		if cur == nil || !bytes.Equal(k[:plen], cur) {
			if err := flush(); err != nil {
				return nil, false, err
			}
			if len(out) >= o.Limit || size >= MaxScanPageBytes {
				return out, true, nil
			}
			cur = append(cur[:0], k[:plen]...)
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			return nil, false, err
		}
		ver, err := decodeVersion(raw)
		if err != nil {
			return nil, false, err
		}
		ver.Value = bytes.Clone(ver.Value)
		versions = append(versions, ver)
	}
	if err := it.Error(); err != nil {
		return nil, false, err
	}
	if err := flush(); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// dataKeyPrefixLen is the length of a data key's key prefix (space byte,
// escaped key and the 0x00 0x01 terminator), or -1 if it has none.
func dataKeyPrefixLen(k []byte) int {
	for i := 1; i+1 < len(k); i++ {
		if k[i] != 0x00 {
			continue
		}
		switch k[i+1] {
		case 0xFF:
			i++
		case 0x01:
			return i + 2
		default:
			return -1
		}
	}
	return -1
}

// scanCursor names a retained snapshot and where the next page starts.
type scanCursor struct {
	node        string
	id          uint64
	after       string
	fingerprint [8]byte
}

const scanCursorFormat = 1

// encodeScanCursor: base64url of
// [format][uvarint id][len node][node][len after][after][fingerprint 8].
func encodeScanCursor(c scanCursor) string {
	b := []byte{scanCursorFormat}
	b = binary.AppendUvarint(b, c.id)
	b = binary.AppendUvarint(b, uint64(len(c.node)))
	b = append(b, c.node...)
	b = binary.AppendUvarint(b, uint64(len(c.after)))
	b = append(b, c.after...)
	b = append(b, c.fingerprint[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeScanCursor(s string) (scanCursor, error) {
	bad := api.Errorf(api.ErrInvalidArgument, "the scan cursor is damaged; send next_cursor exactly as a previous page returned it")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1 || b[0] != scanCursorFormat {
		return scanCursor{}, bad
	}
	b = b[1:]
	var c scanCursor
	var n int
	if c.id, n = binary.Uvarint(b); n <= 0 {
		return scanCursor{}, bad
	}
	b = b[n:]
	field := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) || l > MaxKeyBytes+64 {
			return "", false
		}
		f := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return f, true
	}
	var ok bool
	if c.node, ok = field(); !ok {
		return scanCursor{}, bad
	}
	if c.after, ok = field(); !ok || len(b) != len(c.fingerprint) {
		return scanCursor{}, bad
	}
	copy(c.fingerprint[:], b)
	return c, nil
}

// scanFingerprint binds a cursor to the range and options of its scan.
func scanFingerprint(r KeyRange, o ScanOptions) [8]byte {
	h := sha256.New()
	for _, s := range []string{r.Prefix, r.Start, r.End} {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	h.Write([]byte{boolByte(o.KeysOnly), boolByte(o.Siblings)})
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// scanCache retains the snapshots of paginated scans between pages: at
// most MaxOpenScans (past it, the least recently paged is released), each
// released ScanRetention after its last page. A
// page takes its snapshot out (so two requests with one cursor cannot
// share it, and the sweep cannot close it under a reader) and puts it
// back, under a new id, if pages remain.
type scanCache struct {
	mu     sync.Mutex
	nextID uint64
	open   map[uint64]*retainedScan
}

type retainedScan struct {
	snap    *scanSnapshot
	expires time.Time
}

func newScanCache() *scanCache { return &scanCache{open: map[uint64]*retainedScan{}} }

// put retains snap for the next page. With MaxOpenScans open, it first
// releases the one whose last page is oldest (its cursor then fails as an
// expired one does): a client that reads only the first page of many
// scans never makes later scans fail.
func (c *scanCache) put(snap *scanSnapshot, now time.Time) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.open) >= MaxOpenScans {
		var oldest uint64
		for id, s := range c.open {
			if oldest == 0 || s.expires.Before(c.open[oldest].expires) {
				oldest = id
			}
		}
		c.open[oldest].snap.view.Close()
		delete(c.open, oldest)
	}
	c.nextID++
	c.open[c.nextID] = &retainedScan{snap: snap, expires: now.Add(ScanRetention)}
	return c.nextID
}

// take removes and returns the snapshot retained under id; nil if it was
// released (expired, used already, or the node restarted).
func (c *scanCache) take(id uint64, now time.Time) *scanSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.open[id]
	if !ok {
		return nil
	}
	delete(c.open, id)
	if now.After(s.expires) {
		s.snap.view.Close()
		return nil
	}
	return s.snap
}

// sweep releases expired snapshots and reports how many.
func (c *scanCache) sweep(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, s := range c.open {
		if now.After(s.expires) {
			s.snap.view.Close()
			delete(c.open, id)
			n++
		}
	}
	return n
}

// closeAll releases every retained snapshot (the node closes).
func (c *scanCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.open {
		s.snap.view.Close()
		delete(c.open, id)
	}
}

// sweepScans releases expired scan snapshots every few seconds, and all of
// them when the node closes.
func (n *Node) sweepScans() {
	defer n.background.Done()
	t := time.NewTicker(ScanRetention / 6)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			n.scans.closeAll()
			return
		case <-t.C:
			n.scans.sweep(n.cfg.Now())
		}
	}
}
