package demo

import (
	"context"
	"embed"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// A scenario is a text file of steps, one per line; blank lines and lines
// starting with # are ignored. Each step is an Action in its text form:
//
//	say The three regions are connected.          narrate
//	cut us-east eu-west [both|out|in]             cut a link (out: what us-east sends is lost)
//	heal us-east eu-west                          heal it
//	delay us-east eu-west 200ms [jitter 20ms]     set a link's one-way delay, both directions
//	isolate ap-southeast                          cut a region from every other
//	split us-east,eu-west|ap-southeast            cut between the sides
//	heal-all                                      heal every link, WAN delays back
//	kill R | restart R | pause R | resume R       the region's process (SIGKILL, start, SIGSTOP, SIGCONT)
//	skew R 3s                                     restart R with its clock 3s ahead (0s: right again)
//	put alice@us-east photo "beach.jpg"           a client operation in session alice, in region us-east
//	get bob@eu-west photo
//	del alice@us-east photo
//	claim alice@us-east users/neo alice           the linearizable tier: take a unique name
//	lookup bob@eu-west users/neo
//	sleep 1s
//	wait converged [60s]                          every region applied the same writes
//	wait serving R [60s]                          R's causal tier serves again
//	wait linear R available|unavailable [60s]     R's linearizable tier serves, or refuses
//
// A client step may end with => and what it must result in: ok, fail,
// value V, not-found, owner O, or a Connect code (unavailable,
// already_exists, ...) with an optional text its message must contain:
//
//	claim bob@ap-southeast users/neo bob => unavailable "quorum"
//
// Sessions carry their causal token from step to step, so a session that
// wrote in one region and reads in another reads its own write, or gets
// the bounded `unavailable` answer while that write cannot reach it.

//go:embed scenarios/*.scenario
var shipped embed.FS

// Scenario is a parsed scenario.
type Scenario struct {
	Name  string
	Steps []Step
}

// Step is one line of a scenario.
type Step struct {
	Line   int
	Action Action
}

// ScenarioNames lists the shipped scenarios.
func ScenarioNames() []string {
	entries, _ := shipped.ReadDir("scenarios")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".scenario"))
	}
	slices.Sort(out)
	return out
}

// LoadScenario reads a shipped scenario by name, or a scenario file by path.
func LoadScenario(nameOrFile string) (*Scenario, error) {
	if slices.Contains(ScenarioNames(), nameOrFile) {
		b, err := shipped.ReadFile("scenarios/" + nameOrFile + ".scenario")
		if err != nil {
			return nil, err
		}
		return ParseScenario(nameOrFile, string(b))
	}
	b, err := os.ReadFile(nameOrFile)
	if err != nil {
		return nil, fmt.Errorf("scenario %q is neither a shipped one (%s) nor a readable file: %w", nameOrFile, strings.Join(ScenarioNames(), ", "), err)
	}
	return ParseScenario(strings.TrimSuffix(path.Base(nameOrFile), ".scenario"), string(b))
}

// ParseScenario parses a scenario's text; errors name the line.
func ParseScenario(name, text string) (*Scenario, error) {
	sc := &Scenario{Name: name}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a, err := ParseAction(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, i+1, err)
		}
		sc.Steps = append(sc.Steps, Step{Line: i + 1, Action: a})
	}
	if len(sc.Steps) == 0 {
		return nil, fmt.Errorf("%s: %w: no steps", name, ErrSyntax)
	}
	return sc, nil
}

// Check reports steps that name a region the cluster lacks.
func (sc *Scenario) Check(regions []string) error {
	for _, st := range sc.Steps {
		a := st.Action
		for _, r := range append([]string{a.Region, a.Peer}, slices.Concat(a.Groups...)...) {
			if r != "" && !slices.Contains(regions, r) {
				return fmt.Errorf("%s:%d: no region %q in this cluster (%v); the scenario needs regions %s", sc.Name, st.Line, r, regions, strings.Join(sc.Regions(), ", "))
			}
		}
	}
	return nil
}

// Regions lists the regions the scenario names.
func (sc *Scenario) Regions() []string {
	var out []string
	for _, st := range sc.Steps {
		a := st.Action
		for _, r := range append([]string{a.Region, a.Peer}, slices.Concat(a.Groups...)...) {
			if r != "" && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// ScenarioReport is how a scenario run went.
type ScenarioReport struct {
	Steps    int
	Failures []string
}

// transientRetry bounds how long a step retries a transient unavailable
// (retriesTransient), transientPause is the pause between its attempts.
const (
	transientRetry = 10 * time.Second
	transientPause = 250 * time.Millisecond
)

// retriesTransient reports whether a step that answered res is tried
// again: it expected an answer other than a refusal, got unavailable, and
// asking again cannot change what it would see. That holds for reads
// (get, lookup) and for a claim expected to find the name taken (a claim
// that commits late cannot free it); a put or a claim expected to succeed
// is never repeated, as its first attempt may still take effect.
func retriesTransient(a Action, res *Result) bool {
	if a.Expect == nil || res == nil || res.OK || res.Code != "unavailable" {
		return false
	}
	switch a.Expect.Outcome {
	case "unavailable", "fail":
		return false
	}
	return a.Op == OpGet || a.Op == OpLookup || (a.Op == OpClaim && a.Expect.Outcome == "already_exists")
}

// OK reports whether every step was done and every expectation held.
func (r *ScenarioReport) OK() bool { return len(r.Failures) == 0 }

// RunScenario runs every step, narrating to out (nil: silent). A step that
// cannot be done, or whose expectation does not hold, is a failure; the
// run goes on, so the report lists every failure. Sessions carry their
// tokens from step to step.
func RunScenario(ctx context.Context, d *Demo, sc *Scenario, out io.Writer) *ScenarioReport {
	if out == nil {
		out = io.Discard
	}
	rep := &ScenarioReport{}
	if err := sc.Check(d.Regions()); err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		return rep
	}
	tokens := map[string]string{}
	d.mu.Lock()
	d.runs++
	run := d.runs
	d.mu.Unlock()
	start := time.Now()
	d.event("say", "", "scenario "+sc.Name+" starts")
	for _, st := range sc.Steps {
		if ctx.Err() != nil {
			rep.Failures = append(rep.Failures, "interrupted: "+ctx.Err().Error())
			return rep
		}
		a := st.Action
		a.Token = tokens[a.Session]
		if a.IsClient() {
			a.lineage = fmt.Sprintf("%s/%s#%d", sc.Name, a.Session, run)
		}
		rep.Steps++
		at := fmt.Sprintf("[%5.1fs]", time.Since(start).Seconds())
		if a.Op == OpSay {
			fmt.Fprintf(out, "%s %s\n", at, a.What)
			_, _ = d.Do(ctx, a)
			continue
		}
		fmt.Fprintf(out, "%s   %s\n", at, a.String())
		res, err := d.Do(ctx, a)
		for retryUntil := time.Now().Add(transientRetry); err == nil && retriesTransient(a, res) && time.Now().Before(retryUntil); {
			// A leader election after a heal makes the linear tier
			// unavailable for a moment; a client retries it, and so does
			// a step whose answer cannot depend on whether it is retried.
			fmt.Fprintf(out, "          %s; retrying\n", res.Summary())
			select {
			case <-ctx.Done():
			case <-time.After(transientPause):
			}
			res, err = d.Do(ctx, a)
		}
		fail := func(format string, args ...any) {
			msg := fmt.Sprintf("%s:%d: %s: ", sc.Name, st.Line, a.String()) + fmt.Sprintf(format, args...)
			rep.Failures = append(rep.Failures, msg)
			fmt.Fprintf(out, "          FAILED: %s\n", fmt.Sprintf(format, args...))
		}
		if err != nil {
			fail("%v", err)
			continue
		}
		if a.IsClient() && res.Token != "" {
			tokens[a.Session] = res.Token
		}
		line := res.Summary()
		if a.IsClient() {
			line += fmt.Sprintf("   (session %s has seen %s)", a.Session, formatVector(res.Vector))
		}
		fmt.Fprintf(out, "          %s\n", line)
		switch {
		case a.Expect != nil:
			if err := a.Expect.Check(res); err != nil {
				fail("%v", err)
			}
		case a.Op == OpWait && !res.OK:
			fail("%s", res.Error)
		}
	}
	return rep
}
