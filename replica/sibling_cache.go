package replica

import "github.com/causewaydb/causeway/causal"

// siblingCacheKeys bounds the sibling cache: at most this many keys are
// remembered (two generations of half as many each). At a few hundred bytes
// of headers per key that is a few MiB; a key outside it costs one Pebble
// seek per write, as it would without the cache.
const siblingCacheKeys = 32 << 10

// siblingCache remembers the sibling set of recently written keys: the
// version headers (no values) a key holds in the store. Every write must
// resolve its version against the key's siblings under Node.mu; for a key
// written recently the answer is here instead of in a Pebble seek, which
// is the bulk of the time a local write holds the lock.
//
// It holds exactly what the store holds for each key it names, which stays
// true because (1) every version enters the store through
// Node.stageVersion, whose result is cached by Node.commit only once the
// batch is committed, both under Node.mu, and (2) the one path that deletes
// versions outside a write, tombstone collection, forgets the keys it
// touches under Node.mu. It is guarded by Node.mu and starts empty on every
// Open.
//
// Eviction is by generation: when the current generation is full it becomes
// the previous one and the older is dropped; a hit in the previous
// generation moves the key to the current one. Keys written again and again
// stay; keys not touched for a generation's worth of writes go.
type siblingCache struct {
	half      int
	cur, prev map[string][]causal.Version
}

func newSiblingCache(keys int) *siblingCache {
	half := max(keys/2, 1)
	return &siblingCache{half: half, cur: make(map[string][]causal.Version, half)}
}

// get returns key's sibling set if it is cached. The slice is shared: the
// caller must not modify it.
func (c *siblingCache) get(key string) ([]causal.Version, bool) {
	if s, ok := c.cur[key]; ok {
		return s, true
	}
	if s, ok := c.prev[key]; ok {
		c.put(key, s)
		return s, true
	}
	return nil, false
}

// put records key's sibling set, which the caller no longer modifies.
func (c *siblingCache) put(key string, siblings []causal.Version) {
	if _, ok := c.cur[key]; !ok && len(c.cur) >= c.half {
		c.prev, c.cur = c.cur, make(map[string][]causal.Version, c.half)
	}
	c.cur[key] = siblings
}

// forget drops key, whose versions changed outside a write.
func (c *siblingCache) forget(key string) {
	delete(c.cur, key)
	delete(c.prev, key)
}

// len is the number of keys cached, counting a key in both generations
// once per generation.
func (c *siblingCache) len() int { return len(c.cur) + len(c.prev) }
