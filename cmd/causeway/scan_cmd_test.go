package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

func TestCLIScanAndWatch(t *testing.T) {
	n := startNode(t)
	s := newSession(t, n)
	for _, kv := range [][2]string{{"w/a", "1"}, {"w/b", "2"}, {"x", "3"}} {
		if r := s.run("", "put", kv[0], kv[1]); r.code != exitOK {
			t.Fatal(r)
		}
	}
	if r := s.run("", "scan", "w/"); r.code != exitOK || r.stdout != "w/a\t1\nw/b\t2\n" {
		t.Fatalf("scan w/: %v", r)
	}
	if r := s.run("", "scan", "w/", "--limit", "1"); r.code != exitOK || r.stdout != "w/a\t1\n" || !strings.Contains(r.stderr, "--cursor") {
		t.Fatalf("scan --limit 1: %v", r)
	}
	if r := s.run("", "scan", "--start", "w/b", "--limit", "1", "--all", "--keys-only"); r.code != exitOK || r.stdout != "w/b\nx\n" {
		t.Fatalf("scan --start w/b --all --keys-only: %v", r)
	}
	before := s.token(t)

	// Another session changes the keys; the first one's watch starts
	// after its own token, so it sees exactly these changes.
	other := newSession(t, n)
	other.run("", "put", "w/c", "3")
	other.run("", "put", "y", "unwatched")
	other.run("", "del", "w/a")
	r := s.run("", "watch", "w/", "--count", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitOK || len(lines) != 2 || !strings.HasPrefix(lines[0], "PUT w/c=3\t") || !strings.HasPrefix(lines[1], "DEL w/a\t") {
		t.Fatalf("watch w/ --count 2: %v", r)
	}
	if s.token(t) == before {
		t.Fatal("watch did not advance the session's token")
	}

	r = s.run("", "watch", "w/", "--with-state", "--count", "2", "--json")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitOK || len(lines) != 2 {
		t.Fatalf("watch --with-state --json: %v", r)
	}
	var e v1.WatchEvent
	if err := protojson.Unmarshal([]byte(lines[0]), &e); err != nil || !e.GetState() || e.GetChanges()[0].GetKey() != "w/b" {
		t.Fatalf("first state event %q (%v), want w/b marked state", lines[0], err)
	}

	for _, bad := range [][]string{
		{"watch", "w/", "--from-now", "--with-state"},
		{"watch", "a", "b"},
		{"scan", "a", "b"},
	} {
		if r := s.run("", bad...); r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d (usage)", bad, r.code, exitUsage)
		}
	}
	if r := s.run("", "scan", "--start", "b", "--end", "a"); r.code != exitFailed || !strings.Contains(r.stderr, "invalid_argument") {
		t.Errorf("scan of an empty range: %v", r)
	}
}
