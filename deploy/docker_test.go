package deploy

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions: comments and
// blank lines dropped, lines ending in a backslash joined with the next.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s ends inside a continued line", path)
	}
	return out
}

// TestDockerfile checks the image's promises: a static binary built with
// CGO_ENABLED=0, a minimal final image, a non-root user, no HEALTHCHECK,
// and an exec-form entrypoint running the binary the build stage made.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "../Dockerfile")
	var stages [][]instruction
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			stages = append(stages, []instruction{in})
		case in.cmd == "ARG" && len(stages) == 0:
		case len(stages) == 0:
			t.Fatalf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
		if in.cmd == "HEALTHCHECK" {
			t.Errorf("line %d: HEALTHCHECK: orchestrators probe gRPC health; the image must not carry its own", in.line)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a build stage and a final stage, got %d stage(s)", len(stages))
	}
	build := buildCommand(t, stages[0])
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/causeway") {
		t.Errorf("the build stage's go build %q is not CGO_ENABLED=0 of ./cmd/causeway", build)
	}

	final := stages[len(stages)-1]
	base := strings.Fields(final[0].args)[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("final image FROM %s; want distroless/static or scratch (no shell, no libc)", base)
	}
	var user, entrypoint string
	var copied []string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			copied = append(copied, in.args)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER %q; want a non-root user", user)
	}
	var argv []string
	if err := json.Unmarshal([]byte(entrypoint), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("ENTRYPOINT %q is not the exec form (a JSON array): without a shell in the image it must be (%v)", entrypoint, err)
	}
	found := false
	for _, c := range copied {
		f := strings.Fields(c)
		if len(f) >= 3 && strings.HasPrefix(f[0], "--from=") && f[len(f)-1] == argv[0] {
			found = true
		}
	}
	if !found {
		t.Errorf("ENTRYPOINT runs %s, which no COPY --from=build puts there", argv[0])
	}

	// The binary the build stage makes is static: no interpreter, no
	// shared libraries.
	bin := staticBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v: not static", bin, libs)
	}
}

// buildCommand is the go build command of the build stage's RUN.
func buildCommand(t *testing.T, stage []instruction) string {
	t.Helper()
	for _, in := range stage {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			cmd, _, _ := strings.Cut(in.args, "&&")
			return strings.TrimSpace(cmd)
		}
	}
	t.Fatal("the build stage has no RUN with go build")
	return ""
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// staticBinary builds causeway with the Dockerfile's own build command (its
// environment assignments and go build flags, -o redirected to a temporary
// directory) once per test binary, and returns its path.
func staticBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary is built for linux")
	}
	binaryOnce.Do(func() {
		ins := parseDockerfile(t, "../Dockerfile")
		var stage []instruction
		for _, in := range ins {
			if in.cmd == "FROM" && stage != nil {
				break
			}
			if in.cmd == "FROM" || stage != nil {
				stage = append(stage, in)
			}
		}
		words, err := shellWords(buildCommand(t, stage))
		if err != nil {
			binaryErr = err
			return
		}
		dir, err := os.MkdirTemp("", "causeway-image-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "causeway")
		var env, argv []string
		for i, w := range words {
			if k, _, ok := strings.Cut(w, "="); ok && len(argv) == 0 && !strings.HasPrefix(k, "-") {
				env = append(env, w)
				continue
			}
			if i > 0 && words[i-1] == "-o" {
				w = binaryPath
			}
			argv = append(argv, w)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = &buildError{argv: argv, env: env, out: string(out), err: err}
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

type buildError struct {
	argv, env []string
	out       string
	err       error
}

func (e *buildError) Error() string {
	return strings.Join(e.env, " ") + " " + strings.Join(e.argv, " ") + ": " + e.err.Error() + "\n" + e.out
}

// shellWords splits a command line the way sh does for the Dockerfile's
// simple commands: whitespace separates words, double and single quotes
// group (and are removed).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, &os.PathError{Op: "parse", Path: s, Err: os.ErrInvalid}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
