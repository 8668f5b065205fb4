package gossip_test

import (
	"testing"

	"github.com/causewaydb/causeway/clocks"
	"github.com/causewaydb/causeway/gossip"
)

func TestStableVectorRule(t *testing.T) {
	replica := func(region, id string, state gossip.State, v clocks.Vector) gossip.Member {
		return gossip.Member{
			Meta:    gossip.Meta{Region: region, NodeID: id, ReplicationAddr: "127.0.0.1:1"},
			State:   state,
			Applied: v,
		}
	}
	eu := replica("eu", "n1", gossip.Alive, clocks.Vector{"eu": 10, "us": 4, "ap": 3})
	us := replica("us", "n1", gossip.Alive, clocks.Vector{"eu": 8, "us": 6, "ap": 3})
	apDead := replica("ap", "n1", gossip.Dead, clocks.Vector{"eu": 2, "us": 4, "ap": 9})
	apRemoved := apDead
	apRemoved.Removed = true
	apSilent := replica("ap", "n1", gossip.Alive, nil)
	raftOnly := gossip.Member{Meta: gossip.Meta{Region: "sa", NodeID: "n1"}, State: gossip.Alive}

	tests := []struct {
		name    string
		members []gossip.Member
		want    clocks.Vector
	}{
		{"no members", nil, clocks.Vector{}},
		{"one region", []gossip.Member{eu}, clocks.Vector{"eu": 10, "us": 4, "ap": 3}},
		{"element-wise minimum", []gossip.Member{eu, us}, clocks.Vector{"eu": 8, "us": 4, "ap": 3}},
		{"a dead region holds it back", []gossip.Member{eu, us, apDead}, clocks.Vector{"eu": 2, "us": 4, "ap": 3}},
		{"a removed region does not", []gossip.Member{eu, us, apRemoved}, clocks.Vector{"eu": 8, "us": 4, "ap": 3}},
		{"a member without a vector holds everything back", []gossip.Member{eu, us, apSilent}, clocks.Vector{}},
		{"a member without a replication address is not counted", []gossip.Member{eu, raftOnly}, clocks.Vector{"eu": 10, "us": 4, "ap": 3}},
		{"a region's members are merged", []gossip.Member{
			eu, us,
			replica("ap", "old", gossip.Dead, clocks.Vector{"eu": 1, "us": 1, "ap": 5}),
			replica("ap", "new", gossip.Alive, clocks.Vector{"eu": 7, "ap": 6}),
		}, clocks.Vector{"eu": 7, "us": 1, "ap": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gossip.StableVector(tt.members)
			if got == nil || !got.Equal(tt.want) {
				t.Errorf("StableVector = %v, want %v", got, tt.want)
			}
		})
	}
}
