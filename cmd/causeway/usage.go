package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// A verb's --help lists only the flags that verb takes: verbs of one
// family share a flag set (so that a flag given to the wrong verb gets a
// message saying which verbs take it), and flagVerbs says which verbs each
// verb-specific flag belongs to. A flag not named here is common to the
// family.
var flagVerbs = map[string][]string{
	"request-id":     {"put", "del", "delete", "claim", "release", "cas", "lease", "lock", "unlock"},
	"unique":         {"put"},
	"fence":          {"put", "del", "delete", "cas"},
	"delay":          {"link"},
	"jitter":         {"link"},
	"cut":            {"link"},
	"force":          {"remove-region"},
	"expect-version": {"cas"},
	"expect-value":   {"cas"},
	"delete":         {"cas"},
	"lease":          {"lock", "unlock"},
	"owner":          {"lock"},
	"wait":           {"lock"},
}

// verbExamples is one example per verb, shown by its --help.
var verbExamples = map[string]string{
	"put":           "causeway put greeting hello --addr 127.0.0.1:7071",
	"get":           "causeway get greeting --json",
	"del":           "causeway del greeting",
	"delete":        "causeway delete greeting",
	"status":        "causeway status --addr 127.0.0.1:7073",
	"link":          "causeway link eu-west --addr 127.0.0.1:7071 --cut both",
	"remove-region": "causeway remove-region ap-south --addr 127.0.0.1:7071",
	"claim":         "causeway claim email/a@b.example alice",
	"release":       "causeway release email/a@b.example alice",
	"lookup":        "causeway lookup email/a@b.example",
	"cas":           "causeway cas config v2 --expect-value v1",
	"cas-get":       "causeway cas-get config",
	"lease":         "causeway lease grant 15s",
	"lock":          "causeway lock jobs/42 --lease $LEASE --wait",
	"unlock":        "causeway unlock jobs/42 --lease $LEASE",
	"approve-voter": "causeway approve-voter ap-south --addr 127.0.0.1:7071",
}

// printVerbFlags prints the flags of fs that verb takes, as
// flag.PrintDefaults does, then the verb's example.
func printVerbFlags(w io.Writer, fs *flag.FlagSet, verb string) {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if verbs, scoped := flagVerbs[f.Name]; scoped && !slices.Contains(verbs, verb) {
			return
		}
		shown.Var(f.Value, f.Name, stripScope(f.Usage))
		shown.Lookup(f.Name).DefValue = f.DefValue
	})
	shown.SetOutput(w)
	shown.PrintDefaults()
	if ex := verbExamples[verb]; ex != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", ex)
	}
}

// stripScope drops the "(verb, verb) " prefix of a flag's usage, which
// printVerbFlags makes redundant.
func stripScope(usage string) string {
	if strings.HasPrefix(usage, "(") {
		if i := strings.Index(usage, ") "); i > 0 {
			return usage[i+2:]
		}
	}
	return usage
}
