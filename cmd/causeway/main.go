package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/causewaydb/causeway/internal/buildinfo"
	"io"
	"os"
	"strings"
)

const usage = `causeway: a geo-replicated, causally consistent key-value store.

Usage:
  causeway serve [flags]             start a node (see: causeway serve --help)
  causeway demo [flags]              3 regions and a live dashboard: cause a partition, watch the CAP trade-off
                                     (--script NAME runs a scenario in the terminal; demo do STEP controls it)
  causeway cluster [flags]           start a local multi-region cluster (3 regions, WAN delays)
  causeway verify [flags]            fault campaign: a local cluster under a nemesis, histories checked
  causeway bench [flags]             WAN latency benchmark beside etcd (--quick: about a minute)
  causeway put KEY VALUE [flags]     write VALUE under KEY ("-" reads VALUE from stdin)
  causeway get KEY [flags]           read KEY
  causeway del KEY [flags]           delete KEY
  causeway scan [PREFIX] [flags]     list live keys in key order (--start/--end, --limit, --keys-only, --all)
  causeway watch [PREFIX] [flags]    follow changes in causal order (--from-now, --with-state, --json)
  causeway status [flags]            describe the node
  causeway remove-region REGION      declare REGION gone for good (it stops holding back log truncation)
  causeway link REGION [flags]       delay or cut the node's link to REGION (--delay, --jitter,
                                     --cut both|out|in|none); needs serve --fault-injection
  causeway cert create-ca|create-node|create-client   a cluster CA and certificates (see: causeway cert --help)
  causeway token create|revoke NAME  client bearer tokens with a role (see: causeway token --help)
  causeway backup --addr NODE --out DIR   online, consistent backup of NODE's region into DIR
  causeway restore DIR --data DATADIR     check a backup and prepare DATADIR from it (then serve --join)
  causeway version                   print the version

Linearizable tier (Raft; unavailable without a quorum of voters):
  causeway claim NS/NAME OWNER       take a unique name (already_exists if another owner has it)
  causeway release NS/NAME OWNER     free it
  causeway lookup NS/NAME            who holds it
  causeway cas KEY VALUE [flags]     compare-and-set a register (--expect-version N, --expect-value V,
                                     --delete, --fence LOCK:TOKEN)
  causeway cas-get KEY               read a register
  causeway lease grant TTL | keepalive ID | revoke ID
  causeway lock NAME --lease ID      acquire a lock (--wait); prints its fencing token
  causeway unlock NAME --lease ID    release it
  causeway approve-voter REGION      let REGION's node join the linearizable tier as a voter (admin)

Client verbs carry the session's causal token in a session file, so that
consecutive commands read their own writes, also across regions.

Client flags:
  --addr URL        node to talk to (env CAUSEWAY_ADDR; default http://127.0.0.1:7070)
  --session FILE    session file holding the causal token (env CAUSEWAY_SESSION;
                    default ~/.causeway/session.json); --session "" for none
  --json            print the response as JSON (for scripts)
  --timeout D       request deadline (default 10s)
  --request-id ID   (put, del and linear verbs) a UUID that makes a retried write apply once
  --unique NS=NAME  (put) claim NAME in namespace NS for KEY first; repeatable
  --fence LOCK:TOKEN (put, del) refuse the write if a newer fencing token for LOCK was seen

Exit status: 0 on success, 1 when get (lookup, cas-get) finds nothing, 2 on usage errors,
3 when the node returns an error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exit statuses
const (
	exitOK       = 0
	exitNotFound = 1
	exitUsage    = 2
	exitFailed   = 3
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return runServe(rest, stdout, stderr)
	case "cluster":
		return runCluster(rest, stdout, stderr)
	case "demo":
		return runDemo(rest, stdout, stderr)
	case "verify":
		return runVerify(rest, stdout, stderr)
	case "scan":
		return runScan(rest, stdout, stderr)
	case "watch":
		return runWatch(rest, stdout, stderr)
	case "bench":
		return runBench(rest, stdout, stderr)
	case "put", "get", "del", "delete", "status", "link", "remove-region":
		return runClient(verb, rest, stdin, stdout, stderr)
	case "claim", "release", "lookup", "cas", "cas-get", "lease", "lock", "unlock", "approve-voter":
		return runLinear(verb, rest, stdout, stderr)
	case "cert":
		return runCert(rest, stdout, stderr)
	case "token":
		return runToken(rest, stdout, stderr)
	case "backup":
		return runBackup(rest, stdout, stderr)
	case "restore":
		return runRestore(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "causeway", buildinfo.Read())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "causeway: unknown command %q\n\n%s", verb, usage)
		return exitUsage
	}
}

// parseInterspersed parses flags that may appear before, between or after
// positional arguments ("causeway put k v --json"); "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// Parse consumes a "--" itself; everything after it is positional.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

// parseFlagsOnly parses a verb's flags where no positional argument is
// allowed. ok is false when the verb must exit with code (after --help, or
// on a usage error that has been reported).
func parseFlagsOnly(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	rest, err := parseInterspersed(fs, args)
	switch {
	case isHelp(err):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	case len(rest) > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), rest[0])
		return exitUsage, false
	}
	return exitOK, true
}

func envOr(name, fallback string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return fallback
}
