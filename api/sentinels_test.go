package api_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
	"github.com/causewaydb/causeway/internal/demo"
	"github.com/causewaydb/causeway/internal/link"
	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
	"github.com/causewaydb/causeway/linear"
	"github.com/causewaydb/causeway/replica"
)

// sentinel is one exported sentinel error of the module and the Connect
// code a client gets for it (bare or wrapped with %w), decided on purpose.
type sentinel struct {
	name string // package directory relative to the module root, a dot, the variable
	err  error  // nil: api's tests cannot import its package (see below)
	code connect.Code
	why  string
}

// sentinels is the ledger of every exported Err* variable in the module.
// TestEverySentinelIsInTheLedger fails on one that is missing, so a new
// sentinel cannot reach a client as internal by accident.
//
// internal is deliberate for errors that say the node itself is broken
// (damaged storage, bad configuration at start): the client cannot act on
// them, so it gets InternalMessage and the node logs the cause. Some
// sentinels of packages that do not know api are internal when bare but are
// labelled with a client-visible kind by the package that calls them; why
// names where.
var sentinels = []sentinel{
	{"api.ErrInvalidArgument", api.ErrInvalidArgument, connect.CodeInvalidArgument, "kind"},
	{"api.ErrNotFound", api.ErrNotFound, connect.CodeNotFound, "kind"},
	{"api.ErrAlreadyExists", api.ErrAlreadyExists, connect.CodeAlreadyExists, "kind"},
	{"api.ErrAborted", api.ErrAborted, connect.CodeAborted, "kind"},
	{"api.ErrFailedPrecondition", api.ErrFailedPrecondition, connect.CodeFailedPrecondition, "kind"},
	{"api.ErrUnavailable", api.ErrUnavailable, connect.CodeUnavailable, "kind"},
	{"api.ErrResourceExhausted", api.ErrResourceExhausted, connect.CodeResourceExhausted, "kind"},
	{"api.ErrPermissionDenied", api.ErrPermissionDenied, connect.CodePermissionDenied, "kind"},
	{"api.ErrUnauthenticated", api.ErrUnauthenticated, connect.CodeUnauthenticated, "kind"},

	{"clocks.ErrInvalidRegion", clocks.ErrInvalidRegion, connect.CodeInvalidArgument, "a region name the client or a peer sent"},
	{"clocks.ErrInvalidToken", clocks.ErrInvalidToken, connect.CodeInvalidArgument, "a causal token the client sent"},
	{"clocks.ErrForeignToken", clocks.ErrForeignToken, connect.CodeInvalidArgument, "a token of another cluster"},
	{"clocks.ErrClockOffset", clocks.ErrClockOffset, connect.CodeFailedPrecondition, "a timestamp too far ahead of this node's clock"},
	{"clocks.ErrCorrupt", clocks.ErrCorrupt, connect.CodeInternal,
		"damaged stored or replicated clock bytes; a damaged token is ErrInvalidToken (clocks/token.go)"},

	{"causal.ErrPendingFull", causal.ErrPendingFull, connect.CodeResourceExhausted, "the buffer of writes waiting for their causal past is full"},
	{"causal.ErrInvalidWrite", causal.ErrInvalidWrite, connect.CodeInvalidArgument, "a replicated write that can never apply: the sender's fault"},
	{"causal.ErrNotCaughtUp", causal.ErrNotCaughtUp, connect.CodeUnavailable, "the token's causal past is not here yet (DESIGN.md §4)"},
	{"causal.ErrLostWrites", causal.ErrLostWrites, connect.CodeFailedPrecondition, "a subscriber holds writes this region lost"},
	{"causal.ErrFeedTruncated", causal.ErrFeedTruncated, connect.CodeFailedPrecondition, "a watch's resume token is older than the change feed retains: Scan, then watch from its token"},
	{"causal.ErrBadFrame", causal.ErrBadFrame, connect.CodeInvalidArgument, "a replication message the origin could not have sent: the stream is reset"},
	{"causal.ErrBadAck", causal.ErrBadAck, connect.CodeInvalidArgument, "an acknowledgement beyond what was sent: the stream is reset"},

	{"replica.ErrCorruptRecord", replica.ErrCorruptRecord, connect.CodeInternal, "damaged storage or a damaged frame; the node logs it"},
	{"replica.ErrUnsupportedVersion", replica.ErrUnsupportedVersion, connect.CodeFailedPrecondition,
		"a peer (or a data directory) of a format or protocol version this node cannot read: a release more than one apart (replica/version.go)"},

	{"gossip.ErrCannotRemove", gossip.ErrCannotRemove, connect.CodeInternal,
		"replica labels it invalid_argument (replica/membership.go)"},
	{"gossip.ErrInvalidConfig", gossip.ErrInvalidConfig, connect.CodeInternal, "bad configuration at start"},
	{"gossip.ErrMetaTooLarge", gossip.ErrMetaTooLarge, connect.CodeInternal, "bad configuration at start"},

	{"internal/link.ErrInvalidLink", link.ErrInvalidLink, connect.CodeInternal,
		"replica labels it invalid_argument (replica/links.go, replica/handlers.go)"},
	{"internal/link.ErrCut", link.ErrCut, connect.CodeInternal,
		"the operation that needed the link says unavailable (linear/forward.go); replication retries"},
	{"internal/supervisor.ErrDown", supervisor.ErrDown, connect.CodeInternal,
		"a region process of a local cluster is not running: the harness's own error, never a request's"},
	{"internal/demo.ErrNotLoopback", demo.ErrNotLoopback, connect.CodeInternal,
		"causeway demo refuses to start its dashboard on a non-loopback address; never a request's error"},
	{"internal/demo.ErrSyntax", demo.ErrSyntax, connect.CodeInternal,
		"a scenario step that does not parse (causeway demo --script, demo do): the demo's own error, never a request's"},

	{"internal/pki.ErrInvalid", pki.ErrInvalid, connect.CodeInternal, "certificates and names given at the command line or at start; never a request's"},
	{"internal/pki.ErrExists", pki.ErrExists, connect.CodeInternal, "causeway cert refusing to overwrite a file; never a request's"},
	{"internal/pki.ErrNoIdentity", pki.ErrNoIdentity, connect.CodeInternal, "a certificate without an identity: the process answers unauthenticated (internal/process/auth.go)"},
	{"internal/pki.ErrNotNode", pki.ErrNotNode, connect.CodeInternal, "fails a TLS handshake or a dial between nodes; never a request's"},
	{"internal/pki.ErrWrongRegion", pki.ErrWrongRegion, connect.CodeInternal, "fails a dial to a node of another region than its address's; replication retries"},
	{"internal/pki.ErrBadToken", pki.ErrBadToken, connect.CodeInternal, "the process labels it unauthenticated (internal/process/auth.go)"},

	{"linear.ErrLostRaftState", linear.ErrLostRaftState, connect.CodeInternal, "the node refuses to start; never a request's error"},

	// api's tests may not import linear/internal/...: these must be plain
	// errors.New values (checked from the source), so they wrap no kind and
	// api.Code maps them to internal.
	{"linear/internal/fsm.ErrCorruptSnapshot", nil, connect.CodeInternal, "a damaged snapshot of the linearizable tier"},
	{"linear/internal/fsm.ErrInvalidCommand", nil, connect.CodeInternal,
		"a log entry that does not decode; a request's invalid command is labelled invalid_argument (linear/service.go)"},
	{"linear/internal/logstore.ErrCorruptRecord", nil, connect.CodeInternal, "a damaged Raft log record"},
	{"linear/internal/logstore.ErrKeyNotFound", nil, connect.CodeInternal, "Raft's stable store; never a request's error"},
}

func TestSentinelCodes(t *testing.T) {
	for _, s := range sentinels {
		t.Run(s.name, func(t *testing.T) {
			if s.err == nil {
				if s.code != connect.CodeInternal {
					t.Fatalf("%s: api cannot map a sentinel it cannot import; its code is internal, not %v", s.name, s.code)
				}
				return
			}
			wrapped := fmt.Errorf("while serving: %w", s.err)
			for _, err := range []error{s.err, wrapped} {
				if got := api.Code(err); got != s.code {
					t.Errorf("Code(%q) = %v, want %v (%s)", err, got, s.code, s.why)
				}
			}
			ce := asConnectError(t, api.ConnectError(wrapped))
			wantMessage := wrapped.Error()
			if s.code == connect.CodeInternal {
				wantMessage = api.InternalMessage
			}
			if ce.Code() != s.code || ce.Message() != wantMessage {
				t.Errorf("ConnectError(%q) = %v %q, want %v %q", wrapped, ce.Code(), ce.Message(), s.code, wantMessage)
			}
		})
	}
}

var sentinelName = regexp.MustCompile(`^Err[A-Z0-9]`)

// TestEverySentinelIsInTheLedger scans the module's non-test Go files for
// exported Err* variables and fails on one the ledger does not list (or a
// row no variable matches any more).
func TestEverySentinelIsInTheLedger(t *testing.T) {
	found := map[string]ast.Expr{} // name -> its initializer (nil: none)
	forEachSourceFile(t, func(dir string, f *ast.File) {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !id.IsExported() || !sentinelName.MatchString(id.Name) {
						continue
					}
					var init ast.Expr
					if i < len(vs.Values) {
						init = vs.Values[i]
					}
					found[dir+"."+id.Name] = init
				}
			}
		}
	})
	if len(found) < len(sentinels)/2 {
		t.Fatalf("found only %d sentinels in the source: is the module root wrong?", len(found))
	}
	listed := map[string]bool{}
	for _, s := range sentinels {
		listed[s.name] = true
		init, ok := found[s.name]
		if !ok {
			t.Errorf("the ledger lists %s, which the source no longer declares: remove the row", s.name)
			continue
		}
		if s.err == nil && !isErrorsNew(init) {
			t.Errorf("%s is not errors.New(...): it may wrap a kind api maps, so api's tests must check it; "+
				"export it through a package api_test can import, or map it at its package's boundary", s.name)
		}
	}
	var missing []string
	for name := range found {
		if !listed[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("sentinel %s is not in api's ledger (api/sentinels_test.go): decide the Connect code a client gets for it "+
			"(api.codeTable for clocks and causal, a kind it wraps for any other package) and add a row", name)
	}
}

// TestConnectErrorsComeFromAPI fails on a connect.NewError (or
// NewErrorDetail) outside package api and generated code: every error a
// handler returns goes through api.ConnectError, so its code comes from the
// one table.
func TestConnectErrorsComeFromAPI(t *testing.T) {
	forEachSourceFile(t, func(dir string, f *ast.File) {
		if dir == "api" || ast.IsGenerated(f) {
			return
		}
		name := ""
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == "connectrpc.com/connect" {
				name = "connect"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && (sel.Sel.Name == "NewError" || sel.Sel.Name == "NewErrorDetail") {
				t.Errorf("%s: connect.%s outside package api; return api.ConnectError(api.Errorf(kind, ...)) "+
					"(api.WithDetails for details)", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	})
}

var fset = token.NewFileSet()

// forEachSourceFile parses every non-test Go file of the module (api's
// parent directory) and calls fn with its package directory relative to
// the module root.
func forEachSourceFile(t *testing.T, fn func(dir string, f *ast.File)) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/causewaydb/causeway\n") {
		t.Fatalf("%s is not the module root (go.mod: %v)", root, err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		fn(filepath.ToSlash(rel), f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// isErrorsNew reports whether e is a call errors.New("...").
func isErrorsNew(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "errors" && sel.Sel.Name == "New"
}
