package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/internal/campaign"
)

// Result is what an action came to. For a client operation it is what the
// region answered, refusals included (OK false, Code, Error).
type Result struct {
	OK bool `json:"ok"`
	// Code is the Connect code of a refusal ("unavailable", ...), or
	// connection_refused.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Found, Value and Version are what a get read (Version also what a
	// put or del wrote).
	Found   bool              `json:"found,omitempty"`
	Value   string            `json:"value,omitempty"`
	Version *campaign.Version `json:"version,omitempty"`
	// Owner is who holds a name (claim, lookup).
	Owner string `json:"owner,omitempty"`
	// Token is the session's causal token after the operation (the one
	// sent when the operation failed), and Vector its decoded causal past:
	// per region, how many of its writes the session depends on.
	Token  string            `json:"token,omitempty"`
	Vector map[string]uint64 `json:"vector,omitempty"`
	// Took is how long the operation took.
	Took Duration `json:"took,omitempty"`
	// Text says in words what happened.
	Text string `json:"text"`
}

// Summary is the result in one line, for scenarios and the CLI.
func (r *Result) Summary() string {
	if r == nil {
		return "nothing"
	}
	if !r.OK {
		return fmt.Sprintf("%s: %s", r.Code, r.Error)
	}
	return r.Text
}

// formatVector writes a vector clock as {a:1 b:2}, regions sorted.
func formatVector(v map[string]uint64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// DecodeVector returns the causal past a token carries ("" for none).
func DecodeVector(token string) (map[string]uint64, error) {
	if token == "" {
		return map[string]uint64{}, nil
	}
	t, err := clocks.InspectToken(token)
	if err != nil {
		return nil, err
	}
	return map[string]uint64(t.Vector.Clone()), nil
}

// nextIndex returns the session's next operation index (from 1).
func (d *Demo) nextIndex(session string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.sessions[session]; !ok && len(d.sessions) >= maxSessions {
		return 0, fmt.Errorf("the demo keeps at most %d sessions; restart it for more", maxSessions)
	}
	d.sessions[session]++
	return d.sessions[session], nil
}

// errorText is the message a person reads: the server's, without the
// Connect code prefix (the code is shown beside it).
func errorText(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

func versionOf(v *v1.Version) *campaign.Version {
	if v == nil {
		return nil
	}
	return &campaign.Version{Origin: v.GetOriginRegion(), Seq: v.GetOriginSeq(), WallMs: v.GetTimestamp().GetWallMs(), Logical: v.GetTimestamp().GetLogical()}
}

// linearExtra is the Extra of a linear-tier history event, with the field
// names internal/campaign's linear checkers read.
type linearExtra struct {
	Owner string `json:"owner,omitempty"`
	Value string `json:"value,omitempty"`
}

func (e linearExtra) raw() json.RawMessage {
	if e == (linearExtra{}) {
		return nil
	}
	b, _ := json.Marshal(e) // two strings: cannot fail
	return b
}

// doClient runs a client operation in a region, in a session, records it
// in the history and returns what the region answered.
func (d *Demo) doClient(ctx context.Context, a Action) (*Result, error) {
	if a.Session == "" {
		return nil, errors.New("a client operation needs a session name")
	}
	if a.Key == "" {
		return nil, errors.New("a client operation needs a key (or NAMESPACE/NAME)")
	}
	if _, err := DecodeVector(a.Token); err != nil {
		return nil, fmt.Errorf("session %s: %w", a.Session, err)
	}
	session := a.Session
	if a.lineage != "" {
		session = a.lineage
	}
	index, err := d.nextIndex(session)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	kv := d.cluster.KV(a.Region)
	base := campaign.Event{Tier: campaign.TierCausal, Workload: "demo", Client: session, Session: session, Index: index, Region: a.Region, Key: a.Key}
	start := time.Now()
	res := &Result{Token: a.Token}
	var complete campaign.Event
	var op int64
	switch a.Op {
	case OpPut, OpDelete:
		id := uuid.NewString()
		inv := base
		inv.RequestID, inv.Token = id, a.Token
		var call func() (*v1.Version, string, error)
		if a.Op == OpPut {
			inv.F, inv.Value = campaign.FPut, a.Value
			call = func() (*v1.Version, string, error) {
				r, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: a.Key, Value: []byte(a.Value), CausalToken: a.Token, RequestId: id}))
				if err != nil {
					return nil, "", err
				}
				return r.Msg.GetVersion(), r.Msg.GetCausalToken(), nil
			}
		} else {
			inv.F = campaign.FDelete
			call = func() (*v1.Version, string, error) {
				r, err := kv.Delete(ctx, connect.NewRequest(&v1.DeleteRequest{Key: a.Key, CausalToken: a.Token, RequestId: id}))
				if err != nil {
					return nil, "", err
				}
				return r.Msg.GetVersion(), r.Msg.GetCausalToken(), nil
			}
		}
		op = d.rec.Invoke(inv)
		version, token, err := call()
		if err != nil {
			typ := campaign.EventInfo
			if campaign.DefiniteFailure(err) {
				typ = campaign.EventFail
			}
			d.rec.Complete(op, typ, campaign.Event{Code: campaign.ErrorCode(err), Error: err.Error(), Attempts: 1})
			res.fail(err)
			break
		}
		complete = campaign.Event{Version: versionOf(version), Token: token, Attempts: 1}
		d.rec.Complete(op, campaign.EventOK, complete)
		res.OK, res.Token, res.Version = true, token, versionOf(version)
		verb := "wrote"
		if a.Op == OpDelete {
			verb = "deleted"
		}
		res.Text = fmt.Sprintf("%s %s in %s as %s/%d", verb, quote(a.Key), a.Region, version.GetOriginRegion(), version.GetOriginSeq())
		d.poller.wrote(a.Region, version.GetOriginSeq(), start)
	case OpGet:
		inv := base
		inv.F, inv.Token = campaign.FGet, a.Token
		op = d.rec.Invoke(inv)
		r, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: a.Key, CausalToken: a.Token}))
		if err != nil {
			d.rec.Complete(op, campaign.EventFail, campaign.Event{Code: campaign.ErrorCode(err), Error: err.Error()})
			res.fail(err)
			break
		}
		m := r.Msg
		d.rec.Complete(op, campaign.EventOK, campaign.Event{Token: m.GetCausalToken(), Reads: []campaign.KeyRead{{
			Key: a.Key, Found: m.GetFound(), Value: string(m.GetValue()), Version: versionOf(m.GetVersion()), HasSiblings: m.GetHasSiblings(),
		}}})
		res.OK, res.Token, res.Found, res.Value, res.Version = true, m.GetCausalToken(), m.GetFound(), string(m.GetValue()), versionOf(m.GetVersion())
		if m.GetFound() {
			res.Text = fmt.Sprintf("%s = %s (written in %s as %s/%d)", a.Key, quote(res.Value), m.GetVersion().GetOriginRegion(), m.GetVersion().GetOriginRegion(), m.GetVersion().GetOriginSeq())
		} else {
			res.Text = a.Key + " not found in " + a.Region
		}
	case OpClaim, OpLookup:
		ns, name, _ := strings.Cut(a.Key, "/")
		inv := base
		inv.Tier, inv.Token = campaign.TierLinear, ""
		lin := d.lin[a.Region]
		if a.Op == OpClaim {
			id := uuid.NewString()
			inv.F, inv.RequestID, inv.Extra = campaign.FClaim, id, linearExtra{Owner: a.Owner}.raw()
			op = d.rec.Invoke(inv)
			_, err = lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: ns, Name: name, Owner: a.Owner, RequestId: id}))
			if err == nil {
				res.OK, res.Owner = true, a.Owner
				res.Text = fmt.Sprintf("%s now belongs to %s (granted by a quorum of voters)", a.Key, a.Owner)
				d.rec.Complete(op, campaign.EventOK, campaign.Event{Attempts: 1})
			}
		} else {
			inv.F = campaign.FLookup
			op = d.rec.Invoke(inv)
			var r *connect.Response[v1.LookupResponse]
			r, err = lin.Lookup(ctx, connect.NewRequest(&v1.LookupRequest{Namespace: ns, Name: name}))
			if err == nil {
				res.OK, res.Found, res.Owner = true, r.Msg.GetFound(), r.Msg.GetOwner()
				res.Text = a.Key + " is free"
				if res.Found {
					res.Text = fmt.Sprintf("%s belongs to %s", a.Key, res.Owner)
				}
				d.rec.Complete(op, campaign.EventOK, campaign.Event{Attempts: 1, Extra: linearExtra{Value: res.Owner}.raw()})
			}
		}
		if err != nil {
			e := campaign.Event{Code: campaign.ErrorCode(err), Error: err.Error(), Attempts: 1}
			typ := campaign.EventInfo
			switch connect.CodeOf(err) {
			case connect.CodeAlreadyExists, connect.CodeNotFound, connect.CodeAborted, connect.CodeFailedPrecondition:
				typ, e.Refused = campaign.EventFail, true
			default:
				if a.Op == OpLookup || campaign.DefiniteFailure(err) {
					typ = campaign.EventFail
				}
			}
			d.rec.Complete(op, typ, e)
			res.fail(err)
		}
	}
	res.Took = Duration(time.Since(start).Round(time.Millisecond))
	if v, err := DecodeVector(res.Token); err == nil {
		res.Vector = v
	}
	kind := "client"
	if !res.OK {
		kind = "refusal"
	}
	d.event(kind, a.Region, fmt.Sprintf("%s@%s %s → %s", a.Session, a.Region, a.Op, res.Summary()))
	return res, nil
}

// fail fills in a refusal.
func (r *Result) fail(err error) {
	r.OK, r.Code, r.Error = false, campaign.ErrorCode(err), errorText(err)
	r.Text = r.Code + ": " + r.Error
}
