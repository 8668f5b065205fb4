package fsm

import (
	"encoding/binary"
)

// The machine's Pebble keyspace. Every key starts with one of these bytes;
// the value layouts are described where each record is read and written.
//
//	m/<name>                          metadata: last applied index, clock, outcome count, format
//	c <uvarint len(ns)> ns name       claim            -> u64 version, owner
//	r key                             register         -> u64 version, value
//	l <u64 lease>                     lease            -> u64 ttl, u64 expiry, u64 lock count
//	e <u64 expiry> <u64 lease>        lease expiry index (empty value), ordered by expiry then id
//	h <u64 lease> lock                locks held by a lease (empty value)
//	k lock                            lock             -> u64 lease, u64 token, owner
//	t lock                            newest fencing token ever issued for lock -> u64
//	o request-id                      outcome          -> u64 index, u64 applied-at ms, fingerprint, result
//	a <u64 index>                     outcome age index -> u64 applied-at ms, request-id
//
// Integers in keys are big-endian so that byte order is numeric order.
const (
	prefixMeta       = 'm'
	prefixClaim      = 'c'
	prefixRegister   = 'r'
	prefixLease      = 'l'
	prefixExpiry     = 'e'
	prefixHeld       = 'h'
	prefixLock       = 'k'
	prefixToken      = 't'
	prefixOutcome    = 'o'
	prefixOutcomeAge = 'a'
)

// knownPrefix reports whether b starts a key this package writes; Restore
// refuses a snapshot holding anything else.
func knownPrefix(b byte) bool {
	switch b {
	case prefixMeta, prefixClaim, prefixRegister, prefixLease, prefixExpiry,
		prefixHeld, prefixLock, prefixToken, prefixOutcome, prefixOutcomeAge:
		return true
	}
	return false
}

var (
	keyApplied      = []byte("m/applied")  // u64: last log index applied
	keyClock        = []byte("m/clock")    // u64: the machine's clock, unix ms
	keyOutcomeCount = []byte("m/outcomes") // u64: records in the outcome table
	keyFormat       = []byte("m/format")   // u64: storage format version
)

// storageFormat is the layout above. Open refuses a database written in a
// format it does not know.
const storageFormat = 1

// keyspaceStart and keyspaceEnd bound every key this package writes.
var (
	keyspaceStart = []byte{0x00}
	keyspaceEnd   = []byte{0xff}
)

func u64Bytes(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func claimKey(namespace, name string) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(namespace)+len(name))
	k = append(k, prefixClaim)
	k = binary.AppendUvarint(k, uint64(len(namespace)))
	k = append(k, namespace...)
	return append(k, name...)
}

func registerKey(key string) []byte { return append([]byte{prefixRegister}, key...) }

func leaseKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLease}, id)
}

func expiryKey(expiresMs int64, id uint64) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixExpiry}, uint64(expiresMs))
	return binary.BigEndian.AppendUint64(k, id)
}

// expiryUpTo is the exclusive upper bound of expiry keys with expiry <= ms.
func expiryUpTo(ms int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixExpiry}, uint64(ms)+1)
}

func parseExpiryKey(k []byte) (expiresMs int64, id uint64, ok bool) {
	if len(k) != 17 || k[0] != prefixExpiry {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(k[1:9])), binary.BigEndian.Uint64(k[9:]), true
}

func heldPrefix(lease uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixHeld}, lease)
}

func heldKey(lease uint64, lock string) []byte { return append(heldPrefix(lease), lock...) }

func lockKey(lock string) []byte  { return append([]byte{prefixLock}, lock...) }
func tokenKey(lock string) []byte { return append([]byte{prefixToken}, lock...) }

func outcomeKey(requestID string) []byte { return append([]byte{prefixOutcome}, requestID...) }

func outcomeAgeKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixOutcomeAge}, index)
}

// prefixEnd is the smallest key greater than every key starting with p.
// p never ends in 0xff here (prefixes are ASCII letters followed by at
// most one big-endian integer, which callers do not pass with all bits set).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return keyspaceEnd
}
