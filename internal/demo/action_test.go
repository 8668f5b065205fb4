package demo

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseActionRoundTrip(t *testing.T) {
	for _, line := range []string{
		"cut us-east eu-west",
		"cut us-east eu-west out",
		"cut us-east eu-west in",
		"heal us-east eu-west",
		"delay us-east eu-west 200ms",
		"delay us-east eu-west 200ms jitter 20ms",
		"isolate ap-southeast",
		"split us-east,eu-west|ap-southeast",
		"heal-all",
		"kill eu-west",
		"restart eu-west",
		"pause eu-west",
		"resume eu-west",
		"skew eu-west 3s",
		"skew eu-west -2s",
		"put alice@us-east photo \"beach party.jpg\" => ok",
		"put alice@us-east k \"a => b\"",
		"get bob@eu-west photo => value \"beach party.jpg\"",
		"get bob@eu-west photo => not-found",
		"del alice@us-east photo => fail",
		"claim bob@ap-southeast users/neo bob => unavailable quorum",
		"lookup bob@ap-southeast users/neo => owner alice",
		"say The regions are connected.",
		"sleep 1s",
		"wait converged",
		"wait converged 30s",
		"wait serving eu-west 1m0s",
		"wait linear ap-southeast unavailable 30s",
	} {
		a, err := ParseAction(line)
		if err != nil {
			t.Errorf("ParseAction(%q): %v", line, err)
			continue
		}
		if got := a.String(); got != line {
			t.Errorf("ParseAction(%q).String() = %q", line, got)
		}
	}
}

func TestParseActionFields(t *testing.T) {
	a, err := ParseAction(`put alice@us-east "my key" "a \"quoted\" value" => value "x y"`)
	if err != nil {
		t.Fatal(err)
	}
	want := Action{Op: OpPut, Session: "alice", Region: "us-east", Key: "my key", Value: `a "quoted" value`, Expect: &Expect{Outcome: "value", Text: "x y"}}
	if a.Op != want.Op || a.Session != want.Session || a.Region != want.Region || a.Key != want.Key || a.Value != want.Value || *a.Expect != *want.Expect {
		t.Errorf("got %+v (expect %+v), want %+v", a, a.Expect, want)
	}
	d, err := ParseAction("delay a b 120ms jitter 10ms")
	if err != nil || time.Duration(d.Delay) != 120*time.Millisecond || time.Duration(d.Jitter) != 10*time.Millisecond {
		t.Errorf("delay: %+v, %v", d, err)
	}
}

func TestParseActionErrors(t *testing.T) {
	for _, tc := range []struct{ line, says string }{
		{"", "empty step"},
		{"explode us-east", "unknown step"},
		{"cut us-east", "takes REGION PEER"},
		{"cut us-east eu-west sideways", "cut direction"},
		{"delay a b soon", "not a duration"},
		{"delay a b 1s wobble 2s", "jitter"},
		{"split a,b", "at least two sides"},
		{"split a,|", "empty side"},
		{"put us-east k v", "SESSION@REGION"},
		{"put alice@us-east k", "takes SESSION@REGION KEY VALUE"},
		{"claim a@b neo alice", "NAMESPACE/NAME"},
		{"put a@b k \"unterminated", "quoted"},
		{"isolate a => ok", "only client steps"},
		{"get a@b k => value", "takes the value"},
		{"get a@b k => ok extra", "takes no text"},
		{"wait forever", "want converged"},
		{"wait linear a maybe", "available|unavailable"},
	} {
		_, err := ParseAction(tc.line)
		if err == nil {
			t.Errorf("ParseAction(%q) accepted it", tc.line)
			continue
		}
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseAction(%q) = %v, want ErrSyntax saying %q", tc.line, err, tc.says)
		}
	}
}

func TestExpectCheck(t *testing.T) {
	ok := &Result{OK: true, Found: true, Value: "v", Owner: "alice", Text: "fine"}
	notFound := &Result{OK: true}
	refused := &Result{Code: "unavailable", Error: "no quorum of voters"}
	for _, tc := range []struct {
		e    Expect
		r    *Result
		hold bool
	}{
		{Expect{Outcome: "ok"}, ok, true},
		{Expect{Outcome: "ok"}, refused, false},
		{Expect{Outcome: "fail"}, refused, true},
		{Expect{Outcome: "fail"}, ok, false},
		{Expect{Outcome: "value", Text: "v"}, ok, true},
		{Expect{Outcome: "value", Text: "w"}, ok, false},
		{Expect{Outcome: "value", Text: ""}, notFound, false},
		{Expect{Outcome: "not-found"}, notFound, true},
		{Expect{Outcome: "not-found"}, ok, false},
		{Expect{Outcome: "owner", Text: "alice"}, ok, true},
		{Expect{Outcome: "owner", Text: "bob"}, ok, false},
		{Expect{Outcome: "unavailable"}, refused, true},
		{Expect{Outcome: "unavailable", Text: "quorum"}, refused, true},
		{Expect{Outcome: "unavailable", Text: "leader"}, refused, false},
		{Expect{Outcome: "already_exists"}, refused, false},
		{Expect{Outcome: "unavailable"}, ok, false},
	} {
		err := tc.e.Check(tc.r)
		if (err == nil) != tc.hold {
			t.Errorf("%v on %s: %v, want holds=%v", tc.e, tc.r.Summary(), err, tc.hold)
		}
	}
}

func TestShippedScenariosParse(t *testing.T) {
	names := ScenarioNames()
	for _, want := range []string{"partition", "photo-acl"} {
		sc, err := LoadScenario(want)
		if err != nil {
			t.Fatalf("%s: %v (shipped: %v)", want, err, names)
		}
		if err := sc.Check([]string{"us-east", "eu-west", "ap-southeast"}); err != nil {
			t.Errorf("%s: %v", want, err)
		}
		expectations := 0
		for _, st := range sc.Steps {
			if st.Action.Expect != nil {
				expectations++
			}
		}
		if expectations < 5 {
			t.Errorf("%s checks %d expectations; a scenario that checks little proves little", want, expectations)
		}
	}
	sc, _ := LoadScenario("partition")
	if err := sc.Check([]string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "no region") {
		t.Errorf("partition on regions a, b: %v, want a missing region", err)
	}
	if _, err := LoadScenario("/no/such/file"); err == nil || !strings.Contains(err.Error(), "partition") {
		t.Errorf("a missing file: %v, want an error that lists the shipped scenarios", err)
	}
}

func TestParseScenarioNamesTheLine(t *testing.T) {
	_, err := ParseScenario("mine", "# comment\n\nsay hi\ncut a\n")
	if err == nil || !strings.Contains(err.Error(), "mine:4:") {
		t.Errorf("got %v, want an error at mine:4", err)
	}
	if _, err := ParseScenario("empty", "# nothing\n"); err == nil {
		t.Error("a scenario without steps was accepted")
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.com:0"} {
		ln, err := Listen(addr)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", addr)
		} else if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Listen(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestActionValidate(t *testing.T) {
	for _, tc := range []struct {
		a    Action
		says string
	}{
		{Action{Op: OpCut, Region: "a"}, "a region and a peer"},
		{Action{Op: OpCut, Region: "a", Peer: "b", Dir: "sideways"}, "cut direction"},
		{Action{Op: OpKill}, "a region"},
		{Action{Op: OpSplit, Groups: [][]string{{"a"}}}, "two groups"},
		{Action{Op: OpPut, Region: "a", Key: "k"}, "a session"},
		{Action{Op: OpClaim, Region: "a", Session: "s", Key: "neo", Owner: "o"}, "NAMESPACE/NAME"},
		{Action{Op: OpClaim, Region: "a", Session: "s", Key: "users/neo"}, "owner"},
	} {
		if err := tc.a.validate(); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: %v, want an error saying %q", tc.a, err, tc.says)
		}
	}
	for _, line := range []string{"cut a b out", "claim s@a users/neo o", "lookup s@a users/neo", "split a|b", "heal-all"} {
		a, err := ParseAction(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.validate(); err != nil {
			t.Errorf("%s: %v", line, err)
		}
	}
}

func TestRetriesTransient(t *testing.T) {
	unavailable := &Result{Code: "unavailable", Error: "linearizable tier unavailable here"}
	for _, tc := range []struct {
		a    Action
		res  *Result
		want bool
	}{
		{Action{Op: OpLookup, Expect: &Expect{Outcome: "owner", Text: "alice"}}, unavailable, true},
		{Action{Op: OpGet, Expect: &Expect{Outcome: "value", Text: "v"}}, unavailable, true},
		{Action{Op: OpClaim, Expect: &Expect{Outcome: "already_exists"}}, unavailable, true},
		{Action{Op: OpClaim, Expect: &Expect{Outcome: "ok"}}, unavailable, false}, // may commit late
		{Action{Op: OpPut, Expect: &Expect{Outcome: "ok"}}, unavailable, false},   // may be applied
		{Action{Op: OpGet, Expect: &Expect{Outcome: "unavailable"}}, unavailable, false},
		{Action{Op: OpGet, Expect: &Expect{Outcome: "fail"}}, unavailable, false},
		{Action{Op: OpGet}, unavailable, false},
		{Action{Op: OpGet, Expect: &Expect{Outcome: "value", Text: "v"}}, &Result{Code: "failed_precondition"}, false},
		{Action{Op: OpGet, Expect: &Expect{Outcome: "value", Text: "v"}}, &Result{OK: true}, false},
	} {
		if got := retriesTransient(tc.a, tc.res); got != tc.want {
			t.Errorf("retriesTransient(%s expecting %v, %+v) = %v, want %v", tc.a.Op, tc.a.Expect, tc.res, got, tc.want)
		}
	}
}
