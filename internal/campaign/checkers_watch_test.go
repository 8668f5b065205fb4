package campaign

import (
	"regexp"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/clocks"
)

// watchHistory is a small campaign history with watchers: us writes a1 (k)
// and a2 (an atomic write of x and y); eu, having read a1, writes b1 (k),
// so b1 depends on a1 but not on a2; a put c1 in ap whose acknowledgement
// was lost; and a refused put.
type watchHistory struct {
	*builder
	cluster uuid.UUID
}

func newWatchHistory() *watchHistory {
	return &watchHistory{builder: newBuilder(), cluster: uuid.New()}
}

func (b *watchHistory) token(vec clocks.Vector) string {
	return clocks.Token{Cluster: b.cluster, Vector: vec}.Encode()
}

// writes records the history's writes.
func (b *watchHistory) writes() {
	b.op(FPut, "s1", 1, "us", Event{Key: "k", Value: "a1"}, EventOK, Event{Version: ver("us", 1, 100), Token: b.token(clocks.Vector{"us": 1})})
	b.op(FWriteMany, "s1", 2, "us", Event{Writes: []KeyWrite{{Key: "x", Value: "a2x"}, {Key: "y", Value: "a2y"}}}, EventOK,
		Event{Version: ver("us", 2, 101), Token: b.token(clocks.Vector{"us": 2})})
	b.op(FPut, "s2", 1, "eu", Event{Key: "k", Value: "b1"}, EventOK, Event{Version: ver("eu", 1, 102), Token: b.token(clocks.Vector{"us": 1, "eu": 1})})
	b.op(FPut, "s3", 1, "ap", Event{Key: "z", Value: "c1"}, EventInfo, Event{Code: "deadline_exceeded"})
	b.op(FPut, "s4", 1, "ap", Event{Key: "z", Value: "refused"}, EventFail, Event{Code: "invalid_argument"})
}

// deliveries of the writes, as watchers see them.
var (
	evA1  = Event{Version: ver("us", 1, 100), Writes: []KeyWrite{{Key: "k", Value: "a1"}}}
	evA2  = Event{Version: ver("us", 2, 101), Writes: []KeyWrite{{Key: "x", Value: "a2x"}, {Key: "y", Value: "a2y"}}}
	evB1  = Event{Version: ver("eu", 1, 102), Writes: []KeyWrite{{Key: "k", Value: "b1"}}}
	evC1  = Event{Version: ver("ap", 1, 103), Writes: []KeyWrite{{Key: "z", Value: "c1"}}}
	evBad = Event{Version: ver("ap", 2, 104), Writes: []KeyWrite{{Key: "z", Value: "refused"}}}
)

// watcher records one watcher's history: it opens in its first region,
// then each "move:REGION" resumes there; events are delivered; done says
// whether it caught up.
func (b *watchHistory) watcher(id string, caughtUp bool, steps ...any) {
	rec := func(e Event) {
		e.Type, e.Tier, e.Workload, e.Client = EventWatch, TierCausal, "watch", id
		b.rec.Record(e)
	}
	region := "us"
	rec(Event{Phase: WatchOpen, Region: region, Token: b.token(clocks.Vector{})})
	for _, s := range steps {
		switch s := s.(type) {
		case string: // move to region s after a failed stream
			rec(Event{Phase: WatchEnd, Region: region, Code: "unavailable", Error: "killed"})
			region = s
			rec(Event{Phase: WatchOpen, Region: region})
		case Event:
			s.Phase, s.Region = WatchDeliver, region
			rec(s)
		}
	}
	done := Event{Phase: WatchDone, Region: region}
	if !caughtUp {
		done.Error = "the watcher's token did not cover the converged applied vector"
	}
	rec(done)
}

// TestWatchChecker: the campaign's watch checker accepts the delivered
// sequences a correct store may produce, across resumes in other regions,
// and catches a broken one: an event dropped, reordered, repeated, an
// atomic write split, a value altered, a refused write delivered, a
// watcher that never caught up.
func TestWatchChecker(t *testing.T) {
	split := evA2
	split.Writes = split.Writes[:1]
	altered := evB1
	altered.Writes = []KeyWrite{{Key: "k", Value: "a1"}}
	for _, tc := range []struct {
		name     string
		watchers func(b *watchHistory)
		want     []string // kinds, sorted
	}{
		{
			name: "causal orders, resumed in other regions",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, evA2, evB1, evC1)
				b.watcher("w2", true, evC1, evA1, "eu", evB1, "ap", evA2)
				b.watcher("w3", true, evA1, evC1, evB1, evA2)
			},
		},
		{
			name: "an event dropped",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, evA2, evB1, evC1)
				b.watcher("w2", true, evA1, "eu", evB1, evC1)
			},
			want: []string{"watch-loss"},
		},
		{
			name: "dropped before a resume, and the watcher not caught up",
			watchers: func(b *watchHistory) {
				b.watcher("w1", false, "eu", evB1)
			},
			want: []string{"watch-incomplete", "watch-loss"},
		},
		{
			name: "reordered: an effect before its cause",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evB1, evA1, evA2, evC1)
			},
			want: []string{"watch-order"},
		},
		{
			name: "repeated after a resume",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, evA2, "eu", evA2, evB1, evC1)
			},
			want: []string{"watch-repeat"},
		},
		{
			name: "an atomic write split across events",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, split, evB1, evC1)
			},
			want: []string{"watch-atomicity"},
		},
		{
			name: "a value altered",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, evA2, altered, evC1)
			},
			want: []string{"watch-value"},
		},
		{
			name: "a refused write delivered",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, evA2, evB1, evC1, evBad)
			},
			want: []string{"watch-unknown-write"},
		},
		{
			name: "a write of unknown outcome delivered to one watcher only",
			watchers: func(b *watchHistory) {
				b.watcher("w1", true, evA1, evA2, evB1, evC1)
				b.watcher("w2", true, evA1, evA2, evB1)
			},
			want: []string{"watch-loss"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newWatchHistory()
			b.writes()
			tc.watchers(b)
			res := RunCheckers(b.rec.History(), []Checker{WatchChecker{}})
			var got []string
			for _, a := range res[0].Findings.Anomalies {
				t.Log(a)
				got = append(got, a.Kind)
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("anomalies %v, want %v", got, tc.want)
			}
			// The history written as JSON lines says the same.
			if err := b.rec.Flush(); err != nil {
				t.Fatal(err)
			}
			h, err := ReadHistory(&b.buf)
			if err != nil {
				t.Fatal(err)
			}
			if again := kinds(RunCheckers(h, []Checker{WatchChecker{}})); len(again) != len(got) {
				t.Fatalf("after a JSON round trip: anomalies %v, want %v", again, got)
			}
		})
	}
}

// TestWatchCheckerNote: the note says what was checked.
func TestWatchCheckerNote(t *testing.T) {
	b := newWatchHistory()
	b.writes()
	b.watcher("w1", true, evA1, evA2, evB1, evC1)
	b.watcher("w2", true, evC1, evA1, "eu", evB1, "ap", evA2)
	f := WatchChecker{}.Check(b.rec.History())
	if len(f.Anomalies) > 0 {
		t.Fatalf("anomalies in a correct history: %v", f.Anomalies)
	}
	want := regexp.MustCompile(`^2 watchers, 8 events checked against 4 writes made; 2 resumes \(2 in another region, 2 after the stream failed\); 2 of 2 caught up`)
	if len(f.Notes) != 1 || !want.MatchString(f.Notes[0]) {
		t.Fatalf("notes %q, want one matching %s", f.Notes, want)
	}
	if f := (WatchChecker{}).Check(&History{}); len(f.Anomalies) > 0 || len(f.Notes) != 1 {
		t.Fatalf("a history without watchers: %+v, want one note", f)
	}
}
