package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/causewaydb/causeway/api"
)

// Versions of what a node keeps and what it sends, so that a cluster can be
// upgraded one node at a time.
//
// The rule (README, "Upgrading"): a release that changes a format reads and
// speaks the old version and the new one; releases N and N+1 therefore run
// side by side, in any mix, during a rolling upgrade. What each side may
// do:
//
//   - The store (the data directory's Pebble store) records its format
//     version in the metadata key m/format, read once at open. A newer
//     version than the build reads is refused, naming both (a downgrade
//     past a format change is not possible: restore a backup the older
//     version took); an older one the build still reads is migrated at open
//     (storeFormat.upgrades, one step per version) and stamped. Every store
//     written before the marker existed is format 1, the layout that has
//     not changed since. Nothing is checked per write.
//   - A replication stream (Replicate, Snapshot) starts with the range of
//     protocol versions the caller speaks; the server answers with the
//     newest both speak, in every message of the stream, or refuses a caller
//     with whom it shares none (failed_precondition, ErrUnsupportedVersion,
//     with a ProtocolVersions detail naming its own range), and the caller
//     checks the answer. Each side counts a refusal
//     (causeway_replication_version_refusals_total), logs which region and
//     which versions, and shows it in Status (PeerStatus.Refused). A node
//     from before versions were exchanged sends none: that is version 1.
//     Version 1 is the only protocol so far; the change that needs version 2
//     keeps sending version 1 to a peer whose range stops at 1.
//   - Every stored record and replication frame starts with its own format
//     byte (record.go), the linearizable tier's log entries and snapshots
//     with theirs (linear/internal/fsm), so a reader refuses what it cannot
//     read rather than misread it.
//   - A backup's manifest carries BackupFormatVersion; backup and restore
//     refuse another.
const (
	// StoreFormatVersion is the layout of a region's Pebble store (keys.go,
	// record.go) this build writes.
	StoreFormatVersion = 1
	// minStoreFormatVersion is the oldest layout this build still opens.
	minStoreFormatVersion = 1
	// legacyStoreFormat is the layout of a store without a marker: every
	// store written before markers existed.
	legacyStoreFormat = 1

	// ReplicationProtocolVersion is the newest replication protocol this
	// build speaks.
	ReplicationProtocolVersion = 1
	// minReplicationProtocolVersion is the oldest it still speaks.
	minReplicationProtocolVersion = 1
)

// ErrUnsupportedVersion reports data or a peer of a format or protocol
// version this node cannot read or speak: a node of a release more than one
// apart, or data written by a newer release. Its message names both
// versions. A peer refused with it gets failed_precondition.
var ErrUnsupportedVersion = fmt.Errorf("%w: unsupported version", api.ErrFailedPrecondition)

// metaFormat holds the store's format version (u64 big-endian).
var metaFormat = []byte("m/format")

// storeFormat is the range of store formats a build opens and the steps
// that migrate an older one to the next. The zero value is this build's.
type storeFormat struct {
	min, current uint64
	// upgrades[v] rewrites a store of format v as format v+1. It runs
	// before the node reads anything else; a crash during it leaves the
	// marker at v, so the step must be safe to run again.
	upgrades map[uint64]func(*pebble.DB) error
}

// storeUpgrades holds this build's migrations: none yet, format 1 is the
// only one.
var storeUpgrades = map[uint64]func(*pebble.DB) error{}

func (f storeFormat) withDefaults() storeFormat {
	if f.current == 0 {
		return storeFormat{min: minStoreFormatVersion, current: StoreFormatVersion, upgrades: storeUpgrades}
	}
	return f
}

// checkStoreFormat reads the store's format version at open: it stamps a
// new store, migrates an older supported one, and refuses one it cannot
// read with an error naming both versions.
func checkStoreFormat(db *pebble.DB, dir string, f storeFormat) error {
	f = f.withDefaults()
	version, found, err := readFormat(db)
	if err != nil {
		return err
	}
	if !found {
		empty, err := storeEmpty(db)
		if err != nil {
			return err
		}
		version = legacyStoreFormat
		if empty {
			version = f.current
		}
	}
	switch {
	case version > f.current:
		return fmt.Errorf("%w: the store in %s has format version %d, and this causeway reads store formats %d to %d: "+
			"it was written by a newer causeway; run that one (a downgrade past a format change is not possible: restore a backup this version took)",
			ErrUnsupportedVersion, dir, version, f.min, f.current)
	case version < f.min:
		return fmt.Errorf("%w: the store in %s has format version %d, and this causeway reads store formats %d to %d: "+
			"upgrade through a release that reads version %d first (releases N and N+1 interoperate)",
			ErrUnsupportedVersion, dir, version, f.min, f.current, version)
	}
	for ; version < f.current; version++ {
		step := f.upgrades[version]
		if step == nil {
			return fmt.Errorf("store format %d has no upgrade to %d in this build", version, version+1)
		}
		if err := step(db); err != nil {
			return fmt.Errorf("upgrade the store in %s from format %d to %d: %w", dir, version, version+1, err)
		}
		if err := writeFormat(db, version+1); err != nil {
			return err
		}
	}
	if !found {
		return writeFormat(db, version)
	}
	return nil
}

func readFormat(db *pebble.DB) (uint64, bool, error) {
	raw, closer, err := db.Get(metaFormat)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(raw) != 8 {
		return 0, false, fmt.Errorf("%w: store format marker of %d bytes", ErrCorruptRecord, len(raw))
	}
	return binary.BigEndian.Uint64(raw), true, nil
}

func writeFormat(db *pebble.DB, version uint64) error {
	return db.Set(metaFormat, binary.BigEndian.AppendUint64(nil, version), pebble.Sync)
}

func storeEmpty(db *pebble.DB) (bool, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, errors.Join(it.Error(), it.Close())
}

// versionRange is the replication protocol versions a node speaks.
type versionRange struct{ min, max uint32 }

// thisBuildsProtocols is what a node speaks unless a test says otherwise
// (Config.protocols).
var thisBuildsProtocols = versionRange{min: minReplicationProtocolVersion, max: ReplicationProtocolVersion}

func (r versionRange) String() string {
	if r.min == r.max {
		return fmt.Sprintf("version %d", r.min)
	}
	return fmt.Sprintf("versions %d to %d", r.min, r.max)
}

// peerRange reads the range a peer sent; zeros are a node from before
// versions were exchanged, which speaks version 1.
func peerRange(min, max uint32) versionRange {
	if max == 0 {
		max = 1
	}
	if min == 0 {
		min = 1
	}
	return versionRange{min: min, max: max}
}

// negotiate returns the newest version both ranges hold; ok is false if
// they share none.
func negotiate(mine, theirs versionRange) (version uint32, ok bool) {
	version = min(mine.max, theirs.max)
	return version, version >= max(mine.min, theirs.min) && theirs.min <= theirs.max
}

// streamVersion reads the version a server answered with (0: a server from
// before versions were exchanged, which speaks 1).
func streamVersion(v uint32) uint32 { return max(v, 1) }

// pebbleFormat is the Pebble format major version the store is created
// with and ratcheted to. It is pinned, not pebble.FormatNewest: a newer
// Pebble that brought a newer format would otherwise rewrite a store's
// format when it opens it, and a node rolled back to the release before
// could no longer open its data. Raising it is a store format change
// (storeFormatVersion and the compatibility rule in the README).
const pebbleFormat = pebble.FormatValueSeparation
