package wanbench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The benchmark moves etcd's leadership where it is asked, and the members
// all follow the new leader before the rows run.
func TestEtcdMoveLeader(t *testing.T) {
	m, err := ParseMatrix(strings.NewReader("a b 10ms\na c 10ms\nb c 10ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := startEtcd(ctx, etcdConfig{Matrix: m, Dir: t.TempDir()})
	if errors.Is(err, errEtcdNotFound) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	first := cl.leaderRegion
	for _, to := range append(m.Regions, first) {
		if err := cl.moveLeader(ctx, to); err != nil {
			t.Fatal(err)
		}
		leader, why := cl.commonLeader(ctx)
		if why != "" || leader != to || cl.leaderRegion != to {
			t.Fatalf("asked for %s: members say %q (%s), cluster records %s", to, leader, why, cl.leaderRegion)
		}
	}
	if err := cl.moveLeader(ctx, "nowhere"); err == nil {
		t.Fatal("moved etcd's leadership to a region without a member")
	}
}
