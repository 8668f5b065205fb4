package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// runMainEnv, set to 1 in a child's environment, makes the test binary run
// causeway's own main with the child's arguments instead of the tests. Tests
// start the real `causeway serve` that way, as a separate process they can
// SIGKILL, without building the binary first.
const runMainEnv = "CAUSEWAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		// The testing flags are parsed by m.Run, which never runs here, so
		// os.Args[1:] are exactly the causeway arguments the parent passed.
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cliResult is what one in-process run of the causeway command produced.
type cliResult struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("causeway %s\nexit status %d\nstdout:\n%s\nstderr:\n%s",
		strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs the causeway command in-process, as main would.
func runCLI(stdin string, args ...string) cliResult {
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return cliResult{args: args, code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// lockedBuffer collects a child's output; the exec package writes to it from
// its own goroutine while a failing test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
