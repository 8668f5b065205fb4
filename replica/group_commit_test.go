package replica

import (
	"testing"
	"time"
)

func TestGroupCommitPausesOnlyUnderLoad(t *testing.T) {
	g := &groupCommit{delay: time.Millisecond, writers: 3}
	var leave []func()
	for active := range 5 {
		want := time.Duration(0)
		if active >= 3 {
			want = time.Millisecond
		}
		if got := g.minSyncInterval(); got != want {
			t.Errorf("%d writes in progress: pause %v, want %v", active, got, want)
		}
		leave = append(leave, g.enter())
	}
	for _, l := range leave {
		l()
	}
	if got := g.minSyncInterval(); got != 0 {
		t.Errorf("after every write left: pause %v, want none", got)
	}
	off := &groupCommit{delay: -1, writers: 1}
	off.enter()
	if got := off.minSyncInterval(); got != 0 {
		t.Errorf("disabled pause (negative delay): %v", got)
	}
}

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
