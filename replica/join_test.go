package replica

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestStartStatesOfTheJoin: a directory created empty with Join joins
// before it serves, one created without Join serves at once, and a node
// that opens with a snapshot merge left unfinished (a crash between the
// merge's first batch and its vector) joins again rather than serve a
// half-merged copy; a finished join serves after a restart.
func TestStartStatesOfTheJoin(t *testing.T) {
	fs := vfs.NewMem()
	open := func(dir string, join bool) *Node {
		t.Helper()
		n, err := Open(Config{Region: "us-east", DataDir: dir, FS: fs, Join: join, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	state := func(n *Node) string {
		s, _ := n.CausalState()
		return s
	}

	founder := open("founder", false)
	if got := state(founder); got != stateServing {
		t.Errorf("a new directory without --join: %s, want serving", got)
	}
	founder.Close()

	joiner := open("joiner", true)
	if got := state(joiner); got != stateJoining {
		t.Errorf("a new directory with --join: %s, want joining", got)
	}
	if err := joiner.finishJoin(); err != nil {
		t.Fatal(err)
	}
	joiner.Close()
	if n := open("joiner", true); state(n) != stateServing {
		t.Errorf("a joined directory reopened: %s, want serving", state(n))
	} else {
		// A merge that began and never recorded its vector.
		if err := n.store.setMeta(metaMerging, nil); err != nil {
			t.Fatal(err)
		}
		n.Close()
	}
	n := open("joiner", false)
	defer n.Close()
	if got := state(n); got != stateJoining {
		t.Errorf("reopened with a merge left unfinished: %s, want joining", got)
	}
}

// TestJoinWithoutMembershipSaysWhy: a region created with --join whose
// gossip did not start (its port was taken) can never learn the cluster's
// regions; its state says so, with gossip's error, instead of waiting for
// the membership in silence.
func TestJoinWithoutMembershipSaysWhy(t *testing.T) {
	n, err := Open(Config{Region: "ap-southeast", DataDir: "joiner", FS: vfs.NewMem(), Join: true, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.cfg.Membership = func(Env, MemberEvents) (Membership, error) {
		return nil, errors.New("gossip: listen udp 127.0.0.1:7170: bind: address already in use")
	}
	n.repl.start("127.0.0.1:1")
	state, reason := n.CausalState()
	if state != stateJoining {
		t.Fatalf("state %s, want joining", state)
	}
	for _, want := range []string{"gossip did not start", "address already in use", "--gossip-listen"} {
		if !strings.Contains(reason, want) {
			t.Errorf("the joining reason does not say %q: %s", want, reason)
		}
	}
}
