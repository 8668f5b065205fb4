package check_test

import (
	"fmt"
	"testing"

	"github.com/causewaydb/causeway/internal/check"
)

// BenchmarkCheckWatch judges one watcher of a campaign-sized history:
// 4,000 writes from 3 regions, each depending on the others' writes a
// little behind it, delivered in their causal order.
func BenchmarkCheckWatch(b *testing.B) {
	regions := []string{"ap-south", "eu-west", "us-east"}
	var made []check.WatchWrite
	seqs := map[string]uint64{}
	for i := range 4000 {
		origin := regions[i%len(regions)]
		seqs[origin]++
		vec := map[string]uint64{}
		for _, r := range regions {
			vec[r] = seqs[r] - min(seqs[r], 2) // two writes behind
		}
		vec[origin] = seqs[origin]
		made = append(made, check.WatchWrite{Origin: origin, Seq: seqs[origin], Vector: vec, Keys: []string{fmt.Sprintf("k%d", i%8)}})
	}
	for b.Loop() {
		if vs := check.CheckWatch(made, made, true); len(vs) > 0 {
			b.Fatal(vs[0])
		}
	}
}
