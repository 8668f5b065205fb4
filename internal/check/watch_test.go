package check_test

import (
	"testing"

	"github.com/causewaydb/causeway/internal/check"
)

func ww(origin string, seq uint64, vec map[string]uint64, keys ...string) check.WatchWrite {
	v := map[string]uint64{origin: seq}
	for k, s := range vec {
		v[k] = s
	}
	return check.WatchWrite{Origin: origin, Seq: seq, Vector: v, Keys: keys}
}

func TestCheckWatch(t *testing.T) {
	a1 := ww("a", 1, nil, "k1")
	a2 := ww("a", 2, nil, "k2", "k3") // an atomic write of two keys
	b1 := ww("b", 1, map[string]uint64{"a": 1}, "k1")
	c1 := ww("c", 1, nil, "k4") // concurrent with everything
	made := []check.WatchWrite{a1, a2, b1, c1}
	split := a2
	split.Keys = []string{"k2"}
	cases := []struct {
		name      string
		delivered []check.WatchWrite
		complete  bool
		want      string // violation kind; "" for none
	}{
		{"causal order", []check.WatchWrite{a1, c1, b1, a2}, true, ""},
		{"another linear extension", []check.WatchWrite{c1, a1, a2, b1}, true, ""},
		{"prefix, incomplete", []check.WatchWrite{a1, b1}, false, ""},
		{"repeat", []check.WatchWrite{a1, b1, a2, c1, a2}, true, check.KindWatchRepeat},
		{"lost at the end", []check.WatchWrite{a1, b1, a2}, true, check.KindWatchLoss},
		{"gap before a dependent", []check.WatchWrite{b1}, false, check.KindWatchLoss},
		{"dependency after dependent", []check.WatchWrite{b1, a1, a2, c1}, true, check.KindWatchOrder},
		{"origin order", []check.WatchWrite{a2, a1, b1, c1}, true, check.KindWatchOrder},
		{"split atomic write", []check.WatchWrite{a1, split, b1, c1}, true, check.KindWatchAtomicity},
		{"invented write", []check.WatchWrite{a1, ww("z", 1, nil, "k1")}, false, check.KindWatchUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := check.CheckWatch(c.delivered, made, c.complete)
			if c.want == "" {
				if len(vs) > 0 {
					t.Fatalf("violations for a correct history: %v", vs)
				}
				return
			}
			for _, v := range vs {
				if v.Kind == c.want {
					return
				}
			}
			t.Fatalf("%s not reported; got %v", c.want, vs)
		})
	}
}
