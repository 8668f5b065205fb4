package replica

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestGroupCommitConfig(t *testing.T) {
	c := Config{Region: "us-east", DataDir: "d"}
	c.EnsureDefaults()
	if c.GroupCommitDelay != DefaultGroupCommitDelay || c.GroupCommitWriters != DefaultGroupCommitWriters {
		t.Errorf("defaults: delay %v writers %d", c.GroupCommitDelay, c.GroupCommitWriters)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.GroupCommitWriters = -1 },
		func(c *Config) { c.GroupCommitDelay = 2 * time.Second },
	} {
		c := Config{Region: "us-east", DataDir: "d"}
		bad(&c)
		c.EnsureDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("config %+v validated", c)
		}
	}
}

// TestGroupCommitPauseReachesTheWAL: the pause is Pebble's, not only a
// number in the node. With a write held in progress and a 300ms pause, a
// write after another waits for the pause that followed the first one's
// fsync. (A lower bound only: the pause is enforced, so it cannot be
// flaky; without it the second write takes one fsync.)
func TestGroupCommitPauseReachesTheWAL(t *testing.T) {
	const pause = 300 * time.Millisecond
	n := openMemNode(t, vfs.NewMem(), func(c *Config) {
		c.GroupCommitDelay = pause
		c.GroupCommitWriters = 1
	})
	defer n.group.Enter()() // one write in progress throughout
	ctx := context.Background()
	if _, err := n.Put(ctx, "first", []byte("1"), "", ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := n.Put(ctx, "second", []byte("2"), "", ""); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < pause/3 {
		t.Fatalf("the second write took %v; with a %v pause after the first fsync it must wait", took, pause)
	}
}

// TestAcknowledgedWritesSurviveCrashUnderGroupCommit: 16 writers share
// fsyncs with the pause in force; the machine crashes (every byte not
// fsynced is lost) while they run. Every write acknowledged before the
// crash is there after a restart, with its value.
func TestAcknowledgedWritesSurviveCrashUnderGroupCommit(t *testing.T) {
	fs := vfs.NewCrashableMem()
	n := openMemNode(t, fs, func(c *Config) {
		c.GroupCommitDelay = 2 * time.Millisecond
		c.GroupCommitWriters = 2
	})
	ctx := context.Background()
	const writers, perWriter = 16, 40
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	halfway := make(chan struct{})
	var once sync.Once
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("w%02d/%03d", w, i)
				if _, err := n.Put(ctx, key, []byte(key), "", ""); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, key)
				if len(acked) == writers*perWriter/2 {
					once.Do(func() { close(halfway) })
				}
				mu.Unlock()
			}
		})
	}
	<-halfway
	mu.Lock()
	durable := slices.Clone(acked) // acknowledged, hence fsynced, before the crash
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	wg.Wait()

	after := openMemNode(t, crashed)
	for _, key := range durable {
		res, _, err := after.Get(ctx, key, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Found || string(res.Version.Value) != key {
			t.Fatalf("acknowledged write %q is missing after the crash (found=%v)", key, res.Found)
		}
	}
	if len(durable) < writers*perWriter/2 {
		t.Fatalf("checked %d writes, want at least %d", len(durable), writers*perWriter/2)
	}
}
