package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/causewaydb/causeway/internal/pki"
)

const certUsage = `Usage:
  causeway cert create-ca [--certs-dir DIR]
  causeway cert create-node --region R HOST... [--certs-dir DIR]
  causeway cert create-client NAME --role ROLE [--certs-dir DIR]

Writes a cluster CA and certificates into a certs directory (ECDSA P-256;
private keys mode 0600). create-ca also writes gossip.key, the key that
encrypts gossip. A node's certificate names its region and the hosts (DNS
names or IP addresses) clients and other nodes reach it by; a client's
names the client and its role: admin, readwrite or readonly.

Example, one CA and a node of us-east reachable on 127.0.0.1 and
node1.example.com:
  causeway cert create-ca --certs-dir certs
  causeway cert create-node --region us-east 127.0.0.1 node1.example.com --certs-dir certs
  causeway cert create-client alice --role readwrite --certs-dir certs

Copy ca.crt, node.crt and node.key (and gossip.key) to each node's own
certs directory; keep ca.key where certificates are issued.

Flags:
`

const tokenUsage = `Usage:
  causeway token create NAME --role ROLE [--certs-dir DIR]
  causeway token revoke NAME [--certs-dir DIR]

create adds a bearer token for client NAME with ROLE (admin, readwrite or
readonly) to DIR/tokens.json and prints it; it is shown once and stored
only as a hash. Give it to the client (causeway --token, or the
Authorization: Bearer header). revoke removes every token of NAME. Nodes
reload tokens.json on SIGHUP and when it changes.

Flags:
`

func runCert(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelpWord(args[0]) {
		fmt.Fprint(stderr, certUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("causeway cert "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("certs-dir", envOr("CAUSEWAY_CERTS_DIR", "certs"), "certs directory (env CAUSEWAY_CERTS_DIR)")
	lifetime := fs.Duration("lifetime", 0, "validity (default: 10 years for a CA, 1 year for a certificate)")
	overwrite := fs.Bool("overwrite", false, "replace existing files")
	region := fs.String("region", "", "create-node: the node's region")
	role := fs.String("role", "", "create-client: admin, readwrite or readonly")
	fs.Usage = func() { fmt.Fprint(stderr, certUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, rest)
	if isHelp(err) {
		return exitOK
	} else if err != nil {
		return exitUsage
	}
	o := pki.Options{Dir: *dir, Lifetime: *lifetime, Overwrite: *overwrite}
	var written []string
	switch sub {
	case "create-ca":
		if len(pos) != 0 {
			return usageError(stderr, fs, "create-ca takes no arguments")
		}
		err = pki.CreateCA(o)
		written = []string{pki.CACertFile, pki.CAKeyFile, pki.GossipKey}
	case "create-node":
		if *region == "" || len(pos) == 0 {
			return usageError(stderr, fs, "create-node needs --region and at least one HOST")
		}
		err = pki.CreateNode(o, *region, pos)
		written = []string{pki.NodeCertFile, pki.NodeKeyFile}
	case "create-client":
		if len(pos) != 1 || *role == "" {
			return usageError(stderr, fs, "create-client needs one NAME and --role")
		}
		err = pki.CreateClient(o, pos[0], pki.Role(*role))
		written = []string{pki.ClientCertFile(pos[0]), pki.ClientKeyFile(pos[0])}
	default:
		return usageError(stderr, fs, fmt.Sprintf("unknown subcommand %q: use create-ca, create-node or create-client", sub))
	}
	if err != nil {
		fmt.Fprintf(stderr, "causeway cert %s: %v\n", sub, err)
		return exitFailed
	}
	for _, f := range written {
		fmt.Fprintf(stdout, "wrote %s/%s\n", *dir, f)
	}
	return exitOK
}

func runToken(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelpWord(args[0]) {
		fmt.Fprint(stderr, tokenUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("causeway token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("certs-dir", envOr("CAUSEWAY_CERTS_DIR", "certs"), "certs directory holding tokens.json (env CAUSEWAY_CERTS_DIR)")
	role := fs.String("role", "", "create: admin, readwrite or readonly")
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, rest)
	if isHelp(err) {
		return exitOK
	} else if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		return usageError(stderr, fs, sub+" needs one NAME")
	}
	o := pki.Options{Dir: *dir}
	switch sub {
	case "create":
		if *role == "" {
			return usageError(stderr, fs, "create needs --role")
		}
		token, err := pki.CreateToken(o, pos[0], pki.Role(*role))
		if err != nil {
			fmt.Fprintf(stderr, "causeway token create: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "token for %s (%s) added to %s/%s; it is not shown again\n", pos[0], *role, *dir, pki.TokensFile)
	case "revoke":
		n, err := pki.RevokeTokens(o, pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "causeway token revoke: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "revoked %d token(s) of %s\n", n, pos[0])
	default:
		return usageError(stderr, fs, fmt.Sprintf("unknown subcommand %q: use create or revoke", sub))
	}
	return exitOK
}

func isHelpWord(s string) bool {
	return s == "help" || s == "-h" || s == "-help" || s == "--help"
}

func usageError(stderr io.Writer, fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(stderr, "%s: %s\n\n", fs.Name(), msg)
	fs.Usage()
	return exitUsage
}
