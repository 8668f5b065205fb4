package replica

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/clocks"
)

// Pebble key layout. The first byte names the keyspace:
//
//	'd' escape(key) 0x00 0x01 ^wall(8) ^logical(4) ^region 0xFF   one version of a key
//	'l' seq(8)                                                      replication log: local write seq -> its replication frame
//	'r' request-id(16)                                              applied request id -> its outcome
//	'R' wall-ms(8) request-id(16)                                   expiry index of request ids
//	'm' name                                                        node metadata (cluster id, region, state)
//	't' len(origin) origin seq(8) data-key                          index of tombstones, for their collection
//	'f' lock                                                        highest fencing token seen on a write, per lock
//	'c' pos(8)                                                      change feed: every applied write in apply order (feed.go)
//
// Versions of one key are adjacent and sorted newest first, because the
// timestamp is stored inverted (bitwise NOT) after the escaped key: the
// latest version of a key is the first entry at or after the key's prefix,
// found by one SeekGE. The user key is escaped (0x00 becomes 0x00 0xFF) and
// terminated by 0x00 0x01, so no key's prefix is a prefix of another key's
// versions and keys keep their byte order for range scans.
const (
	spaceData       = 'd'
	spaceLog        = 'l'
	spaceRequest    = 'r'
	spaceRequestExp = 'R'
	spaceMeta       = 'm'
	spaceTombstone  = 't'
	spaceFence      = 'f'
)

var (
	metaCluster = []byte("m/cluster")
	metaNode    = []byte("m/node")
	metaRegion  = []byte("m/region")
	metaState   = []byte("m/state")
	// metaJoining is present while the region joins (causal.Join): set
	// when a data directory is created with --join, deleted in the batch
	// that ends the join, so a crash meanwhile resumes the join.
	metaJoining = []byte("m/joining")
	// metaMerging is present while a snapshot is being merged: the data is
	// then a mix that no vector describes. Deleted in the batch that
	// records the merged vector; a node that opens with it present lost a
	// merge in a crash and joins (merges every region) before it serves.
	metaMerging = []byte("m/merging")
	// metaRaftID: this node's Raft server id, once it has been a voter.
	metaRaftID = []byte("m/raft-id")
	// metaPeerPrefix + region -> address of a region this one replicates with.
	metaPeerPrefix = []byte("m/peer/")
)

// appendKeyPrefix appends the prefix shared by every version of key.
func appendKeyPrefix(dst []byte, key string) []byte {
	dst = append(dst, spaceData)
	for i := 0; i < len(key); i++ {
		c := key[i]
		dst = append(dst, c)
		if c == 0x00 {
			dst = append(dst, 0xFF)
		}
	}
	return append(dst, 0x00, 0x01)
}

// keyPrefixBounds returns [lower, upper) covering every version of key.
func keyPrefixBounds(key string) (lower, upper []byte) {
	lower = appendKeyPrefix(make([]byte, 0, len(key)+3), key)
	upper = append(lower[:len(lower)-1:len(lower)-1], 0x02)
	return lower, upper
}

// appendDataKey appends the storage key of the version of key written at ts.
func appendDataKey(dst []byte, key string, ts clocks.Timestamp) []byte {
	dst = appendKeyPrefix(dst, key)
	dst = binary.BigEndian.AppendUint64(dst, ^ts.WallMs)
	dst = binary.BigEndian.AppendUint32(dst, ^ts.Logical)
	// Region names are non-empty and never contain 0x00, so inverted bytes are
	// never 0xFF and the 0xFF terminator makes a longer name (greater) sort
	// before its own prefix, as the inverted order requires.
	for i := 0; i < len(ts.Region); i++ {
		dst = append(dst, ^ts.Region[i])
	}
	return append(dst, 0xFF)
}

// tablePerKeyspace ends every table Pebble writes (flushes and compactions)
// at the end of a keyspace, so that no table holds keys of two keyspaces.
//
// It keeps the append-only keyspaces (the replication log, the change feed)
// out of the rewrite of the data keyspace. A flushed table that spanned
// from the feed through the data versions to the log would overlap every
// table of the level below it in all three, and each compaction from L0
// would rewrite the whole log and feed written so far beside the versions
// it merges. Split by keyspace, a new log or feed table overlaps at most
// the newest one below it. 300,000 Puts of new keys on one node wrote
// 322 MB into L6 with one table per flush and 90 MB with a table per
// keyspace, and the node's CPU per Put, compactions included, fell from
// 48 to 29 µs (BenchmarkNodePutNewKeys; docs/bench/peer.md).
//
// Where tables end is not part of the store's format: stores written with
// or without it open alike.
func tablePerKeyspace(start []byte) (pebble.SpanPolicy, []byte, error) {
	if len(start) == 0 || start[0] == 0xFF {
		return pebble.SpanPolicy{}, nil, nil // nil: to the end of the key space
	}
	return pebble.SpanPolicy{}, []byte{start[0] + 1}, nil
}

func logKey(seq uint64) []byte { return appendLogKey(nil, seq) }

func appendLogKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, spaceLog), seq)
}

func requestKey(id uuid.UUID) []byte {
	return append([]byte{spaceRequest}, id[:]...)
}

func requestExpiryKey(wallMs uint64, id uuid.UUID) []byte {
	k := binary.BigEndian.AppendUint64([]byte{spaceRequestExp}, wallMs)
	return append(k, id[:]...)
}

// decodeDataKey returns the user key of a data key (the inverse of
// appendDataKey up to the timestamp).
func decodeDataKey(k []byte) (string, bool) {
	if len(k) == 0 || k[0] != spaceData {
		return "", false
	}
	out := make([]byte, 0, len(k))
	for i := 1; i+1 < len(k); i++ {
		if k[i] != 0x00 {
			out = append(out, k[i])
			continue
		}
		switch k[i+1] {
		case 0xFF:
			out = append(out, 0x00)
			i++
		case 0x01:
			return string(out), true
		default:
			return "", false
		}
	}
	return "", false
}

// tombstoneKey indexes the tombstone at dataKey written by origin's write
// seq, so collection finds tombstones without scanning the data.
func tombstoneKey(origin string, seq uint64, dataKey []byte) []byte {
	return appendTombstoneKey(nil, origin, seq, dataKey)
}

func appendTombstoneKey(dst []byte, origin string, seq uint64, dataKey []byte) []byte {
	dst = append(dst, spaceTombstone, byte(len(origin)))
	dst = append(dst, origin...)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return append(dst, dataKey...)
}

// parseTombstoneKey is the inverse of tombstoneKey.
func parseTombstoneKey(k []byte) (origin string, seq uint64, dataKey []byte, ok bool) {
	if len(k) < 2 || k[0] != spaceTombstone || len(k) < 2+int(k[1])+8 {
		return "", 0, nil, false
	}
	n := int(k[1])
	return string(k[2 : 2+n]), binary.BigEndian.Uint64(k[2+n : 2+n+8]), k[2+n+8:], true
}
