package fsm

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// A claim record holds u64 version (the log index of the claim) then the
// owner's bytes.

type claimRecord struct {
	version uint64
	owner   string
}

func encodeClaim(r claimRecord) []byte {
	return append(u64Bytes(r.version), r.owner...)
}

func readClaim(r pebble.Reader, namespace, name string) (claimRecord, bool, error) {
	key := claimKey(namespace, name)
	v, found, err := getRaw(r, key)
	if err != nil || !found {
		return claimRecord{}, false, err
	}
	d := decoder{buf: v}
	rec := claimRecord{version: d.u64(), owner: string(d.buf)}
	if d.err != nil || rec.owner == "" {
		return claimRecord{}, false, fmt.Errorf("corrupt claim record %q", key)
	}
	return rec, true, nil
}

// claim takes namespace/name for the owner. Claiming again what one holds
// succeeds with the original version, so a client that lost the answer can
// simply claim again.
func (t *tx) claim(c *Command) (*Result, error) {
	rec, found, err := readClaim(t.b, c.Namespace, c.Name)
	if err != nil {
		return nil, err
	}
	switch {
	case !found:
		rec = claimRecord{version: t.index, owner: c.Owner}
		if err := t.set(claimKey(c.Namespace, c.Name), encodeClaim(rec)); err != nil {
			return nil, err
		}
		return &Result{Code: CodeOK, Owner: rec.owner, Version: rec.version}, nil
	case rec.owner == c.Owner:
		return &Result{Code: CodeOK, Owner: rec.owner, Version: rec.version}, nil
	default:
		return &Result{
			Code:    CodeAlreadyExists,
			Owner:   rec.owner,
			Version: rec.version,
			Message: fmt.Sprintf("%s is already claimed by %q (since log index %d); choose another name, or have its owner release it",
				claimName(c), rec.owner, rec.version),
		}, nil
	}
}

// release gives namespace/name back if the owner holds it.
func (t *tx) release(c *Command) (*Result, error) {
	rec, found, err := readClaim(t.b, c.Namespace, c.Name)
	if err != nil {
		return nil, err
	}
	switch {
	case !found:
		return &Result{
			Code:    CodeNotFound,
			Message: fmt.Sprintf("%s is not claimed, so there is nothing to release", claimName(c)),
		}, nil
	case rec.owner != c.Owner:
		return &Result{
			Code:    CodeFailedPrecondition,
			Owner:   rec.owner,
			Version: rec.version,
			Message: fmt.Sprintf("%s is claimed by %q, not by %q; only its owner can release it", claimName(c), rec.owner, c.Owner),
		}, nil
	}
	if err := t.del(claimKey(c.Namespace, c.Name)); err != nil {
		return nil, err
	}
	return &Result{Code: CodeOK, Owner: rec.owner, Version: rec.version}, nil
}

// lookup reports the holder of namespace/name.
func lookup(r pebble.Reader, c *Command) (*Result, error) {
	rec, found, err := readClaim(r, c.Namespace, c.Name)
	if err != nil {
		return nil, err
	}
	if !found {
		return &Result{Code: CodeNotFound, Message: fmt.Sprintf("%s is not claimed", claimName(c))}, nil
	}
	return &Result{Code: CodeOK, Owner: rec.owner, Version: rec.version}, nil
}

func claimName(c *Command) string { return fmt.Sprintf("%q/%q", c.Namespace, c.Name) }
