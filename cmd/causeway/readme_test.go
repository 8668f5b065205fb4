//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/pki"
	"github.com/causewaydb/causeway/internal/supervisor"
)

// The README runs as written. TestREADME reads every ```sh block of
// README.md and runs its commands in order, as a person following it would,
// against what the block's marker (an HTML comment on the line before the
// block, invisible when rendered) names:
//
//	<!-- readme-test: run node -->     one node, as `make run` starts it (127.0.0.1:7070)
//	<!-- readme-test: run cluster -->  `causeway cluster`, as `make cluster` starts it (7071-7073)
//	<!-- readme-test: run by-hand -->  nothing: the blocks start their own nodes (7071-7073)
//	<!-- readme-test: skip REASON -->  not run, for the reason given
//
// A block without a marker fails the test, so a new example cannot escape
// it. Each context has one bash session (shell variables carry from block
// to block) in a directory of its own holding .bin/causeway, and its own
// ports: the README's 127.0.0.1 addresses are rewritten to them. `make`
// lines name what the context provides and are not run.
//
// What is checked, per command: the exit status (0; the N of a trailing
// "# exit status N"; non-zero when the shown output is an error), and the
// shape of the output shown in the comment lines under it: the text must
// appear, spaces aside, "..." standing for anything and every number for
// any number. A command that should succeed and answers
// `unavailable` is retried for a while, as its message tells a person to
// (the linearizable tier electing a leader after a heal, a joining region).
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and two 3-region clusters")
	}
	src, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(src))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	contexts := map[string]*readmeContext{}
	for _, b := range blocks {
		if b.skip != "" {
			continue
		}
		c := contexts[b.context]
		if c == nil {
			c = startReadmeContext(t, b.context, exe)
			contexts[b.context] = c
		}
		for _, cmd := range b.commands {
			c.run(t, b, cmd)
			ran++
		}
	}
	t.Logf("ran %d commands of %d README blocks", ran, len(blocks))
	if ran < 20 {
		t.Fatalf("ran %d README commands; the README's examples were not found", ran)
	}
}

type readmeBlock struct {
	line     int // of the opening fence
	context  string
	skip     string
	commands []readmeCommand
}

type readmeCommand struct {
	line     int
	text     string // the command, continuation lines joined
	wantCode int    // -1: any non-zero
	want     []string
	make     bool // a `make` line: what the context provides
}

var (
	readmeMarker     = regexp.MustCompile(`^<!-- readme-test: (run (node|cluster|by-hand)|skip (.+)) -->$`)
	readmeExitStatus = regexp.MustCompile(`exit status (\d+)`)
	knownMake        = map[string]bool{"build": true, "run": true, "cluster": true, "test": true, "demo": true}
)

// readmeBlocks parses the ```sh blocks of a README and their markers.
func readmeBlocks(src string) ([]readmeBlock, error) {
	lines := strings.Split(src, "\n")
	var out []readmeBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		b := readmeBlock{line: i + 1}
		m := []string(nil)
		if i > 0 {
			m = readmeMarker.FindStringSubmatch(strings.TrimSpace(lines[i-1]))
		}
		if m == nil {
			return nil, fmt.Errorf("README.md:%d: a sh block without a <!-- readme-test: run CONTEXT --> or <!-- readme-test: skip REASON --> marker on the line before it", i+1)
		}
		b.context, b.skip = m[2], m[3]
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		cmds, err := readmeCommands(lines[i+1:end], i+2)
		if err != nil {
			return nil, err
		}
		b.commands = cmds
		out = append(out, b)
		i = end
	}
	return out, nil
}

func readmeCommands(lines []string, first int) ([]readmeCommand, error) {
	var out []readmeCommand
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "#"):
			if len(out) == 0 {
				return nil, fmt.Errorf("README.md:%d: output shown before any command", first+i)
			}
			last := &out[len(out)-1]
			last.want = append(last.want, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		}
		c := readmeCommand{line: first + i}
		text := line
		for strings.HasSuffix(strings.TrimRight(text, " "), "\\") && i+1 < len(lines) {
			i++
			text = strings.TrimSuffix(strings.TrimRight(text, " "), "\\") + " " + strings.TrimSpace(lines[i])
		}
		text, comment := splitComment(text)
		c.text = strings.TrimSpace(text)
		if m := readmeExitStatus.FindStringSubmatch(comment); m != nil {
			c.wantCode, _ = strconv.Atoi(m[1])
		}
		if f := strings.Fields(c.text); len(f) > 0 && f[0] == "make" {
			if len(f) != 2 || !knownMake[f[1]] {
				return nil, fmt.Errorf("README.md:%d: %q: the README test knows what `make %s` provides only for %v", c.line, c.text, strings.Join(f[1:], " "), knownMake)
			}
			c.make = true
		}
		out = append(out, c)
	}
	for i := range out {
		if len(out[i].want) > 0 && out[i].wantCode == 0 && strings.HasPrefix(out[i].want[0], "causeway ") &&
			strings.Contains(strings.SplitN(out[i].want[0], " ", 3)[1], ":") {
			out[i].wantCode = -1 // the shown output is the CLI's error line
		}
	}
	return out, nil
}

// splitComment splits a shell line at its first # outside quotes that
// starts a word.
func splitComment(s string) (code, comment string) {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// readmeContext is one bash session and the ports its README addresses
// stand for.
type readmeContext struct {
	name  string
	dir   string
	ports map[string]string // README port -> this context's
	bash  *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	seq   int
}

func startReadmeContext(t *testing.T, name, exe string) *readmeContext {
	t.Helper()
	c := &readmeContext{name: name, dir: t.TempDir(), ports: map[string]string{}}
	// .bin/causeway runs this test binary as causeway (TestMain).
	if err := os.MkdirAll(filepath.Join(c.dir, ".bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", runMainEnv, exe)
	if err := os.WriteFile(filepath.Join(c.dir, ".bin", "causeway"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	// A fresh user: a home of its own (the default session file is under
	// it) and no CAUSEWAY_ variables.
	env := append(slicesWithoutPrefix(os.Environ(), "CAUSEWAY_", "HOME="), "HOME="+c.dir)

	switch name {
	case "node":
		base := freePortRange(t, 1)
		c.ports["7070"] = itoa(base)
		c.start(t, env, ".bin/causeway", "serve", "--region", "local", "--data", filepath.Join(c.dir, "data"), "--listen", "127.0.0.1:"+itoa(base))
		awaitReady(t, "127.0.0.1:"+itoa(base), 30*time.Second)
		env = append(env, "CAUSEWAY_ADDR=127.0.0.1:"+itoa(base)) // the CLI's default, 127.0.0.1:7070
	case "cluster":
		base := freePortRange(t, 3)
		c.mapPorts(base)
		data := filepath.Join(c.dir, "data", "cluster")
		c.start(t, env, ".bin/causeway", "cluster", "--data", data, "--base-port", itoa(base))
		// The cluster runs with TLS; the README's block exports what the
		// CLI needs to talk to it.
		for i := range 3 {
			awaitReadyTLS(t, filepath.Join(data, "certs"), "127.0.0.1:"+itoa(base+i), 60*time.Second)
		}
	case "by-hand":
		c.mapPorts(freePortRange(t, 3))
	}

	c.bash = exec.Command("bash", "--noprofile", "--norc")
	c.bash.Dir, c.bash.Env = c.dir, env
	c.bash.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if c.in, err = c.bash.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.bash.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.bash.Stderr = os.Stderr
	if err := c.bash.Start(); err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(stdout)
	t.Cleanup(func() {
		// The bash session and every process a block started in the
		// background share its process group.
		_ = syscall.Kill(-c.bash.Process.Pid, syscall.SIGKILL)
		_ = c.bash.Wait()
	})
	return c
}

func slicesWithoutPrefix(env []string, prefixes ...string) []string {
	out := env[:0:0]
	for _, e := range env {
		keep := true
		for _, p := range prefixes {
			keep = keep && !strings.HasPrefix(e, p)
		}
		if keep {
			out = append(out, e)
		}
	}
	return out
}

// mapPorts maps the README's three regions (API 7071-7073, gossip +100,
// Raft +200) onto base.
func (c *readmeContext) mapPorts(base int) {
	for i := range 3 {
		for _, off := range []int{0, 100, 200} {
			c.ports[itoa(7071+i+off)] = itoa(base + i + off)
		}
	}
}

// start runs a process the context provides (what a make target starts),
// in its own process group, stopped when the test ends.
func (c *readmeContext) start(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.dir, args[0]), args[1:]...)
	cmd.Dir, cmd.Env = c.dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s (%s) output:\n%s", strings.Join(args, " "), c.name, log)
		}
	})
}

var readmeAddr = regexp.MustCompile(`127\.0\.0\.1:(\d{4})\b`)

// rewrite replaces the README's addresses with this context's.
func (c *readmeContext) rewrite(t *testing.T, cmd readmeCommand) string {
	t.Helper()
	return readmeAddr.ReplaceAllStringFunc(cmd.text, func(addr string) string {
		port := strings.TrimPrefix(addr, "127.0.0.1:")
		mapped, ok := c.ports[port]
		if !ok {
			t.Fatalf("README.md:%d: address %s is not one the %s context provides (%v)", cmd.line, addr, c.name, c.ports)
		}
		return "127.0.0.1:" + mapped
	})
}

// run runs one command in the context's bash session and checks it.
func (c *readmeContext) run(t *testing.T, b readmeBlock, cmd readmeCommand) {
	t.Helper()
	if cmd.make {
		return
	}
	text := c.rewrite(t, cmd)
	where := fmt.Sprintf("README.md:%d (%s): %s", cmd.line, c.name, cmd.text)
	if strings.HasSuffix(text, "&") {
		// A node started in the background: the README's reader waits
		// until it serves before typing the next command.
		c.exec(t, text)
		if m := regexp.MustCompile(`--listen (127\.0\.0\.1:\d+)`).FindStringSubmatch(text); m != nil {
			awaitReady(t, m[1], 90*time.Second)
		}
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out := c.exec(t, text)
		ok := code == cmd.wantCode || (cmd.wantCode == -1 && code != 0)
		if !ok && cmd.wantCode == 0 && strings.Contains(out, "unavailable") && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond) // a retry interval, as a person would
			continue                           // retryable, as the message says
		}
		if !ok {
			t.Fatalf("%s\nexit status %d, want %s; output:\n%s", where, code, wantCodeString(cmd.wantCode), out)
		}
		if len(cmd.want) > 0 {
			want := strings.Join(cmd.want, " ")
			if !shapeRegexp(want).MatchString(noSpace(out)) {
				t.Fatalf("%s\noutput does not have the shape the README shows:\n  shown: %s\n  got:   %s", where, want, collapse(out))
			}
		}
		return
	}
}

func wantCodeString(code int) string {
	if code == -1 {
		return "non-zero"
	}
	return itoa(code)
}

// exec runs text in the bash session and returns its exit status and
// combined output.
func (c *readmeContext) exec(t *testing.T, text string) (int, string) {
	t.Helper()
	c.seq++
	outFile := filepath.Join(c.dir, fmt.Sprintf(".readme-out.%d", c.seq))
	var script string
	if strings.HasSuffix(text, "&") {
		script = fmt.Sprintf("%s >%q 2>&1 &\necho \"##done %d 0\"\n", strings.TrimSuffix(text, "&"), outFile, c.seq)
	} else {
		script = fmt.Sprintf("{ %s\n} >%q 2>&1 </dev/null\necho \"##done %d $?\"\n", text, outFile, c.seq)
	}
	if _, err := io.WriteString(c.in, script); err != nil {
		t.Fatalf("bash session (%s): %v", c.name, err)
	}
	done := fmt.Sprintf("##done %d ", c.seq)
	for c.out.Scan() {
		line := c.out.Text()
		if !strings.HasPrefix(line, done) {
			continue
		}
		code, _ := strconv.Atoi(strings.TrimPrefix(line, done))
		out, _ := os.ReadFile(outFile)
		return code, string(out)
	}
	t.Fatalf("bash session (%s) ended while running %q: %v", c.name, text, c.out.Err())
	return 0, ""
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// noSpace drops every space: protojson varies the spaces it prints
// between tokens on purpose, and a shape does not depend on them.
func noSpace(s string) string { return strings.Join(strings.Fields(s), "") }

var shapeNumber = regexp.MustCompile(`\d+`)

// shapeRegexp turns shown output into a pattern over output without
// spaces: "..." for anything, any number for every number.
func shapeRegexp(shown string) *regexp.Regexp {
	parts := strings.Split(noSpace(shown), "...")
	for i, p := range parts {
		parts[i] = shapeNumber.ReplaceAllString(regexp.QuoteMeta(p), `\d+`)
	}
	return regexp.MustCompile(strings.Join(parts, ".*?"))
}

// awaitReady waits until the node at addr serves clients (GET /readyz).
// awaitReadyTLS waits until the node at addr, which runs with TLS on the
// certificates `causeway cluster` creates in certsDir, serves clients.
func awaitReadyTLS(t *testing.T, certsDir, addr string, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	// The cluster writes its CA before it starts any region.
	err := supervisor.Poll(ctx, limit, func(context.Context) (bool, string) {
		_, err := os.Stat(filepath.Join(certsDir, pki.ClientCertFile(supervisor.AdminClient)))
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		t.Fatalf("no admin certificate in %s: %v", certsDir, err)
	}
	cfg, err := pki.ClientTLS(certsDir, supervisor.AdminClient)
	if err != nil {
		t.Fatal(err)
	}
	client := tlsHTTPClient(cfg)
	defer client.CloseIdleConnections()
	awaitReadyz(ctx, t, client, "https://"+addr)
}

func awaitReady(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	awaitReadyz(ctx, t, &http.Client{Timeout: time.Second}, "http://"+addr)
}
