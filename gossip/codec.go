package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/causewaydb/causeway/clocks"
)

// Wire formats. Everything this package puts on the wire travels inside
// memberlist (node metadata, user messages, push/pull user state), so it is
// encrypted and authenticated whenever a SecretKey is set; the decoders are
// still strict and bounded, because a member with the key can be buggy or of
// another version, and without a key anyone can send anything.
//
// Meta (memberlist node metadata, at most MaxMetaSize bytes):
//
//	byte     format version: 1 (metaVersionV1) or 2 (metaVersion)
//	5 times  uvarint length + bytes: Region, NodeID, APIAddr,
//	         ReplicationAddr, RaftAddr
//	version 2 only: uvarint length + bytes: RaftID
//
// A Meta without a RaftID is written as version 1, byte for byte what nodes
// that predate RaftID write and read, so mixed versions keep understanding
// each other's causal replicas and forwarders; a Raft voter writes version
// 2. Both versions are read.
//
// Messages (memberlist user messages and push/pull state):
//
//	byte     format version (wireVersion = 1)
//	byte     kind: kindHeartbeat, kindRemoved or kindState
//	body
//
// heartbeat body: one heartbeat record.
// removed body:   uvarint count (<= maxRemoved), then region names.
// state body:     uvarint count (<= maxEntries) of heartbeat records, then a
//
//	removed body.
//
// heartbeat record:
//
//	uvarint length + node name ("region/node-id")
//	uvarint generation, uvarint counter (newer = lexicographically greater)
//	byte flags: bit 0 set when an applied vector follows, bit 1 set when
//	     the node is leaving (Gossip.Leave)
//	applied vector (clocks.AppendVector), when flagged
//
// Trailing bytes are an error: a message has one encoding.

const (
	metaVersionV1 = 1
	metaVersion   = 2
	wireVersion   = 1

	kindHeartbeat = 1
	kindRemoved   = 2
	kindState     = 3

	flagApplied = 1
	flagLeaving = 2

	// maxEntries bounds the heartbeat records kept and accepted in one state
	// message: far more nodes than a deployment of MaxRegions regions has,
	// small enough that a hostile count cannot make a decoder allocate much.
	maxEntries = 1024
	// maxRemoved bounds the regions remembered as removed.
	maxRemoved = 1024
	// maxNameLen is the longest memberlist node name: region/node-id.
	maxNameLen = clocks.MaxRegionLen + 1 + MaxNodeIDLen
	// maxHeartbeatBytes is the largest heartbeat sent as a gossip broadcast;
	// memberlist packs broadcasts into UDP packets of 1400 bytes less
	// headers and encryption. A heartbeat whose vector makes it larger is
	// sent without the vector, which then travels by push/pull only.
	maxHeartbeatBytes = 1024
)

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("corrupt gossip message")

func appendMeta(dst []byte, m Meta) []byte {
	fields := []string{m.Region, m.NodeID, m.APIAddr, m.ReplicationAddr, m.RaftAddr}
	if m.RaftID == "" {
		dst = append(dst, metaVersionV1)
	} else {
		dst = append(dst, metaVersion)
		fields = append(fields, m.RaftID)
	}
	for _, s := range fields {
		dst = appendString(dst, s)
	}
	return dst
}

// decodeMeta decodes and validates node metadata received from memberlist.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaSize {
		return Meta{}, fmt.Errorf("%w: metadata is %d bytes, more than %d", errCorrupt, len(b), MaxMetaSize)
	}
	if len(b) == 0 || (b[0] != metaVersionV1 && b[0] != metaVersion) {
		return Meta{}, fmt.Errorf("%w: metadata is not format version %d or %d (a node of another version, or not Causeway)",
			errCorrupt, metaVersionV1, metaVersion)
	}
	rest := b[1:]
	var fields [6]string
	n := len(fields)
	if b[0] == metaVersionV1 {
		n = 5
	}
	for i := range n {
		var err error
		if fields[i], rest, err = readString(rest, MaxMetaSize); err != nil {
			return Meta{}, fmt.Errorf("metadata field %d: %w", i, err)
		}
	}
	if len(rest) != 0 {
		return Meta{}, fmt.Errorf("%w: %d bytes after the metadata", errCorrupt, len(rest))
	}
	m := Meta{Region: fields[0], NodeID: fields[1], APIAddr: fields[2], ReplicationAddr: fields[3], RaftAddr: fields[4], RaftID: fields[5]}
	if b[0] == metaVersion && m.RaftID == "" {
		return Meta{}, fmt.Errorf("%w: version %d metadata with an empty RaftID (version %d is written without one)", errCorrupt, metaVersion, metaVersionV1)
	}
	if err := m.Validate(); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return m, nil
}

// heartbeat is one node's liveness counter and applied vector.
type heartbeat struct {
	name       string // memberlist node name
	generation uint64 // chosen at start-up, larger after a restart
	counter    uint64 // counts heartbeats within a generation
	applied    clocks.Vector
	hasApplied bool
	// leaving is set in the heartbeats of a node that called Leave:
	// memberlist reports departures and failures alike (NotifyLeave), so
	// this is how members tell Left from Dead.
	leaving bool
}

// newerThan reports whether h was issued after o by the same node.
func (h heartbeat) newerThan(o heartbeat) bool {
	if h.generation != o.generation {
		return h.generation > o.generation
	}
	return h.counter > o.counter
}

// message is a decoded message: heartbeats and removed regions.
type message struct {
	kind       byte
	heartbeats []heartbeat
	removed    []string
}

func appendHeartbeatMsg(dst []byte, h heartbeat) []byte {
	dst = append(dst, wireVersion, kindHeartbeat)
	return appendHeartbeat(dst, h)
}

func appendRemovedMsg(dst []byte, regions []string) []byte {
	dst = append(dst, wireVersion, kindRemoved)
	return appendRemoved(dst, regions)
}

func appendStateMsg(dst []byte, hs []heartbeat, removed []string) []byte {
	dst = append(dst, wireVersion, kindState)
	dst = binary.AppendUvarint(dst, uint64(len(hs)))
	for _, h := range hs {
		dst = appendHeartbeat(dst, h)
	}
	return appendRemoved(dst, removed)
}

func appendHeartbeat(dst []byte, h heartbeat) []byte {
	dst = appendString(dst, h.name)
	dst = binary.AppendUvarint(dst, h.generation)
	dst = binary.AppendUvarint(dst, h.counter)
	var flags byte
	if h.hasApplied {
		flags |= flagApplied
	}
	if h.leaving {
		flags |= flagLeaving
	}
	dst = append(dst, flags)
	if h.hasApplied {
		dst = clocks.AppendVector(dst, h.applied)
	}
	return dst
}

func appendRemoved(dst []byte, regions []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(regions)))
	for _, r := range regions {
		dst = appendString(dst, r)
	}
	return dst
}

// decodeMessage decodes a message. It never panics and allocates in
// proportion to len(b) at most.
func decodeMessage(b []byte) (message, error) {
	if len(b) < 2 {
		return message{}, fmt.Errorf("%w: %d bytes, shorter than a header", errCorrupt, len(b))
	}
	if b[0] != wireVersion {
		return message{}, fmt.Errorf("%w: format version %d, this node reads %d", errCorrupt, b[0], wireVersion)
	}
	msg := message{kind: b[1]}
	rest := b[2:]
	var err error
	switch msg.kind {
	case kindHeartbeat:
		var h heartbeat
		if h, rest, err = readHeartbeat(rest); err != nil {
			return message{}, err
		}
		msg.heartbeats = []heartbeat{h}
	case kindRemoved:
		if msg.removed, rest, err = readRemoved(rest); err != nil {
			return message{}, err
		}
	case kindState:
		var n uint64
		if n, rest, err = readUvarint(rest, "heartbeat count"); err != nil {
			return message{}, err
		}
		// Each record takes at least 5 bytes, so a count beyond that is a
		// lie, caught before allocating for it.
		if n > maxEntries || n > uint64(len(rest))/5 {
			return message{}, fmt.Errorf("%w: %d heartbeat records in %d bytes (at most %d)", errCorrupt, n, len(rest), maxEntries)
		}
		msg.heartbeats = make([]heartbeat, n)
		for i := range msg.heartbeats {
			if msg.heartbeats[i], rest, err = readHeartbeat(rest); err != nil {
				return message{}, fmt.Errorf("heartbeat record %d: %w", i, err)
			}
		}
		if msg.removed, rest, err = readRemoved(rest); err != nil {
			return message{}, err
		}
	default:
		return message{}, fmt.Errorf("%w: unknown message kind %d", errCorrupt, msg.kind)
	}
	if len(rest) != 0 {
		return message{}, fmt.Errorf("%w: %d bytes after the message", errCorrupt, len(rest))
	}
	return msg, nil
}

func readHeartbeat(b []byte) (heartbeat, []byte, error) {
	var h heartbeat
	var err error
	if h.name, b, err = readString(b, maxNameLen); err != nil {
		return h, nil, fmt.Errorf("node name: %w", err)
	}
	if err := validateName(h.name); err != nil {
		return h, nil, err
	}
	if h.generation, b, err = readUvarint(b, "generation"); err != nil {
		return h, nil, err
	}
	if h.counter, b, err = readUvarint(b, "counter"); err != nil {
		return h, nil, err
	}
	if len(b) == 0 {
		return h, nil, fmt.Errorf("%w: heartbeat flags are missing", errCorrupt)
	}
	flags := b[0]
	b = b[1:]
	if flags&^(flagApplied|flagLeaving) != 0 {
		return h, nil, fmt.Errorf("%w: unknown heartbeat flags %#x", errCorrupt, flags)
	}
	h.leaving = flags&flagLeaving != 0
	if flags&flagApplied != 0 {
		h.hasApplied = true
		if h.applied, b, err = clocks.ReadVector(b); err != nil {
			return h, nil, fmt.Errorf("%w: applied vector: %w", errCorrupt, err)
		}
	}
	return h, b, nil
}

func readRemoved(b []byte) ([]string, []byte, error) {
	n, b, err := readUvarint(b, "removed region count")
	if err != nil {
		return nil, nil, err
	}
	if n > maxRemoved || n > uint64(len(b))/2 {
		return nil, nil, fmt.Errorf("%w: %d removed regions in %d bytes (at most %d)", errCorrupt, n, len(b), maxRemoved)
	}
	var regions []string
	for i := uint64(0); i < n; i++ {
		var r string
		if r, b, err = readString(b, clocks.MaxRegionLen); err != nil {
			return nil, nil, fmt.Errorf("removed region %d: %w", i, err)
		}
		if err := clocks.ValidateRegion(r); err != nil {
			return nil, nil, fmt.Errorf("%w: removed region %d: %w", errCorrupt, i, err)
		}
		regions = append(regions, r)
	}
	return regions, b, nil
}

// validateName checks a memberlist node name: region/node-id.
func validateName(name string) error {
	region, id, ok := strings.Cut(name, "/")
	if !ok {
		return fmt.Errorf("%w: node name %q is not region/node-id", errCorrupt, name)
	}
	if err := clocks.ValidateRegion(region); err != nil {
		return fmt.Errorf("%w: node name %q: %w", errCorrupt, name, err)
	}
	if err := validateNodeID(id); err != nil {
		return fmt.Errorf("%w: node name: %w", errCorrupt, err)
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// readString reads what appendString wrote, refusing lengths above limit
// before slicing.
func readString(b []byte, limit int) (string, []byte, error) {
	n, rest, err := readUvarint(b, "string length")
	if err != nil {
		return "", nil, err
	}
	if n > uint64(limit) {
		return "", nil, fmt.Errorf("%w: string of %d bytes, more than %d", errCorrupt, n, limit)
	}
	if uint64(len(rest)) < n {
		return "", nil, fmt.Errorf("%w: string is truncated (%d of %d bytes)", errCorrupt, len(rest), n)
	}
	return string(rest[:n]), rest[n:], nil
}

// readUvarint reads a minimally encoded uvarint.
func readUvarint(b []byte, what string) (uint64, []byte, error) {
	x, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, nil, fmt.Errorf("%w: %s is truncated", errCorrupt, what)
	case n < 0:
		return 0, nil, fmt.Errorf("%w: %s overflows 64 bits", errCorrupt, what)
	case n != len(binary.AppendUvarint(nil, x)):
		return 0, nil, fmt.Errorf("%w: %s is not minimally encoded", errCorrupt, what)
	}
	return x, b[n:], nil
}
