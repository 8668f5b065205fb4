package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// linearUsage lists the linearizable tier's verbs and their arguments.
var linearUsage = map[string]string{
	"claim":         "NAMESPACE/NAME OWNER     take a unique name for OWNER",
	"release":       "NAMESPACE/NAME OWNER     free a name OWNER holds",
	"lookup":        "NAMESPACE/NAME           who holds a name",
	"cas":           "KEY VALUE                compare-and-set a register (--expect-version, --expect-value, --delete, --fence)",
	"cas-get":       "KEY                      read a register",
	"lease":         "grant TTL | keepalive ID | revoke ID",
	"lock":          "NAME --lease ID          acquire a lock; prints its fencing token",
	"unlock":        "NAME --lease ID          release a lock",
	"approve-voter": "REGION            let REGION's node join as a voter (admin role; sent to the leader)",
}

// runLinear runs one verb of the linearizable tier. Every mutation carries
// a request id (a new one unless --request-id gives it); after a timeout,
// retrying with the id printed in the error tells whether it applied.
func runLinear(verb string, args []string, stdout, stderr io.Writer) int {
	c, code := parseLinear(verb, args, stderr)
	if c == nil {
		return code
	}
	return c.run(stdout, stderr)
}

// linearCmd is one parsed verb of the linearizable tier.
type linearCmd struct {
	verb, addr    string
	creds         *credentials
	fs            *flag.FlagSet
	stderr        io.Writer
	pos           []string
	asJSON        bool
	timeout       time.Duration
	rid           string // the request id; lock --wait takes a new one per attempt
	expectVersion int64
	expectValue   string
	del           bool
	fence         string
	lease         uint64
	owner         string
	wait          bool
}

// linearArgs is how many positional arguments each verb takes.
var linearArgs = map[string]int{"claim": 2, "release": 2, "lookup": 1, "cas": 2, "cas-get": 1, "lease": 2, "lock": 1, "unlock": 1, "approve-voter": 1}

// parseLinear parses a verb's flags and arguments; a nil command comes with
// the exit code (help, or a usage error already reported on stderr).
func parseLinear(verb string, args []string, stderr io.Writer) (*linearCmd, int) {
	c := &linearCmd{verb: verb, stderr: stderr, fs: flag.NewFlagSet("causeway "+verb, flag.ContinueOnError)}
	fs := c.fs
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", envOr("CAUSEWAY_ADDR", "http://127.0.0.1:7070"), "node URL (env CAUSEWAY_ADDR)")
	c.creds = addCredentialFlags(fs)
	_ = fs.String("session", "", "accepted for symmetry with the causal verbs and ignored: linearizable requests need no causal token")
	fs.BoolVar(&c.asJSON, "json", false, "print the response as JSON")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "request deadline")
	fs.StringVar(&c.rid, "request-id", "", "UUID naming this request, so a retry applies it once; default: a new one")
	fs.Int64Var(&c.expectVersion, "expect-version", -1, "(cas) write only if the register is at this version; 0 = only if absent")
	fs.StringVar(&c.expectValue, "expect-value", "", "(cas) write only if the register holds this value")
	fs.BoolVar(&c.del, "delete", false, "(cas) delete the register instead of writing VALUE (pass \"\" as VALUE)")
	fs.StringVar(&c.fence, "fence", "", "(cas) LOCK:TOKEN: refuse the write if a newer fencing token for LOCK was issued")
	fs.Uint64Var(&c.lease, "lease", 0, "(lock, unlock) lease id the lock is held under (causeway lease grant)")
	fs.StringVar(&c.owner, "owner", "", "(lock) holder's name, shown to others; default: this host and process")
	fs.BoolVar(&c.wait, "wait", false, "(lock) retry until the lock is acquired or --timeout passes")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway %s %s\n\nLinearizable: goes through the Raft group, and fails with `unavailable` where\nno quorum of voters is reachable.\n\nFlags:\n", verb, linearUsage[verb])
		printVerbFlags(stderr, fs, verb)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if isHelp(err) {
			return nil, exitOK
		}
		return nil, exitUsage
	}
	c.pos = pos
	want := linearArgs[verb]
	if verb == "lease" && len(pos) == 1 && pos[0] == "grant" {
		return nil, c.usage("lease grant needs a TTL, e.g. 10s")
	}
	if len(pos) != want {
		return nil, c.usage("want %d argument(s), got %d", want, len(pos))
	}
	if c.rid == "" {
		c.rid = uuid.NewString()
	} else if _, err := uuid.Parse(c.rid); err != nil {
		return nil, c.usage("--request-id %q is not a UUID", c.rid)
	}
	return c, exitOK
}

// usage reports a usage error with the verb's usage, and is its exit code.
func (c *linearCmd) usage(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "causeway %s: %s\n", c.verb, fmt.Sprintf(format, a...))
	c.fs.Usage()
	return exitUsage
}

// usageError is an argument that only a verb's call can check (a
// NAMESPACE/NAME, a TTL, a lease id, cas's flags); it is reported as a
// usage error, before any request.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badUsage(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// linearAnswer is what a call returned: the response (printed with
// --json), the line for a person, and the exit code.
type linearAnswer struct {
	msg   proto.Message
	human string
	code  int
}

// run calls the tier and prints the answer or the error.
func (c *linearCmd) run(stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	httpc, err := c.creds.httpClient()
	if err != nil {
		fmt.Fprintf(stderr, "causeway %s: %v\n", c.verb, err)
		return exitUsage
	}
	lin := causewayv1connect.NewLinearServiceClient(httpc, c.creds.url(c.addr))
	var ans linearAnswer
	switch c.verb {
	case "claim", "release", "lookup":
		ans, err = c.callName(ctx, lin)
	case "cas":
		ans, err = c.callCAS(ctx, lin)
	case "cas-get":
		ans, err = c.callCASGet(ctx, lin)
	case "lease":
		ans, err = c.callLease(ctx, lin)
	case "lock", "unlock":
		ans, err = c.callLock(ctx, lin)
	case "approve-voter":
		ans, err = c.callApproveVoter(ctx, httpc, lin)
	}
	if ue := (*usageError)(nil); errors.As(err, &ue) {
		return c.usage("%s", ue.msg)
	}
	if err != nil {
		return c.fail(err, stderr)
	}
	printResponse(stdout, c.asJSON, ans.msg, ans.human)
	return ans.code
}

// fail reports a failed request; one that may or may not have applied
// (unavailable, deadline exceeded) names its request id for a retry.
func (c *linearCmd) fail(err error, stderr io.Writer) int {
	line := describeError(err, &session{})
	if code := connect.CodeOf(err); code == connect.CodeUnavailable || code == connect.CodeDeadlineExceeded {
		if c.verb != "lookup" && c.verb != "cas-get" {
			line += fmt.Sprintf("\n(request id %s: retry with --request-id %s to apply it at most once and learn its outcome)", c.rid, c.rid)
		}
	}
	fmt.Fprintf(stderr, "causeway %s: %s\n", c.verb, line)
	if connect.CodeOf(err) == connect.CodeNotFound {
		return exitNotFound
	}
	return exitFailed
}

// callName runs claim, release and lookup on NAMESPACE/NAME.
func (c *linearCmd) callName(ctx context.Context, lin causewayv1connect.LinearServiceClient) (linearAnswer, error) {
	ns, name, ok := strings.Cut(c.pos[0], "/")
	if !ok || ns == "" || name == "" {
		return linearAnswer{}, badUsage("%q: want NAMESPACE/NAME, e.g. email/alice@example.com", c.pos[0])
	}
	switch c.verb {
	case "claim":
		res, err := lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: ns, Name: name, Owner: c.pos[1], RequestId: c.rid}))
		if err != nil {
			return linearAnswer{}, err
		}
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK %s/%s claimed by %s (version %d)", ns, name, res.Msg.Owner, res.Msg.Version)}, nil
	case "release":
		res, err := lin.Release(ctx, connect.NewRequest(&v1.ReleaseRequest{Namespace: ns, Name: name, Owner: c.pos[1], RequestId: c.rid}))
		if err != nil {
			return linearAnswer{}, err
		}
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK %s/%s released", ns, name)}, nil
	}
	res, err := lin.Lookup(ctx, connect.NewRequest(&v1.LookupRequest{Namespace: ns, Name: name}))
	if err != nil {
		return linearAnswer{}, err
	}
	if !res.Msg.Found {
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("%s/%s: not claimed", ns, name), code: exitNotFound}, nil
	}
	return linearAnswer{msg: res.Msg, human: fmt.Sprintf("%s/%s is held by %s (version %d)", ns, name, res.Msg.Owner, res.Msg.Version)}, nil
}

// callCAS runs cas: compare (--expect-version or --expect-value, or
// nothing) and set or --delete, under an optional --fence.
func (c *linearCmd) callCAS(ctx context.Context, lin causewayv1connect.LinearServiceClient) (linearAnswer, error) {
	req := &v1.CompareAndSetRequest{Key: c.pos[0], Value: []byte(c.pos[1]), Delete: c.del, RequestId: c.rid}
	if c.del {
		req.Value = nil
	}
	setFlags := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })
	switch {
	case setFlags["expect-version"] && setFlags["expect-value"]:
		return linearAnswer{}, badUsage("give --expect-version or --expect-value, not both")
	case setFlags["expect-version"]:
		if c.expectVersion < 0 {
			return linearAnswer{}, badUsage("--expect-version must be 0 (absent) or a version")
		}
		req.Expect = &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: uint64(c.expectVersion)}
	case setFlags["expect-value"]:
		req.Expect = &v1.CompareAndSetRequest_ExpectValue{ExpectValue: []byte(c.expectValue)}
	}
	if c.fence != "" {
		f, err := parseFence(c.fence)
		if err != nil {
			return linearAnswer{}, badUsage("%v", err)
		}
		req.Fence = f
	}
	res, err := lin.CompareAndSet(ctx, connect.NewRequest(req))
	if err != nil {
		return linearAnswer{}, err
	}
	return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK %s  version %d", c.pos[0], res.Msg.Version)}, nil
}

// callCASGet reads a register.
func (c *linearCmd) callCASGet(ctx context.Context, lin causewayv1connect.LinearServiceClient) (linearAnswer, error) {
	res, err := lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: c.pos[0]}))
	if err != nil {
		return linearAnswer{}, err
	}
	if !res.Msg.Found {
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("%s: not found", c.pos[0]), code: exitNotFound}, nil
	}
	return linearAnswer{msg: res.Msg, human: fmt.Sprintf("%s\n(version %d)", printable(res.Msg.Value), res.Msg.Version)}, nil
}

// callLease runs lease grant TTL, keepalive ID and revoke ID.
func (c *linearCmd) callLease(ctx context.Context, lin causewayv1connect.LinearServiceClient) (linearAnswer, error) {
	switch c.pos[0] {
	case "grant":
		ttl, err := time.ParseDuration(c.pos[1])
		if err != nil {
			return linearAnswer{}, badUsage("TTL %q: want a duration such as 10s", c.pos[1])
		}
		res, err := lin.GrantLease(ctx, connect.NewRequest(&v1.GrantLeaseRequest{TtlMs: ttl.Milliseconds(), RequestId: c.rid}))
		if err != nil {
			return linearAnswer{}, err
		}
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("%d\n(lease %d expires at %s unless kept alive)", res.Msg.LeaseId, res.Msg.LeaseId,
			time.UnixMilli(res.Msg.ExpiresUnixMs).Format(time.RFC3339Nano))}, nil
	case "keepalive", "revoke":
		id, err := strconv.ParseUint(c.pos[1], 10, 64)
		if err != nil {
			return linearAnswer{}, badUsage("lease id %q is not a number", c.pos[1])
		}
		if c.pos[0] == "keepalive" {
			res, err := lin.KeepAlive(ctx, connect.NewRequest(&v1.KeepAliveRequest{LeaseId: id, RequestId: c.rid}))
			if err != nil {
				return linearAnswer{}, err
			}
			return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK lease %d expires at %s", id, time.UnixMilli(res.Msg.ExpiresUnixMs).Format(time.RFC3339Nano))}, nil
		}
		res, err := lin.Revoke(ctx, connect.NewRequest(&v1.RevokeRequest{LeaseId: id, RequestId: c.rid}))
		if err != nil {
			return linearAnswer{}, err
		}
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK lease %d revoked", id)}, nil
	}
	return linearAnswer{}, badUsage("lease %q: use grant, keepalive or revoke", c.pos[0])
}

// callLock runs lock (with --wait, retrying while another lease holds it)
// and unlock.
func (c *linearCmd) callLock(ctx context.Context, lin causewayv1connect.LinearServiceClient) (linearAnswer, error) {
	if c.lease == 0 {
		return linearAnswer{}, badUsage("--lease is required (get one with `causeway lease grant 30s`)")
	}
	lock := c.pos[0]
	if c.verb == "unlock" {
		res, err := lin.Unlock(ctx, connect.NewRequest(&v1.UnlockRequest{Lock: lock, LeaseId: c.lease, RequestId: c.rid}))
		if err != nil {
			return linearAnswer{}, err
		}
		return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK %s unlocked", lock)}, nil
	}
	who := c.owner
	if who == "" {
		host, _ := os.Hostname()
		who = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	var (
		res *connect.Response[v1.LockResponse]
		err error
	)
	for {
		res, err = lin.Lock(ctx, connect.NewRequest(&v1.LockRequest{Lock: lock, LeaseId: c.lease, Owner: who, RequestId: c.rid}))
		if !c.wait || connect.CodeOf(err) != connect.CodeAborted {
			break
		}
		// Held by another lease: a new attempt is a new request.
		c.rid = uuid.NewString()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return linearAnswer{}, err
	}
	return linearAnswer{msg: res.Msg, human: fmt.Sprintf("%d\n(lock %s held under lease %d; pass --fence %s:%d with writes it guards)",
		res.Msg.FencingToken, lock, c.lease, lock, res.Msg.FencingToken)}, nil
}

// parseFence reads LOCK:TOKEN.
func parseFence(s string) (*v1.Fence, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return nil, errors.New("--fence wants LOCK:TOKEN, e.g. jobs/42:1187")
	}
	tok, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || tok == 0 {
		return nil, fmt.Errorf("--fence %q: TOKEN must be the positive number `causeway lock` printed", s)
	}
	return &v1.Fence{Lock: s[:i], Token: tok}, nil
}

// callApproveVoter approves a region as a voter at the leader, which alone
// serves it: asked elsewhere, it finds the leader's API address in the
// node's status and asks there.
func (c *linearCmd) callApproveVoter(ctx context.Context, httpc connect.HTTPClient, lin causewayv1connect.LinearServiceClient) (linearAnswer, error) {
	req := &v1.ApproveVoterRequest{Region: c.pos[0]}
	res, err := lin.ApproveVoter(ctx, connect.NewRequest(req))
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		st, serr := causewayv1connect.NewAdminServiceClient(httpc, c.creds.url(c.addr)).Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
		if serr != nil {
			return linearAnswer{}, err
		}
		leader := st.Msg.GetLinear().GetLeaderRegion()
		for _, m := range st.Msg.GetMembers() {
			if m.GetRegion() == leader && m.GetApiAddress() != "" && m.GetState() == "alive" {
				res, err = causewayv1connect.NewLinearServiceClient(httpc, c.creds.url(m.GetApiAddress())).ApproveVoter(ctx, connect.NewRequest(req))
				break
			}
		}
	}
	if err != nil {
		return linearAnswer{}, err
	}
	return linearAnswer{msg: res.Msg, human: fmt.Sprintf("OK %s approved as a voter (approved: %s)", c.pos[0], strings.Join(res.Msg.Approved, ", "))}, nil
}
