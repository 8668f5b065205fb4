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

// TestYCSBKeysSortInRecordOrder: YCSB E's scan of n records from record s
// is the key range [key(s), key(s+n)) with page limit n, which is right
// only if key order is record order, including the records inserted after
// the load (numbered from ycsbRecords up).
func TestYCSBKeysSortInRecordOrder(t *testing.T) {
	b := &bench{run: "r1"}
	const records = 3 * ycsbRecords
	for _, tt := range []struct{ start, n int }{{0, 1}, {7, 100}, {995, 10}, {999, 100}, {ycsbRecords*2 - 50, 100}} {
		lo, hi := b.ycsbKey(tt.start), b.ycsbKey(tt.start+tt.n)
		in := 0
		for r := range records {
			if k := b.ycsbKey(r); k >= lo && k < hi {
				in++
				if r < tt.start || r >= tt.start+tt.n {
					t.Errorf("record %d (%s) falls in the scan of records [%d, %d)", r, k, tt.start, tt.start+tt.n)
				}
			}
		}
		if in != tt.n {
			t.Errorf("the scan of records [%d, %d) covers %d keys, want %d", tt.start, tt.start+tt.n, in, tt.n)
		}
	}
	if mix := ycsbMix["ycsb-e"]; mix != 0.95 {
		t.Errorf("YCSB E's share of scans is %g, want 0.95", mix)
	}
}
