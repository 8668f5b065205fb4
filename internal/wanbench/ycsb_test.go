package wanbench

import "testing"

// TestZipfianIsSkewed checks the generator's shape, not its speed: with
// constant 0.99 over 1000 items, item 0 is drawn about 1/zeta(1000) =
// 13% of the time and the top 10 items about 39%, while every draw stays
// in range.
func TestZipfianIsSkewed(t *testing.T) {
	z := newZipfian(ycsbRecords, ycsbZipfian, ycsbZeta, 42)
	const draws = 200_000
	counts := make([]int, ycsbRecords)
	for range draws {
		i := z.next()
		if i < 0 || i >= ycsbRecords {
			t.Fatalf("draw %d out of [0, %d)", i, ycsbRecords)
		}
		counts[i]++
	}
	top, top10 := float64(counts[0])/draws, 0.0
	for _, c := range counts[:10] {
		top10 += float64(c) / draws
	}
	if top < 0.11 || top > 0.15 {
		t.Errorf("item 0 drawn %.3f of the time, want about 0.13", top)
	}
	if top10 < 0.35 || top10 > 0.43 {
		t.Errorf("top 10 items drawn %.3f of the time, want about 0.39", top10)
	}
	seen := map[int]bool{}
	for r := range 100 {
		seen[scrambled(r)] = true
	}
	if len(seen) < 90 {
		t.Errorf("scrambling maps the 100 most popular ranks to only %d records", len(seen))
	}
}
