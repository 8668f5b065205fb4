package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// runClient runs one client verb of the causal tier (put, get, del,
// status, link, remove-region): parse its flags, call the node (once more
// with a new session if the session file held another cluster's token),
// save the session's token and print the answer.
func runClient(verb string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, code := parseClient(verb, args, stderr)
	if cmd == nil {
		return code
	}
	return cmd.run(stdin, stdout, stderr)
}

// clientCmd is one parsed client verb.
type clientCmd struct {
	verb        string
	fs          *flag.FlagSet
	pos         []string // positional arguments, as many as the verb takes
	addr        string
	sessionPath string
	asJSON      bool
	timeout     time.Duration
	requestID   string
	uniques     uniqueFlag
	fence       *v1.Fence // nil without --fence
	delay       time.Duration
	jitter      time.Duration
	cut         string
	creds       *credentials
	force       bool
}

// clientUsage is each verb's positional arguments, as usage shows them.
var clientUsage = map[string]string{
	"put": "KEY VALUE ", "get": "KEY ", "del": "KEY ", "delete": "KEY ", "status": "", "link": "REGION ", "remove-region": "REGION ",
}

// clientArgs is how many positional arguments each verb takes.
var clientArgs = map[string]int{"put": 2, "get": 1, "del": 1, "delete": 1, "status": 0, "link": 1, "remove-region": 1}

// parseClient parses and checks a client verb's flags and arguments; a nil
// command comes with the exit code (help, or a usage error already
// reported on stderr).
func parseClient(verb string, args []string, stderr io.Writer) (*clientCmd, int) {
	c := &clientCmd{verb: verb, fs: flag.NewFlagSet("causeway "+verb, flag.ContinueOnError)}
	fs := c.fs
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", envOr("CAUSEWAY_ADDR", "http://127.0.0.1:7070"), "node URL (env CAUSEWAY_ADDR)")
	c.creds = addCredentialFlags(fs)
	fs.StringVar(&c.sessionPath, "session", defaultSessionPath(), "session file holding the causal token (env CAUSEWAY_SESSION); \"\" for none")
	fs.BoolVar(&c.asJSON, "json", false, "print the response as JSON")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "request deadline")
	fs.StringVar(&c.requestID, "request-id", "", "UUID that makes a retried write apply once (put, del)")
	fs.Var(&c.uniques, "unique", "(put) NAMESPACE=NAME to claim for KEY through the linearizable tier first; repeatable")
	fence := fs.String("fence", "", "(put, del) LOCK:TOKEN: refuse the write if a newer fencing token for LOCK was seen")
	fs.DurationVar(&c.delay, "delay", 0, "(link) one-way delay of what the node sends to REGION")
	fs.DurationVar(&c.jitter, "jitter", 0, "(link) delay varies within ±jitter")
	fs.BoolVar(&c.force, "force", false, "(remove-region) remove a region gossip still sees alive (it then refuses its clients)")
	fs.StringVar(&c.cut, "cut", "none", "(link) cut the link: both, out (node to REGION), in (REGION to node) or none (heal)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: causeway %s %s[flags]\n\nFlags:\n", verb, clientUsage[verb])
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
	if want := clientArgs[verb]; len(pos) != want {
		fmt.Fprintf(stderr, "causeway %s: want %d argument(s), got %d\n", verb, want, len(pos))
		fs.Usage()
		return nil, exitUsage
	}
	writes := verb == "put" || verb == "del" || verb == "delete"
	if c.requestID != "" && !writes {
		fmt.Fprintf(stderr, "causeway %s: --request-id applies to put and del only\n", verb)
		return nil, exitUsage
	}
	if len(c.uniques) > 0 && verb != "put" {
		fmt.Fprintf(stderr, "causeway %s: --unique applies to put only\n", verb)
		return nil, exitUsage
	}
	if *fence != "" {
		if !writes {
			fmt.Fprintf(stderr, "causeway %s: --fence applies to put and del only\n", verb)
			return nil, exitUsage
		}
		if c.fence, err = parseFence(*fence); err != nil {
			fmt.Fprintf(stderr, "causeway %s: %v\n", verb, err)
			return nil, exitUsage
		}
	}
	return c, exitOK
}

// clientAnswer is what one call returned: the response (printed with
// --json), the causal token to keep, the line for a person, and the exit
// code.
type clientAnswer struct {
	msg   proto.Message
	token string
	human string
	code  int
}

// run calls the node and prints the answer.
func (c *clientCmd) run(stdin io.Reader, stdout, stderr io.Writer) int {
	base := c.creds.url(c.addr)
	httpc, err := c.creds.httpClient()
	if err != nil {
		fmt.Fprintf(stderr, "causeway %s: %v\n", c.verb, err)
		return exitUsage
	}
	sess, err := loadSession(c.sessionPath)
	if err != nil {
		fmt.Fprintf(stderr, "causeway %s: %v\n", c.verb, err)
		return exitFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var value []byte
	if c.verb == "put" {
		if value, err = c.value(stdin); err != nil {
			fmt.Fprintf(stderr, "causeway put: read value from stdin: %v\n", err)
			return exitFailed
		}
	}
	if _, ok := linkCuts[c.cut]; c.verb == "link" && !ok {
		fmt.Fprintf(stderr, "causeway link: --cut %q: use both, out, in or none\n", c.cut)
		return exitUsage
	}
	kv := causewayv1connect.NewKVServiceClient(httpc, base)
	admin := causewayv1connect.NewAdminServiceClient(httpc, base)
	var ans clientAnswer
	for attempt := 0; ; attempt++ {
		ans, err = c.call(ctx, kv, admin, sess.Token, value)
		// A token of another cluster (the session file was used with another
		// cluster before) is refused before anything happens: start a new
		// session, say so, and ask once more.
		if cluster := foreignTokenCluster(err); cluster != "" && attempt == 0 && sess.Token != "" {
			fmt.Fprintf(stderr, "causeway %s: the session file %s held a causal token of another cluster; starting a new session for cluster %s\n",
				c.verb, sess.path, cluster)
			sess.Token = ""
			continue
		}
		break
	}
	if err != nil {
		fmt.Fprintf(stderr, "causeway %s: %s\n", c.verb, describeError(err, sess))
		return exitFailed
	}
	if err := sess.save(ans.token, base); err != nil {
		fmt.Fprintf(stderr, "causeway %s: %v\n", c.verb, err)
		return exitFailed
	}
	printResponse(stdout, c.asJSON, ans.msg, ans.human)
	return ans.code
}

// value is put's VALUE, or stdin when it is "-".
func (c *clientCmd) value(stdin io.Reader) ([]byte, error) {
	if c.pos[1] == "-" {
		return io.ReadAll(stdin)
	}
	return []byte(c.pos[1]), nil
}

// linkCuts are link's --cut values.
var linkCuts = map[string]v1.LinkCut{"none": v1.LinkCut_LINK_CUT_UNSPECIFIED, "both": v1.LinkCut_LINK_CUT_BOTH,
	"out": v1.LinkCut_LINK_CUT_OUTGOING, "in": v1.LinkCut_LINK_CUT_INCOMING}

// call makes the verb's one request with the session's token.
func (c *clientCmd) call(ctx context.Context, kv causewayv1connect.KVServiceClient, admin causewayv1connect.AdminServiceClient,
	token string, value []byte) (clientAnswer, error) {
	key := c.pos
	switch c.verb {
	case "put":
		res, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key[0], Value: value, CausalToken: token, RequestId: c.requestID,
			Fence: c.fence, Unique: c.uniques}))
		if err != nil {
			return clientAnswer{}, err
		}
		return clientAnswer{msg: res.Msg, token: res.Msg.CausalToken, human: fmt.Sprintf("OK %s  version %s", key[0], versionString(res.Msg.Version))}, nil
	case "get":
		res, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key[0], CausalToken: token}))
		if err != nil {
			return clientAnswer{}, err
		}
		return getAnswer(key[0], res.Msg), nil
	case "del", "delete":
		res, err := kv.Delete(ctx, connect.NewRequest(&v1.DeleteRequest{Key: key[0], CausalToken: token, RequestId: c.requestID, Fence: c.fence}))
		if err != nil {
			return clientAnswer{}, err
		}
		return clientAnswer{msg: res.Msg, token: res.Msg.CausalToken, human: fmt.Sprintf("OK deleted %s  version %s", key[0], versionString(res.Msg.Version))}, nil
	case "link":
		res, err := admin.SetLink(ctx, connect.NewRequest(c.linkRequest()))
		if err != nil {
			return clientAnswer{}, err
		}
		return clientAnswer{msg: res.Msg, human: "OK " + linkString(res.Msg.Link)}, nil
	case "remove-region":
		res, err := admin.RemoveRegion(ctx, connect.NewRequest(&v1.RemoveRegionRequest{Region: key[0], Force: c.force}))
		if err != nil {
			return clientAnswer{}, err
		}
		return clientAnswer{msg: res.Msg, human: "OK region " + key[0] + " removed"}, nil
	case "status":
		res, err := admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
		if err != nil {
			return clientAnswer{}, err
		}
		return clientAnswer{msg: res.Msg, human: statusString(res.Msg)}, nil
	}
	return clientAnswer{}, fmt.Errorf("unknown verb %q", c.verb)
}

// getAnswer is get's answer: the value and its version, or not found (exit
// code exitNotFound), saying so if a delete's tombstone is what was found.
func getAnswer(key string, res *v1.GetResponse) clientAnswer {
	ans := clientAnswer{msg: res, token: res.CausalToken}
	switch {
	case res.Found:
		ans.human = fmt.Sprintf("%s\n(version %s)", printable(res.Value), versionString(res.Version))
	case res.Version != nil:
		ans.human, ans.code = fmt.Sprintf("%s: not found (deleted, version %s)", key, versionString(res.Version)), exitNotFound
	default:
		ans.human, ans.code = fmt.Sprintf("%s: not found", key), exitNotFound
	}
	return ans
}

// linkRequest is link's request: only the flags given change the link; the
// others keep its values.
func (c *clientCmd) linkRequest() *v1.SetLinkRequest {
	req := &v1.SetLinkRequest{Region: c.pos[0], Cut: linkCuts[c.cut]}
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "delay":
			req.Delay = durationpb.New(c.delay)
		case "jitter":
			req.Jitter = durationpb.New(c.jitter)
		}
	})
	return req
}

// foreignTokenCluster is the cluster of the node that refused a request's
// causal token as another cluster's ("" for any other outcome).
func foreignTokenCluster(err error) string {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return ""
	}
	for _, d := range ce.Details() {
		if m, derr := d.Value(); derr == nil {
			if ft, ok := m.(*v1.ForeignToken); ok {
				return ft.ClusterId
			}
		}
	}
	return ""
}

// nodeURL is --addr as a base URL: http:// is assumed when no scheme is
// given, and a trailing slash is dropped.
func nodeURL(addr string) string {
	base := strings.TrimRight(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return base
}

// printResponse prints a verb's result: the response as JSON (every field,
// for scripts) or the line for a person.
func printResponse(stdout io.Writer, asJSON bool, msg proto.Message, human string) {
	if asJSON {
		out, _ := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(msg)
		fmt.Fprintln(stdout, string(out))
		return
	}
	fmt.Fprintln(stdout, human)
}

// describeError turns an RPC failure into one line a person can act on.
func describeError(err error, sess *session) string {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	line := fmt.Sprintf("%s: %s", ce.Code(), ce.Message())
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		line += "\n(is a node running? start one with `make run` or `causeway serve`, or point --addr at one)"
	case ce.Code() == connect.CodeInvalidArgument && sess.Token != "" && strings.Contains(ce.Message(), "token"):
		line += fmt.Sprintf("\n(the session file %s holds a token this cluster refuses; delete it, or use --session to start a new session)", sess.path)
	}
	return line
}

func versionString(v *v1.Version) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%d.%d@%s #%d", v.GetTimestamp().GetWallMs(), v.GetTimestamp().GetLogical(), v.GetOriginRegion(), v.GetOriginSeq())
}

// printable shows a value as text when it is UTF-8, else as a byte count
// (use --json for the exact bytes, base64-encoded).
func printable(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("<%d bytes of binary data; use --json for base64>", len(b))
}

// vectorString is a vector clock as a person reads it: region:writes,
// sorted by region.
func vectorString(v map[string]uint64) string {
	if len(v) == 0 {
		return "(no writes yet)"
	}
	parts := make([]string, 0, len(v))
	for _, r := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s:%d", r, v[r]))
	}
	return strings.Join(parts, ", ")
}

func statusString(s *v1.StatusResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node      %s\n", s.NodeId)
	fmt.Fprintf(&b, "region    %s\n", s.Region)
	fmt.Fprintf(&b, "cluster   %s\n", s.ClusterId)
	fmt.Fprintf(&b, "version   %s\n", s.BuildVersion)
	fmt.Fprintf(&b, "uptime    %s\n", s.GetUptime().AsDuration())
	fmt.Fprintf(&b, "clock     %d.%d\n", s.GetClock().GetWallMs(), s.GetClock().GetLogical())
	if co := s.GetClockOffset(); len(co.GetPeers()) > 0 {
		fmt.Fprintf(&b, "offset    %v from its %d measured peers (positive: this clock is ahead; max %v)\n", co.GetOffset().AsDuration().Round(time.Millisecond), len(co.GetPeers()), co.GetMaxOffset().AsDuration())
	}
	if co := s.GetClockOffset(); co.GetWritesRefused() {
		fmt.Fprintf(&b, "refusing  writes: %s\n", co.GetReason())
	}
	fmt.Fprintf(&b, "store     %d bytes\n", s.StoreSizeBytes)
	fmt.Fprintf(&b, "applied   %s", vectorString(s.Vector))
	fmt.Fprintf(&b, "\nwaiting   %d remote writes wait for their causal past", s.PendingWrites)
	for _, p := range s.Peers {
		fmt.Fprintf(&b, "\npeer      %-14s %-22s applied %d of its writes (lag %d); it acknowledged %d of ours", p.Region, p.Address, p.AppliedSeq, p.LagWrites, p.AckedSeq)
		if p.VersionRefused != "" {
			fmt.Fprintf(&b, "\n          refused: %s", p.VersionRefused)
		}
	}
	for _, l := range s.Links {
		fmt.Fprintf(&b, "\nlink      %s", linkString(l))
	}
	for _, m := range s.Members {
		state := m.State
		if m.Removed {
			state += " (removed)"
		}
		fmt.Fprintf(&b, "\nmember    %-14s %-18s %-8s since %s  gossip %s", m.Region, m.NodeId, state,
			m.GetSince().AsTime().Local().Format(time.TimeOnly), m.GossipAddress)
	}
	if len(s.StableVector) > 0 {
		fmt.Fprintf(&b, "\nstable    %s (what every region has)", vectorString(s.StableVector))
	}
	switch state := s.GetCausalState(); state {
	case "serving", "":
		b.WriteString("\n\ncausal tier      available (every region serves reads and writes, also when cut off)")
	default:
		fmt.Fprintf(&b, "\n\ncausal tier      %s: %s", state, s.GetCausalStateReason())
	}
	b.WriteString("\nlinear tier      " + linearStatusString(s.GetLinear()))
	return b.String()
}

func linearStatusString(l *v1.LinearStatus) string {
	if !l.GetEnabled() {
		return "off on this node (serve --linear voter|forwarder)"
	}
	var b strings.Builder
	if l.Available {
		b.WriteString("available")
	} else {
		b.WriteString("UNAVAILABLE here: " + l.Reason + "; causal reads and writes still available")
	}
	role := "forwarder (no Raft here)"
	if l.Voter {
		role = fmt.Sprintf("voter, %s, term %d, log %d (applied %d)", strings.ToLower(l.State), l.Term, l.LastIndex, l.AppliedIndex)
		if l.ServerId != "" {
			role += ", server " + l.ServerId
		}
	}
	fmt.Fprintf(&b, "\n  role           %s", role)
	leader := l.LeaderRegion
	if leader == "" {
		leader = "(none known)"
	}
	fmt.Fprintf(&b, "\n  leader         %s", leader)
	fmt.Fprintf(&b, "\n  voters         %d of %d reachable, quorum %d", l.ReachableVoters, len(l.Voters), l.Quorum)
	if len(l.NonVoters) > 0 {
		fmt.Fprintf(&b, "; %d non-voter(s) catching up before promotion", len(l.NonVoters))
	}
	for _, v := range append(append([]*v1.VoterStatus{}, l.Voters...), l.NonVoters...) {
		state := "reachable"
		if !v.Reachable {
			state = "UNREACHABLE"
		}
		if v.Leader {
			state += ", leader"
		}
		if v.Suffrage != "" {
			state += ", " + v.Suffrage
		}
		if v.ServerId != "" {
			state += ", server " + v.ServerId
		}
		fmt.Fprintf(&b, "\n    %-14s %-22s %s", v.Region, v.Address, state)
	}
	return b.String()
}

// uniqueFlag collects --unique NAMESPACE=NAME.
type uniqueFlag []*v1.UniqueConstraint

func (u *uniqueFlag) String() string { return "" }

func (u *uniqueFlag) Set(s string) error {
	ns, name, ok := strings.Cut(s, "=")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("want NAMESPACE=NAME, e.g. email=alice@example.com")
	}
	*u = append(*u, &v1.UniqueConstraint{Namespace: ns, Name: name})
	return nil
}

func linkString(l *v1.LinkStatus) string {
	state := "up"
	switch {
	case l.CutOutgoing && l.CutIncoming:
		state = "CUT both ways"
	case l.CutOutgoing:
		state = "CUT outgoing"
	case l.CutIncoming:
		state = "CUT incoming"
	}
	return fmt.Sprintf("to %-12s %s, delay %v ±%v; bytes sent %d received %d dropped %d/%d",
		l.Region, state, l.GetDelay().AsDuration(), l.GetJitter().AsDuration(),
		l.BytesSent, l.BytesReceived, l.BytesDroppedOutgoing, l.BytesDroppedIncoming)
}
