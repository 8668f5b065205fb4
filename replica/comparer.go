package replica

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The comparer of a store of format 2 (version.go): the byte order of
// Pebble's default comparer, so no key sorts elsewhere than in a format 1
// store, plus a Split that cuts a version's key after the key's prefix
// (appendKeyPrefix), so that Pebble keeps bloom filters of prefixes and
// Siblings can ask them (SeekPrefixGE) whether a key has any version at all.
// Every write looks up its key's siblings first; for a key never written
// before, the filters answer "none" without a seek into every level of the
// LSM (docs/bench/peer.md).
//
// Split cuts every key, whatever its keyspace, after the first 0x00 0x01:
//
//   - A data key's escaped user key holds no 0x00 0x01 (every 0x00 is
//     followed by 0xFF), so its first 0x00 0x01 is the terminator, and the
//     prefix is exactly keyPrefixBounds' lower bound: the versions of one
//     key share it, and no two keys do.
//   - Other keys (log, feed, metadata, request ids, tombstone index, fences)
//     rarely hold the pair; when they do (a sequence number such as 256, a
//     random request id, a lock name), they are split too, which is as
//     correct, only a coarser filter. A rule by keyspace ("split 'd' keys,
//     keep the others whole") was rejected: Pebble requires that a prefix
//     with leading bytes removed is still a prefix under Split
//     (base.CheckComparer checks it), which a rule that reads the first byte
//     breaks.
//
// Why the byte order stays right: whether a key is cut at j depends only
// on its first j bytes (the first 0x00 0x01 ends there), so a prefix that
// ends in the pair is never a proper prefix of another key's prefix, and a
// key without the pair is its own prefix. Comparing two keys byte-wise
// therefore gives the order of their prefixes, then, for equal prefixes,
// of their suffixes, which is what Pebble asks of a Split; the test checks
// it with Pebble's checker and on random keys.
var causewayComparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = splitVersionPrefix
	c.ImmediateSuccessor = immediateSuccessorPrefix
	c.Name = comparerNameV2
	return &c
}()

// comparerNameV2 is recorded in a format 2 store's manifest and OPTIONS
// file. An older causeway, which opens every store with Pebble's default
// comparer, refuses such a store at open with Pebble's "comparer name from
// file ... != comparer name from Options" error, which names it: the name
// says which store format it is.
const comparerNameV2 = "causeway.store-format-2"

// terminator ends the escaped user key in every data key (appendKeyPrefix).
var terminator = []byte{0x00, 0x01}

// splitVersionPrefix is the comparer's Split: the length of k up to and
// including its first 0x00 0x01, or all of k if it holds none.
func splitVersionPrefix(k []byte) int {
	if i := bytes.Index(k, terminator); i >= 0 {
		return i + len(terminator)
	}
	return len(k)
}

// immediateSuccessorPrefix appends the smallest prefix (a key that Split
// leaves whole) greater than prefix a. Pebble's default, a followed by
// 0x00, is not one when a ends with the terminator: a 0x00 would be a
// version's suffix, and the versions of a (a followed by a timestamp) may
// sort after it. The smallest key after every key that starts with a is a
// with its last byte, 0x01, raised to 0x02, which holds no terminator (the
// upper bound of keyPrefixBounds).
func immediateSuccessorPrefix(dst, a []byte) []byte {
	if n := len(a); n >= len(terminator) && bytes.Equal(a[n-len(terminator):], terminator) {
		dst = append(dst, a...)
		dst[len(dst)-1] = 0x02
		return dst
	}
	return append(append(dst, a...), 0x00)
}

// bitsPerKey sizes the bloom filters of a format 2 store: 10 bits per
// prefix gives about 1% false positives (a write of a new key that still
// seeks), at 1.25 bytes per key of filter, which Pebble keeps in its block
// cache.
const bitsPerKey = 10

// filterLevels gives every level of the LSM a bloom filter of prefixes.
// L0 has none by default; it matters most there, since a lookup checks
// every L0 file.
func filterLevels(o *pebble.Options) {
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(bitsPerKey)
		o.Levels[i].FilterType = pebble.TableFilter
	}
}

// comparerForNewStore is the comparer a build that writes store format
// current creates a store with.
func comparerForNewStore(current uint64) *pebble.Comparer {
	if current >= prefixFilterStoreFormat {
		return causewayComparer
	}
	return pebble.DefaultComparer
}

// knownComparers are the comparers of every store format this build opens,
// by the name Pebble records.
var knownComparers = map[string]*pebble.Comparer{
	pebble.DefaultComparer.Name: pebble.DefaultComparer,
	causewayComparer.Name:       causewayComparer,
}

// storeComparer returns the comparer to open the store in dir with: the one
// it was created with, or, if there is no store yet, the one of the format
// this build creates. Pebble records the comparer's name in the store's
// manifest and refuses a store opened with another, so a store keeps its
// comparer for life: a format 1 store is opened with Pebble's default
// comparer, a format 2 one with causewayComparer.
//
// The name is read from the newest OPTIONS file, which Pebble writes at
// every open, with Pebble's own parser. A store whose OPTIONS file is
// missing (a crash while Pebble created it, before it wrote the file) is
// probed: it is opened read-only with each known comparer, and the one
// Pebble accepts is its own; read-only, the probe changes nothing.
func storeComparer(dir string, fs vfs.FS, current uint64, logger pebble.Logger) (*pebble.Comparer, error) {
	desc, err := pebble.Peek(dir, fs)
	if errors.Is(err, os.ErrNotExist) || (err == nil && !desc.Exists) {
		return comparerForNewStore(current), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the store in %s: %w", dir, err)
	}
	if desc.OptionsFilename == "" {
		return probeComparer(dir, fs, logger)
	}
	text, err := readFile(fs, desc.OptionsFilename)
	if err != nil {
		return nil, fmt.Errorf("read the store's options: %w", err)
	}
	var recorded pebble.Options
	err = recorded.Parse(text, &pebble.ParseHooks{
		// A name this build does not know still parses, so that the
		// refusal below can name it.
		NewComparer: func(name string) (*pebble.Comparer, error) {
			c := *pebble.DefaultComparer
			c.Name = name
			return &c, nil
		},
		SkipUnknown: func(string, string) bool { return true },
	})
	if err != nil {
		return nil, fmt.Errorf("read the store's options in %s: %w", desc.OptionsFilename, err)
	}
	if recorded.Comparer == nil {
		return nil, fmt.Errorf("%w: the store's options file %s names no comparer", ErrCorruptRecord, desc.OptionsFilename)
	}
	name := recorded.Comparer.Name
	c, ok := knownComparers[name]
	if !ok {
		return nil, fmt.Errorf("%w: the store in %s was created with the Pebble comparer %q, which no store format this causeway reads uses: "+
			"it was written by a newer causeway (run that one), or it is not a Causeway data directory",
			ErrUnsupportedVersion, dir, name)
	}
	return c, nil
}

// probeComparer finds the comparer of a store without an OPTIONS file by
// opening it read-only with each known comparer in turn.
func probeComparer(dir string, fs vfs.FS, logger pebble.Logger) (*pebble.Comparer, error) {
	var errs []error
	for _, c := range []*pebble.Comparer{causewayComparer, pebble.DefaultComparer} {
		db, err := pebble.Open(dir, &pebble.Options{FS: fs, Comparer: c, ReadOnly: true, Logger: logger})
		if err == nil {
			return c, db.Close()
		}
		errs = append(errs, fmt.Errorf("with comparer %s: %w", c.Name, err))
	}
	return nil, fmt.Errorf("the store in %s has no options file, and opening it failed: %w", dir, errors.Join(errs...))
}

func readFile(fs vfs.FS, path string) (string, error) {
	f, err := fs.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	return string(raw), err
}
