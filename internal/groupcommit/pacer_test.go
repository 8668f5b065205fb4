package groupcommit

import (
	"testing"
	"time"
)

func TestPacerPausesOnlyUnderLoad(t *testing.T) {
	g := New(time.Millisecond, 3)
	var leave []func()
	for active := range 5 {
		want := time.Duration(0)
		if active >= 3 {
			want = time.Millisecond
		}
		if got := g.MinSyncInterval(); got != want {
			t.Errorf("%d writes in progress: pause %v, want %v", active, got, want)
		}
		leave = append(leave, g.Enter())
	}
	for _, l := range leave {
		l()
	}
	if got := g.MinSyncInterval(); got != 0 {
		t.Errorf("after every write left: pause %v, want none", got)
	}
	off := New(-1, 1)
	off.Enter()
	if got := off.MinSyncInterval(); got != 0 {
		t.Errorf("disabled pause (negative delay): %v", got)
	}
}
