package lincheck_test

import (
	"time"

	"github.com/causewaydb/causeway/internal/check/lincheck"
)

// base is the time tick 0 of test histories; ticks are milliseconds.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(tick int) time.Time { return base.Add(time.Duration(tick) * time.Millisecond) }

// history builds test histories.
type history struct{ ops []lincheck.Op }

// add appends op, issued by client, called at tick call and returned at tick
// ret; for an op whose outcome is info, ret is ignored.
func (h *history) add(client, call, ret int, op lincheck.Op) *history {
	op.Client = client
	op.Call = at(call)
	if op.Outcome != lincheck.OutcomeInfo {
		op.Return = at(ret)
	}
	h.ops = append(h.ops, op)
	return h
}

func ok(op lincheck.Op) lincheck.Op {
	op.Outcome = lincheck.OutcomeOK
	return op
}

// fail makes op a failure with code.
func fail(code string, op lincheck.Op) lincheck.Op {
	op.Outcome, op.Code = lincheck.OutcomeFail, code
	return op
}

// info makes op one whose outcome the client never learned: its results are
// cleared.
func info(op lincheck.Op) lincheck.Op {
	op.Outcome, op.Code, op.Version, op.Token = lincheck.OutcomeInfo, "", 0, 0
	return op
}

func ver(v uint64) *uint64 { return &v }

func claim(key, owner string) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindClaim, Key: key, Owner: owner})
}

func release(key, owner string) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindRelease, Key: key, Owner: owner})
}

// lookup found owner holding key.
func lookup(key, owner string) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindLookup, Key: key, Value: owner})
}

// put is an unconditional cas that wrote value as version.
func put(key, value string, version uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindCAS, Key: key, Value: value, Version: version})
}

// cas wrote value as version newVersion, conditionally on version compare.
func cas(key string, compare uint64, value string, newVersion uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindCAS, Key: key, CompareVersion: ver(compare), Value: value, Version: newVersion})
}

// aborted is a cas conditioned on compare that was refused because the
// current version was current.
func aborted(key string, compare uint64, value string, current uint64) lincheck.Op {
	return lincheck.Op{
		Kind: lincheck.KindCAS, Key: key, CompareVersion: ver(compare), Value: value,
		Outcome: lincheck.OutcomeFail, Code: lincheck.CodeAborted, Version: current,
	}
}

func del(key string, version uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindCAS, Key: key, Delete: true, Version: version})
}

// get read value at version (0: absent).
func get(key, value string, version uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindGet, Key: key, Value: value, Version: version})
}

func lock(name, owner string, token uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindLock, Key: name, Owner: owner, Token: token})
}

func fencedWrite(name string, token uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindFencedWrite, Key: name, Token: token})
}

// casValue wrote value as version newVersion, conditionally on the register
// holding compare.
func casValue(key, compare, value string, newVersion uint64) lincheck.Op {
	return ok(lincheck.Op{Kind: lincheck.KindCAS, Key: key, CompareValue: &compare, Value: value, Version: newVersion})
}
