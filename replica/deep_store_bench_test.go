package replica

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Benchmarks of writes of new keys into a store that already holds enough
// to spread over several levels of the LSM, in store format 1 (no filters:
// the sibling lookup of a new key seeks every level) and format 2 (bloom
// filters of key prefixes rule it out). A store that fits in its memtable,
// as in BenchmarkNodePut, shows no difference.

// deepStoreKeys is how many keys the deep store holds before the
// benchmark: about 150 MB of versions.
const deepStoreKeys = 1_000_000

// deepStoreLevels scales the levels down, so that those 150 MB spread over
// the levels a store of a few GB has with Pebble's default sizes (L0 and
// three levels below it) without the minutes it takes to write them: the
// base level holds 4 MB instead of 64.
func deepStoreLevels(o *pebble.Options) { o.LBaseMaxBytes = 4 << 20 }

// deepStoreFormats are the store formats compared.
var deepStoreFormats = []struct {
	name   string
	format storeFormat
}{
	{"format=1", formatOneBuild},
	{"format=2", storeFormat{}},
}

// preloadDeepStore writes keys keys with one 100-byte version each
// into a new store of format f in dir, in large unsynced batches, under
// random keys of the shape the new keys have, so that a new key falls
// inside the key range of the tables of every level. It returns the
// number of non-empty levels.
func preloadDeepStore(b *testing.B, dir string, f storeFormat, keys int) int {
	b.Helper()
	s, err := OpenStore(dir, StoreOptions{Logger: slog.New(slog.DiscardHandler), format: f, tunePebble: deepStoreLevels})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	value := make([]byte, 100)
	const perBatch = 10_000
	for i := 0; i < keys; i += perBatch {
		w := s.newWriteBatch()
		for j := range perBatch {
			v := version("us-east", 1_764_700_000_000+uint64(i+j), uint64(i+j+1), "")
			v.Value = value
			w.putVersion(deepStoreKey(rng), v)
		}
		if err := w.b.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		w.release()
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	// Let the compactions the load started finish (bounded), so that the
	// measurement does not share the CPU with them.
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if m := s.db.Metrics(); m.Compact.NumInProgress == 0 && m.Compact.EstimatedDebt == 0 {
			break
		}
	}
	levels := 0
	for _, l := range s.db.Metrics().Levels {
		if l.TablesCount > 0 {
			levels++
		}
	}
	return levels
}

// deepStoreKey draws a key of the shape "bench/<decimal>", as the peer
// benchmark's Puts write.
func deepStoreKey(rng *rand.Rand) string {
	return "bench/" + strconv.FormatUint(rng.Uint64(), 10)
}

// BenchmarkSiblingsNewKeyDeepStore measures Store.Siblings of keys never
// written, the lookup every write of a new key makes first, on a deep
// store of each format: the cut of store format 2 by itself.
func BenchmarkSiblingsNewKeyDeepStore(b *testing.B) {
	for _, f := range deepStoreFormats {
		dir := b.TempDir()
		levels := preloadDeepStore(b, dir, f.format, deepStoreKeys)
		b.Run(f.name, func(b *testing.B) {
			s, err := OpenStore(dir, StoreOptions{Logger: slog.New(slog.DiscardHandler), tunePebble: deepStoreLevels})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(2, 2)) // other keys than the preloaded ones
			keys := make([]string, 4096)
			for i := range keys {
				keys[i] = deepStoreKey(rng)
			}
			for _, k := range keys { // the filter and index blocks into the cache
				if _, err := s.Siblings(k, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				vs, err := s.Siblings(keys[i%len(keys)], false)
				if err != nil || len(vs) != 0 {
					b.Fatalf("siblings of a new key: %v, %v", vs, err)
				}
			}
			b.ReportMetric(float64(levels), "levels")
		})
	}
}

// BenchmarkPutNewKeysDeepStore measures Node.Put of keys never written, by
// 64 goroutines each waiting for its fsync as BenchmarkNodePut does, on a
// deep store of each format; cpu-us/put is the process's CPU time (user
// and system, Pebble's compactions included) per Put.
//
// store=new is the same on a store created empty, as the peer benchmark's
// server has: its memtable, a few tables in L0 and one level below.
func BenchmarkPutNewKeysDeepStore(b *testing.B) {
	const clients = 64
	for _, size := range []struct {
		name string
		keys int
	}{{"store=new", 0}, {"store=deep", deepStoreKeys}} {
		for _, f := range deepStoreFormats {
			dir := b.TempDir()
			levels := preloadDeepStore(b, dir, f.format, size.keys)
			b.Run(size.name+"/"+f.name, func(b *testing.B) {
				benchmarkPutNewKeys(b, dir, f.format, clients, levels)
			})
		}
	}
}

// benchmarkPutNewKeys runs b.N Puts of new keys from clients goroutines on
// the store in dir, opened as a node of a build of format.
func benchmarkPutNewKeys(b *testing.B, dir string, format storeFormat, clients, levels int) {
	n, err := Open(Config{Region: "bench", DataDir: dir, Logger: slog.New(slog.DiscardHandler), storeFormat: format, tunePebble: deepStoreLevels})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	if n.store.seekPrefix != (format.withDefaults().current >= prefixFilterStoreFormat) {
		b.Fatalf("the store of %s seeks by prefix: %v", b.Name(), n.store.seekPrefix)
	}
	value := make([]byte, 100)
	ctx := context.Background()
	var next atomic.Uint64
	seed := uint64(time.Now().UnixNano()) // new keys at every round of b.N
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu, fsyncs := time.Now(), processCPU(), n.store.WALFsyncs()
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			token := ""
			for next.Add(1) <= uint64(b.N) {
				res, err := n.Put(ctx, deepStoreKey(rng), value, token, "")
				if err != nil {
					b.Error(err)
					return
				}
				token = res.Token
			}
		})
	}
	wg.Wait()
	elapsed, used := time.Since(start), processCPU()-cpu
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-us/put")
	b.ReportMetric(float64(levels), "levels")
	if synced := n.store.WALFsyncs() - fsyncs; synced > 0 {
		b.ReportMetric(float64(b.N)/float64(synced), "writes/fsync")
	}
}
