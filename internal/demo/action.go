package demo

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The operations of an Action. Faults and heals change the cluster; client
// operations act through the public API of one region, in a session;
// script operations only make sense in a scenario.
const (
	OpCut     = "cut"      // cut REGION PEER [both|out|in]
	OpHeal    = "heal"     // heal REGION PEER
	OpDelay   = "delay"    // delay REGION PEER DELAY [jitter JITTER]
	OpIsolate = "isolate"  // isolate REGION
	OpSplit   = "split"    // split A,B|C
	OpHealAll = "heal-all" // heal-all
	OpKill    = "kill"     // kill REGION (SIGKILL)
	OpRestart = "restart"  // restart REGION
	OpPause   = "pause"    // pause REGION (SIGSTOP)
	OpResume  = "resume"   // resume REGION (SIGCONT)
	OpSkew    = "skew"     // skew REGION DURATION (restarts it with its clock off by DURATION; 0 clears)

	OpPut    = "put"    // put SESSION@REGION KEY VALUE
	OpGet    = "get"    // get SESSION@REGION KEY
	OpDelete = "del"    // del SESSION@REGION KEY
	OpClaim  = "claim"  // claim SESSION@REGION NAMESPACE/NAME OWNER
	OpLookup = "lookup" // lookup SESSION@REGION NAMESPACE/NAME

	OpSay   = "say"   // say TEXT
	OpSleep = "sleep" // sleep DURATION
	OpWait  = "wait"  // wait converged [LIMIT] | wait serving REGION [LIMIT] | wait linear REGION available|unavailable [LIMIT]
)

// Directions of a cut, as seen from Action.Region.
const (
	DirBoth = "both"
	DirOut  = "out" // what Region sends to Peer is lost
	DirIn   = "in"  // what Peer sends to Region is lost
)

// Action is one thing a person, a scenario or `causeway demo do` asks the
// demo to do. Its text form (String, ParseAction) is one line of a
// scenario; see the package documentation of the scenario format in
// scenario.go for every form.
type Action struct {
	Op     string `json:"op"`
	Region string `json:"region,omitempty"`
	// Peer is the other end of a link (cut, heal, delay).
	Peer string `json:"peer,omitempty"`
	// Dir is the direction of a cut: both (default), out or in.
	Dir string `json:"dir,omitempty"`
	// Groups are the sides of a split.
	Groups [][]string `json:"groups,omitempty"`
	// Delay is a link's one-way delay (delay), a clock skew (skew), a
	// pause (sleep) or a wait's limit (wait; 0: 60s).
	Delay  Duration `json:"delay,omitempty"`
	Jitter Duration `json:"jitter,omitempty"`
	// Session names the client session of a client operation; Token is its
	// causal token (the dashboard sends the one it holds; a scenario's
	// runner fills it in).
	Session string `json:"session,omitempty"`
	Token   string `json:"token,omitempty"`
	// Key is the key (put, get, del) or NAMESPACE/NAME (claim, lookup).
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
	Owner string `json:"owner,omitempty"`
	// What is what a wait waits for: converged, serving, linear-available
	// or linear-unavailable; or the text a say says.
	What string `json:"what,omitempty"`
	// Expect, in a scenario, is what the step must result in.
	Expect *Expect `json:"expect,omitempty"`

	// lineage, when set, names the session in the history instead of
	// Session: a scenario run twice reuses its session names with fresh
	// tokens, and the checkers must see two sessions, not one that forgot
	// its past.
	lineage string
}

// validate reports a missing argument of an action built from JSON (the
// text form cannot lack one).
func (a Action) validate() error {
	need := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("%s needs %s", a.Op, what)
		}
		return nil
	}
	switch a.Op {
	case OpCut, OpHeal, OpDelay:
		if err := need(a.Region != "" && a.Peer != "", "a region and a peer"); err != nil {
			return err
		}
	case OpIsolate, OpKill, OpRestart, OpPause, OpResume, OpSkew:
		return need(a.Region != "", "a region")
	case OpSplit:
		return need(len(a.Groups) >= 2, "at least two groups of regions")
	case OpPut, OpGet, OpDelete, OpClaim, OpLookup:
		if err := need(a.Region != "" && a.Session != "" && a.Key != "", "a region, a session and a key"); err != nil {
			return err
		}
		if a.Op == OpClaim || a.Op == OpLookup {
			return need(strings.Contains(a.Key, "/") && (a.Op == OpLookup || a.Owner != ""), "NAMESPACE/NAME (and an owner to claim it for)")
		}
	}
	if a.Op == OpCut && a.Dir != "" && a.Dir != DirBoth && a.Dir != DirOut && a.Dir != DirIn {
		return fmt.Errorf("cut direction %q: want both, out or in", a.Dir)
	}
	return nil
}

// Duration is a time.Duration written as text ("40ms") in JSON.
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration as time.ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// Expect is what a scenario step must result in.
type Expect struct {
	// Outcome is ok, fail (any error), value (found, with Text as its
	// value), not-found, owner (lookup found Text), or a Connect code
	// (unavailable, already_exists, ...), in which case Text, if set,
	// must appear in the error message.
	Outcome string `json:"outcome"`
	Text    string `json:"text,omitempty"`
}

func (e Expect) String() string {
	if e.Text == "" {
		return e.Outcome
	}
	return e.Outcome + " " + quote(e.Text)
}

// Check reports how r falls short of e (nil when it does not).
func (e Expect) Check(r *Result) error {
	switch e.Outcome {
	case "ok":
		if !r.OK {
			return fmt.Errorf("want ok, got %s", r.Summary())
		}
	case "fail":
		if r.OK {
			return fmt.Errorf("want a failure, got %s", r.Summary())
		}
	case "value":
		if !r.OK || !r.Found || r.Value != e.Text {
			return fmt.Errorf("want value %s, got %s", quote(e.Text), r.Summary())
		}
	case "not-found":
		if !r.OK || r.Found {
			return fmt.Errorf("want not found, got %s", r.Summary())
		}
	case "owner":
		if !r.OK || r.Owner != e.Text {
			return fmt.Errorf("want owner %s, got %s", quote(e.Text), r.Summary())
		}
	default:
		if r.OK || r.Code != e.Outcome {
			return fmt.Errorf("want %s, got %s", e.Outcome, r.Summary())
		}
		if e.Text != "" && !strings.Contains(r.Error, e.Text) {
			return fmt.Errorf("want %s saying %s, got %s", e.Outcome, quote(e.Text), r.Summary())
		}
	}
	return nil
}

// client operations take SESSION@REGION.
var clientOps = []string{OpPut, OpGet, OpDelete, OpClaim, OpLookup}

// IsClient reports whether the action is a client operation.
func (a Action) IsClient() bool { return slices.Contains(clientOps, a.Op) }

// String is the action's text form, one scenario line (without the token,
// which belongs to the session, not to the step).
func (a Action) String() string {
	var parts []string
	switch a.Op {
	case OpCut:
		parts = []string{a.Op, a.Region, a.Peer}
		if a.Dir != "" && a.Dir != DirBoth {
			parts = append(parts, a.Dir)
		}
	case OpHeal:
		parts = []string{a.Op, a.Region, a.Peer}
	case OpDelay:
		parts = []string{a.Op, a.Region, a.Peer, a.Delay.String()}
		if a.Jitter != 0 {
			parts = append(parts, "jitter", a.Jitter.String())
		}
	case OpIsolate, OpKill, OpRestart, OpPause, OpResume:
		parts = []string{a.Op, a.Region}
	case OpSkew:
		parts = []string{a.Op, a.Region, a.Delay.String()}
	case OpSplit:
		sides := make([]string, len(a.Groups))
		for i, g := range a.Groups {
			sides[i] = strings.Join(g, ",")
		}
		parts = []string{a.Op, strings.Join(sides, "|")}
	case OpHealAll:
		parts = []string{a.Op}
	case OpPut:
		parts = []string{a.Op, a.Session + "@" + a.Region, quote(a.Key), quote(a.Value)}
	case OpGet, OpDelete, OpLookup:
		parts = []string{a.Op, a.Session + "@" + a.Region, quote(a.Key)}
	case OpClaim:
		parts = []string{a.Op, a.Session + "@" + a.Region, quote(a.Key), quote(a.Owner)}
	case OpSay:
		parts = []string{a.Op, a.What}
	case OpSleep:
		parts = []string{a.Op, a.Delay.String()}
	case OpWait:
		parts = []string{a.Op}
		switch a.What {
		case "converged":
			parts = append(parts, "converged")
		case "serving":
			parts = append(parts, "serving", a.Region)
		case "linear-available", "linear-unavailable":
			parts = append(parts, "linear", a.Region, strings.TrimPrefix(a.What, "linear-"))
		}
		if a.Delay != 0 {
			parts = append(parts, a.Delay.String())
		}
	default:
		parts = []string{a.Op}
	}
	s := strings.Join(parts, " ")
	if a.Expect != nil {
		s += " => " + a.Expect.String()
	}
	return s
}

// quote writes s bare when it is one plain word, else in double quotes.
func quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r == '"' || r == '\\' || r == '#' || r == '=' || !unicode.IsPrint(r)
	}) {
		return s
	}
	return strconv.Quote(s)
}

// ErrSyntax is wrapped by every error of ParseAction and ParseScenario.
var ErrSyntax = errors.New("scenario syntax")

// ParseAction reads one action from its text form. Regions are not
// checked against a cluster here; Demo.Do does that.
func ParseAction(line string) (Action, error) {
	body, expect, hasExpect := cutExpect(line)
	words, err := splitWords(body)
	if err != nil {
		return Action{}, err
	}
	if len(words) == 0 {
		return Action{}, fmt.Errorf("%w: empty step", ErrSyntax)
	}
	a := Action{Op: words[0]}
	args := words[1:]
	need := func(min, max int, form string) error {
		if len(args) < min || len(args) > max {
			return fmt.Errorf("%w: %s takes %s", ErrSyntax, a.Op, form)
		}
		return nil
	}
	dur := func(s, what string) (Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %q is not a duration (like 40ms or 2s)", ErrSyntax, what, s)
		}
		return Duration(d), nil
	}
	switch a.Op {
	case OpCut:
		if err := need(2, 3, "REGION PEER [both|out|in]"); err != nil {
			return a, err
		}
		a.Region, a.Peer, a.Dir = args[0], args[1], DirBoth
		if len(args) == 3 {
			a.Dir = args[2]
			if a.Dir != DirBoth && a.Dir != DirOut && a.Dir != DirIn {
				return a, fmt.Errorf("%w: cut direction %q: want both, out (what REGION sends is lost) or in (what it receives is lost)", ErrSyntax, a.Dir)
			}
		}
	case OpHeal:
		if err := need(2, 2, "REGION PEER"); err != nil {
			return a, err
		}
		a.Region, a.Peer = args[0], args[1]
	case OpDelay:
		if err := need(3, 5, "REGION PEER DELAY [jitter JITTER]"); err != nil {
			return a, err
		}
		a.Region, a.Peer = args[0], args[1]
		if a.Delay, err = dur(args[2], "delay"); err != nil {
			return a, err
		}
		if len(args) > 3 {
			if len(args) != 5 || args[3] != "jitter" {
				return a, fmt.Errorf("%w: delay takes REGION PEER DELAY [jitter JITTER]", ErrSyntax)
			}
			if a.Jitter, err = dur(args[4], "jitter"); err != nil {
				return a, err
			}
		}
	case OpIsolate, OpKill, OpRestart, OpPause, OpResume:
		if err := need(1, 1, "REGION"); err != nil {
			return a, err
		}
		a.Region = args[0]
	case OpSkew:
		if err := need(2, 2, "REGION DURATION (like 3s or -2s; 0s clears it)"); err != nil {
			return a, err
		}
		a.Region = args[0]
		if a.Delay, err = dur(args[1], "skew"); err != nil {
			return a, err
		}
	case OpSplit:
		if err := need(1, 1, "A,B|C (regions on each side, sides separated by |)"); err != nil {
			return a, err
		}
		for side := range strings.SplitSeq(args[0], "|") {
			var g []string
			for r := range strings.SplitSeq(side, ",") {
				if r = strings.TrimSpace(r); r != "" {
					g = append(g, r)
				}
			}
			if len(g) == 0 {
				return a, fmt.Errorf("%w: split %q has an empty side", ErrSyntax, args[0])
			}
			a.Groups = append(a.Groups, g)
		}
		if len(a.Groups) < 2 {
			return a, fmt.Errorf("%w: split %q: want at least two sides separated by |", ErrSyntax, args[0])
		}
	case OpHealAll:
		if err := need(0, 0, "no arguments"); err != nil {
			return a, err
		}
	case OpPut, OpGet, OpDelete, OpClaim, OpLookup:
		forms := map[string]string{OpPut: "SESSION@REGION KEY VALUE", OpGet: "SESSION@REGION KEY", OpDelete: "SESSION@REGION KEY",
			OpClaim: "SESSION@REGION NAMESPACE/NAME OWNER", OpLookup: "SESSION@REGION NAMESPACE/NAME"}
		n := map[string]int{OpPut: 3, OpGet: 2, OpDelete: 2, OpClaim: 3, OpLookup: 2}[a.Op]
		if err := need(n, n, forms[a.Op]); err != nil {
			return a, err
		}
		session, region, ok := strings.Cut(args[0], "@")
		if !ok || session == "" || region == "" {
			return a, fmt.Errorf("%w: %s: %q: want SESSION@REGION, like alice@us-east", ErrSyntax, a.Op, args[0])
		}
		a.Session, a.Region, a.Key = session, region, args[1]
		switch a.Op {
		case OpPut:
			a.Value = args[2]
		case OpClaim:
			a.Owner = args[2]
		}
		if (a.Op == OpClaim || a.Op == OpLookup) && !strings.Contains(a.Key, "/") {
			return a, fmt.Errorf("%w: %s: %q: want NAMESPACE/NAME, like users/neo", ErrSyntax, a.Op, a.Key)
		}
	case OpSay:
		if len(args) == 0 {
			return a, fmt.Errorf("%w: say takes the text to say", ErrSyntax)
		}
		a.What = strings.Join(args, " ")
	case OpSleep:
		if err := need(1, 1, "DURATION"); err != nil {
			return a, err
		}
		if a.Delay, err = dur(args[0], "sleep"); err != nil {
			return a, err
		}
	case OpWait:
		if len(args) == 0 {
			return a, fmt.Errorf("%w: wait takes converged, serving REGION or linear REGION available|unavailable, then an optional limit", ErrSyntax)
		}
		rest := args[1:]
		switch args[0] {
		case "converged":
			a.What = "converged"
		case "serving":
			if len(rest) == 0 {
				return a, fmt.Errorf("%w: wait serving takes REGION", ErrSyntax)
			}
			a.What, a.Region, rest = "serving", rest[0], rest[1:]
		case "linear":
			if len(rest) < 2 || (rest[1] != "available" && rest[1] != "unavailable") {
				return a, fmt.Errorf("%w: wait linear takes REGION available|unavailable", ErrSyntax)
			}
			a.What, a.Region, rest = "linear-"+rest[1], rest[0], rest[2:]
		default:
			return a, fmt.Errorf("%w: wait %q: want converged, serving or linear", ErrSyntax, args[0])
		}
		if len(rest) > 1 {
			return a, fmt.Errorf("%w: wait: unexpected %q", ErrSyntax, rest[1])
		}
		if len(rest) == 1 {
			if a.Delay, err = dur(rest[0], "wait limit"); err != nil {
				return a, err
			}
		}
	default:
		return a, fmt.Errorf("%w: unknown step %q (want one of cut, heal, delay, isolate, split, heal-all, kill, restart, pause, resume, skew, put, get, del, claim, lookup, say, sleep, wait)", ErrSyntax, a.Op)
	}
	if hasExpect {
		if !a.IsClient() {
			return a, fmt.Errorf("%w: only client steps (put, get, del, claim, lookup) take => EXPECTATION", ErrSyntax)
		}
		words, err := splitWords(expect)
		if err != nil {
			return a, err
		}
		if len(words) == 0 || len(words) > 2 {
			return a, fmt.Errorf("%w: => takes an outcome (ok, fail, value V, not-found, owner O, or an error code like unavailable) and an optional text", ErrSyntax)
		}
		e := &Expect{Outcome: words[0]}
		if len(words) == 2 {
			e.Text = words[1]
		}
		if (e.Outcome == "value" || e.Outcome == "owner") && len(words) != 2 {
			return a, fmt.Errorf("%w: => %s takes the %s expected", ErrSyntax, e.Outcome, e.Outcome)
		}
		if (e.Outcome == "ok" || e.Outcome == "fail" || e.Outcome == "not-found") && len(words) != 1 {
			return a, fmt.Errorf("%w: => %s takes no text", ErrSyntax, e.Outcome)
		}
		a.Expect = e
	}
	return a, nil
}

// splitWords splits a line into words; a word in double quotes may hold
// spaces and Go escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	for {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		if s == "" {
			return words, nil
		}
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%w: unterminated or malformed quoted text: %s", ErrSyntax, s)
			}
			w, _ := strconv.Unquote(q)
			words = append(words, w)
			s = s[len(q):]
			continue
		}
		end := strings.IndexFunc(s, unicode.IsSpace)
		if end < 0 {
			end = len(s)
		}
		words = append(words, s[:end])
		s = s[end:]
	}
}

// cutExpect splits a line at its first "=>" outside double quotes.
func cutExpect(line string) (body, expect string, found bool) {
	inQuote := false
	for i := 0; i < len(line); i++ {
		switch {
		case inQuote && line[i] == '\\':
			i++
		case line[i] == '"':
			inQuote = !inQuote
		case !inQuote && strings.HasPrefix(line[i:], "=>"):
			return line[:i], line[i+2:], true
		}
	}
	return line, "", false
}
