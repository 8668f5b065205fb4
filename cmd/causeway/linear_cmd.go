package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
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
	"claim":   "NAMESPACE/NAME OWNER     take a unique name for OWNER",
	"release": "NAMESPACE/NAME OWNER     free a name OWNER holds",
	"lookup":  "NAMESPACE/NAME           who holds a name",
	"cas":     "KEY VALUE                compare-and-set a register (--expect-version, --expect-value, --delete, --fence)",
	"cas-get": "KEY                      read a register",
	"lease":   "grant TTL | keepalive ID | revoke ID",
	"lock":    "NAME --lease ID          acquire a lock; prints its fencing token",
	"unlock":  "NAME --lease ID          release a lock",
}

// runLinear runs one verb of the linearizable tier. Every mutation carries
// a request id (a new one unless --request-id gives it); after a timeout,
// retrying with the id printed in the error tells whether it applied.
func runLinear(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("CAUSEWAY_ADDR", "http://127.0.0.1:7070"), "node URL (env CAUSEWAY_ADDR)")
	_ = fs.String("session", "", "accepted for symmetry with the causal verbs and ignored: linearizable requests need no causal token")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "request deadline")
	requestID := fs.String("request-id", "", "UUID naming this request, so a retry applies it once; default: a new one")
	expectVersion := fs.Int64("expect-version", -1, "(cas) write only if the register is at this version; 0 = only if absent")
	expectValue := fs.String("expect-value", "", "(cas) write only if the register holds this value")
	del := fs.Bool("delete", false, "(cas) delete the register instead of writing VALUE (pass \"\" as VALUE)")
	fence := fs.String("fence", "", "(cas) LOCK:TOKEN: refuse the write if a newer fencing token for LOCK was issued")
	lease := fs.Uint64("lease", 0, "(lock, unlock) lease id the lock is held under (causeway lease grant)")
	owner := fs.String("owner", "", "(lock) holder's name, shown to others; default: this host and process")
	wait := fs.Bool("wait", false, "(lock) retry until the lock is acquired or --timeout passes")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway %s %s\n\nLinearizable: goes through the Raft group, and fails with `unavailable` where\nno quorum of voters is reachable.\n\nFlags:\n", verb, linearUsage[verb])
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if isHelp(err) {
			return exitOK
		}
		return exitUsage
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "causeway %s: %s\n", verb, fmt.Sprintf(format, a...))
		fs.Usage()
		return exitUsage
	}
	want := map[string]int{"claim": 2, "release": 2, "lookup": 1, "cas": 2, "cas-get": 1, "lease": 2, "lock": 1, "unlock": 1}[verb]
	if verb == "lease" && len(pos) == 1 && pos[0] == "grant" {
		return usage("lease grant needs a TTL, e.g. 10s")
	}
	if len(pos) != want {
		return usage("want %d argument(s), got %d", want, len(pos))
	}
	rid := *requestID
	if rid == "" {
		rid = uuid.NewString()
	} else if _, err := uuid.Parse(rid); err != nil {
		return usage("--request-id %q is not a UUID", rid)
	}
	base := nodeURL(*addr)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	lin := causewayv1connect.NewLinearServiceClient(http.DefaultClient, base)

	var (
		msg   proto.Message
		human string
		code  = exitOK
	)
	switch verb {
	case "claim", "release", "lookup":
		ns, name, ok := strings.Cut(pos[0], "/")
		if !ok || ns == "" || name == "" {
			return usage("%q: want NAMESPACE/NAME, e.g. email/alice@example.com", pos[0])
		}
		switch verb {
		case "claim":
			var res *connect.Response[v1.ClaimResponse]
			if res, err = lin.Claim(ctx, connect.NewRequest(&v1.ClaimRequest{Namespace: ns, Name: name, Owner: pos[1], RequestId: rid})); err == nil {
				msg, human = res.Msg, fmt.Sprintf("OK %s/%s claimed by %s (version %d)", ns, name, res.Msg.Owner, res.Msg.Version)
			}
		case "release":
			var res *connect.Response[v1.ReleaseResponse]
			if res, err = lin.Release(ctx, connect.NewRequest(&v1.ReleaseRequest{Namespace: ns, Name: name, Owner: pos[1], RequestId: rid})); err == nil {
				msg, human = res.Msg, fmt.Sprintf("OK %s/%s released", ns, name)
			}
		case "lookup":
			var res *connect.Response[v1.LookupResponse]
			if res, err = lin.Lookup(ctx, connect.NewRequest(&v1.LookupRequest{Namespace: ns, Name: name})); err == nil {
				msg = res.Msg
				if res.Msg.Found {
					human = fmt.Sprintf("%s/%s is held by %s (version %d)", ns, name, res.Msg.Owner, res.Msg.Version)
				} else {
					human, code = fmt.Sprintf("%s/%s: not claimed", ns, name), exitNotFound
				}
			}
		}
	case "cas":
		req := &v1.CompareAndSetRequest{Key: pos[0], Value: []byte(pos[1]), Delete: *del, RequestId: rid}
		if *del {
			req.Value = nil
		}
		setFlags := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })
		switch {
		case setFlags["expect-version"] && setFlags["expect-value"]:
			return usage("give --expect-version or --expect-value, not both")
		case setFlags["expect-version"]:
			if *expectVersion < 0 {
				return usage("--expect-version must be 0 (absent) or a version")
			}
			req.Expect = &v1.CompareAndSetRequest_ExpectVersion{ExpectVersion: uint64(*expectVersion)}
		case setFlags["expect-value"]:
			req.Expect = &v1.CompareAndSetRequest_ExpectValue{ExpectValue: []byte(*expectValue)}
		}
		if *fence != "" {
			f, ferr := parseFence(*fence)
			if ferr != nil {
				return usage("%v", ferr)
			}
			req.Fence = f
		}
		var res *connect.Response[v1.CompareAndSetResponse]
		if res, err = lin.CompareAndSet(ctx, connect.NewRequest(req)); err == nil {
			msg, human = res.Msg, fmt.Sprintf("OK %s  version %d", pos[0], res.Msg.Version)
		}
	case "cas-get":
		var res *connect.Response[v1.LinearServiceGetResponse]
		if res, err = lin.Get(ctx, connect.NewRequest(&v1.LinearServiceGetRequest{Key: pos[0]})); err == nil {
			msg = res.Msg
			if res.Msg.Found {
				human = fmt.Sprintf("%s\n(version %d)", printable(res.Msg.Value), res.Msg.Version)
			} else {
				human, code = fmt.Sprintf("%s: not found", pos[0]), exitNotFound
			}
		}
	case "lease":
		switch pos[0] {
		case "grant":
			ttl, perr := time.ParseDuration(pos[1])
			if perr != nil {
				return usage("TTL %q: want a duration such as 10s", pos[1])
			}
			var res *connect.Response[v1.GrantLeaseResponse]
			if res, err = lin.GrantLease(ctx, connect.NewRequest(&v1.GrantLeaseRequest{TtlMs: ttl.Milliseconds(), RequestId: rid})); err == nil {
				msg, human = res.Msg, fmt.Sprintf("%d\n(lease %d expires at %s unless kept alive)", res.Msg.LeaseId, res.Msg.LeaseId,
					time.UnixMilli(res.Msg.ExpiresUnixMs).Format(time.RFC3339Nano))
			}
		case "keepalive", "revoke":
			id, perr := strconv.ParseUint(pos[1], 10, 64)
			if perr != nil {
				return usage("lease id %q is not a number", pos[1])
			}
			if pos[0] == "keepalive" {
				var res *connect.Response[v1.KeepAliveResponse]
				if res, err = lin.KeepAlive(ctx, connect.NewRequest(&v1.KeepAliveRequest{LeaseId: id, RequestId: rid})); err == nil {
					msg, human = res.Msg, fmt.Sprintf("OK lease %d expires at %s", id, time.UnixMilli(res.Msg.ExpiresUnixMs).Format(time.RFC3339Nano))
				}
			} else {
				var res *connect.Response[v1.RevokeResponse]
				if res, err = lin.Revoke(ctx, connect.NewRequest(&v1.RevokeRequest{LeaseId: id, RequestId: rid})); err == nil {
					msg, human = res.Msg, fmt.Sprintf("OK lease %d revoked", id)
				}
			}
		default:
			return usage("lease %q: use grant, keepalive or revoke", pos[0])
		}
	case "lock", "unlock":
		if *lease == 0 {
			return usage("--lease is required (get one with `causeway lease grant 30s`)")
		}
		if verb == "unlock" {
			var res *connect.Response[v1.UnlockResponse]
			if res, err = lin.Unlock(ctx, connect.NewRequest(&v1.UnlockRequest{Lock: pos[0], LeaseId: *lease, RequestId: rid})); err == nil {
				msg, human = res.Msg, fmt.Sprintf("OK %s unlocked", pos[0])
			}
			break
		}
		who := *owner
		if who == "" {
			host, _ := os.Hostname()
			who = fmt.Sprintf("%s/%d", host, os.Getpid())
		}
		var res *connect.Response[v1.LockResponse]
		for {
			res, err = lin.Lock(ctx, connect.NewRequest(&v1.LockRequest{Lock: pos[0], LeaseId: *lease, Owner: who, RequestId: rid}))
			if !*wait || connect.CodeOf(err) != connect.CodeAborted {
				break
			}
			// Held by another lease: a new attempt is a new request.
			rid = uuid.NewString()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			if ctx.Err() != nil {
				break
			}
		}
		if err == nil {
			msg, human = res.Msg, fmt.Sprintf("%d\n(lock %s held under lease %d; pass --fence %s:%d with writes it guards)",
				res.Msg.FencingToken, pos[0], *lease, pos[0], res.Msg.FencingToken)
		}
	}
	if err != nil {
		line := describeError(err, &session{})
		if c := connect.CodeOf(err); c == connect.CodeUnavailable || c == connect.CodeDeadlineExceeded {
			if verb != "lookup" && verb != "cas-get" {
				line += fmt.Sprintf("\n(request id %s: retry with --request-id %s to apply it at most once and learn its outcome)", rid, rid)
			}
		}
		fmt.Fprintf(stderr, "causeway %s: %s\n", verb, line)
		if connect.CodeOf(err) == connect.CodeNotFound {
			return exitNotFound
		}
		return exitFailed
	}
	printResponse(stdout, *asJSON, msg, human)
	return code
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
