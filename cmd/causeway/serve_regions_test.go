//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/causewaydb/causeway/internal/supervisor"
)

// serveRegions runs a test's regions as `causeway serve` child processes
// through internal/supervisor: the test binary re-executed as causeway (see
// TestMain), on 127.0.0.1, each region on addresses fixed across its
// restarts. Every process is killed and reaped when the test ends, and
// each region's stderr is logged if the test failed.
type serveRegions struct {
	t   *testing.T
	sup *supervisor.Supervisor

	mu     sync.Mutex
	stderr map[string]*lockedBuffer // of each region's latest start
	exits  []string                 // regions that exited on their own
}

func newServeRegions(t *testing.T) *serveRegions {
	t.Helper()
	s := &serveRegions{t: t, stderr: map[string]*lockedBuffer{}}
	s.sup = supervisor.New(supervisor.Config{
		Command:      supervisor.Command{Path: os.Args[0], Env: []string{runMainEnv + "=1"}},
		StartTimeout: 60 * time.Second,
		Output: func(region string, _ int) (io.Writer, io.Writer) {
			b := &lockedBuffer{}
			s.mu.Lock()
			s.stderr[region] = b
			s.mu.Unlock()
			return nil, b
		},
		OnExit: func(e supervisor.Exit) {
			s.mu.Lock()
			s.exits = append(s.exits, fmt.Sprintf("%s (%v)", e.Region, e.Err))
			s.mu.Unlock()
		},
	})
	// Cleanups run last-registered first: kill and reap, then show stderr.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.exits) > 0 {
			t.Logf("regions that exited on their own: %v", s.exits)
		}
		for _, name := range s.sup.Regions() {
			if b := s.stderr[name]; b != nil {
				t.Logf("stderr of region %s (latest start):\n%s", name, b)
			}
		}
	})
	t.Cleanup(s.sup.Close)
	return s
}

// add adds a region, down, on free addresses of 127.0.0.1.
func (s *serveRegions) add(name, dataDir string) supervisor.Region {
	s.t.Helper()
	addrs, err := supervisor.FreeAddrs(1)
	if err != nil {
		s.t.Fatal(err)
	}
	r := supervisor.Region{Name: name, DataDir: dataDir, Addrs: addrs[0]}
	if err := s.sup.Add(r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// start starts a region that is down with the serve flags args (besides
// its name, data directory and addresses) and returns its base URL once it
// prints its readiness line.
func (s *serveRegions) start(ctx context.Context, name string, args ...string) string {
	s.t.Helper()
	if err := s.sup.Start(ctx, name, args); err != nil {
		s.t.Fatalf("causeway serve %v: %v", args, err)
	}
	r, _ := s.sup.Region(name)
	return r.URL()
}

// kill sends SIGKILL to a region and fails the test unless the signal is
// what ended it.
func (s *serveRegions) kill(name string) {
	s.t.Helper()
	if err := s.sup.Kill(name); err != nil {
		s.t.Fatalf("kill %s: %v", name, err)
	}
}

// stderrOf is what the region's latest start wrote to stderr.
func (s *serveRegions) stderrOf(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.stderr[name]; b != nil {
		return b.String()
	}
	return ""
}
