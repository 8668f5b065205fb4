package main

import (
	"strings"
	"testing"
)

// TestVerbHelpListsItsOwnFlags: a verb's --help shows the flags it takes,
// not those of the other verbs of its family, and an example.
func TestVerbHelpListsItsOwnFlags(t *testing.T) {
	for _, c := range []struct {
		verb      string
		want, not []string
	}{
		{"put", []string{"-unique", "-fence", "-request-id", "-addr", "-certs-dir"}, []string{"-cut", "-delay", "-jitter", "-expect-version"}},
		{"get", []string{"-addr", "-json", "-session"}, []string{"-cut", "-unique", "-fence", "-request-id"}},
		{"link", []string{"-cut", "-delay", "-jitter"}, []string{"-unique", "-fence", "-request-id"}},
		{"cas", []string{"-expect-version", "-expect-value", "-delete", "-fence"}, []string{"-lease", "-owner", "-wait", "-cut"}},
		{"lock", []string{"-lease", "-owner", "-wait"}, []string{"-expect-version", "-delete"}},
		{"lookup", []string{"-addr"}, []string{"-lease", "-expect-value", "-request-id"}},
	} {
		r := runCLI("", c.verb, "--help")
		if r.code != exitOK || !strings.Contains(r.stderr, "Example:\n  causeway "+c.verb) {
			t.Errorf("%s --help: exit %d, no example:\n%s", c.verb, r.code, r.stderr)
		}
		for _, f := range c.want {
			if !strings.Contains(r.stderr, "  "+f+" ") && !strings.Contains(r.stderr, "  "+f+"\n") {
				t.Errorf("%s --help does not list %s", c.verb, f)
			}
		}
		for _, f := range c.not {
			if strings.Contains(r.stderr, "  "+f+" ") || strings.Contains(r.stderr, "  "+f+"\n") {
				t.Errorf("%s --help lists %s, another verb's flag", c.verb, f)
			}
		}
	}
}
