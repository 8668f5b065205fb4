package fsm

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// A register record holds u64 version (the log index of the write that
// produced it) then the value's bytes. Versions are log indices, so they
// strictly increase across writes to one key, also across a delete and a
// re-create and across leader changes.

type registerRecord struct {
	version uint64
	value   []byte
}

func readRegister(r pebble.Reader, key string) (registerRecord, bool, error) {
	v, found, err := getRaw(r, registerKey(key))
	if err != nil || !found {
		return registerRecord{}, false, err
	}
	if len(v) < 8 {
		return registerRecord{}, false, fmt.Errorf("corrupt register record for key %q", key)
	}
	d := decoder{buf: v}
	return registerRecord{version: d.u64(), value: cloneBytes(d.buf)}, true, nil
}

// cas compares and, on a match, writes or deletes. A fence is checked
// first: a holder whose lock has moved on must not write at all, whatever
// the register holds.
func (t *tx) cas(c *Command) (*Result, error) {
	if c.FenceLock != "" {
		latest, _, err := getU64(t.b, tokenKey(c.FenceLock))
		if err != nil {
			return nil, err
		}
		switch {
		case latest > c.FenceToken:
			return &Result{
				Code:  CodeFailedPrecondition,
				Token: latest,
				Message: fmt.Sprintf("fencing token %d for lock %q is stale: token %d was issued since; "+
					"the write was not applied: reacquire the lock and retry", c.FenceToken, c.FenceLock, latest),
			}, nil
		case c.FenceToken > latest:
			return &Result{
				Code:  CodeInvalidArgument,
				Token: latest,
				Message: fmt.Sprintf("fencing token %d for lock %q was never issued (the newest is %d); "+
					"pass the token returned when the lock was acquired", c.FenceToken, c.FenceLock, latest),
			}, nil
		}
	}
	cur, found, err := readRegister(t.b, c.Key)
	if err != nil {
		return nil, err
	}
	if msg, ok := compare(c, cur, found); !ok {
		return &Result{Code: CodeAborted, Value: cur.value, Version: cur.version, Message: msg}, nil
	}
	if c.Delete {
		if found {
			if err := t.del(registerKey(c.Key)); err != nil {
				return nil, err
			}
		}
		// Version 0 is how an absent key is compared.
		return &Result{Code: CodeOK}, nil
	}
	rec := append(u64Bytes(t.index), c.Value...)
	if err := t.set(registerKey(c.Key), rec); err != nil {
		return nil, err
	}
	return &Result{Code: CodeOK, Version: t.index}, nil
}

// compare evaluates the CAS condition; when it fails, the message says why.
func compare(c *Command, cur registerRecord, found bool) (string, bool) {
	switch c.Compare {
	case CompareVersion:
		if cur.version == c.ExpectVersion {
			return "", true
		}
		if !found {
			return fmt.Sprintf("compare failed: key %q does not exist (version 0), expected version %d; "+
				"read it and retry with the current version", c.Key, c.ExpectVersion), false
		}
		if c.ExpectVersion == 0 {
			return fmt.Sprintf("compare failed: key %q already exists at version %d, expected it absent; "+
				"read it and retry with the current version", c.Key, cur.version), false
		}
		return fmt.Sprintf("compare failed: key %q is at version %d, expected version %d; "+
			"read it and retry with the current version", c.Key, cur.version, c.ExpectVersion), false
	case CompareValue:
		if !found {
			return fmt.Sprintf("compare failed: key %q does not exist, so it cannot hold the expected value; "+
				"create it with a version comparison (expected version 0)", c.Key), false
		}
		if bytes.Equal(cur.value, c.ExpectValue) {
			return "", true
		}
		return fmt.Sprintf("compare failed: key %q (version %d) does not hold the expected value; "+
			"the current value is returned: retry against it", c.Key, cur.version), false
	}
	return "", true
}

// get reads a register.
func get(r pebble.Reader, c *Command) (*Result, error) {
	cur, found, err := readRegister(r, c.Key)
	if err != nil {
		return nil, err
	}
	if !found {
		return &Result{Code: CodeNotFound, Message: fmt.Sprintf("key %q does not exist", c.Key)}, nil
	}
	return &Result{Code: CodeOK, Value: cur.value, Version: cur.version}, nil
}
