package linear

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/internal/link"
)

// memIdentity is an Identity kept in memory (the node's store, in replica).
type memIdentity struct {
	mu sync.Mutex
	id string
}

func (m *memIdentity) RaftServerID() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id, nil
}

func (m *memIdentity) SetRaftServerID(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.id = id
	return nil
}

func openAlone(t *testing.T, dir string, id Identity) (*Node, error) {
	t.Helper()
	links := link.New("us-east")
	return Open(Config{Region: "us-east", Dir: dir, BindAddr: "127.0.0.1:0", Bootstrap: true, Links: links,
		HTTPClient: newH2C(links.DialContext), Identity: id})
}

// TestVoterWithLostRaftStateRefusesToStart: a node whose identity says it
// was a voter, but whose Raft state is gone (its tier directory was lost
// while the rest of its data directory was not), refuses to start, and the
// error names the safe way back. Its server id is otherwise created once,
// recorded, and kept across restarts.
func TestVoterWithLostRaftStateRefusesToStart(t *testing.T) {
	dir := t.TempDir() + "/linear"
	id := &memIdentity{}
	n, err := openAlone(t, dir, id)
	if err != nil {
		t.Fatal(err)
	}
	first := n.ServerID()
	if !strings.HasPrefix(first, "us-east/") || id.id != first {
		t.Fatalf("server id %q, recorded %q: want us-east/<suffix>, recorded", first, id.id)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err = openAlone(t, dir, id); err != nil {
		t.Fatal(err)
	}
	if n.ServerID() != first {
		t.Fatalf("server id after a restart %q, want %q", n.ServerID(), first)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	n, err = openAlone(t, dir, id)
	if err == nil {
		n.Close()
		t.Fatal("a voter whose Raft state was lost started (bootstrapping a group of its own)")
	}
	if !errors.Is(err, ErrLostRaftState) {
		t.Fatalf("err = %v, want ErrLostRaftState", err)
	}
	for _, want := range []string{first, "stop this node", "empty its whole data directory", "--join", "new member"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	// The safe way: the whole data directory emptied (identity included),
	// the node starts under a new id.
	if n, err = openAlone(t, dir, &memIdentity{}); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.ServerID() == first || !strings.HasPrefix(n.ServerID(), "us-east/") {
		t.Fatalf("server id after the data directory was emptied %q; want a new us-east/<suffix> (it was %q)", n.ServerID(), first)
	}
}

// TestWipedVoterComesBackAsNewMember: a follower that loses its directory
// and restarts at the same Raft address comes back under a new server id,
// which the leader adds as a non-voter, promotes once it has caught up,
// and then removes the lost id; the group keeps its data and serves.
func TestWipedVoterComesBackAsNewMember(t *testing.T) {
	g := newTestGroup(t, "us-east", "eu-west", "ap-south")
	leader := g.awaitLeader(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := claim(ctx, leader.client, "grace", "g", "")
	if err != nil {
		t.Fatal(err)
	}
	var wiped *testVoter
	for _, v := range g.voters {
		if v != leader {
			wiped = v
		}
	}
	oldID := wiped.id
	g.stop(wiped)
	wiped.node = nil
	g.mu.Lock()
	g.alive[wiped.region] = false
	g.mu.Unlock()
	if err := os.RemoveAll(wiped.dir); err != nil {
		t.Fatal(err)
	}
	g.start(wiped, false) // same Raft and API addresses
	if wiped.id == oldID {
		t.Fatalf("the wiped voter came back under its old id %s", oldID)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := leader.node.Status()
		ids := map[string]string{}
		for _, v := range st.Voters {
			ids[v.ServerId] = v.Suffrage
		}
		if len(st.Voters) == 3 && len(st.NonVoters) == 0 && ids[wiped.id] == "voter" {
			if _, ok := ids[oldID]; ok {
				t.Fatalf("voters %v still hold the lost id %s", ids, oldID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader's members: voters %v, non-voters %v; want %s promoted and %s gone", st.Voters, st.NonVoters, wiped.id, oldID)
		}
		<-time.After(20 * time.Millisecond) // poll interval
	}
	again, err := claim(ctx, wiped.client, "grace", "other", "")
	if api.Code(err) != connect.CodeAlreadyExists {
		t.Fatalf("claim through the rejoined region: %v %v, want already_exists held by g (version %d)", again, err, first.Version)
	}
}
