package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// clientFlags are the flags every client verb shares.
type clientFlags struct {
	addr, sessionPath *string
	asJSON            *bool
	creds             *credentials
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		addr:        fs.String("addr", envOr("CAUSEWAY_ADDR", "http://127.0.0.1:7070"), "node URL (env CAUSEWAY_ADDR)"),
		sessionPath: fs.String("session", defaultSessionPath(), "session file holding the causal token (env CAUSEWAY_SESSION); \"\" for none"),
		asJSON:      fs.Bool("json", false, "print JSON, one object a line"),
		creds:       addCredentialFlags(fs),
	}
}

const scanUsage = `Usage: causeway scan [PREFIX] [flags]

Lists the live keys that begin with PREFIX (or, with --start/--end, of the
range [start, end)), in key order, from one causally consistent snapshot
that includes everything this session has seen. One page by default;
--all pages through the whole range from the same snapshot.

Flags:
`

func runScan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of each page's request")
	start := fs.String("start", "", "first key of the range (inclusive); instead of PREFIX")
	end := fs.String("end", "", "end of the range (exclusive; empty: no end)")
	limit := fs.Uint("limit", 0, "keys per page (default 1000, at most 10000)")
	keysOnly := fs.Bool("keys-only", false, "print keys without values")
	siblings := fs.Bool("siblings", false, "list every concurrent version of keys that have them")
	all := fs.Bool("all", false, "follow the cursor through every page")
	cursor := fs.String("cursor", "", "continue a scan from a previous page's cursor")
	fs.Usage = func() { fmt.Fprint(stderr, scanUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if isHelp(err) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "causeway scan: want at most one PREFIX, got %d arguments\n", len(pos))
		return exitUsage
	}
	req := &v1.ScanRequest{Start: *start, End: *end, Limit: uint32(*limit), KeysOnly: *keysOnly, Siblings: *siblings, Cursor: *cursor}
	if len(pos) == 1 {
		req.Prefix = pos[0]
	}
	base := cf.creds.url(*cf.addr)
	sess, err := loadSession(*cf.sessionPath)
	if err != nil {
		fmt.Fprintf(stderr, "causeway scan: %v\n", err)
		return exitFailed
	}
	httpc, err := cf.creds.httpClient()
	if err != nil {
		fmt.Fprintf(stderr, "causeway scan: %v\n", err)
		return exitUsage
	}
	kv := causewayv1connect.NewKVServiceClient(httpc, base)
	for {
		req.CausalToken = sess.Token
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		res, err := kv.Scan(ctx, connect.NewRequest(req))
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "causeway scan: %s\n", describeError(err, sess))
			return exitFailed
		}
		if err := sess.save(res.Msg.CausalToken, base); err != nil {
			fmt.Fprintf(stderr, "causeway scan: %v\n", err)
			return exitFailed
		}
		sess.Token = res.Msg.CausalToken
		for _, r := range res.Msg.Results {
			if *cf.asJSON {
				out, _ := protojson.Marshal(r)
				fmt.Fprintln(stdout, string(out))
				continue
			}
			line := r.Key
			if !*keysOnly {
				line += "\t" + printable(r.Value)
			}
			if r.HasSiblings {
				line += fmt.Sprintf("\t(%d concurrent versions; --siblings lists them)", max(len(r.Siblings), 2))
				for _, s := range r.Siblings {
					v := "(deleted)"
					if s.Found {
						v = printable(s.Value)
					}
					line += fmt.Sprintf("\n  sibling %s\t%s", versionString(s.Version), v)
				}
			}
			fmt.Fprintln(stdout, line)
		}
		if res.Msg.NextCursor == "" {
			return exitOK
		}
		if !*all {
			fmt.Fprintf(stderr, "(more keys: add --cursor %s, or use --all)\n", res.Msg.NextCursor)
			return exitOK
		}
		req.Cursor = res.Msg.NextCursor
	}
}

const watchUsage = `Usage: causeway watch [PREFIX] [flags]

Prints every change to the keys that begin with PREFIX (or of the range
[--start, --end)) as it becomes visible in this region, in causal order,
until interrupted. By default it starts after the session's causal token
(every change this session has not seen), or now without one; --from-now
and --with-state (current keys first) start afresh. The session file is
advanced as events arrive, so a watch stopped and started again, here or
in another region, misses nothing and repeats nothing. A watch the node
cuts off because it read too slowly resumes by itself.

Flags:
`

func runWatch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	start := fs.String("start", "", "first key of the range (inclusive); instead of PREFIX")
	end := fs.String("end", "", "end of the range (exclusive; empty: no end)")
	fromNow := fs.Bool("from-now", false, "ignore the session's token: only changes from now on")
	withState := fs.Bool("with-state", false, "print the current keys first, then changes")
	resume := fs.String("resume", "", "resume after this token (an event's resume_token) instead of the session's")
	keysOnly := fs.Bool("keys-only", false, "print keys without values")
	count := fs.Int("count", 0, "stop after this many events (0: run until interrupted)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: run until interrupted)")
	fs.Usage = func() { fmt.Fprint(stderr, watchUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if isHelp(err) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "causeway watch: want at most one PREFIX, got %d arguments\n", len(pos))
		return exitUsage
	}
	if *fromNow && *withState || *resume != "" && (*fromNow || *withState) {
		fmt.Fprintln(stderr, "causeway watch: give at most one of --from-now, --with-state and --resume")
		return exitUsage
	}
	req := &v1.WatchRequest{Start: *start, End: *end, KeysOnly: *keysOnly, StartAt: v1.WatchStart_WATCH_START_NOW}
	if len(pos) == 1 {
		req.Prefix = pos[0]
	}
	base := cf.creds.url(*cf.addr)
	sess, err := loadSession(*cf.sessionPath)
	if err != nil {
		fmt.Fprintf(stderr, "causeway watch: %v\n", err)
		return exitFailed
	}
	httpc, err := cf.creds.httpClient()
	if err != nil {
		fmt.Fprintf(stderr, "causeway watch: %v\n", err)
		return exitUsage
	}
	switch {
	case *resume != "":
		req.ResumeToken = *resume
	case *withState:
		req.StartAt = v1.WatchStart_WATCH_START_WITH_STATE
	case !*fromNow:
		req.ResumeToken = sess.Token
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	kv := causewayv1connect.NewKVServiceClient(httpc, base)
	w := &watchPrinter{stdout: stdout, asJSON: *cf.asJSON, keysOnly: *keysOnly, sess: sess, base: base, limit: *count}
	defer w.flush()
	for {
		stream, err := kv.Watch(ctx, connect.NewRequest(req))
		if err != nil {
			fmt.Fprintf(stderr, "causeway watch: %s\n", describeError(err, sess))
			return exitFailed
		}
		for stream.Receive() {
			if w.print(stream.Msg()); *count > 0 && w.events >= *count {
				stream.Close()
				return exitOK
			}
		}
		err = stream.Err()
		stream.Close()
		switch {
		case ctx.Err() != nil:
			return exitOK // interrupted, or --timeout: the session holds where it stopped
		case connect.CodeOf(err) == connect.CodeResourceExhausted && w.token != "":
			fmt.Fprintln(stderr, "causeway watch: the node cut the watch off (read too slowly); resuming from the last event")
			req.ResumeToken, req.StartAt = w.token, v1.WatchStart_WATCH_START_NOW
			continue
		case err == nil:
			err = errors.New("the node ended the watch")
		}
		fmt.Fprintf(stderr, "causeway watch: %s\n", describeError(err, sess))
		if connect.CodeOf(err) == connect.CodeFailedPrecondition && strings.Contains(err.Error(), "truncated") {
			fmt.Fprintln(stderr, "(read the keys again with `causeway scan`, then `causeway watch` resumes after the scan)")
		}
		return exitFailed
	}
}

// watchPrinter prints watch messages and advances the session.
type watchPrinter struct {
	stdout           io.Writer
	asJSON, keysOnly bool
	sess             *session
	base             string
	token            string // after the last message
	events, limit    int    // printed so far; --count (0: none)
	saved            time.Time
}

func (w *watchPrinter) print(m *v1.WatchResponse) {
	for _, e := range m.Events {
		if w.limit > 0 && w.events >= w.limit {
			return // --count reached; the token stays at the last event printed
		}
		w.events++
		if w.asJSON {
			out, _ := protojson.Marshal(e)
			fmt.Fprintln(w.stdout, string(out))
			continue
		}
		parts := make([]string, len(e.Changes))
		for i, c := range e.Changes {
			switch {
			case c.Deleted:
				parts[i] = "DEL " + c.Key
			case w.keysOnly:
				parts[i] = "PUT " + c.Key
			default:
				parts[i] = "PUT " + c.Key + "=" + printable(c.Value)
			}
		}
		prefix := ""
		if e.State {
			prefix = "STATE "
			parts[0] = strings.TrimPrefix(parts[0], "PUT ")
		}
		fmt.Fprintf(w.stdout, "%s%s\t(version %s)\n", prefix, strings.Join(parts, "; "), versionString(e.Version))
		if e.ResumeToken != "" {
			w.token = e.ResumeToken
		}
	}
	if m.ResumeToken != "" {
		w.token = m.ResumeToken
		// The session file is rewritten at most once a second; flush
		// writes the last token when the watch stops.
		if time.Since(w.saved) >= time.Second {
			w.flush()
		}
	}
}

func (w *watchPrinter) flush() {
	if w.token == "" {
		return
	}
	if err := w.sess.save(w.token, w.base); err == nil {
		w.saved = time.Now()
	}
}
