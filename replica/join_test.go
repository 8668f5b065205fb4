package replica

import (
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
